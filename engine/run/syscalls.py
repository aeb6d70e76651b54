"""do_syscall_64(nr, regs), modelled as one step.

The C side of the kernel is not emulated instruction by instruction.  This model
reads ``nr`` and the ``struct pt_regs`` from the emulated machine, does what the
v5.8 system call would do to them (and to MSRs and user memory), and writes the
results back into emulated memory, where the entry code's own instructions then
find them.  Source: arch/x86/entry/common.c, arch/x86/kernel/signal.c,
arch/x86/kernel/process_64.c.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.constants import (
    ARCH_GET_FS,
    ARCH_GET_GS,
    ARCH_SET_FS,
    ARCH_SET_GS,
    EFAULT,
    EINVAL,
    ENOSYS,
    EPERM,
    FIX_EFLAGS,
    MASK64,
    MSR_FS_BASE,
    MSR_KERNEL_GS_BASE,
    PT_REGS_FIELDS,
    UC_STRICT_RESTORE_SS,
    USER_CS,
    USER_DS,
    NR_arch_prctl,
    NR_exit,
    NR_exit_group,
    NR_getpid,
    NR_rt_sigreturn,
    NR_syscalls_v58,
    NR_write,
)
from engine.i18n import Msg, literal, msg
from engine.machine.boot import GDT_DESCRIPTORS
from engine.machine.core import Machine

SYSCALL_NAMES = {
    0: "read", 1: "write", 2: "open", 3: "close", 15: "rt_sigreturn", 39: "getpid",
    60: "exit", 158: "arch_prctl", 231: "exit_group",
}  # fmt: skip

# struct rt_sigframe (arch/x86/include/asm/sigframe.h): pretcode, then struct ucontext
# uc: uc_flags 0, uc_link 8, uc_stack 16 (24 bytes), uc_mcontext 40 (struct sigcontext,
# 256 bytes), uc_sigmask 296.
UC_MCONTEXT = 40
UC_SIGMASK = 296
SIGCONTEXT_ORDER = (
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
    "rdx", "rax", "rcx", "rsp", "rip", "eflags",
)  # fmt: skip
SIGCONTEXT_CSGSFS = 8 * len(SIGCONTEXT_ORDER)  # cs, gs, fs, ss as four u16
SIGFRAME_SIZE = UC_SIGMASK + 8
SIGCONTEXT_TO_PTREGS = {
    "r8": "r8", "r9": "r9", "r10": "r10", "r11": "r11", "r12": "r12", "r13": "r13",
    "r14": "r14", "r15": "r15", "rdi": "di", "rsi": "si", "rbp": "bp", "rbx": "bx",
    "rdx": "dx", "rax": "ax", "rcx": "cx", "rsp": "sp", "rip": "ip",
}  # fmt: skip


_C_ESCAPES = {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\", 0x00: "\\0"}


def c_string(data: bytes) -> str:
    """Bytes as a C string literal, the way strace shows a buffer: "hello\\n"."""
    out = []
    for byte in data:
        if byte in _C_ESCAPES:
            out.append(_C_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def build_sigframe(values: dict[str, int]) -> bytes:
    """The ucontext part of an rt_sigframe, laid out as signal delivery writes it."""
    uc = bytearray(SIGFRAME_SIZE)
    struct.pack_into("<Q", uc, 0, values.get("uc_flags", 0))
    for i, name in enumerate(SIGCONTEXT_ORDER):
        struct.pack_into("<Q", uc, UC_MCONTEXT + 8 * i, values.get(name, 0) & MASK64)
    segs = [values.get(n, 0) & 0xFFFF for n in ("cs", "gs", "fs", "ss")]
    struct.pack_into("<4H", uc, UC_MCONTEXT + SIGCONTEXT_CSGSFS, *segs)
    return bytes(uc)


@dataclass
class HandlerResult:
    """What the modelled call did."""

    lines: list[str] = field(default_factory=list)
    output: bytes = b""
    exited: int | None = None  # exit status when the task called exit


class PtRegs:
    """struct pt_regs in emulated memory, read and written through the current CR3."""

    def __init__(self, machine: Machine, cr3: int, base: int):
        self.m, self.cr3, self.base = machine, cr3, base

    def read(self) -> dict[str, int]:
        raw = self.m.read_virt(self.cr3, self.base, 8 * len(PT_REGS_FIELDS))
        assert raw is not None, "pt_regs is not mapped"
        vals = struct.unpack(f"<{len(PT_REGS_FIELDS)}Q", raw)
        return dict(zip(PT_REGS_FIELDS, vals, strict=True))

    def write(self, name: str, value: int) -> None:
        off = 8 * PT_REGS_FIELDS.index(name)
        w = self.m.walk(self.cr3, self.base + off)
        assert w.phys is not None
        if name in ("cs", "ss") and self.m.config.fred:
            # 6.12's regs->cs and regs->ss are the u16 of a union with the FRED CS and SS
            # words (asm/ptrace.h): a write by sigreturn or ptrace keeps the event bits
            old = int.from_bytes(self.m.read_phys(w.phys, 8), "little")
            value = (old & ~0xFFFF) | (value & 0xFFFF)
        self.m.write_phys(w.phys, struct.pack("<Q", value & MASK64))


def _err(n: int) -> int:
    return -n & MASK64


def _valid_user_ss(selector: int) -> bool:
    """force_valid_ss(): is *selector* a present, DPL-3, writable data segment?"""
    if selector & 4:  # LDT: this machine has none
        return False
    index = selector >> 3
    if index == 0 or index >= len(GDT_DESCRIPTORS):
        return False
    desc = GDT_DESCRIPTORS[index]
    access = (desc >> 40) & 0xFF
    present, dpl, s, typ = access >> 7, (access >> 5) & 3, (access >> 4) & 1, access & 0xF
    return bool(present and dpl == 3 and s and typ in (2, 3, 6, 7))


@dataclass
class Call:
    """One system call as its handler sees it: the machine, pt_regs, and the result so far."""

    m: Machine
    cr3: int
    nr: int
    pt: PtRegs
    regs: dict[str, int]
    pid: int
    res: HandlerResult
    names: dict[int, str] = field(default_factory=lambda: SYSCALL_NAMES)  # by number

    @property
    def name(self) -> str:
        """The system call's name: a name in every language, never a msgid ("exit", "read",
        "open" and "close" are words of the UI too)."""
        return literal(self.names.get(self.nr, "syscall"))

    def ret(self, value: int, what: str) -> None:
        """The system call returns *value* in regs->ax; *what* says what was called."""
        self.pt.write("ax", value)
        signed = value if value < 1 << 63 else value - (1 << 64)
        shown = what if isinstance(what, Msg) else literal(what)  # "getpid()" is code
        self.res.lines.append(Msg("{what} = {value}", what=shown, value=signed))


def sys_getpid(c: Call) -> None:
    c.ret(c.pid, "getpid()")


def sys_write(c: Call) -> None:
    _write(c, c.regs["di"], c.regs["si"], c.regs["dx"])


def _write(c: Call, fd: int, buf: int, count: int) -> None:
    data = c.m.read_virt(c.cr3, buf, min(count, 1 << 16)) if count else b""
    if data is None:
        c.ret(_err(EFAULT), f"write({fd}, {buf:#x}, {count})")
        return
    c.res.output = data
    shown = c_string(data[:40]) + ("…" if len(data) > 40 else "")
    what = msg(
        "write({fd}, {buf:#x}, {count}) wrote {data}", fd=fd, buf=buf, count=count, data=shown
    )
    c.ret(len(data), what)


def sys_arch_prctl(c: Call) -> None:
    code, addr = c.regs["di"], c.regs["si"]
    m = c.m
    if code in (ARCH_SET_FS, ARCH_SET_GS):
        which = "FS" if code == ARCH_SET_FS else "GS"
        if addr >= m.layout.task_size_max:
            c.ret(_err(EPERM), f"arch_prctl(ARCH_SET_{which}, {addr:#x})")
            return
        # do_arch_prctl_64(): for the current task the base goes straight into the MSR.
        # The user GS base is the *inactive* one while in the kernel, so it lands in
        # MSR_KERNEL_GS_BASE and becomes live at the exit's swapgs.
        msr = MSR_FS_BASE if code == ARCH_SET_FS else MSR_KERNEL_GS_BASE
        m.write_msr(msr, addr)
        c.res.lines.append(
            f"{'MSR_FS_BASE' if which == 'FS' else 'MSR_KERNEL_GS_BASE'} ← {addr:#x}"
        )
        c.ret(0, f"arch_prctl(ARCH_SET_{which}, {addr:#x})")
    elif code in (ARCH_GET_FS, ARCH_GET_GS):
        msr = MSR_FS_BASE if code == ARCH_GET_FS else MSR_KERNEL_GS_BASE
        value = m.read_msr(msr)
        ok = m.write_virt(c.cr3, addr, struct.pack("<Q", value))
        which = "FS" if code == ARCH_GET_FS else "GS"
        c.ret(0 if ok else _err(EFAULT), f"arch_prctl(ARCH_GET_{which}, {addr:#x})")
    else:
        c.ret(_err(EINVAL), f"arch_prctl({code:#x}, {addr:#x})")


def sys_exit(c: Call) -> None:
    """exit and exit_group: do_exit() never returns to user space."""
    _exit(c, c.regs["di"])


def _exit(c: Call, status: int) -> None:
    c.res.exited = status & 0xFF
    c.res.lines.append(
        msg("{name}({status}): do_exit() does not return to user space", name=c.name, status=status)
    )


def sys_rt_sigreturn(c: Call) -> None:
    _rt_sigreturn(c.m, c.cr3, c.pt, c.regs, c.res)


#: The modelled system calls by number, one handler each (as in sys_call_table); any other
#: number below NR_syscalls leaves regs->ax at -ENOSYS and says so.
HANDLERS: dict[int, Callable[[Call], None]] = {
    NR_getpid: sys_getpid,
    NR_write: sys_write,
    NR_arch_prctl: sys_arch_prctl,
    NR_rt_sigreturn: sys_rt_sigreturn,
    NR_exit: sys_exit,
    NR_exit_group: sys_exit,
}


# -- the 32-bit ABI: int $0x80 ------------------------------------------------------------
#: i386 system-call names by number (arch/x86/entry/syscalls/syscall_32.tbl), for the
#: numbers a learner is likely to try; the others are "syscall".
SYSCALL_NAMES_32 = {
    1: "exit", 3: "read", 4: "write", 5: "open", 6: "close", 20: "getpid", 39: "mkdir",
    60: "umask", 64: "getppid", 119: "sigreturn", 173: "rt_sigreturn", 224: "gettid",
    231: "fgetxattr", 252: "exit_group",
}  # fmt: skip
NR32_exit, NR32_write, NR32_getpid, NR32_exit_group = 1, 4, 20, 252
#: IA32_NR_syscalls in v5.8 (__NR_ia32_syscall_max 439, faccessat2)
IA32_NR_SYSCALLS_V58 = 440
#: pt_regs fields of the six 32-bit arguments, in order (the __ia32_sys_* wrappers'
#: SC_IA32_REGS_TO_ARGS: each taken as (unsigned int))
ARGS_32 = ("bx", "cx", "dx", "si", "di", "bp")
MASK32 = 0xFFFFFFFF


def _args32(c: Call, n: int) -> list[int]:
    """The first *n* 32-bit arguments, as the ia32 wrappers take them from pt_regs."""
    return [c.regs[f] & MASK32 for f in ARGS_32[:n]]


def sys32_getpid(c: Call) -> None:
    c.ret(c.pid, "getpid()")


def sys32_write(c: Call) -> None:
    _write(c, *_args32(c, 3))


def sys32_exit(c: Call) -> None:
    _exit(c, _args32(c, 1)[0])


#: The modelled 32-bit system calls, one handler each (as in ia32_sys_call_table).
HANDLERS_32: dict[int, Callable[[Call], None]] = {
    NR32_getpid: sys32_getpid,
    NR32_write: sys32_write,
    NR32_exit: sys32_exit,
    NR32_exit_group: sys32_exit,
}


def do_int80_syscall_32(
    m: Machine,
    cr3: int,
    regs_addr: int,
    pid: int,
    regs: dict[str, int] | None = None,
    ia32_nr_syscalls: int = IA32_NR_SYSCALLS_V58,
) -> HandlerResult:
    """v5.8's do_int80_syscall_32(regs) (arch/x86/entry/common.c): in
    do_syscall_32_irqs_on(), ``unsigned int nr = (unsigned int)regs->orig_ax``, then
    ``if (likely(nr < IA32_NR_syscalls))`` ``regs->ax = ia32_sys_call_table[nr](regs)``,
    whose wrappers take the arguments from pt_regs->bx, cx, dx, si, di and bp, each cut
    to 32 bits.  No TIF work is pending in this machine's
    task (no ptrace, seccomp or audit), so syscall_trace_enter() and the exit work do
    nothing."""
    res = HandlerResult()
    pt = PtRegs(m, cr3, regs_addr)
    values = pt.read() if regs is None else regs
    nr = values["orig_ax"] & MASK32
    call = Call(m, cr3, nr, pt, values, pid, res, names=SYSCALL_NAMES_32)
    high = [f"{f} {values[f]:#x}" for f in ARGS_32 if values[f] > MASK32]
    if high:
        res.lines.append(
            msg(
                "the 32-bit ABI reads only the low 32 bits of each argument: upper halves "
                "dropped from {regs}",
                regs=", ".join(high),
            )
        )
    return _dispatch(
        call,
        HANDLERS_32,
        ia32_nr_syscalls,
        msg(
            "nr {nr:#x} >= IA32_NR_syscalls ({max}): ax stays -ENOSYS", nr=nr, max=ia32_nr_syscalls
        ),
        msg("{name} (32-bit nr {nr}) is not modelled: ax left at -ENOSYS", name=call.name, nr=nr),
    )


def do_int80_emulation(
    m: Machine,
    cr3: int,
    regs_addr: int,
    pid: int,
    regs: dict[str, int] | None = None,
    ia32_nr_syscalls: int = IA32_NR_SYSCALLS_V58,
    fred: bool = False,
) -> HandlerResult:
    """do_int80_emulation(regs) of 6.1.192 and 6.12 (arch/x86/entry/common.c; *fred*: 6.12's
    fred_int80_emulation, the same steps after a FRED event): from user mode,
    ``regs->orig_ax = regs->ax & GENMASK(31, 0); regs->ax = -ENOSYS;`` (the IDT entry
    pushed -1 as orig_ax, and PUSH_REGS left the number in ax), ``nr =
    syscall_32_enter(regs)``, an int; in do_syscall_32_irqs_on() ``unsigned int unr = nr;
    if (likely(unr < IA32_NR_syscalls))`` ``regs->ax = ia32_sys_call(regs, unr)`` (a switch
    since the BHI fix), else, for nr ≠ -1, __ia32_sys_ni_syscall's -ENOSYS (the value
    the entry left, so the note says it stays).  No TIF work
    is pending in this machine's task, the APIC's ISR has no vector 0x80 (a software
    interrupt, int80_is_external() is false), and add_random_kstack_offset() moves only
    the C frames, which are not emulated."""
    pt = PtRegs(m, cr3, regs_addr)
    values = pt.read() if regs is None else regs
    nr = values["ax"] & MASK32
    pt.write("orig_ax", nr)
    pt.write("ax", _err(ENOSYS))
    values = {**values, "orig_ax": nr, "ax": _err(ENOSYS)}
    res = do_int80_syscall_32(m, cr3, regs_addr, pid, values, ia32_nr_syscalls)
    said = (
        msg("orig_ax ← ax & 0xffffffff = {nr:#x}, ax ← -ENOSYS (fred_int80_emulation)", nr=nr)
        if fred
        else msg(
            "orig_ax ← ax & 0xffffffff = {nr:#x}, ax ← -ENOSYS (the IDT entry pushed -1 as "
            "orig_ax)",
            nr=nr,
        )
    )
    res.lines.insert(0, said)
    return res


def do_fast_syscall_32(
    m: Machine,
    cr3: int,
    regs_addr: int,
    pid: int,
    landing_pad: int,
    regs: dict[str, int] | None = None,
    ia32_nr_syscalls: int = IA32_NR_SYSCALLS_V58,
) -> tuple[HandlerResult, bool]:
    """do_fast_syscall_32(regs)'s system call (arch/x86/entry/common.c), the C side of the
    compat SYSCALL entry, up to its SYSRETL conditions (engine.kernel.common_c): ``regs->ip
    = landing_pad`` (current->mm->context.vdso + vdso_image_32.sym_int80_landing_pad: the
    vDSO's own return, past its ``int $0x80``), then in __do_fast_syscall_32 ``__get_user(
    *(u32 *)&regs->bp, (u32 __user *)(unsigned long)(u32)regs->sp)`` (the caller's EBP,
    which __kernel_vsyscall pushed last); if that faults, ``regs->ax = -EFAULT`` and false
    (IRET); else the 32-bit dispatch of int $0x80 (do_syscall_32_irqs_on) and true.  The
    bool says whether the call ran; the exit work has nothing to do in this machine's
    task."""
    pt = PtRegs(m, cr3, regs_addr)
    values = dict(pt.read() if regs is None else regs)
    pt.write("ip", landing_pad)
    values["ip"] = landing_pad
    sp32 = values["sp"] & MASK32
    raw = m.read_virt(cr3, sp32, 4)
    said = msg("ip ← landing_pad {pad:#x} (the vDSO's int80_landing_pad)", pad=landing_pad)
    if raw is None:
        pt.write("ax", _err(EFAULT))
        res = HandlerResult()
        res.lines += [
            said,
            msg(
                "__get_user of the caller's EBP at (u32)regs->sp {sp:#x} faults: ax ← "
                "-EFAULT and __do_fast_syscall_32 returns false, so IRET; no system call runs",
                sp=sp32,
            ),
        ]
        return res, False
    ebp = int.from_bytes(raw, "little")
    values["bp"] = (values["bp"] & ~MASK32 & MASK64) | ebp
    pt.write("bp", values["bp"])
    res = do_int80_syscall_32(m, cr3, regs_addr, pid, values, ia32_nr_syscalls)
    res.lines[:0] = [
        said,
        msg(
            "*(u32 *)&regs->bp ← {ebp:#x}, the caller's EBP read from the user stack at "
            "(u32)regs->sp {sp:#x}",
            ebp=ebp,
            sp=sp32,
        ),
    ]
    return res, True


def do_syscall_64(
    m: Machine,
    cr3: int,
    nr: int,
    regs_addr: int,
    pid: int,
    regs: dict[str, int] | None = None,
    nr_syscalls: int = NR_syscalls_v58,
) -> HandlerResult:
    """Run system call *nr* against the pt_regs at *regs_addr* (v5.8 semantics).

    *regs* may pass in the pt_regs just read from that address.  *nr_syscalls* is the
    kernel's table size (6.1 and 6.12 pass *nr* as an int and compare it unsigned:
    the caller gives the low 32 bits).
    """
    res = HandlerResult()
    pt = PtRegs(m, cr3, regs_addr)
    call = Call(m, cr3, nr, pt, pt.read() if regs is None else regs, pid, res)
    # `if (likely(nr < NR_syscalls))` failing leaves regs->ax at -ENOSYS
    return _dispatch(
        call,
        HANDLERS,
        nr_syscalls,
        msg("nr {nr:#x} >= NR_syscalls ({max}): ax stays -ENOSYS", nr=nr, max=nr_syscalls),
        msg("{name} (nr {nr}) is not modelled: ax left at -ENOSYS", name=call.name, nr=nr),
    )


def _dispatch(
    call: Call,
    handlers: dict[int, Callable[[Call], None]],
    table_size: int,
    past_the_table: str,
    not_modelled: str,
) -> HandlerResult:
    """The table dispatch both system-call ABIs share: past the table, ax keeps -ENOSYS;
    a number without a modelled handler says so; else the handler runs."""
    if call.nr >= table_size:
        call.res.lines.append(past_the_table)
        return call.res
    handler = handlers.get(call.nr)
    if handler is None:
        call.res.lines.append(not_modelled)
    else:
        handler(call)
    return call.res


def _rt_sigreturn(
    m: Machine, cr3: int, pt: PtRegs, regs: dict[str, int], res: HandlerResult
) -> None:
    """sys_rt_sigreturn(): restore pt_regs from the rt_sigframe the user stack points at."""
    frame = (regs["sp"] - 8) & MASK64  # the handler's `ret` popped pretcode
    uc_addr = frame + 8
    raw = m.read_virt(cr3, uc_addr, SIGFRAME_SIZE)
    if raw is None:
        # badframe: signal_fault() → SIGSEGV; the frame is left as it was.
        res.lines.append(
            msg("rt_sigreturn: frame at {frame:#x} not readable: SIGSEGV (badframe)", frame=frame)
        )
        pt.write("ax", 0)
        return
    uc_flags = int(struct.unpack_from("<Q", raw, 0)[0])
    sc = dict(
        zip(
            SIGCONTEXT_ORDER,
            struct.unpack_from(f"<{len(SIGCONTEXT_ORDER)}Q", raw, UC_MCONTEXT),
            strict=True,
        )
    )
    cs, _gs, _fs, ss = struct.unpack_from("<4H", raw, UC_MCONTEXT + SIGCONTEXT_CSGSFS)
    res.lines.append(
        msg(
            "rt_sigreturn: ucontext at {addr:#x}, uc_flags {flags:#x}",
            addr=uc_addr,
            flags=uc_flags,
        )
    )
    for sc_name, field_name in SIGCONTEXT_TO_PTREGS.items():
        pt.write(field_name, sc[sc_name])
    pt.write("cs", cs | 3)  # COPY_SEG_CPL3
    pt.write("ss", ss | 3)
    flags = (regs["flags"] & ~FIX_EFLAGS) | (sc["eflags"] & FIX_EFLAGS)
    pt.write("flags", flags)
    pt.write("orig_ax", MASK64)  # -1: disable syscall restart checks
    if not uc_flags & UC_STRICT_RESTORE_SS and (cs | 3) == USER_CS and not _valid_user_ss(ss | 3):
        pt.write("ss", USER_DS)  # force_valid_ss()
        res.lines.append(
            msg("force_valid_ss: ss {ss:#x} is not a usable stack segment → __USER_DS", ss=ss | 3)
        )
    # return regs->ax: the restored ax is also the return value
    res.lines.append(msg("rt_sigreturn() = {ax:#x} (the restored ax)", ax=sc["rax"]))
