"""The inspector against the machine: walk equals the emulated MMU, x equals fresh reads.

For random steps of every shipped scenario and random addresses (mapped in either root,
unmapped, kernel, user, non-canonical) under both roots, the walk's verdict and physical
address are what Unicorn's MMU does with one load under that CR3 on a machine holding
the memory of the step (replayed by engine.gdbstub.replay), and ``x`` reads the value
that load reads.  At every step of every scenario, ``x`` of each pt_regs slot is the
word the step recorded on its stack.
"""

from __future__ import annotations

import json
import os
import random
from functools import cache

import pytest

from engine import layout as L
from engine import load_scenario
from engine.constants import PT_REGS_FIELDS, TSS_sp0
from engine.gdbstub import Replay
from engine.inspect.examine import Unit, examine, parse_x
from engine.inspect.expr import ExprError
from engine.inspect.info import info_cr, info_gdt, info_idt, info_msr, info_tss
from engine.inspect.machine_at import InspectError, MachineAt
from engine.inspect.pagewalk import Root, Stop, canonical
from engine.machine.idt import CEA_RO_IDT
from tests.conftest import SCENARIOS
from tests.engine.mmu_probe import MMU

ALL = sorted(p.name for p in SCENARIOS.glob("*.toml"))


@cache
def machine_at(name: str) -> MachineAt:
    return MachineAt.run(load_scenario(SCENARIOS / name))


def addresses(at: MachineAt, rng: random.Random, n: int) -> list[int]:
    """Addresses of every kind: in each named region, next to them, wild, non-canonical."""
    m = at.machine
    named = [a for _, a in m.named_regions()] + [u.vaddr + u.size - 8 for u in m.user]
    out = [a + rng.randrange(0, L.PAGE, 8) for a in named]
    out += [a - L.PAGE for a in named] + [a + 64 * L.PAGE for a in named]
    out += [m.layout.task_stack_top - 8, L.ENTRY_STACK_TOP - 8, 0, (1 << 64) - 8]
    out += [rng.getrandbits(64) & ~7 for _ in range(n)]  # mostly non-canonical
    half = 1 << (12 + 9 * at.levels - 1)
    out += [rng.randrange(0, half) & ~7 for _ in range(n)]  # canonical, user half
    out += [((1 << 64) - rng.randrange(8, half)) & ~7 for _ in range(n)]  # kernel half
    return out


def check_against_mmu(name: str, steps: int, per_kind: int, seed: int, sample: int = 0) -> None:
    """*steps* random steps (and the first and last), *per_kind* wild addresses of each
    kind, then *sample* of all the candidates (0: every one)."""
    at = machine_at(name)
    sc = load_scenario(SCENARIOS / name)
    replay = Replay(sc, at.trace)
    mmu = MMU(sc)
    rng = random.Random(f"{name}/{seed}")
    chosen = {0, at.last, *(rng.randrange(0, at.last + 1) for _ in range(steps))}
    for step in sorted(chosen):
        replay.goto(step)
        memory = replay.machine.snapshot_memory()
        candidates = addresses(at, rng, per_kind)
        if sample:
            candidates = rng.sample(candidates, min(sample, len(candidates)))
        for vaddr in candidates:
            report = at.walk(step, vaddr)
            for w in report.walks:
                probe = mmu.load(memory, w.decode.cr3, vaddr)
                where = f"{name} step {step} {w.root} root {vaddr:#x}"
                assert w.result.mapped == probe.mapped, where
                assert w.result.physical == probe.physical, where
                if probe.vector == 13:  # #GP: the non-canonical check, before paging
                    assert w.result.stop is Stop.NON_CANONICAL, where
                x = examine(at, step, hex(vaddr), 1, Unit.GIANT, str(w.root))
                assert x.units[0].value == probe.value, where
                if w.root is Root.USER:
                    # U/S: what user code may read under the root it runs with
                    user = mmu.load_user(memory, w.decode.cr3, vaddr)
                    assert w.result.user == user.mapped, f"CPL 3: {where}"
                    assert user.physical == (probe.physical if user.mapped else None), where


@pytest.mark.parametrize("name", ALL)
def test_walk_and_x_agree_with_the_emulated_mmu(name: str) -> None:
    check_against_mmu(name, steps=1, per_kind=2, seed=0, sample=16)


#: Seeds of the many-steps walk (each one more run of every scenario).  The gate runs one;
#: ``INSPECT_SEEDS=10 pytest -k many_steps`` looks at more steps and addresses.
SEEDS = int(os.environ.get("INSPECT_SEEDS", "1"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("seed", range(1, 1 + SEEDS))
def test_walk_and_x_agree_with_the_emulated_mmu_at_many_steps(name: str, seed: int) -> None:
    check_against_mmu(name, steps=16, per_kind=20, seed=seed)


@pytest.mark.parametrize("name", ALL)
def test_x_of_every_pt_regs_slot_is_the_recorded_stack_at_every_step(name: str) -> None:
    at = machine_at(name)
    for step in range(1, at.last + 1):
        rec = at.trace.steps[step - 1]
        recorded = {s.address: s.value for s in rec.stack if s.slot in PT_REGS_FIELDS}
        if not recorded:
            continue
        x = examine(at, step, "regs->r15", len(PT_REGS_FIELDS), root="kernel")
        for unit, slot in zip(x.units, PT_REGS_FIELDS, strict=True):
            assert unit.notes[0].text == f"regs->{slot}"
            if unit.address in recorded:
                assert unit.value == recorded[unit.address], f"{name} step {step} {slot}"


def test_walk_of_the_task_stack_stops_at_the_user_pgd_and_maps_under_the_kernel_root() -> None:
    at = machine_at("getpid.toml")
    first_kernel = next(s.index + 1 for s in at.trace.steps if s.cpl == 0)
    report = at.walk(first_kernel, at.pt_regs_base)
    user, kernel = report.walks
    assert (user.root, kernel.root) == (Root.USER, Root.KERNEL)
    assert user.decode.pti_user_table and not kernel.decode.pti_user_table
    assert user.result.stop is Stop.NOT_PRESENT and user.result.stop_level == 4
    assert len(user.levels) == 1 and "P" not in user.levels[0].bits
    assert kernel.result.mapped and kernel.result.page_size == L.PAGE
    assert [s.level for s in kernel.levels] == [4, 3, 2, 1]
    # the task stack is supervisor-only and never executable: both said, at the PTE
    assert kernel.result.user_denied_at == 1 and kernel.result.nx_at == 1
    assert kernel.result.physical == at.machine.task_stack_phys + (
        at.pt_regs_base - at.machine.layout.task_stack_base
    )


def test_walk_under_five_levels_reads_five_tables() -> None:
    at = machine_at("la57-rip-2-47.toml")
    w = at.walk(at.last, at.pt_regs_base).walks[1]
    assert [s.level for s in w.levels] == [5, 4, 3, 2, 1] and w.levels[0].name == "PGD (PML5)"
    assert canonical(1 << 55, 5) and not canonical(1 << 55, 4)


def test_x_annotates_labels_stacks_and_roots() -> None:
    at = machine_at("getpid.toml")
    call = next(s.index + 1 for s in at.trace.steps if s.label == "do_syscall_64")
    x = examine(at, call, "regs->r15-8", 1, root="kernel")
    assert x.units[0].notes[-1].text.startswith("entry_SYSCALL_64")  # the return address
    x = examine(at, at.last, "regs->sp", 1, root="kernel")
    assert any(n.text == "→ user stack" for n in x.units[0].notes)
    x = examine(at, 10, "0", 1)
    assert x.units[0].value is None and "not present" in x.units[0].annotation


def test_x_units_strings_and_instructions() -> None:
    at = machine_at("write-hello.toml")
    s = examine(at, at.last, "$rsi", 1, Unit.STRING)
    assert s.strings[0].text == "hello\\n" and s.strings[0].terminated  # escaped, not a newline
    b = examine(at, at.last, "$rsi", 2, Unit.BYTE)
    assert [u.value for u in b.units] == [ord("h"), ord("e")]
    w = examine(at, at.last, "$rsi", 1, Unit.WORD)
    assert w.units[0].value == int.from_bytes(b"hell", "little")
    i = examine(at, at.last, "entry_SYSCALL_64", 2, Unit.INSN, "kernel")
    assert i.instructions[0].text == "swapgs" and i.instructions[0].label == "entry_SYSCALL_64"
    assert parse_x("x/16h") == (16, Unit.HALF) and parse_x("x") == (1, Unit.GIANT)
    with pytest.raises(InspectError):
        parse_x("x/0g")


@pytest.mark.parametrize(
    "text",
    ["", "nosuch", "$nosuch", "regs->nosuch", "1 +", "(1", "1 2", "0x", "1 * 2", "a" * 300],
)
def test_bad_expressions_are_one_line_errors(text: str) -> None:
    at = machine_at("getpid.toml")
    with pytest.raises(ExprError) as err:
        examine(at, 1, text)
    assert "\n" not in str(err.value)


def test_expressions() -> None:
    at = machine_at("getpid.toml")
    regs = at.regs(5)
    assert examine(at, 5, "$rsp - 8 + 16").address == regs.rsp + 8
    assert examine(at, 5, "$sp").address == regs.rsp
    assert examine(at, 5, "regs->ip").address == examine(at, 5, "regs.ip").address
    assert examine(at, 5, "regs->ip").address == at.pt_regs_base + 16 * 8
    assert examine(at, 5, "-(8)").address == (1 << 64) - 8
    assert examine(at, 5, "entry_SYSCALL_64+4").address == at.trace.symbols["entry_SYSCALL_64"] + 4
    with pytest.raises(InspectError):
        examine(at, at.last + 1, "0")


def test_info_reads_the_tss_and_gdt_from_memory_at_the_step() -> None:
    at = machine_at("getpid.toml")
    tss = {f.name: f.value for f in info_tss(at, at.last).fields}
    assert tss["sp0"] == L.ENTRY_STACK_TOP
    user_rsp = at.trace.initial.rsp
    assert tss["sp2"] == user_rsp
    assert tss["io_bitmap_base"] > info_tss(at, 1).limit
    raw = at.read_virt(at.last, at.machine.kernel_cr3, at.machine.layout.tss + TSS_sp0, 8)
    assert raw is not None and int.from_bytes(raw, "little") == tss["sp0"]
    gdt = {d.name: d for d in info_gdt(at, 1).descriptors}
    assert gdt["__KERNEL_CS"].long and gdt["__KERNEL_CS"].dpl == 0
    assert gdt["__USER_CS"].dpl == 3 and gdt["GDT_ENTRY_TSS"].base == at.machine.layout.tss
    idt = info_idt(at, 1)
    assert idt.base == CEA_RO_IDT and 0x80 in {vector for vector, *_ in idt.gates}
    cr = {r.name: r for r in info_cr(at, at.last).registers}
    assert cr["cr3"].value == at.regs(at.last).cr3 and "PG" in cr["cr0"].bits
    msr = {r.name: r for r in info_msr(at, 1).registers}
    assert msr["LSTAR"].bits == ("entry_SYSCALL_64",)


def test_headless_twins(capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    path = str(SCENARIOS / "getpid.toml")
    assert main(["walk", path, "regs->sp", "--step", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    user, kernel = out["roots"]
    assert (user["root"], kernel["root"]) == ("user", "kernel")
    assert user["result"]["mapped"] is False and user["result"]["physical"] is None
    assert kernel["result"]["mapped"] is True and kernel["result"]["physical"].startswith("0x")
    assert user["levels"][0]["name"] == "PGD (PML4)" and "cr3" in user
    assert main(["x", path, "regs->r15", "--count", "21", "--root", "kernel", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    words = out["words"]
    assert len(words) == 21 and words[16]["annotation"].startswith("regs->ip")
    assert set(words[0]) >= {"address", "value", "annotation"}
    assert main(["x", path, "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nosuch" in err
    assert main(["walk", path, "0", "--step", "99999"]) == 2
    assert main(["x", path, "0", "--root", "sideways"]) == 2
    assert main(["info", path, "tss"]) == 0
    assert "sp0" in capsys.readouterr().out
    assert main(["info", path, "tss", "--step", "20", "--json"]) == 0
    tss = json.loads(capsys.readouterr().out)
    sp2 = next(f for f in tss["fields"] if f["name"] == "sp2")
    # entry_SYSCALL_64 parks the user RSP in sp2 before it switches stacks
    assert int(sp2["value"], 16) == machine_at("getpid.toml").trace.initial.rsp
    assert tss["kind"] == "tss" and tss["step"] == 20
    for topic in ("gdt", "idt", "cr", "msr"):
        assert main(["info", path, topic, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["kind"] == topic


def test_command_lines_answer_with_the_inspection_results() -> None:
    from engine.inspect.command import CommandError, completions, run_command
    from engine.inspect.examine import Examination
    from engine.inspect.info import TssInfo
    from engine.inspect.pagewalk import PageWalkReport

    at = machine_at("getpid.toml")
    x = run_command(at, 40, "x/4g regs->ip --root kernel")
    assert isinstance(x, Examination) and x.count == 4 and x.root == "kernel"
    # regs->ip holds the user RIP that SYSCALL left in RCX at the first kernel step
    assert x.units[0].value == next(s for s in at.trace.steps if s.cpl == 0).regs.rcx
    walk = run_command(at, 3, "walk $rsp + 8")
    assert isinstance(walk, PageWalkReport) and walk.vaddr == at.regs(3).rsp + 8
    assert isinstance(run_command(at, 1, "info tss"), TssInfo)
    for bad in ("", "y 1", "x", "x/9999999g 0", "x 0 --root", "x 0 --root up", "info", "walk"):
        with pytest.raises((CommandError, InspectError)):
            run_command(at, 1, bad)
    assert completions(at, "wa") == ("walk", "watch")
    assert completions(at, "info t") == ("tss",)
    assert "regs->ip" in completions(at, "x/8g regs->i")
    assert "$rsp" in completions(at, "walk $rs")
    assert "entry_SYSCALL_64" in completions(at, "x entry_S")
    assert completions(at, "x 0 --root ") == ("kernel", "live", "user")
    # break also completes the C functions the run's statements are inside; x does not
    assert "__syscall_return_slowpath" in completions(at, "break __syscall_ret")  # v5.8
    assert "__syscall_return_slowpath" not in completions(at, "x __syscall_ret")
