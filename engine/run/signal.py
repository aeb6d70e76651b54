"""A pending signal delivered by the exit work, statement by statement: the exit loop's
arch_do_signal_or_restart (v5.8: do_signal), get_signal, handle_signal, setup_rt_frame
and x86-64's __setup_rt_frame (6.12: x64_setup_rt_frame, arch/x86/kernel/signal_64.c).

The rt_sigframe is written into emulated user memory, through the page tables, with the
kernel's layout (arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h): pretcode (the
sa_restorer), struct ucontext (uc_flags, uc_link, uc_stack, the sigcontext with every
register pt_regs holds and the fpstate pointer, uc_sigmask), struct siginfo; below it in
memory's order above it, the FPU state get_sigframe() made room for.  Then pt_regs is
rewritten for the handler (di = signo, si = &frame->info, dx = &frame->uc, ip = the
handler, sp = the frame, cs = __USER_CS, ax = 0; DF, RF and TF cleared), so the exit's
SYSRET checks find regs->cx != regs->ip and the kernel returns by IRET, to the handler.

Modelled, and where: the signal is queued as a kernel-sent one (SEND_SIG_PRIV, as
alarm()'s timer sends SIGALRM: si_code SI_KERNEL, no sender pid); the task blocks no
signal and has no alternate stack (uc_stack is SS_DISABLE); the FPU state is the XSAVE
image of x87 and SSE only (xfeatures 3, 576 bytes, then FP_XSTATE_MAGIC2): the legacy
FXSAVE region made from the emulated CPU's x87 and SSE registers, the XSAVE header with
XSTATE_BV 3, and fx_sw_bytes as save_xstate_epilog() writes them.  The system call being
interrupted was no -ERESTART*, so there is no restart.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unicorn import x86_const as X

from engine.constants import (
    DF,
    MASK64,
    RF,
    TF,
    UC_SIGCONTEXT_SS,
    UC_STRICT_RESTORE_SS,
    USER_CS,
)
from engine.i18n import msg
from engine.kernel.c_source import TIF_SIGPENDING
from engine.run.syscalls import PtRegs
from engine.trace import Event, EventKind

if TYPE_CHECKING:
    from engine.run.c_side import CWalk
    from engine.run.roundtrip import Run

#: struct rt_sigframe: pretcode, then struct ucontext (304 bytes), then struct siginfo
UC_OFFSET = 8
UCONTEXT_SIZE = 304
INFO_OFFSET = UC_OFFSET + UCONTEXT_SIZE
SIGINFO_SIZE = 128
RT_SIGFRAME_SIZE = INFO_OFFSET + SIGINFO_SIZE  # sizeof(struct rt_sigframe): 440
#: the x86-64 red zone get_sigframe() steps over
REDZONE = 128
#: XSAVE of x87 and SSE: the 512-byte legacy region and the 64-byte header
XSTATE_SIZE = 576
FP_XSTATE_MAGIC1 = 0x46505853
FP_XSTATE_MAGIC2 = 0x46505845
MATH_SIZE = XSTATE_SIZE + 4  # xstate_sigframe_size(): the user size and MAGIC2
XFEATURES = 0x3  # x87 | SSE
UC_FP_XSTATE = 0x1
SS_DISABLE = 2
SI_KERNEL = 0x80
#: struct sigcontext_64: r8..r15, di, si, bp, bx, dx, ax, cx, sp, ip, flags, then cs, gs,
#: fs, ss (u16 each), err, trapno, oldmask, cr2, fpstate, reserved1[8]
SIGCONTEXT_REGS = (
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "di", "si", "bp", "bx", "dx",
    "ax", "cx", "sp", "ip", "flags",
)  # fmt: skip
SIGCONTEXT_SIZE = 256


def frame_addresses(sp: int) -> tuple[int, int]:
    """get_sigframe() for a 64-bit handler on the task's own stack: (fpstate, frame).
    Below the red zone, the FPU state rounded down to 64 bytes (fpu__alloc_mathframe),
    then the frame by align_sigframe(): round_down(sp, 16) - 8, so that the handler
    starts as a function called with an aligned stack does."""
    fpstate = (sp - REDZONE - MATH_SIZE) & ~63
    frame = ((fpstate - RT_SIGFRAME_SIZE) & ~15) - 8
    return fpstate, frame


def fpu_image(uc: object) -> bytes:
    """The XSAVE image copy_fpstate_to_sigframe() leaves at buf_fx, from the CPU's x87
    and SSE registers (see the module's docstring for what is modelled)."""
    read = uc.reg_read  # type: ignore[attr-defined]
    buf = bytearray(MATH_SIZE)
    fsw, ftw = int(read(X.UC_X86_REG_FPSW)), int(read(X.UC_X86_REG_FPTAG))
    abridged = sum(1 << i for i in range(8) if (ftw >> (2 * i)) & 3 != 3)  # FXSAVE's FTW
    struct.pack_into("<HHBxH", buf, 0, int(read(X.UC_X86_REG_FPCW)), fsw, abridged,
                     int(read(X.UC_X86_REG_FOP)) & 0x7FF)  # fmt: skip
    struct.pack_into("<QQII", buf, 8, int(read(X.UC_X86_REG_FIP)), int(read(X.UC_X86_REG_FDP)),
                     int(read(X.UC_X86_REG_MXCSR)), 0xFFFF)  # fmt: skip
    top = (fsw >> 11) & 7
    for i in range(8):  # ST(i) is physical register (TOP + i) mod 8
        mantissa, exponent = read(getattr(X, f"UC_X86_REG_FP{(top + i) & 7}"))
        struct.pack_into("<QH", buf, 32 + 16 * i, int(mantissa), int(exponent) & 0xFFFF)
    for i in range(16):
        xmm = int(read(getattr(X, f"UC_X86_REG_XMM{i}")))
        buf[160 + 16 * i : 176 + 16 * i] = xmm.to_bytes(16, "little")
    # fx_sw_bytes in the legacy region's software-reserved bytes (save_xstate_epilog)
    struct.pack_into("<IIQI", buf, 464, FP_XSTATE_MAGIC1, MATH_SIZE, XFEATURES, XSTATE_SIZE)
    struct.pack_into("<QQ", buf, 512, XFEATURES, 0)  # XSTATE_BV, XCOMP_BV (standard form)
    struct.pack_into("<I", buf, XSTATE_SIZE, FP_XSTATE_MAGIC2)
    return bytes(buf)


def sigcontext(pt: dict[str, int], fpstate: int) -> bytes:
    """struct sigcontext as unsafe_put_sigcontext() fills it from pt_regs: no fault to
    report (err, trapno, cr2 0), oldmask the saved mask (0: nothing blocked)."""
    raw = struct.pack(f"<{len(SIGCONTEXT_REGS)}Q", *(pt[r] for r in SIGCONTEXT_REGS))
    raw += struct.pack("<4H", pt["cs"] & 0xFFFF, 0, 0, pt["ss"] & 0xFFFF)
    raw += struct.pack("<5Q", 0, 0, 0, 0, fpstate)
    return raw + bytes(SIGCONTEXT_SIZE - len(raw))


def _rewrite(run: Run, pt: PtRegs, field: str, value: int) -> None:
    """pt_regs->*field* ← *value*, told to the step that does it (its ``rewritten``)."""
    old = pt.read()[field]
    pt.write(field, value)
    if old != value & MASK64:
        run.sink.rewrote(((field, old, value & MASK64),))


def deliver(walk: CWalk, loop: tuple[str, ...], name: str, flags: int) -> int:
    """The exit loop's ``if (ti_work & (_TIF_SIGPENDING | ...))`` and what follows it;
    returns the flags as the loop holds them."""
    run = walk.run
    sig = run.sc.signal
    bit = 1 << TIF_SIGPENDING
    walk.step("loop.if_signal", loop, ((f"{name} & _TIF_SIGPENDING", flags & bit),))
    if sig is None or not flags & bit:
        return flags
    v58 = walk.kernel == "v5.8.13"
    walk.step("loop.signal", loop)
    a = (*loop, "do_signal" if v58 else "arch_do_signal_or_restart")
    walk.step("sig.get", a, (("ksig.sig", sig.number),))
    # dequeued: no signal is left pending, so recalc_sigpending() clears TIF_SIGPENDING
    walk.write_flags(walk.thread_flags() & ~bit)
    walk.step("sig.handle", a)
    h = (*a, "handle_signal")
    pt = walk.pt
    before = pt.read()
    walk.step("sig.restart", h, (("regs->orig_ax", before["orig_ax"]), ("regs->ax", before["ax"])))
    walk.step("sig.setup", h)
    s = (*h, "setup_rt_frame")
    walk.step("sig.rt", s)
    f = (*s, "__setup_rt_frame" if walk.kernel != "v6.12" else "x64_setup_rt_frame")
    fpstate, frame = frame_addresses(before["sp"])
    walk.step("sig.frame", f, (("regs->sp", before["sp"]), ("fp", fpstate), ("frame", frame)))
    user = walk.pt.cr3  # the kernel's root maps user memory (SMAP open: user_access_begin)

    def put(key: str, stack: tuple[str, ...], address: int, data: bytes, values: tuple) -> None:
        walk.step(key, stack, values)
        if not run.m.write_virt(user, address, data):
            run.event(
                Event(
                    EventKind.UNSUPPORTED,
                    msg(
                        "the signal frame at {address:#x} is not writable: the copy to user "
                        "space fails, setup_rt_frame returns -EFAULT and signal_setup_done() "
                        "forces SIGSEGV (not modelled further)",
                        address=address,
                    ),
                )
            )
            run.stop(msg("stopped in {function}: -EFAULT", function=stack[-1]))

    put("sig.fpu", (*f, "get_sigframe"), fpstate, fpu_image(run.uc),
        (("buf_fx", fpstate), ("math_size", MATH_SIZE)))  # fmt: skip
    uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS  # frame_uc_flags()
    uc_head = struct.pack("<QQQIxxxxQ", uc_flags, 0, 0, SS_DISABLE, 0)
    put("sig.uc", f, frame + UC_OFFSET, uc_head, (("uc_flags", uc_flags), ("uc_link", 0)))
    put("sig.pretcode", f, frame, struct.pack("<Q", sig.restorer),
        (("sa_restorer", sig.restorer),))  # fmt: skip
    mcontext = frame + UC_OFFSET + 40
    saved = (("&frame->uc.uc_mcontext", mcontext), ("sc.ip", before["ip"]), ("sc.sp", before["sp"]))
    put("sig.sigcontext", f, mcontext, sigcontext(before, fpstate), saved)
    put("sig.sigmask", f, frame + UC_OFFSET + 40 + SIGCONTEXT_SIZE, bytes(8), (("set", 0),))
    if sig.siginfo:
        info = struct.pack("<iii", sig.number, 0, SI_KERNEL) + bytes(SIGINFO_SIZE - 12)
        put("sig.siginfo", f, frame + INFO_OFFSET, info,
            (("si_signo", sig.number), ("si_code", SI_KERNEL)))  # fmt: skip
    for key, field, value in (
        ("sig.di", "di", sig.number),
        ("sig.ax", "ax", 0),
        ("sig.si", "si", frame + INFO_OFFSET),
        ("sig.dx", "dx", frame + UC_OFFSET),
        ("sig.ip", "ip", sig.handler),
        ("sig.sp", "sp", frame),
        ("sig.cs", "cs", USER_CS),
    ):
        walk.step(key, f, ((f"regs->{field}", value),))
        _rewrite(run, pt, field, value)
    flags_now = pt.read()["flags"] & ~(DF | RF | TF)
    walk.step("sig.flags", h, (("regs->flags", flags_now),))
    _rewrite(run, pt, "flags", flags_now)
    after = pt.read()
    rewritten = tuple((k, before[k], v) for k, v in after.items() if v != before[k])
    diffs = ", ".join(f"{k} {old:#x} → {new:#x}" for k, old, new in rewritten)
    run.event(
        Event(
            EventKind.HANDLER,
            msg(
                "signal {sig} delivered: rt_sigframe at {frame:#x} (pretcode → {restorer}), "
                "the handler {handler} runs next | pt_regs changed: {diffs}",
                sig=sig.number,
                frame=frame,
                restorer=sig.restorer_name,
                handler=sig.handler_name,
                diffs=diffs,
            ),
            modelled=True,
        )
    )
    walk.step("sig.done", h)
    run.signal_delivered = True
    return flags
