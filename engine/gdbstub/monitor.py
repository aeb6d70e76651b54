"""QEMU's human monitor (HMP), as ``qRcmd`` serves it, over the recorded machine.

Kernel-oriented front-ends (pwndbg's kernel commands, bata24's GEF) only believe
they debug a kernel when the stub is QEMU's, and then parse HMP text:
``monitor info registers`` for GDTR/IDTR and the control registers, ``info mem`` and
``info tlb`` for the page tables, ``xp`` for physical memory, ``gva2gpa`` for one
translation.  With ``--qemu-compat`` the stub answers these in QEMU's own formats
(target/i386/cpu-dump.c, target/i386/monitor.c, monitor/hmp-cmds.c), every value
read from the emulated machine at the current position.  Commands that would change
the machine are refused with the reason: the machine is a recording.
"""

from __future__ import annotations

import shlex
import struct
from collections.abc import Callable

from unicorn import UcError
from unicorn import x86_const as X

from engine.errors import escape
from engine.gdbstub.pagetables import leaves, runs
from engine.gdbstub.replay import MSR_EFER, MSR_FS_BASE, MSR_GS_BASE, Replay
from engine.gdbstub.wire import E_MALFORMED, Malformed, hex_int

#: Most bytes one ``xp`` dumps (QEMU has no bound; a reply must have one).
MAX_DUMP = 0x4000
VERSION = "syscall-tui (QEMU monitor subset; a recorded run, not QEMU)"

READ_ONLY = "the machine is a recording of a finished run: it cannot be changed"
#: HMP commands that change or run the machine, refused with :data:`READ_ONLY`.
WRITES = frozenset(("cont", "c", "stop", "system_reset", "system_powerdown", "sendkey",
                    "nmi", "loadvm", "savevm", "delvm", "memsave", "pmemsave", "quit", "q",
                    "gdbserver", "singlestep", "mce", "wrmsr", "set_link", "i"))  # fmt: skip

# Segment descriptor bits as QEMU keeps them in SegmentCache.flags (target/i386/cpu.h).
DESC_A, DESC_RW, DESC_CE, DESC_CS, DESC_S = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
DESC_P, DESC_L, DESC_B = 1 << 15, 1 << 21, 1 << 22
_SYS_TYPES = ("Reserved", "Reserved", "LDT", "Reserved", "Reserved", "Reserved", "Reserved",
              "Reserved", "Reserved", "TSS64-avl", "Reserved", "TSS64-busy", "CallGate64",
              "Reserved", "IntGate64", "TrapGate64")  # fmt: skip


def _reg(r: Replay, name: str) -> int:
    return int(r.reg(getattr(X, f"UC_X86_REG_{name}")))


def _descriptor(r: Replay, selector: int) -> tuple[int, int, int]:
    """(base, limit, flags) of the GDT descriptor *selector* names, as QEMU caches them."""
    if selector & ~3 == 0:
        return 0, 0, 0
    _, gdt_base, gdt_limit, _ = r.reg(X.UC_X86_REG_GDTR)
    offset = selector & ~7
    if selector & 4 or offset + 7 > gdt_limit:
        return 0, 0, 0
    raw = r.read(gdt_base + offset, 8)
    if len(raw) != 8:
        return 0, 0, 0
    low, high = struct.unpack("<II", raw)
    base = (low >> 16) | (high & 0xFF) << 16 | (high & 0xFF000000)
    limit = (low & 0xFFFF) | (high & 0xF0000)
    if high & (1 << 23):  # G: 4 KiB units
        limit = limit << 12 | 0xFFF
    return base, limit, high & 0x00FFFF00  # what cpu_x86_dump_seg_cache() prints


def _segment(name: str, selector: int, base: int, limit: int, flags: int) -> str:
    line = f"{name:<3}={selector:04x} {base:016x} {limit:08x} {flags:08x}"
    if not flags & DESC_P:
        return line
    line += f" DPL={(flags >> 13) & 3} "
    if flags & DESC_S:
        if flags & DESC_CS:
            line += "CS64" if flags & DESC_L else ("CS32" if flags & DESC_B else "CS16")
            line += " [" + ("C" if flags & DESC_CE else "-") + ("R" if flags & DESC_RW else "-")
        else:
            line += "DS  " + " [" + ("E" if flags & DESC_CE else "-")
            line += "W" if flags & DESC_RW else "-"
        return line + ("A" if flags & DESC_A else "-") + "]"
    return line + _SYS_TYPES[(flags >> 8) & 0xF]


def info_registers(r: Replay) -> str:
    """``info registers``: x86_cpu_dump_state() of a 64-bit CPU, with CPU_DUMP_FPU."""
    out = []
    names = ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP",
             "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15")  # fmt: skip
    for i in range(0, 16, 4):
        out.append(" ".join(f"{n:<3}={_reg(r, n):016x}" for n in names[i : i + 4]))
    rfl = _reg(r, "RFLAGS")
    shown = (("D", 10), ("O", 11), ("S", 7), ("Z", 6), ("A", 4), ("P", 2), ("C", 0))
    bits = "".join(c if rfl & (1 << b) else "-" for c, b in shown)
    cs = _reg(r, "CS")
    out.append(f"RIP={_reg(r, 'RIP'):016x} RFL={rfl:08x} [{bits}] CPL={cs & 3} II=0 A20=1 "
               "SMM=0 HLT=0")  # fmt: skip
    for name in ("ES", "CS", "SS", "DS", "FS", "GS"):
        sel = _reg(r, name)
        base, limit, flags = _descriptor(r, sel)
        if name == "FS":
            base = r.msr(MSR_FS_BASE)
        elif name == "GS":
            base = r.msr(MSR_GS_BASE)
        out.append(_segment(name, sel, base, limit, flags))
    ldt_sel, ldt_base, ldt_limit, ldt_flags = r.reg(X.UC_X86_REG_LDTR)
    out.append(_segment("LDT", ldt_sel, ldt_base, ldt_limit, (ldt_flags & 0xF0FF) << 8))
    tr_sel, tr_base, tr_limit, tr_flags = r.reg(X.UC_X86_REG_TR)
    out.append(_segment("TR", tr_sel, tr_base, tr_limit, (tr_flags & 0xF0FF) << 8))
    _, gdt_base, gdt_limit, _ = r.reg(X.UC_X86_REG_GDTR)
    _, idt_base, idt_limit, _ = r.reg(X.UC_X86_REG_IDTR)
    out.append(f"GDT=     {gdt_base:016x} {gdt_limit:08x}")
    out.append(f"IDT=     {idt_base:016x} {idt_limit:08x}")
    out.append(f"CR0={_reg(r, 'CR0'):08x} CR2={_reg(r, 'CR2'):016x} CR3={_reg(r, 'CR3'):016x} "
               f"CR4={_reg(r, 'CR4'):08x}")  # fmt: skip
    out.append("".join(f"DR{i}={_reg(r, f'DR{i}'):016x} " for i in range(4)))
    out.append(f"DR6={_reg(r, 'DR6'):016x} DR7={_reg(r, 'DR7'):016x}")
    out.append(f"EFER={r.msr(MSR_EFER):016x}")
    fsw, tags = _reg(r, "FPSW"), _reg(r, "FPTAG")
    ftw = sum(1 << i for i in range(8) if (tags >> 2 * i) & 3 != 3)  # abridged: 1 = not empty
    out.append(f"FCW={_reg(r, 'FPCW'):04x} FSW={fsw:04x} [ST={(fsw >> 11) & 7}] "
               f"FTW={ftw:02x} MXCSR={_reg(r, 'MXCSR'):08x}")  # fmt: skip
    fpr = []
    for i in range(8):
        mantissa, exponent = r.reg(getattr(X, f"UC_X86_REG_FP{i}"))
        fpr.append(f"FPR{i}={int(mantissa):016x} {int(exponent) & 0xFFFF:04x}")
    out += [" ".join(fpr[i : i + 2]) for i in range(0, 8, 2)]
    xmm = [f"XMM{i:02d}={_reg(r, f'XMM{i}'):032x}" for i in range(16)]
    out += [" ".join(xmm[i : i + 2]) for i in range(0, 16, 2)]
    return "\n".join(out) + "\n"


def _levels(r: Replay) -> int:
    return int(r.machine.config.paging)


def info_mem(r: Replay) -> str:
    """``info mem``: runs of the current CR3's mappings (QEMU shows no X: NX is not listed)."""
    pages = [(x.vaddr, x.size, x.user, x.writable, False)
             for x in leaves(r.machine.read_phys, _reg(r, "CR3"), _levels(r))]  # fmt: skip
    return "".join(
        f"{run.start:016x}-{run.end:016x} {run.end - run.start:016x} "
        f"{'u' if run.user else '-'}r{'w' if run.writable else '-'}\n"
        for run in runs(pages)
    )


def info_tlb(r: Replay) -> str:
    """``info tlb``: every leaf of the current CR3, with the leaf entry's own bits."""
    lines = []
    for leaf in leaves(r.machine.read_phys, _reg(r, "CR3"), _levels(r)):
        e = leaf.entry
        bits = "".join(c if e & (1 << b) else "-" for c, b in
                       (("X", 63), ("G", 8), ("P", 7), ("D", 6), ("A", 5), ("C", 4), ("T", 3),
                        ("U", 2), ("W", 1)))  # fmt: skip
        lines.append(f"{leaf.vaddr:016x}: {leaf.phys:016x} {bits}\n")
    return "".join(lines)


#: ``$name`` in an HMP expression: a register (QEMU's get_monitor_def()).
_MONITOR_REGS = {
    **{n: n.upper() for n in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "rip",
                              "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                              "cr0", "cr2", "cr3", "cr4")},
    "pc": "RIP", "sp": "RSP", "eflags": "RFLAGS",
}  # fmt: skip


def _number(text: str, r: Replay | None = None) -> int:
    if text.startswith("$") and r is not None and text[1:].lower() in _MONITOR_REGS:
        return _reg(r, _MONITOR_REGS[text[1:].lower()])
    value = int(text, 0)
    if not 0 <= value < 1 << 64:
        raise ValueError(text)
    return value


def xp(r: Replay, fmt: str, address: str) -> str:
    """``xp /NFU addr``: physical memory, memory_dump()'s layout (8 bytes a line for
    bytes, 16 for the other sizes)."""
    count_text = "".join(c for c in fmt if c.isdigit())
    letters = fmt[len(count_text) :]
    count = int(count_text) if count_text else 1
    size, form = 4, "x"
    for c in letters:
        if c in "bhwg":
            size = {"b": 1, "h": 2, "w": 4, "g": 8}[c]
        elif c in "xdu":
            form = c
        else:
            return f"invalid char in format: '{c}'\n"
    addr = _number(address, r)
    total = min(count * size, MAX_DUMP)
    line_size = 8 if size == 1 else 16
    digits = (size * 8 + 3) // 4
    out = []
    done = 0
    while done < total:
        n = min(line_size, total - done)
        try:
            data = r.machine.read_phys(addr + done, n)
        except UcError:
            out.append(f"{addr + done:016x}: Cannot access memory")
            break
        words = [int.from_bytes(data[i : i + size], "little") for i in range(0, n, size)]
        if form == "x":
            cells = [f"0x{w:0{digits}x}" for w in words]
        elif form == "u":
            cells = [f"{w:{digits}d}" for w in words]
        else:
            cells = [
                f"{w - (1 << 8 * size) if w >> (8 * size - 1) else w:{digits}d}" for w in words
            ]
        out.append(f"{addr + done:016x}: " + " ".join(cells))
        done += n
    return "\n".join(out) + "\n"


def gva2gpa(r: Replay, address: str) -> str:
    va = _number(address, r)
    walk = r.machine.walk(_reg(r, "CR3"), va)
    return "Unmapped\n" if walk.phys is None else f"gpa: {walk.phys:#x}\n"


HELP = (
    "gva2gpa addr -- print the guest physical address corresponding to a guest virtual address\n"
    "help|? [cmd] -- show the help\n"
    "info [subcommand] -- show various information about the system state\n"
    "xp /fmt addr -- physical memory dump starting at 'addr'\n"
)
INFO_HELP = (
    "info kvm  -- show KVM information\n"
    "info mem  -- show the active virtual memory mappings\n"
    "info registers [-a] -- show the cpu registers\n"
    "info tlb  -- show virtual to physical memory mappings\n"
    "info version  -- show the version of QEMU\n"
)


def command(r: Replay, line: str) -> str:
    """The monitor's answer to *line* (one HMP command), text ending in a newline."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if not words:
        return ""
    # What gdb sent is echoed in replies ("unknown command: ..."): never as raw bytes
    # that a terminal would take for control sequences.
    words = [escape(w, limit=80) for w in words]
    name, args = words[0], words[1:]
    info: dict[str, Callable[[Replay], str]] = {
        "registers": info_registers,
        "mem": info_mem,
        "tlb": info_tlb,
        "kvm": lambda _: "kvm support: disabled\n",
        "version": lambda _: VERSION + "\n",
    }
    try:
        if name in ("help", "?"):
            return INFO_HELP if args[:1] == ["info"] else HELP
        if name == "info":
            if not args:
                return INFO_HELP
            if args[0] in info:
                return info[args[0]](r)
            return f"unknown command: 'info {args[0]}'\n"
        if name.startswith("xp"):
            fmt = name[2:].lstrip("/")
            if not name[2:] and args and args[0].startswith("/"):
                fmt, args = args[0][1:], args[1:]
            if len(args) != 1:
                return "xp: expected /fmt addr\n"
            return xp(r, fmt, args[0])
        if name == "gva2gpa":
            if len(args) != 1:
                return "gva2gpa: expected one address\n"
            return gva2gpa(r, args[0])
        if name in WRITES:
            return f"{name}: refused: {READ_ONLY}\n"
    except ValueError:
        return f"{name}: invalid number\n"
    return f"unknown command: '{name}'\n"


def qemu_packet(
    text: str, phys_mode: bool, machine: Callable[[], Replay]
) -> tuple[str, bool] | None:
    """The reply to one of QEMU's own packets (gdbstub/system.c) and the physical-memory
    mode after it; None for any other packet."""
    # QEMU answers "qemu.sstepbits" as q or Q alike (its common query/set table),
    # and bata24's GEF asks it as Qqemu.sstepbits.
    if text in ("qqemu.sstepbits", "Qqemu.sstepbits"):
        return "ENABLE=1,NOIRQ=2,NOTIMER=4", phys_mode
    if text == "qqemu.sstep":
        return "0x7", phys_mode  # QEMU's default: stepping without IRQs and timers
    if text.startswith("Qqemu.sstep="):
        hex_int(text.partition("=")[2])
        return "OK", phys_mode  # nothing asynchronous runs here: every step is without both
    if text == "qqemu.PhyMemMode":
        return ("1" if phys_mode else "0"), phys_mode
    if text.startswith("Qqemu.PhyMemMode:"):
        mode = text.partition(":")[2]
        if mode not in ("0", "1"):
            return E_MALFORMED, phys_mode
        return "OK", mode == "1"
    if text.startswith("qRcmd,"):
        try:
            line = bytes.fromhex(text[6:]).decode("latin-1")
        except ValueError:
            raise Malformed(text) from None
        output = command(machine(), line)
        # the output, hex-encoded; "OK" alone when there is none (an empty reply
        # would mean "qRcmd not supported")
        return output.encode("utf-8", "replace").hex() or "OK", phys_mode
    return None


__all__ = [
    "MAX_DUMP", "READ_ONLY", "command", "info_mem", "info_registers", "info_tlb", "qemu_packet",
]  # fmt: skip
