"""What the recorder keeps from step to step (decoded user instructions, the registers
before) never stands in for what the machine holds now."""

from __future__ import annotations

import gc

import pytest

from engine import load_scenario, parse_scenario, run_scenario
from engine.run.roundtrip import Run
from tests.conftest import SCENARIOS, trace_of

#: A loop that flips one byte of the instruction it jumps to on every turn, so that the
#: same address holds ``incl %eax`` and ``decl %eax`` in turn.
REWRITES_ITSELF = """
name = "rewrites its own code"
step_cap = 60
[user]
code = '''
lea 1f(%rip), %rbx
mov $0x600000, %rdi
movl $0xe3ffc0ff, (%rdi)
1: xorb $0x08, 1(%rdi)
jmp *%rdi
'''
[[memory]]
address = 0x600000
size = 0x1000
access = "rwx"
"""


def test_code_rewritten_between_turns_is_decoded_from_its_new_bytes() -> None:
    trace = run_scenario(parse_scenario(REWRITES_ITSELF, "s.toml"))
    at = [s for s in trace.steps if s.rip == 0x600000]
    assert len(at) >= 10
    for k, step in enumerate(at):
        # the first turn flips ff c0 (inc) to ff c8 (dec), the next back, and so on
        code, text, rax_step = (
            (b"\xff\xc8", "decl %eax", -1) if k % 2 == 0 else (b"\xff\xc0", "incl %eax", 1)
        )
        assert (step.code, step.text) == (code, text)
        assert step.source == "(not in the user's code: bytes " + code.hex(" ") + ")"
        before = trace.steps[step.index - 1].regs.rax
        assert step.regs.rax == (before + rax_step) & 0xFFFFFFFF
        assert "rax" in step.changed


@pytest.mark.parametrize(
    "name", sorted(str(p.relative_to(SCENARIOS)) for p in SCENARIOS.rglob("*.toml"))
)
def test_changed_names_are_the_registers_that_differ_from_the_step_before(name: str) -> None:
    trace = trace_of(name)
    prev = trace.initial
    for step in trace.steps:
        assert step.changed == step.regs.changed_from(prev), step.number
        # a step that changes nothing shares the record of the step before
        assert (step.regs is prev) == (step.regs == prev)
        prev = step.regs


@pytest.mark.parametrize("enabled", [True, False])
def test_a_recorded_run_leaves_the_cyclic_collector_as_it_found_it(
    enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        run_scenario(load_scenario(SCENARIOS / "getpid.toml"))
        assert gc.isenabled() is enabled

        def broken(self: Run) -> None:
            assert not gc.isenabled()  # off while recording
            raise RuntimeError("inside the run")

        monkeypatch.setattr(Run, "execute", broken)
        with pytest.raises(RuntimeError):  # a run that ends in an exception, too
            run_scenario(load_scenario(SCENARIOS / "getpid.toml"))
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
