"""The Linux x86 selftests that cross the SYSCALL path, as scenarios (scenarios/selftests/).

Every file there says, in [expect], what the real kernel of its version does on its CPU
vendor; this runs each one, recorded and not, and asserts it.  Beyond the exit path,
the tests below assert what the selftest itself checks after the return (flags still
set, RSP round-tripped, SS repaired, ...), read from the machine.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from engine import (
    ScenarioError,
    Session,
    Trace,
    load_scenario,
    parse_scenario,
    run_scenario,
    with_kernel,
)
from engine.constants import AC, DF, NT, TF, USER_DS
from engine.trace import EventKind, Regs
from engine.views.json import expectation_mismatches
from tests.conftest import SCENARIOS

SELFTESTS = SCENARIOS / "selftests"
FILES = sorted(SELFTESTS.glob("*.toml"))


@functools.cache
def trace(name: str) -> Trace:
    return run_scenario(load_scenario(SELFTESTS / name))


def final(name: str) -> Regs:
    """The registers where the run of *name* ended."""
    regs = trace(name).final
    assert regs is not None
    return regs


def test_the_selftest_scenarios_are_there() -> None:
    assert len(FILES) >= 40
    stems = {p.name.split("-", 1)[0] for p in FILES}
    assert stems >= {
        "sysret_rip", "syscall_nt", "single_step_syscall", "syscall_arg_fault", "sigreturn",
        "ptrace_syscall", "entry",
    }  # fmt: skip


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("record", [True, False], ids=["recorded", "fast"])
def test_selftest_scenario_meets_its_expectation(path: Path, record: bool) -> None:
    sc = load_scenario(path)
    assert set(sc.expect.given) >= {"exit", "failed_check", "fault"}, "say the whole outcome"
    source = path.name.split("-", 1)[0]
    if source == "entry":  # what the entry code's own comments say a check is for
        assert "arch/x86/entry/" in sc.description
    else:
        assert f"tools/testing/selftests/x86/{source}.c" in sc.description
    assert expectation_mismatches(sc, Session(sc).run(record)) == []


def test_check_command_recurses_into_selftests() -> None:
    from tui.cli import _scenario_files

    found = _scenario_files([str(SCENARIOS)])
    assert set(FILES) <= set(found)


# -- what each selftest checks after the call, on the machine's final state -------------


@pytest.mark.parametrize(
    "name", [p.name for p in FILES if p.name.startswith("syscall_nt-")], ids=str
)
def test_syscall_nt_flags_are_still_set_after_the_call(name: str) -> None:
    """do_it(): `(flags & extraflags) == extraflags` after the syscall returns."""
    t = trace(name)
    code = load_scenario(SELFTESTS / name).code
    assert code is not None
    extra = int(code.source.split("orq $", 1)[1].split(",", 1)[0], 16)
    assert extra & (NT | AC | DF | TF) == extra
    assert t.final_cpl == 3
    assert final(name).rflags & extra == extra
    # ... and the kernel ran without any of them (MSR_SYSCALL_MASK)
    kernel = [s for s in t.steps if s.regs.cpl == 0]  # the state after each step
    assert kernel and all(s.regs.rflags & extra == 0 for s in kernel)


def test_sigreturn_restores_a_non_canonical_rsp_through_iret() -> None:
    """test_valid_sigreturn(64, ...): the SP it asked for is the SP it got."""
    for name in ("sigreturn-valid-64-bit-cs.toml", "sigreturn-valid-64-bit-cs-6.12.toml"):
        t = trace(name)
        assert t.final_cpl == 3 and final(name).rsp == 0x8BADF00D5AADC0DE
        assert (final(name).cs, final(name).ss) == (0x33, USER_DS)


def test_sigreturn_to_a_32_bit_cs_lands_in_compatibility_mode() -> None:
    regs = final("sigreturn-valid-32-bit-cs.toml")
    assert regs.cpl == 3 and regs.cs == 0x23
    assert regs.rsp & 0xFFFFFFFF == 0x5AADC0DE  # the low half survives


def test_nonstrict_sigreturn_repairs_ss() -> None:
    """test_nonstrict_ss(): SS = 0 without UC_STRICT_RESTORE_SS comes back as __USER_DS."""
    t = trace("sigreturn-nonstrict-ss.toml")
    assert t.pt_regs_after_call["ss"] == USER_DS
    assert t.final_cpl == 3 and final("sigreturn-nonstrict-ss.toml").ss == USER_DS


def test_invalid_state_syscall_returns_enosys_to_the_ud2() -> None:
    for name in (
        "syscall_arg_fault-syscall-invalid-state.toml",
        "syscall_arg_fault-syscall-invalid-state-6.12.toml",
        "syscall_arg_fault-syscall-tf-invalid-state.toml",
    ):
        t = trace(name)
        code = load_scenario(SELFTESTS / name).code
        assert code is not None
        ud2 = next(a for a, _, text in code.lines if text == "ud2")
        regs = final(name)
        assert t.final_cpl == 3 and regs.rip == ud2  # fetched, not executed
        assert regs.rax == (-38) & (1 << 64) - 1  # -ENOSYS
        assert regs.rsp == 0xFFFFFFFF


@pytest.mark.parametrize(
    ("name", "nr", "syscall_at"),
    [
        ("ptrace_syscall-sysemu-restart.toml", 186, 0x401026),
        ("ptrace_syscall-sysemu-restart-6.12.toml", 186, 0x401026),
        ("ptrace_syscall-restart-under-ptrace-6.1.toml", 34, 0x401005),
    ],
)
def test_a_restarted_syscall_returns_onto_the_syscall(name: str, nr: int, syscall_at: int) -> None:
    """regs->ip -= 2, ax = orig_ax: IRET lands on the `syscall` with its number again."""
    regs = final(name)
    assert regs.cpl == 3 and regs.rip == syscall_at and regs.rax == nr
    assert regs.rcx == syscall_at + 2  # what IRET does not touch: still SYSCALL's RCX


def test_negative_user_gs_base_survives_the_call() -> None:
    regs = final("syscall_arg_fault-syscall-negative-gsbase-6.12.toml")
    assert regs.cpl == 3 and regs.gs_base == 0xFFFFFFFFFFFF0000


@pytest.mark.parametrize("key", ["gs_base", "fs_base"])
@pytest.mark.parametrize(
    ("kernel", "base", "refused"),
    [
        ("v5.8.13", 0xFFFFFFFFFFFF0000, True),  # no FSGSBASE: arch_prctl() refuses it
        ("v5.8.13", 0x7FFFFFFFF000, True),  # TASK_SIZE_MAX itself: -EPERM as well
        ("v5.8.13", 0x7FFFFFFFE000, False),  # arch_prctl(ARCH_SET_GS) accepts a user address
        ("v6.1", 0xFFFFFFFFFFFF0000, False),  # WRGSBASE may write any canonical base
        ("v6.12", 0xFFFFFFFFFFFF0000, False),
    ],
)
def test_a_user_base_only_fsgsbase_can_set_is_refused_on_v5_8(
    key: str, kernel: str, base: int, refused: bool
) -> None:
    text = f'name = "b"\n[machine]\nkernel = "{kernel}"\n[user]\n{key} = {base:#x}\n'
    if not refused:
        assert getattr(parse_scenario(text), key) == base
        return
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "b.toml")
    line = str(err.value)
    assert "\n" not in line and f"user.{key}" in line and "FSGSBASE" in line


def test_moving_a_kernel_half_gs_base_to_v5_8_is_refused() -> None:
    sc = load_scenario(SELFTESTS / "syscall_arg_fault-syscall-negative-gsbase-6.12.toml")
    with pytest.raises(ScenarioError, match=r"user\.gs_base: .*no FSGSBASE"):
        with_kernel(sc, "v5.8.13")
    assert with_kernel(sc, "v6.1").gs_base == 0xFFFFFFFFFFFF0000


def test_sigreturn_to_a_non_canonical_rip_faults_on_the_iretq() -> None:
    """test_sigreturn_to(): the #GP is raised by the IRETQ, at CPL 0, before user mode."""
    for p in FILES:
        if not p.name.startswith("sysret_rip-sigreturn-to-"):
            continue
        t = trace(p.name)
        if t.exit != "iret":
            continue
        assert t.fault is not None and t.fault.rip == t.steps[-1].rip
        assert t.steps[-1].text == "iretq"


# -- regressions the selftest scenarios found --------------------------------------------


def _user(code: str, machine: str = "") -> Trace:
    text = f'name = "t"\n{machine}[user]\ncode = "{code}"\n'
    return run_scenario(parse_scenario(text, "t.toml"))


def test_a_negative_immediate_is_accepted_at_its_operand_width() -> None:
    """`movl $-1, %eax` (syscall_arg_fault.c) reads back as $0xffffffff: the same bytes."""
    sc = parse_scenario('name = "t"\n[user]\ncode = "movl $-1, %eax; movw $-2, %bx; syscall"\n')
    assert sc.code is not None and sc.code.code.startswith(bytes.fromhex("b8ffffffff"))
    t = run_scenario(sc)
    assert t.initial is not None


def test_a_negative_immediate_too_wide_for_its_operand_is_still_refused() -> None:
    from engine import ScenarioError

    with pytest.raises(ScenarioError, match=r"user\.code"):
        parse_scenario('name = "t"\n[user]\ncode = "movl $-0x100000001, %eax; syscall"\n')


@pytest.mark.parametrize("record", [True, False])
def test_sysenter_on_amd_is_ud_at_cpl3(record: bool) -> None:
    sc = parse_scenario('name = "t"\n[machine]\ncpu = "amd"\n[user]\ncode = "nop; sysenter"\n')
    t = Session(sc).run(record)
    assert t.fault is not None
    assert (t.fault.name, t.fault.cpl, t.fault.rip, t.fault.modelled) == ("#UD", 3, 0x401001, True)
    assert t.exit is None and t.final is not None and t.final.rip == 0x401001


def test_sysenter_of_a_64_bit_task_on_intel_stops_instead_of_running_past_it() -> None:
    """Unicorn would go on with the bytes after it (and fault there); a 64-bit task has no
    32-bit vDSO for do_fast_syscall_32 to return to, so the run stops at it, saying so."""
    t = _user("sysenter")
    assert t.fault is None and t.exit is None
    assert t.final is not None and t.final.rip == 0x401000
    assert t.stopped == "stopped at SYSENTER in a 64-bit task"
    said = [e.text for e in t.events if e.kind is EventKind.UNSUPPORTED]
    assert said and "entry_SYSENTER_compat" in said[0] and "64-bit vDSO" in said[0]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("sigreturn-bad-iret-64-ss-is-cs.toml", 0x30),  # the selftest's "#GP(0x30)"
        ("sigreturn-bad-iret-64-ss-is-cs-6.1.toml", 0x30),
        ("sigreturn-bad-iret-64-ldt-ss-6.12.toml", 0x34),  # LDT index 6
    ],
)
def test_iretq_refusing_ss_names_the_selector(name: str, code: int) -> None:
    """Unicorn raises the #GP but reports no error code: IRETQ's is the refused selector."""
    f = trace(name).fault
    assert f is not None and (f.name, f.cpl, f.error_code) == ("#GP", 0, code)
    assert "error code " + hex(code) + " (modelled)" in f.describe()


def test_iret_fault_follows_the_sdm_order() -> None:
    from engine.machine.boot import GDT_DESCRIPTORS
    from engine.machine.modelled import iret_fault

    def gdt(selector: int) -> int | None:
        i = selector >> 3
        return None if selector & 4 or i >= len(GDT_DESCRIPTORS) else GDT_DESCRIPTORS[i]

    gp, np_, ss_ = 13, 11, 12
    assert iret_fault(0x33, 0x2B, gdt) == (0, 0)
    assert iret_fault(0x23, 0x2B, gdt) == (0, 0)  # compatibility mode
    assert iret_fault(0x03, 0x2B, gdt) == (gp, 0)  # null CS
    assert iret_fault(0x2B, 0x2B, gdt) == (gp, 0x28)  # a data segment as CS
    assert iret_fault(0x13, 0x2B, gdt) == (gp, 0x10)  # DPL 0 code, RPL 3
    assert iret_fault(0x33, 0x03, gdt) == (gp, 0)  # null SS to CPL 3
    assert iret_fault(0x33, 0x33, gdt) == (gp, 0x30)  # code segment as SS
    assert iret_fault(0x33, 0x1B, gdt) == (gp, 0x18)  # DPL 0 data
    assert iret_fault(0x33, 0x29, gdt) == (gp, 0x28)  # SS RPL != CS RPL
    assert iret_fault(0x33, 0x3B, gdt) == (gp, 0x38)  # GDT entry 7 is empty
    assert iret_fault(0x33, 0x37, gdt) == (gp, 0x34)  # LDT: none here
    assert iret_fault(0x33, 0xFFFB, gdt) == (gp, 0xFFF8)  # past the limit
    absent = {0x30: GDT_DESCRIPTORS[6] & ~(0x80 << 40), 0x28: GDT_DESCRIPTORS[5] & ~(0x80 << 40)}
    assert iret_fault(0x33, 0x2B, lambda s: absent.get(s & ~3, gdt(s))) == (np_, 0x30)
    assert iret_fault(0x23, 0x2B, lambda s: absent.get(s & ~3, gdt(s))) == (ss_, 0x28)
