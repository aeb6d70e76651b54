"""What a step records is what the machine holds after that step, at every step.

Each run is watched step by step: while the machine is still in the state a step
was recorded in, the test reads every register from the CPU one by one and every
recorded stack word from emulated memory through the page tables, and compares.
The shipped scenarios run, and hypothesis varies registers, RFLAGS, the signal
frame and the handler's pt_regs writes over a few fixed user programs (assembled
once each: the variations share one machine).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unicorn import x86_const as X

from engine import Session, load_scenario, parse_scenario
from engine import layout as L
from engine.constants import (
    AC,
    AF,
    CF,
    DF,
    ID,
    IF,
    IOPL,
    KERNEL_CS,
    MASK64,
    MSR_KERNEL_GS_BASE,
    NT,
    OF,
    PF,
    PT_REGS_FIELDS,
    RF,
    RFLAGS_FIXED,
    SF,
    SYSRET_RFLAGS_KEEP,
    TF,
    USER32_CS,
    USER_CS,
    USER_DS,
    VM,
    ZF,
)
from engine.kernel import KERNELS, spec
from engine.machine.core import GPRS, Machine
from engine.machine.idt import int80_handler
from engine.run.recorder import FRED_SLOTS
from engine.scenario.model import SIGFRAME_FIELDS, USER_REGS, Scenario
from engine.trace import Door, EventKind, ExitPath, Step, Trace
from engine.views.json import trace_json
from tests.conftest import SCENARIOS

REG_IDS: dict[str, int] = {
    **GPRS,
    "rip": X.UC_X86_REG_RIP,
    "rflags": X.UC_X86_REG_RFLAGS,
    "cs": X.UC_X86_REG_CS,
    "ss": X.UC_X86_REG_SS,
    "fs_base": X.UC_X86_REG_FS_BASE,
    "gs_base": X.UC_X86_REG_GS_BASE,
    "cr3": X.UC_X86_REG_CR3,
}


def watcher(m: Machine, seen: list[int]) -> Callable[[Step], None]:
    """Compare each recorded step with the machine's own state right then."""

    def check(step: Step) -> None:
        cpu = {name: int(m.uc.reg_read(reg)) for name, reg in REG_IDS.items()}
        cpu["kernel_gs_base"] = int(m.uc.msr_read(MSR_KERNEL_GS_BASE))
        assert step.regs.as_dict() == cpu, f"step {step.index}: registers differ from the CPU"
        for slot in (*step.stack, *step.entry_stack):
            raw = m.read_virt(m.kernel_cr3, slot.address, 8)
            assert raw is not None
            value = int.from_bytes(raw, "little")
            assert slot.value == value, (
                f"step {step.index} {step.text!r}: {slot.slot} at {slot.address:#x} "
                f"recorded {slot.value:#x}, memory holds {value:#x}"
            )
        # the task stack is shown as one run of words up to its top
        addrs = [s.address for s in step.stack]
        assert addrs == sorted(addrs, reverse=True)
        assert all(a - b == 8 for a, b in itertools.pairwise(addrs))
        seen.append(step.index)

    return check


def run_watched(session: Session, sc: Scenario | None = None) -> Trace:
    seen: list[int] = []
    trace = session.run(True, sc, on_step=watcher(session.machine, seen))
    assert seen == [s.index for s in trace.steps], "every step was watched once"
    return trace


VIF, VIP = 0x80000, 0x100000  # RFLAGS bits 19 and 20

FRED_NAMES = {v: k for k, v in FRED_SLOTS.items()}


def assert_pt_regs_follow_the_handler(trace: Trace) -> None:
    """For each round trip (a run may make a second one: the rt_sigreturn of a delivered
    signal's handler), from the last step that changed pt_regs in C on (the system call,
    a signal's delivery, or under FRED fred_other's return from do_syscall_64), pt_regs
    holds what the C side left there; before, the C statements leave pt_regs as the entry
    code saved it."""
    bounds = [0, *(t.first_step for t in trace.trips), len(trace.steps)]
    trips = [(trace.pt_regs_at_call, trace.pt_regs_after_call)]
    trips += [(t.pt_regs_at_call, t.pt_regs_after_call) for t in trace.trips]
    for (at_call, after), lo, hi in zip(trips, bounds[:-1], bounds[1:], strict=True):
        steps = trace.steps[lo:hi]
        handler = [
            k for k, s in enumerate(steps) if any(e.kind is EventKind.HANDLER for e in s.events)
        ]
        if not after:
            assert not handler
            continue
        assert handler
        for step in steps[: handler[0]]:
            if step.c is not None:  # a statement before the system call writes no pt_regs
                named = {FRED_NAMES.get(s.slot, s.slot): s.value for s in step.stack}
                assert {k: v for k, v in named.items() if k in PT_REGS_FIELDS} == at_call
        for step in steps[handler[-1] :]:
            # under FRED, pt_regs' cs and ss are the frame's CS and SS words (fred_cs, fred_ss)
            named = {FRED_NAMES.get(s.slot, s.slot): s.value for s in step.stack}
            slots = {k: v for k, v in named.items() if k in PT_REGS_FIELDS}
            assert slots == after, (
                f"step {step.index} {step.text!r}: pt_regs differ from after_call"
            )


# every shipped scenario, the selftest ones (scenarios/selftests/) included
SHIPPED = sorted(str(p.relative_to(SCENARIOS)) for p in SCENARIOS.rglob("*.toml"))


def assert_fred_round_trip(trace: Trace, sc: Scenario) -> None:
    """Under FRED: the frame is where FRED_RSP0 says, named, and holds the user's return
    state; nothing swaps GS or CR3 in software, no SYSRET check is tracked; a run that
    gets back to CPL 3 leaves by ERETU with the registers POP_REGS restored."""
    f = trace.final
    assert f is not None
    assert not trace.checks
    assert not any(e.kind is EventKind.SWAPGS for e in trace.events)
    assert {s.regs.cr3 for s in trace.steps} == {trace.initial.cr3}
    entered = next(i for i, s in enumerate(trace.steps) if s.cpl == 0)
    delivery = trace.steps[entered - 1]  # the syscall step: its after-state is the event's
    user = trace.steps[entered - 2].regs if entered >= 2 else trace.initial  # at the syscall
    top = trace.msrs["FRED_RSP0"] & ~0x3F
    assert delivery.regs.rsp == top - 64
    assert delivery.regs.rflags == RFLAGS_FIXED
    assert delivery.regs.rip == trace.msrs["FRED_CONFIG"] & ~0xFFF
    assert delivery.regs.gs_base == user.kernel_gs_base
    assert delivery.regs.kernel_gs_base == user.gs_base
    # RCX and R11 are the user's: FRED's SYSCALL writes neither
    assert (delivery.regs.rcx, delivery.regs.r11) == (user.rcx, user.r11)
    frame = {s.slot: s.value for s in delivery.stack}
    assert list(frame) == ["resv", "edata", "fred_ss", "sp", "flags", "fred_cs", "ip", "orig_ax"]
    assert frame["ip"] == delivery.rip + 2
    assert frame["sp"] == user.rsp and frame["flags"] == user.rflags
    assert frame["fred_cs"] == user.cs and frame["orig_ax"] == 0 and frame["edata"] == 0
    ss = frame["fred_ss"]
    assert ss & 0xFFFF == USER_DS
    # (type, vector, lm, insnlen, swevent): SYSCALL is type 7 ("other") vector 1; int $0x80
    # type 4 (software interrupt) vector 0x80, lm clear from compatibility mode
    event = (7, 1) if trace.door is Door.SYSCALL else (4, 0x80)
    lm = 0 if user.cs == USER32_CS else 1
    assert (ss >> 48 & 0xF, ss >> 32 & 0xFF, ss >> 57 & 1, ss >> 60, ss >> 17 & 1) == (
        *event,
        lm,
        2,
        1,
    )
    if trace.exit is ExitPath.ERETU and trace.final_cpl == 3:
        after = trace.pt_regs_after_call
        assert (f.rip, f.rsp, f.rflags) == (after["ip"], after["sp"], after["flags"])
        assert (f.rcx, f.r11, f.rax) == (after["cx"], after["r11"], after["ax"])
        assert (f.gs_base, f.kernel_gs_base) == (
            user.gs_base,
            user.kernel_gs_base,
        )


def assert_int80_round_trip(trace: Trace) -> None:
    """After int $0x80: the hardware frame is on the trampoline stack where TSS.sp0 says,
    named, and holds the user's state; the CPU cleared IF, TF, NT, RF and VM, loaded
    CS:RIP from gate 0x80 and a null SS, and left CR3, the GS bases, RCX and R11 alone; no
    SYSRET check is tracked; a run that gets back to CPL 3 leaves by IRET with every
    register as pt_regs held it after the C call."""
    assert trace.door is Door.INT80 and not trace.checks
    entered = next(i for i, s in enumerate(trace.steps) if s.cpl == 0)
    delivery = trace.steps[entered - 1]  # the int step: its after-state is the delivery's
    user = trace.steps[entered - 2].regs if entered >= 2 else trace.initial  # at the int
    r = delivery.regs
    assert r.rsp == (L.ENTRY_STACK_TOP & ~0xF) - 40
    assert (r.cs, r.ss, r.rip) == (KERNEL_CS, 0, trace.symbols[int80_handler(trace.kernel)])
    assert r.rflags == user.rflags & ~(IF | TF | NT | RF | VM) | RFLAGS_FIXED
    assert (r.cr3, r.gs_base, r.kernel_gs_base) == (user.cr3, user.gs_base, user.kernel_gs_base)
    assert (r.rcx, r.r11, r.rax) == (user.rcx, user.r11, user.rax)
    frame = {s.slot: s.value for s in delivery.entry_stack}
    assert list(frame) == ["ss", "sp", "flags", "cs", "ip"]
    assert frame == {
        "ss": user.ss, "sp": user.rsp, "flags": user.rflags, "cs": user.cs,
        "ip": delivery.rip + 2,
    }  # fmt: skip
    f, after = trace.final, trace.pt_regs_after_call
    if trace.exit is ExitPath.IRET and trace.final_cpl == 3 and f is not None:
        restored = {n: getattr(f, n if n.startswith("r") else "r" + n) for n in PT_REGS_FIELDS[:15]}
        assert restored == {n: after[n] for n in PT_REGS_FIELDS[:15]}
        # Back in compatibility mode (CS 0x23) only ESP is defined: the SDM leaves the
        # upper half of RSP undefined there, and Unicorn's IRET zero-extends ESP.
        sp_mask = MASK64 if f.cs != USER32_CS else 0xFFFFFFFF
        assert (f.rip, f.cs, f.rsp, f.ss) == (
            after["ip"],
            after["cs"],
            after["sp"] & sp_mask,
            after["ss"],
        )
        # IRET at CPL 0 loads the flags it may (bit 1 always set, the reserved ones
        # never).  VIF and VIP are left out: the SDM's IRET loads them at CPL 0, Unicorn
        # (QEMU's helper_ret_protected) does not, and no kernel path sets them.
        kept = CF | PF | AF | ZF | SF | TF | IF | DF | OF | NT | RF | AC | IOPL | ID
        assert f.rflags & ~(VIF | VIP) == after["flags"] & kept | RFLAGS_FIXED


def assert_fast32_round_trip(trace: Trace) -> None:
    """After a 32-bit SYSCALL (AMD) or SYSENTER (Intel) into entry_SYSCALL_compat or
    entry_SYSENTER_compat: the CPU's transition is the manual's (SYSCALL: RCX, R11, CSTAR;
    SYSENTER: RSP and RIP from its MSRs, nothing saved, IF/VM/RF cleared); pt_regs on the
    task stack names the 32-bit caller (CS 0x23); do_fast_syscall_32's conditions are the
    kernel's, in its order; the exit is the one they decide, SYSRETL back to CS 0x23 at
    regs->ip with RAX and RFLAGS from pt_regs, or IRET with every register restored."""
    k = spec(trace.kernel)
    assert [c.name for c in trace.checks] == list(k.compat_checks)
    entered = next(i for i, s in enumerate(trace.steps) if s.cpl == 0)
    transition = trace.steps[entered - 1]  # the SYSCALL/SYSENTER: its after-state
    user = trace.steps[entered - 2].regs if entered >= 2 else trace.initial
    r = transition.regs
    assert user.cs == USER32_CS and (r.cs, r.ss) == (KERNEL_CS, KERNEL_CS + 8)
    assert (r.cr3, r.gs_base, r.kernel_gs_base) == (user.cr3, user.gs_base, user.kernel_gs_base)
    if trace.door is Door.SYSENTER:
        assert (r.rip, r.rsp) == (trace.symbols["entry_SYSENTER_compat"], L.ENTRY_STACK_TOP)
        assert r.rflags == user.rflags & ~(IF | VM | RF) | RFLAGS_FIXED
        assert (r.rcx, r.r11) == (user.rcx, user.r11)
    else:
        assert r.rip == trace.symbols["entry_SYSCALL_compat"] and r.rsp == user.rsp
        assert (r.rcx, r.r11) == (transition.rip + 2, user.rflags & ~RF)
    after = trace.pt_regs_after_call
    f = trace.final
    if not after or f is None or trace.final_cpl != 3:
        return
    at = trace.pt_regs_at_call
    assert at["cs"] & 0xFFFF == USER32_CS and at["orig_ax"] == user.rax & 0xFFFFFFFF
    results = [c.result for c in trace.checks]
    if trace.exit is ExitPath.SYSRET:
        assert set(results) == {"pass"}
        assert (f.cs, f.ss, f.rip) == (USER32_CS, USER_DS, after["ip"] & 0xFFFFFFFF)
        assert (f.rax, f.rbx, f.rbp) == (after["ax"], after["bx"], after["bp"])
        assert (f.r8, f.r9, f.r10) == (0, 0, 0)
        assert f.rflags == after["flags"] & SYSRET_RFLAGS_KEEP | RFLAGS_FIXED
    else:
        assert trace.exit is ExitPath.IRET
        assert "fail" in results or "pass" not in results  # a failed one, or none ran
        assert (f.rip, f.cs) == (after["ip"], after["cs"])
        assert (f.rax, f.rbx, f.rcx, f.rdx) == (after["ax"], after["bx"], after["cx"], after["dx"])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_steps_hold_the_machine_state(name: str) -> None:
    sc = load_scenario(SCENARIOS / name)
    trace = run_watched(Session(sc))
    assert trace.steps
    assert_pt_regs_follow_the_handler(trace)
    if sc.machine.fred:
        assert_fred_round_trip(trace, sc)
    elif trace.door is Door.INT80 and any(s.cpl == 0 for s in trace.steps):
        assert_int80_round_trip(trace)
    if trace.door.fast32 and trace.checks and any(s.cpl == 0 for s in trace.steps):
        assert_fast32_round_trip(trace)


def test_check_ss_user_shows_the_new_ss_from_the_handler_on() -> None:
    trace = run_watched(Session(load_scenario(SCENARIOS / "check-ss-user.toml")))
    handler = next(s for s in trace.steps if any(e.kind is EventKind.HANDLER for e in s.events))
    assert ("ss", USER_DS, 0x23) in handler.rewritten
    for step in trace.steps[handler.index :]:
        assert {s.slot: s.value for s in step.stack}["ss"] == 0x23


# -- generated scenarios -------------------------------------------------------------

PROGRAMS = (
    "syscall",
    "mov $39, %eax; syscall",
    "mov $15, %eax; syscall",  # rt_sigreturn: the signal frame decides pt_regs
    "push %rax; pop %rbx; mov $999, %eax; syscall",  # -ENOSYS
    "mov $158, %eax; mov $0x1002, %edi; xor %esi, %esi; syscall",  # arch_prctl(SET_FS, 0)
    "mov $20, %eax; int $0x80",  # getpid through the 32-bit door
    "mov $4, %eax; int $0x80",  # write(ebx, ecx, edx): the arguments cut to 32 bits
    # a far return into compatibility mode, then the 32-bit door from 32-bit code
    "pushq $0x23; lea 1f(%rip), %rax; push %rax; lretq; .code32; 1: mov $20, %eax; int $0x80",
)


@functools.cache
def base_session(code: str) -> Session:
    sc = parse_scenario(f'name = "generated"\n[user]\ncode = "{code}"\n', "generated.toml")
    return Session(sc)


# Not IOPL: no task of these kernels runs with it (the parser refuses it, engine.scenario).
USER_FLAGS = (CF, PF, AF, ZF, SF, TF, DF, OF, NT, RF, AC)
values = st.sampled_from(
    [0, 1, 0x401000, 0x401002, 0x7FFFFFFFF000, 0x800000000000, 0xFFFF800000000000,
     0x23, USER_CS, USER_DS, 0x246, 0x10246, 0x346, (1 << 64) - 1]
) | st.integers(0, (1 << 64) - 1)  # fmt: skip
user_flags = st.lists(st.sampled_from(USER_FLAGS), max_size=4).map(
    lambda bits: sum(set(bits)) | RFLAGS_FIXED
)
reg_sets = st.dictionaries(st.sampled_from(USER_REGS), values, max_size=4)
sigframes = st.dictionaries(st.sampled_from(SIGFRAME_FIELDS), values, max_size=4)
handler_sets = st.dictionaries(st.sampled_from(PT_REGS_FIELDS), values, max_size=4)


@pytest.mark.slow
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    code=st.sampled_from(PROGRAMS),
    regs=reg_sets,
    rflags=user_flags,
    sigframe=sigframes,
    handler_set=handler_sets,
)
def test_generated_scenario_steps_hold_the_machine_state(
    code: str,
    regs: dict[str, int],
    rflags: int,
    sigframe: dict[str, int],
    handler_set: dict[str, int],
) -> None:
    session = base_session(code)
    sc = dataclasses.replace(
        session.scenario,
        regs={**session.scenario.regs, **regs},
        rflags=rflags,
        sigframe=sigframe,
        handler_set=handler_set,
    )
    trace = run_watched(session, sc)
    assert_pt_regs_follow_the_handler(trace)
    if trace.door is Door.INT80 and any(s.cpl == 0 for s in trace.steps):
        assert_int80_round_trip(trace)


#: 32-bit programs for the fast doors: through the vDSO (SYSCALL on AMD, SYSENTER on
#: Intel), and bare, as syscall_arg_fault does
PROGRAMS_32 = (
    "mov $20, %eax; call __kernel_vsyscall",
    "mov $4, %eax; mov $1, %ebx; call __kernel_vsyscall",
    "mov $20, %eax; syscall",
    "mov $20, %eax; mov %esp, %ebp; sysenter",
)


@functools.cache
def base_session_32(code: str, kernel: str, cpu: str) -> Session:
    text = (
        f'name = "generated"\n[machine]\nkernel = "{kernel}"\ncpu = "{cpu}"\n'
        f'[user]\nmode = "compat"\nrsp = 0x7f000\ncode = "{code}"\n'
    )
    return Session(parse_scenario(text, "generated.toml"))


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    code=st.sampled_from(PROGRAMS_32),
    kernel=st.sampled_from(KERNELS),
    cpu=st.sampled_from(("intel", "amd")),
    regs=st.dictionaries(st.sampled_from(USER_REGS), values, max_size=3),
    rflags=user_flags,
    handler_set=handler_sets,
)
def test_generated_32_bit_fast_calls_hold_the_machine_state(
    code: str,
    kernel: str,
    cpu: str,
    regs: dict[str, int],
    rflags: int,
    handler_set: dict[str, int],
) -> None:
    """Either vendor, either instruction: the other vendor's is a #UD at CPL 3."""
    session = base_session_32(code, kernel, cpu)
    # a 32-bit task's registers are 32 bits wide where it starts
    regs = {k: v & 0xFFFFFFFF for k, v in regs.items() if k not in ("rsp", "rip")}
    sc = dataclasses.replace(
        session.scenario, regs={**session.scenario.regs, **regs}, rflags=rflags & ~TF,
        handler_set=handler_set,
    )  # fmt: skip
    trace = run_watched(session, sc)
    assert_pt_regs_follow_the_handler(trace)
    if trace.door.fast32 and trace.checks and any(s.cpl == 0 for s in trace.steps):
        assert_fast32_round_trip(trace)


def test_trace_json_shows_the_new_ss_in_every_step_from_the_handler_on() -> None:
    data = trace_json(run_watched(Session(load_scenario(SCENARIOS / "check-ss-user.toml"))))
    steps = data["steps"]
    handler = next(
        i for i, s in enumerate(steps) if any(e["kind"] == "handler" for e in s["events"])
    )
    assert {"slot": "ss", "old": "0x2b", "new": "0x23"} in steps[handler]["rewritten"]
    for step in steps[handler:]:
        assert {w["slot"]: w["value"] for w in step["stack"]}["ss"] == "0x23"
