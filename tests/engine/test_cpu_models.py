"""`[machine] cpu_model`: which mitigations the kernel patched in, per CPU model.

The Skylake-Client model is checked instruction by instruction against the real 6.1
on QEMU's model of that name by test_oracle.py (tests/engine/oracle/skylake-client/).
"""

from __future__ import annotations

import pytest

from engine import ScenarioError, parse_scenario, run_scenario
from engine.scenario.parse import with_kernel

GETPID = (
    'name = "m"\n[machine]\nkernel = "{kernel}"\n{extra}\n[user]\ncode = "mov $39, %eax; syscall"\n'
)


def scenario(kernel: str = "v6.1", extra: str = 'cpu_model = "skylake-client"') -> str:
    return GETPID.format(kernel=kernel, extra=extra)


def test_skylake_runs_verw_right_before_sysretq_and_qemu_max_jumps_over_it() -> None:
    sky = run_scenario(parse_scenario(scenario()))
    default = run_scenario(parse_scenario(scenario(extra="")))
    assert len(sky.steps) == len(default.steps) + 1
    texts = [s.text for s in sky.steps]
    verw = texts.index(next(t for t in texts if t.startswith("verw")))
    assert texts[verw + 1] == "sysretq" and texts[verw - 1] == "nop"  # 66 90, then VERW
    assert sky.steps[verw].code[:2] == b"\x0f\x00" and sky.steps[verw - 1].code == b"\x66\x90"
    assert sky.steps[verw].regs.rflags & 0x40  # ZF: x86_verw_sel is __KERNEL_DS, writable
    assert not any(t.startswith("verw") for t in (s.text for s in default.steps))
    assert sky.exit == default.exit == "sysret" and sky.final == default.final


def test_on_6_12_skylake_runs_the_alternatives_verw_itself_before_sysretq() -> None:
    sky = run_scenario(parse_scenario(scenario("v6.12")))
    default = run_scenario(parse_scenario(scenario("v6.12", extra="")))
    assert len(sky.steps) == len(default.steps)  # the 7-byte NOP's place
    at = next(i for i, s in enumerate(default.steps) if s.code == b"\x0f\x1f\x80\x00\x00\x00\x00")
    verw = sky.steps[at]
    assert verw.text.startswith("verw") and verw.code[:3] == b"\x0f\x00\x2d"
    assert len(verw.code) == 7 and verw.regs.rflags & 0x40
    assert sky.exit == default.exit == "sysret" and sky.final == default.final


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            scenario("v5.8.13"),
            "checked against a real trace of v6.1 and v6.12 only; this is v5.8.13",
        ),
        (
            scenario(extra='cpu = "amd"\ncpu_model = "skylake-client"'),
            'is an Intel CPU: cpu = "intel"',
        ),
        (scenario(extra='cpu_model = "pentium"'), "machine.cpu_model"),
        (scenario(extra="cpu_model = 3"), "machine.cpu_model"),
    ],
)
def test_a_cpu_model_off_its_checked_kernels_is_one_line_naming_the_key(
    text: str, words: str
) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "m.toml")
    said = str(err.value)
    assert "\n" not in said and "machine.cpu_model" in said and words in said


def test_another_kernel_for_compare_falls_back_to_qemus_default_model() -> None:
    sc = parse_scenario(scenario())
    assert sc.machine.cpu_model == "skylake-client"
    assert with_kernel(sc, "v5.8.13").machine.cpu_model == "qemu-max"
    assert with_kernel(sc, "v6.12").machine.cpu_model == "skylake-client"
