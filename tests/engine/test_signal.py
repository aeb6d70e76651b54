"""A pending signal delivered by the exit work (engine.run.signal), on all three kernels:
the rt_sigframe in user memory, pt_regs rewritten for the handler, the failed RCX == RIP
check, IRET to the handler, and a frame rt_sigreturn reads back as what was saved."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from engine import Session
from engine.constants import MASK64, TF, USER_CS
from engine.errors import ScenarioError
from engine.run import signal as sig
from engine.run.syscalls import HandlerResult, PtRegs, _rt_sigreturn
from engine.scenario.parse import load_scenario, parse_scenario
from engine.trace import Step, Trace

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FILES = {
    "v5.8.13": "signal-delivery.toml",
    "v6.1": "v6.1-signal-delivery.toml",
    "v6.12": "v6.12-signal-delivery.toml",
}


def delivered(kernel: str) -> tuple[Session, Trace]:
    session = Session(load_scenario(SCENARIOS / FILES[kernel]))
    return session, session.run()


def pt_regs_at_delivery(trace: Trace) -> dict[str, int]:
    """pt_regs when the delivery began: the old value of every slot it rewrote."""
    out = dict(trace.pt_regs_after_call)
    for s in reversed(trace.steps):
        if s.c is not None and s.c.key.startswith("sig."):
            out.update((k, old) for k, old, _ in s.rewritten)
    return out


def step_of(trace: Trace, key: str) -> Step:
    return next(s for s in trace.steps if s.c is not None and s.c.key == key)


@pytest.mark.parametrize("kernel", FILES)
def test_the_exit_takes_iret_to_the_handler_with_its_arguments(kernel: str) -> None:
    session, trace = delivered(kernel)
    sc = session.scenario
    assert sc.signal is not None
    assert (trace.exit, trace.failed_check) == ("iret", "rcx_eq_rip")
    # the IRET of the first round trip: the CPU is at the handler's first instruction
    iret = next(s for s in trace.steps if s.text == "iretq")
    f = iret.regs
    assert f.cpl == 3 and iret.index < trace.trips[0].first_step
    fpstate, frame = sig.frame_addresses(sc.rsp)
    assert f.rip == sc.signal.handler and f.rsp == frame
    assert (f.rdi, f.rsi, f.rdx, f.rax) == (14, frame + sig.INFO_OFFSET, frame + sig.UC_OFFSET, 0)
    assert f.cs == USER_CS and not f.rflags & TF
    assert (frame + 8) % 16 == 0 and fpstate % 64 == 0  # the handler starts as if called
    # RCX still holds the RIP after the syscall: the check that sent the exit to IRET
    assert sc.code is not None and f.rcx == sc.code.syscall_return


@pytest.mark.parametrize("kernel", FILES)
def test_the_frame_in_user_memory_has_the_kernels_layout(kernel: str) -> None:
    session, trace = delivered(kernel)
    m, sc = session.machine, session.scenario
    assert sc.signal is not None
    fpstate, frame = sig.frame_addresses(sc.rsp)
    raw = m.read_virt(m.user_cr3, frame, sig.RT_SIGFRAME_SIZE)
    assert raw is not None
    pretcode, uc_flags, uc_link, ss_sp, ss_flags, ss_size = struct.unpack_from("<QQQQI4xQ", raw)
    assert pretcode == sc.signal.restorer and uc_flags == 0x7 and uc_link == 0
    assert (ss_sp, ss_flags, ss_size) == (0, sig.SS_DISABLE, 0)
    at_delivery = pt_regs_at_delivery(trace)  # pt_regs as getpid left it
    regs = struct.unpack_from("<18Q", raw, 8 + 40)
    assert dict(zip(sig.SIGCONTEXT_REGS, regs, strict=True)) == {
        k: at_delivery[k] for k in sig.SIGCONTEXT_REGS
    }
    assert at_delivery["ax"] == sc.pid and at_delivery["ip"] == at_delivery["cx"]
    cs, _gs, _fs, ss = struct.unpack_from("<4H", raw, 8 + 40 + 144)
    assert (cs, ss) == (at_delivery["cs"] & 0xFFFF, at_delivery["ss"] & 0xFFFF)
    assert struct.unpack_from("<Q", raw, 8 + 40 + 144 + 8 + 32)[0] == fpstate
    signo, errno, code = struct.unpack_from("<iii", raw, sig.INFO_OFFSET)
    assert (signo, errno, code) == (14, 0, sig.SI_KERNEL)
    fp = m.read_virt(m.user_cr3, fpstate, sig.MATH_SIZE)
    assert fp is not None
    magic1, extended, xfeatures, size = struct.unpack_from("<IIQI", fp, 464)
    assert (magic1, extended, xfeatures, size) == (sig.FP_XSTATE_MAGIC1, 580, 3, 576)
    assert struct.unpack_from("<I", fp, 576)[0] == sig.FP_XSTATE_MAGIC2
    # the x87 control word and MXCSR as the emulated CPU holds them (the kernel left them)
    from unicorn import x86_const as X

    fcw = struct.unpack_from("<H", fp, 0)[0]
    mxcsr = struct.unpack_from("<I", fp, 24)[0]
    uc = m.uc
    assert (fcw, mxcsr) == (uc.reg_read(X.UC_X86_REG_FPCW), uc.reg_read(X.UC_X86_REG_MXCSR))


@pytest.mark.parametrize("kernel", FILES)
def test_rt_sigreturn_reads_back_what_the_delivery_saved(kernel: str) -> None:
    """The handler's RET pops pretcode; rt_sigreturn (engine.run.syscalls, as a later
    round trip would run it) restores pt_regs from the frame: the state getpid left."""
    session, trace = delivered(kernel)
    m, sc = session.machine, session.scenario
    _, frame = sig.frame_addresses(sc.rsp)
    at_delivery = pt_regs_at_delivery(trace)
    pt = PtRegs(m, m.kernel_cr3, trace.steps[-1].stack[-1].address)  # the lowest pt_regs word
    regs = {**trace.pt_regs_after_call, "sp": frame + 8}
    _rt_sigreturn(m, m.kernel_cr3, pt, regs, HandlerResult())
    restored = pt.read()
    for k in ("ip", "sp", "ax", "cx", "r11", "di", "si", "dx", "flags"):
        assert restored[k] == at_delivery[k] & MASK64, k
    assert restored["orig_ax"] == MASK64  # -1: no syscall restart after sigreturn


@pytest.mark.parametrize("kernel", FILES)
def test_the_delivery_steps_go_through_the_kernels_functions(kernel: str) -> None:
    _, trace = delivered(kernel)
    stack = step_of(trace, "sig.frame").c
    assert stack is not None
    outer = "do_signal" if kernel == "v5.8.13" else "arch_do_signal_or_restart"
    inner = "x64_setup_rt_frame" if kernel == "v6.12" else "__setup_rt_frame"
    assert stack.stack[-4:] == (outer, "handle_signal", "setup_rt_frame", inner)
    first_trip = trace.steps[: trace.trips[0].first_step]
    handler = [s for s in first_trip if any(e.kind == "handler" for e in s.events)]
    assert handler[-1] is step_of(trace, "sig.flags")
    # each pt_regs write is its own step's, as a watchpoint on the slot sees it
    for key, field in (("sig.ip", "ip"), ("sig.sp", "sp"), ("sig.di", "di"), ("sig.ax", "ax")):
        assert [k for k, _, _ in step_of(trace, key).rewritten] == [field]


def test_a_frame_that_cannot_be_written_stops_with_efault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sig, "frame_addresses", lambda sp: (0x2000, 0x1000))
    _, trace = delivered("v6.1")
    assert "-EFAULT" in trace.stopped and trace.exit is None


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('number = 9\nhandler = "h"\nrestorer = "r"', "SIGKILL (9) cannot be caught"),
        ('number = 65\nhandler = "h"\nrestorer = "r"', "signal.number"),
        ('number = 14\nhandler = "nowhere"\nrestorer = "r"', "no label 'nowhere'"),
        ('number = 14\nhandler = "h"', "signal.restorer"),
        ('number = 14\nhandler = "h"\nrestorer = "r"\nsiginfo = 1', "signal.siginfo"),
    ],
)
def test_a_bad_signal_table_is_a_one_line_error(table: str, error: str) -> None:
    text = f'name = "x"\n[user]\ncode = "syscall\\nh:\\nret\\nr:\\nsyscall"\n[signal]\n{table}\n'
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "x.toml")
    assert error in str(info.value) and "\n" not in str(info.value)


def test_a_32_bit_task_cannot_take_a_signal_here() -> None:
    text = (
        'name = "x"\n[user]\nmode = "compat"\nrsp = 0xffffd000\ncode = "int $0x80\\nh:\\nret"\n'
        '[signal]\nnumber = 14\nhandler = "h"\nrestorer = "h"\n'
    )
    with pytest.raises(ScenarioError, match="ia32_setup_rt_frame"):
        parse_scenario(text, "x.toml")


@pytest.mark.parametrize("kernel", FILES)
def test_the_handler_runs_and_its_rt_sigreturn_restores_the_interrupted_state(kernel: str) -> None:
    """The second round trip of the same run: the handler's instructions at CPL 3, its
    ret to the restorer, whose rt_sigreturn (nr 15) restores pt_regs from the frame; the
    SYSRET checks all pass (regs->cx == regs->ip again) and the CPU is back after the
    interrupted syscall with getpid's return value, the original RSP and RBX."""
    session, trace = delivered(kernel)
    sc = session.scenario
    assert sc.code is not None and sc.signal is not None and len(trace.trips) == 1
    second = trace.trips[0]
    assert (second.exit, second.failed_check) == ("sysret", None)
    assert all(c.result == "pass" for c in second.checks)
    assert second.pt_regs_at_call["orig_ax"] == 15
    assert second.pt_regs_after_call["ip"] == sc.code.syscall_return
    user = [s for s in trace.steps if s.cpl == 3 and s.label == "user"]
    handler_ran = [s.text for s in user if sc.signal.handler <= s.rip < sc.signal.restorer]
    assert handler_ran == ["movl %edi, %ebx", "retq"]
    f = trace.final
    assert f is not None and f.cpl == 3 and f.rip == sc.code.syscall_return
    assert (f.rax, f.rsp, f.rbx, f.rflags) == (sc.pid, sc.rsp, 0, sc.rflags)  # rbx: 14 undone
    events = [e.text for e in trace.events]
    assert any("in the signal handler on_alarm" in t for t in events)
    assert any(t.startswith("rt_sigreturn: ucontext at") for t in events)
