"""The round trip on the emulated machine: registers, memory, events and exit paths."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from unicorn import UC_HOOK_INTR
from unicorn import x86_const as X

from engine import HookError, ScenarioError, Session, load_scenario, parse_scenario, run_scenario
from engine import layout as L
from engine.checks import describe
from engine.constants import (
    CHECK_NAMES,
    KERNEL_CS,
    MASK64,
    PT_REGS_FIELDS,
    STAR_VALUE,
    SYSCALL_MASK_V58,
    USER_CS,
    USER_DS,
)
from engine.machine.core import Machine
from engine.machine.modelled import cr3_as_stored, syscall_transition, sysret_faults
from engine.scenario.model import MachineConfig
from engine.trace import CheckResult, EventKind, Relation, Step, Trace
from tests.conftest import SCENARIOS, trace_of


def sym(trace: Trace, name: str) -> int:
    return trace.symbols[name]


def first(trace: Trace, pred: Callable[[Step], bool]) -> Step:
    return next(s for s in trace.steps if pred(s))


def test_user_code_runs_at_cpl3_and_kernel_at_cpl0() -> None:
    t = trace_of("getpid.toml")
    user = [s for s in t.steps if s.label == "user"]
    kernel = [s for s in t.steps if s.label != "user"]
    assert [s.text for s in user] == ["movl $0x27, %eax", "syscall"]
    assert all((s.cpl == 3 and s.regs.cs == USER_CS) or s.text == "syscall" for s in user)
    assert all(s.cpl == 0 for s in kernel)
    assert t.initial.cs == USER_CS and t.initial.ss == USER_DS and t.initial.cpl == 3


def test_syscall_resumes_at_lstar_not_lstar_plus_2() -> None:
    t = trace_of("getpid.toml")
    i = next(i for i, s in enumerate(t.steps) if s.text == "syscall")
    after = t.steps[i]
    lstar = t.msrs["LSTAR"]
    assert lstar == sym(t, "entry_SYSCALL_64")
    assert after.regs.rip == lstar
    assert t.steps[i + 1].rip == lstar and t.steps[i + 1].text == "swapgs"


def test_syscall_transition_registers() -> None:
    t = trace_of("getpid.toml")
    s = first(t, lambda s: s.text == "syscall")
    assert s.modelled and any(e.kind == "syscall" and e.modelled for e in s.events)
    assert s.regs.rcx == s.rip + 2  # the instruction after the syscall
    assert s.regs.r11 == 0x246  # user RFLAGS
    assert s.regs.rflags == (0x246 & ~SYSCALL_MASK_V58) | 2  # IF masked
    assert s.regs.cs == KERNEL_CS and s.regs.ss == KERNEL_CS + 8
    assert s.regs.rsp == t.initial.rsp  # SYSCALL does not touch RSP ...
    assert s.regs.cr3 == t.initial.cr3  # ... nor CR3
    assert s.regs.gs_base == t.initial.gs_base  # ... nor GS


def test_msrs_are_read_from_the_cpu() -> None:
    t = trace_of("getpid.toml")
    assert t.msrs["STAR"] == STAR_VALUE == 0x0023001000000000
    assert t.msrs["SYSCALL_MASK"] == 0x47700
    assert t.msrs["EFER"] == 0xD01  # SCE LME LMA NXE


def test_swapgs_swaps_the_gs_bases() -> None:
    t = trace_of("arch-prctl-set-gs.toml")
    swaps = [i for i, s in enumerate(t.steps) if s.text == "swapgs"]
    assert len(swaps) == 2
    for i in swaps:
        before, after = t.steps[i - 1].regs, t.steps[i].regs
        assert after.gs_base == before.kernel_gs_base
        assert after.kernel_gs_base == before.gs_base
    # entry: the per-CPU base becomes live
    assert t.steps[swaps[0]].regs.gs_base == 0xFFFF88801F400000


def test_arch_prctl_set_gs_returns_with_new_gs_base() -> None:
    t = trace_of("arch-prctl-set-gs.toml")
    assert t.pt_regs_after_call["ax"] == 0
    assert t.final is not None and t.final.gs_base == 0x7F0000001000
    assert t.initial.gs_base == 0


def test_cr3_switches_and_bit63_is_not_stored() -> None:
    t = trace_of("getpid.toml")
    writes = [s for s in t.steps if s.text.endswith(", %cr3")]
    assert len(writes) == 2
    entry_write, exit_write = writes
    # The scratch register carried the no-flush bit; CR3 reads it back clear (modelled).
    assert entry_write.regs.rsp >> 63 == 1
    assert entry_write.regs.cr3 == t.initial.cr3 & ~0x1800
    assert entry_write.regs.cr3 >> 63 == 0 and entry_write.modelled
    assert exit_write.regs.cr3 == t.initial.cr3
    kernel_root = next(r for r in t.roots if r.name == "kernel")
    user_root = next(r for r in t.roots if r.name == "user")
    assert entry_write.regs.cr3 == kernel_root.cr3 and t.initial.cr3 == user_root.cr3
    assert user_root.pgd == kernel_root.pgd + 0x1000 and user_root.pcid == kernel_root.pcid | 0x800


def test_kpti_user_root_hides_the_kernel() -> None:
    t = trace_of("getpid.toml")
    user_root = {r.name: r for r in next(r for r in t.roots if r.name == "user").regions}
    kernel_root = {r.name: r for r in next(r for r in t.roots if r.name == "kernel").regions}
    for name in ("task stack", "per-CPU data", "kernel text"):
        assert not user_root[name].mapped and kernel_root[name].mapped
    for name in ("entry text", "cpu_entry_area GDT", "entry stack", "cpu_tss_rw"):
        assert user_root[name].mapped and kernel_root[name].mapped


def test_push_to_task_stack_under_user_cr3_page_faults() -> None:
    """Running the first pt_regs push before SWITCH_TO_KERNEL_CR3 really faults."""
    m = Machine(MachineConfig(), ())
    m.reset()
    push = next(a for a in m.image.entry if a.text == "pushq $0x2b")
    vectors: list[tuple[int, int]] = []

    def on_intr(uc, intno, data):
        vectors.append((intno, uc.reg_read(X.UC_X86_REG_CR2)))
        uc.emu_stop()

    m.uc.hook_add(UC_HOOK_INTR, on_intr)
    m.uc.reg_write(X.UC_X86_REG_CR3, m.user_cr3)
    m.uc.reg_write(X.UC_X86_REG_RSP, m.layout.task_stack_top)
    m.uc.emu_start(push.address, push.address + len(push.code))
    assert vectors == [(14, m.layout.task_stack_top - 8)]
    # ... and under the kernel root the same push goes through.
    vectors.clear()
    m.uc.reg_write(X.UC_X86_REG_CR3, m.kernel_cr3)
    m.uc.reg_write(X.UC_X86_REG_RSP, m.layout.task_stack_top)
    m.uc.emu_start(push.address, push.address + len(push.code))
    assert vectors == []
    assert m.uc.reg_read(X.UC_X86_REG_RSP) == m.layout.task_stack_top - 8


def test_pt_regs_slots_at_the_call() -> None:
    t = trace_of("getpid.toml")
    call = first(t, lambda s: s.text.startswith("callq"))
    slots = {s.slot: s.value for s in call.stack}
    assert list(slots)[:21] == list(reversed(PT_REGS_FIELDS))
    ret = call.rip + len(call.code)
    assert slots["return address"] == ret
    user = t.initial
    assert slots["ss"] == USER_DS and slots["cs"] == USER_CS
    assert slots["sp"] == user.rsp
    assert slots["flags"] == 0x246 and slots["r11"] == 0x246
    syscall = first(t, lambda s: s.text == "syscall")
    assert slots["ip"] == slots["cx"] == syscall.rip + 2
    assert slots["orig_ax"] == 39
    assert slots["ax"] == -38 & MASK64  # -ENOSYS until the call
    # The C function reads the same memory.
    assert t.pt_regs_at_call == {k: slots[k] for k in PT_REGS_FIELDS}
    assert t.pt_regs_after_call["ax"] == 1234


def test_pt_regs_fill_in_push_order() -> None:
    t = trace_of("getpid.toml")
    seen: list[str] = []
    for s in t.steps:
        names = [w.slot for w in s.stack if w.slot != "return address"]
        if len(names) > len(seen):
            assert names[: len(seen)] == seen
            seen = names
            assert s.stack_writes, "a slot appears only when a step writes it"
    assert seen == list(reversed(PT_REGS_FIELDS))


def test_registers_cleared_after_push() -> None:
    t = trace_of("write-hello.toml")
    call = first(t, lambda s: s.text.startswith("callq"))
    r = call.regs
    for name in ("rdx", "rcx", "r8", "r9", "r10", "r11", "rbx", "rbp", "r12", "r13", "r14", "r15"):
        assert getattr(r, name) == 0, name
    assert r.rdi == 1 and r.rsi == call.regs.rsp + 8  # nr, regs (after the return address)


@pytest.mark.parametrize(
    ("name", "exit", "failed"),
    [
        ("getpid.toml", "sysret", None),
        ("check-rcx-eq-rip.toml", "iret", "rcx_eq_rip"),
        ("sigreturn-noncanonical.toml", "iret", "canonical_rip"),
        ("check-cs-user.toml", "iret", "cs_user"),
        ("check-r11-eq-rflags.toml", "iret", "r11_eq_rflags"),
        ("rf-in-frame.toml", "iret", "no_rf_tf"),
        ("tf-single-step.toml", "iret", "no_rf_tf"),
        ("check-ss-user.toml", "iret", "ss_user"),
    ],
)
def test_exit_paths_and_first_failing_check(name: str, exit: str, failed: str | None) -> None:
    t = trace_of(name)
    assert t.exit == exit
    assert t.failed_check == failed
    results: dict[str, str] = {c.name: c.result for c in t.checks}
    if failed is None:
        assert set(results.values()) == {"pass"}
    else:
        i = CHECK_NAMES.index(failed)
        assert all(results[n] == "pass" for n in CHECK_NAMES[:i])
        assert results[failed] == "fail"
        assert all(results[n] == "not_reached" for n in CHECK_NAMES[i + 1 :])
        label = "swapgs_restore_regs_and_return_to_usermode"
        assert any(s.label == label for s in t.steps)
    exit_insn = "sysretq" if exit == "sysret" else "iretq"
    assert t.steps[-1].text == exit_insn


def test_check_details_show_the_compared_values() -> None:
    t = trace_of("sigreturn-noncanonical.toml")
    c = next(c for c in t.checks if c.name == "canonical_rip")
    assert c.left is not None and c.right is not None
    assert (c.left.value, c.right.value) == (0x800000000000, 0xFFFF800000000000)
    assert c.relation is Relation.CANONICAL and c.result is CheckResult.FAIL
    text = describe(c)
    assert "0x0000800000000000" in text and "0xffff800000000000" in text


def test_iret_to_noncanonical_rip_faults_in_ring0_modelled() -> None:
    t = trace_of("sigreturn-noncanonical.toml")
    f = t.fault
    assert f is not None and (f.name, f.vector, f.cpl, f.modelled) == ("#GP", 13, 0, True)
    assert f.rip == sym(t, "native_irq_return_iret")
    assert t.final is not None and t.final.rip == f.rip and t.final_cpl == 0
    # IRET did not run: the frame is still on the trampoline stack
    frame = {w.slot: w.value for w in t.steps[-1].entry_stack}
    assert frame["ip"] == 0x800000000000 and frame["cs"] == USER_CS


def test_amd_takes_the_same_path_for_sigreturn() -> None:
    intel, amd = (
        trace_of("sigreturn-noncanonical.toml"),
        trace_of("sigreturn-noncanonical-amd.toml"),
    )
    assert (intel.exit, intel.failed_check) == (amd.exit, amd.failed_check)


def test_sysret_vendor_model() -> None:
    assert sysret_faults("intel", 0x800000000000, 4)
    assert not sysret_faults("amd", 0x800000000000, 4)
    assert not sysret_faults("intel", 0x7FFFFFFFF000, 4)
    assert not sysret_faults("intel", 0x800000000000, 5)


def test_unicorn_sysret_to_noncanonical_completes_like_amd() -> None:
    """Why the Intel #GP must be modelled: Unicorn finishes SYSRET and faults at CPL 3."""
    m = Machine(MachineConfig(), ())
    m.reset()
    sysret = next(a for a in m.image.entry if a.text == "sysretq")
    seen: list[tuple[int, int, int]] = []

    def on_intr(uc, intno, data):
        seen.append((intno, uc.reg_read(X.UC_X86_REG_CS) & 3, uc.reg_read(X.UC_X86_REG_RIP)))
        uc.emu_stop()

    m.uc.hook_add(UC_HOOK_INTR, on_intr)
    m.uc.reg_write(X.UC_X86_REG_RCX, 0x800000000000)
    m.uc.reg_write(X.UC_X86_REG_R11, 0x246)
    m.uc.emu_start(sysret.address, 0, count=2)
    assert seen == [(13, 3, 0x800000000000)]


def test_syscall_transition_model() -> None:
    eff = syscall_transition(0x401002, 0x10346, 0x47700, 0xFFFFFFFF81A00000, STAR_VALUE)
    assert eff.rcx == 0x401002 and eff.r11 == 0x346  # RF reads as 0
    assert eff.rflags == 0x46 | 2 and eff.rip == 0xFFFFFFFF81A00000
    assert (eff.cs, eff.ss) == (0x10, 0x18)
    assert cr3_as_stored(1 << 63 | 0x1001, True) == 0x1001
    assert cr3_as_stored(1 << 63 | 0x1001, False) == 1 << 63 | 0x1001


def test_return_to_unmapped_last_page_faults_at_cpl3() -> None:
    t = trace_of("last-page-below-2-47.toml")
    assert t.exit == "sysret" and t.failed_check is None
    f = t.fault
    assert f is not None and (f.name, f.cpl, f.rip, f.address) == (
        "#PF",
        3,
        0x7FFFFFFFF000,
        0x7FFFFFFFF000,
    )
    assert not f.modelled


def test_fetch_after_return_does_not_execute() -> None:
    t = trace_of("getpid.toml")
    assert t.final is not None and t.final.cpl == 3
    assert t.final.rip == t.steps[-1].regs.rip  # nothing ran after SYSRET
    assert any(e.kind == "return" for e in t.steps[-1].events)


def test_fallthrough_to_2_47_is_stopped_by_canonical_check() -> None:
    t = trace_of("fallthrough-to-2-47.toml")
    assert t.failed_check == "canonical_rip" and t.fault is not None and t.fault.cpl == 0


def test_la57_accepts_rip_2_47() -> None:
    t = trace_of("la57-rip-2-47.toml")
    assert t.exit == "sysret" and t.fault is None
    assert t.final is not None and t.final.rip == 1 << 47
    shifts = [s.text for s in t.steps if s.text.startswith(("shlq", "sarq"))]
    assert shifts == ["shlq $7, %rcx", "sarq $7, %rcx"]


def test_pti_off_never_switches_cr3() -> None:
    t = trace_of("pti-off.toml")
    assert len({s.regs.cr3 for s in t.steps}) == 1
    assert not any(s.text.endswith(", %cr3") for s in t.steps)
    assert len(t.roots) == 1


def test_pcid_off_cr3_has_no_pcid() -> None:
    t = trace_of("pcid-off.toml")
    assert {s.regs.cr3 & 0xFFF for s in t.steps} == {0}
    assert not any(s.text.startswith("btsq $0x3f") for s in t.steps)
    assert t.exit == "sysret"


def test_unknown_syscall_returns_enosys() -> None:
    t = trace_of("enosys.toml")
    assert t.final is not None and t.final.rax == -38 & MASK64
    assert t.pt_regs_after_call["ax"] == t.pt_regs_at_call["ax"] == -38 & MASK64
    assert t.exit == "sysret"


def test_write_copies_from_user_memory() -> None:
    t = trace_of("write-hello.toml")
    assert t.output == b"hello\n"
    assert t.final is not None and t.final.rax == 6


def test_exit_never_returns() -> None:
    t = trace_of("exit.toml")
    assert t.exit is None and t.fault is None
    assert t.final_cpl == 0 and "exit(0)" in t.stopped


def test_sigreturn_restores_pt_regs_from_user_frame() -> None:
    t = trace_of("check-cs-user.toml")
    assert t.pt_regs_after_call["cs"] == 0x23
    assert t.pt_regs_after_call["orig_ax"] == MASK64
    assert t.final is not None and t.final.cs == 0x23 and t.final_cpl == 3


def test_step_cap_ends_a_runaway_loop() -> None:
    sc = parse_scenario('name = "loop"\nstep_cap = 50\n[user]\ncode = "spin: jmp spin"')
    t = run_scenario(sc)
    assert len(t.steps) == 50
    assert "step cap" in t.stopped and t.exit is None


def test_user_fault_is_an_event() -> None:
    sc = parse_scenario('name = "ud2"\n[user]\ncode = "ud2"')
    t = run_scenario(sc)
    assert t.fault is not None and (t.fault.name, t.fault.cpl) == ("#UD", 3)
    assert t.steps[-1].events[-1].kind == "fault"


@pytest.mark.slow
def test_recorded_and_unrecorded_runs_agree() -> None:
    for path in sorted(SCENARIOS.rglob("*.toml")):  # scenarios/selftests/ too
        session = Session(load_scenario(path))
        a, b = session.run(True), session.run(False)
        assert (a.exit, a.failed_check, a.final, a.pt_regs_after_call) == (
            b.exit, b.failed_check, b.final, b.pt_regs_after_call,
        ), path.name  # fmt: skip
        assert (a.fault is None) == (b.fault is None)
        assert session.run(True).steps == a.steps  # deterministic, and reset is complete


def test_hook_exceptions_are_reraised(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.run.c_side

    def boom(*args, **kwargs):
        raise ZeroDivisionError("inside a hook")

    monkeypatch.setattr(engine.run.c_side, "do_syscall_64", boom)
    with pytest.raises(HookError) as info:
        run_scenario(load_scenario(SCENARIOS / "getpid.toml"))
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_sigframe_lives_in_user_memory() -> None:
    sc = load_scenario(SCENARIOS / "sigreturn-noncanonical.toml")
    session = Session(sc)
    session.run(False)
    m = session.machine
    raw = m.read_virt(m.user_cr3, sc.rsp + 40 + 14 * 8, 24)  # uc_mcontext.rcx, rsp, rip
    assert raw is not None and struct.unpack("<3Q", raw) == (0x800000000000, sc.rsp, 0x800000000000)
    assert m.layout.entry_stack_top == L.ENTRY_STACK_TOP


def test_tf_from_the_start_traps_after_the_first_instruction() -> None:
    sc = parse_scenario('name = "tf"\n[user]\nrflags = 0x346\ncode = "mov $39, %eax; syscall"')
    t = run_scenario(sc)
    assert t.fault is not None and (t.fault.name, t.fault.cpl) == ("#DB", 3)
    assert t.fault.rip == 0x401005  # a trap: after the mov, before the syscall


def test_tf_on_the_syscall_itself_is_masked_not_trapped() -> None:
    t = run_scenario(parse_scenario('name = "tf"\n[user]\nrflags = 0x346'))
    assert t.fault is None and t.failed_check == "no_rf_tf"
    assert t.final is not None and t.final.rflags & 0x100  # IRET restored TF


def test_sigreturn_strict_ss_keeps_a_bad_selector() -> None:
    """Delivery from 64-bit code sets UC_STRICT_RESTORE_SS: SS comes back as saved."""
    sc = parse_scenario('name = "s"\n[user]\nrax = 15\n[sigframe]\nss = 0x23')
    t = run_scenario(sc)
    assert t.pt_regs_after_call["ss"] == 0x23
    assert t.failed_check == "ss_user" and t.fault is not None and t.fault.name == "#GP"


def test_sigreturn_without_strict_ss_forces_user_ds() -> None:
    """force_valid_ss(): no strict flag, 64-bit CS and an unusable SS give __USER_DS."""
    sc = parse_scenario('name = "s"\n[user]\nrax = 15\n[sigframe]\nss = 0x23\nuc_flags = 0')
    t = run_scenario(sc)
    assert t.pt_regs_after_call["ss"] == USER_DS
    assert t.exit == "sysret" and t.fault is None


def test_cve_2012_0217_intel_faults_in_ring0_on_the_users_stack() -> None:
    t = trace_of("cve-2012-0217-intel.toml")
    results: dict[str, str] = {c.name: c.result for c in t.checks}
    assert results["canonical_rip"] == "removed" and t.failed_check is None
    assert not any(s.text.startswith(("shlq", "sarq")) for s in t.steps)
    f = t.fault
    assert f is not None and (f.name, f.cpl, f.modelled) == ("#GP", 0, True)
    assert f.rip == t.steps[-1].rip and t.steps[-1].text == "sysretq"
    assert t.final is not None
    assert t.final.rsp == t.initial.rsp  # the user's RSP, in ring 0
    assert t.final.gs_base == t.initial.gs_base  # and the user's GS base
    assert t.final.rcx == 0x800000000000


def test_cve_2012_0217_amd_completes_sysret() -> None:
    t = trace_of("cve-2012-0217-amd.toml")
    f = t.fault
    assert f is not None and (f.name, f.cpl, f.rip, f.modelled) == ("#GP", 3, 0x800000000000, False)


def test_remove_checks_is_validated() -> None:
    with pytest.raises(ScenarioError, match=r"machine\.remove_checks"):
        parse_scenario('name = "x"\n[machine]\nremove_checks = ["canonical"]')


@pytest.mark.parametrize("cap", [1, 2, 3, 50])
def test_step_cap_on_any_step_ends_the_run_as_a_cap_event(cap: int) -> None:
    # cap 1 lands on the user's syscall, whose SYSCALL transition is modelled
    sc = parse_scenario(f'name = "cap"\nstep_cap = {cap}\n[user]\ncode = "syscall"\n')
    t = Session(sc).run(True)
    assert "step cap" in t.stopped and len(t.steps) == cap
    assert [e.kind for e in t.events].count(EventKind.CAP) == 1
    assert t.steps[-1].events[-1].kind == EventKind.CAP
    # Unrecorded runs count user instructions only (the kernel path is finite).
    assert Session(sc).run(False).exit == "sysret"
