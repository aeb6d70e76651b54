"""``info gdt|tss|idt|cr|msr``: the machine's tables and control registers at a step.

The GDT and the TSS are read from emulated memory at the step (through the kernel
root, where both are mapped; the TSS page is also in the user root), the
descriptor-table registers and CR0/CR4 from the machine (no step writes them), CR3
and the FS/GS bases from the step's record, the SYSCALL MSRs as the run read them.
Decoding follows the Intel SDM vol. 3A (3.4.5 segment descriptors, 8.2.3 the 64-bit
TSS descriptor, 8.7 the 64-bit TSS, 2.5 control registers).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.constants import (
    CR0_ET,
    CR0_MP,
    CR0_NE,
    CR0_PE,
    CR0_PG,
    CR0_WP,
    CR4_FRED,
    CR4_LA57,
    CR4_OSFXSR,
    CR4_OSXMMEXCPT,
    CR4_PAE,
    CR4_PCIDE,
    EFER_LMA,
    EFER_LME,
    EFER_NXE,
    EFER_SCE,
    KERNEL32_CS,
    KERNEL_CS,
    KERNEL_DS,
    TSS_SIZE,
    USER32_CS,
    USER_CS,
    USER_DS,
    TSS_io_bitmap_base,
    TSS_sp0,
    TSS_sp1,
    TSS_sp2,
    flag_names,
)
from engine.inspect.machine_at import InspectError, MachineAt
from engine.inspect.pagewalk import RootDecode, decode_root

#: Bytes from the TSS base to IST1 (struct x86_hw_tss: reserved1, sp0..sp2, reserved2).
TSS_IST1 = 36
IST_ENTRIES = 7

SELECTOR_NAMES = {
    0: "null",
    KERNEL32_CS: "__KERNEL32_CS",
    KERNEL_CS: "__KERNEL_CS",
    KERNEL_DS: "__KERNEL_DS",
    USER32_CS & ~3: "__USER32_CS",
    USER_DS & ~3: "__USER_DS",
    USER_CS & ~3: "__USER_CS",
}


@dataclass(frozen=True, slots=True)
class Descriptor:
    """One GDT entry, decoded."""

    selector: int  # the index times 8
    raw: int  # the low quadword (and, for a system descriptor, high << 64)
    name: str
    present: bool
    system: bool  # S = 0: a system descriptor (TSS, LDT, gates)
    type: int
    type_name: str
    dpl: int
    base: int
    limit: int  # in bytes, after G
    long: bool  # L: a 64-bit code segment
    default_big: bool  # D/B
    granularity: bool  # G


@dataclass(frozen=True, slots=True)
class GdtInfo:
    step: int
    base: int
    limit: int
    descriptors: tuple[Descriptor, ...]
    readable: bool  # False: the GDT's memory is not mapped (never on this machine)


@dataclass(frozen=True, slots=True)
class TssField:
    name: str
    offset: int
    value: int
    meaning: str


@dataclass(frozen=True, slots=True)
class TssInfo:
    step: int
    selector: int
    base: int
    limit: int
    fields: tuple[TssField, ...]


@dataclass(frozen=True, slots=True)
class IdtInfo:
    step: int
    base: int
    limit: int
    gates: tuple[tuple[int, int, int], ...]  # (vector, offset, selector) of present gates
    note: str


@dataclass(frozen=True, slots=True)
class Bits:
    """A register and the names of its set bits (or fields)."""

    name: str
    value: int
    bits: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class CrInfo:
    step: int
    registers: tuple[Bits, ...]
    root: RootDecode


@dataclass(frozen=True, slots=True)
class MsrInfo:
    step: int
    registers: tuple[Bits, ...]


#: What any ``info`` command answers.
Info = GdtInfo | TssInfo | IdtInfo | CrInfo | MsrInfo


def _set(value: int, table: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    return tuple(name for name, bit in table if value & bit)


_CODE_DATA_TYPES = {
    0x3: "data RW accessed",
    0xB: "code RX accessed",
    0x1: "data R accessed",
    0x9: "code X accessed",
}
_SYSTEM_TYPES = {0x2: "LDT", 0x9: "64-bit TSS (available)", 0xB: "64-bit TSS (busy)"}


def decode_descriptor(selector: int, low: int, high: int | None) -> Descriptor:
    access = (low >> 40) & 0xFF
    flags = (low >> 52) & 0xF
    system = low != 0 and not access & 0x10
    typ = access & 0xF
    limit = (low & 0xFFFF) | ((low >> 48) & 0xF) << 16
    g = bool(flags & 0x8)
    if g:
        limit = (limit << 12) | 0xFFF
    base = ((low >> 16) & 0xFFFFFF) | ((low >> 56) & 0xFF) << 24
    if system and high is not None:
        base |= (high & 0xFFFFFFFF) << 32
    if low == 0 and not high:
        type_name = "null"
    elif system:
        type_name = _SYSTEM_TYPES.get(typ, f"system type {typ:#x}")
    else:
        type_name = _CODE_DATA_TYPES.get(typ, f"type {typ:#x}")
    name = SELECTOR_NAMES.get(selector, "GDT_ENTRY_TSS" if system and typ in (0x9, 0xB) else "")
    return Descriptor(
        selector=selector,
        raw=low | ((high or 0) << 64),
        name=name,
        present=bool(access & 0x80),
        system=system,
        type=typ,
        type_name=type_name,
        dpl=(access >> 5) & 3,
        base=base,
        limit=limit,
        long=bool(flags & 0x2),
        default_big=bool(flags & 0x4),
        granularity=g,
    )


def info_gdt(at: MachineAt, step: int) -> GdtInfo:
    _, base, limit, _ = at.descriptors.gdtr
    raw = at.read_virt(step, at.machine.kernel_cr3, base, limit + 1)
    if raw is None:
        return GdtInfo(step, base, limit, (), False)
    out = []
    i = 0
    while i + 8 <= len(raw):
        low = int.from_bytes(raw[i : i + 8], "little")
        system = low and not (low >> 44) & 1
        if system and i + 16 <= len(raw):
            high = int.from_bytes(raw[i + 8 : i + 16], "little")
            out.append(decode_descriptor(i, low, high))
            i += 16
        else:
            out.append(decode_descriptor(i, low, None))
            i += 8
    return GdtInfo(step, base, limit, tuple(out), True)


def info_tss(at: MachineAt, step: int) -> TssInfo:
    """The TSS that TR selects, read from memory at *step*."""
    selector, base, limit, _ = at.descriptors.tr
    raw = at.read_virt(step, at.machine.kernel_cr3, base, TSS_SIZE)
    if raw is None:
        raise InspectError(f"the TSS at {base:#x} is not mapped")

    def q(off: int) -> int:
        return int.from_bytes(raw[off : off + 8], "little")

    lay = at.machine.layout
    sp0 = q(TSS_sp0)
    fields = [
        TssField(
            "sp0",
            TSS_sp0,
            sp0,
            "top of the entry (trampoline) stack: the CPU's RSP0"
            if sp0 == lay.entry_stack_top
            else "RSP0",
        ),
        TssField(
            "sp1",
            TSS_sp1,
            q(TSS_sp1),
            "top of the task stack (cpu_current_top_of_stack in v5.8)"
            if q(TSS_sp1) == lay.task_stack_top
            else "RSP1 (unused by the CPU: Linux has no ring 1)",
        ),
        TssField("sp2", TSS_sp2, q(TSS_sp2), "scratch: entry_SYSCALL_64 saves the user RSP here"),
    ]
    for n in range(IST_ENTRIES):
        off = TSS_IST1 + 8 * n
        fields.append(TssField(f"ist{n + 1}", off, q(off), "interrupt stack table entry"))
    io = int.from_bytes(raw[TSS_io_bitmap_base : TSS_io_bitmap_base + 2], "little")
    meaning = (
        "past the TSS limit: no I/O bitmap, every port faults at CPL 3 with IOPL 0"
        if io > limit
        else "offset of the I/O permission bitmap"
    )
    fields.append(TssField("io_bitmap_base", TSS_io_bitmap_base, io, meaning))
    return TssInfo(step, selector, base, limit, tuple(fields))


def info_idt(at: MachineAt, step: int) -> IdtInfo:
    at.check_step(step)
    _, base, limit, _ = at.descriptors.idtr
    if limit == 0:
        return IdtInfo(
            step,
            base,
            limit,
            (),
            "no IDT is loaded: an exception ends the run where it is raised "
            "(its vector and error code are modelled), nothing is delivered",
        )
    raw = at.read_virt(step, at.machine.kernel_cr3, base, limit + 1) or b""
    gates = []
    for v in range(len(raw) // 16):
        lo = int.from_bytes(raw[16 * v : 16 * v + 8], "little")
        hi = int.from_bytes(raw[16 * v + 8 : 16 * v + 16], "little")
        if lo >> 47 & 1:
            off = (lo & 0xFFFF) | ((lo >> 48) & 0xFFFF) << 16 | (hi & 0xFFFFFFFF) << 32
            gates.append((v, off, (lo >> 16) & 0xFFFF))
    return IdtInfo(step, base, limit, tuple(gates), "")


CR0_BITS = (
    ("PE", CR0_PE), ("MP", CR0_MP), ("ET", CR0_ET), ("NE", CR0_NE), ("WP", CR0_WP),
    ("PG", CR0_PG),
)  # fmt: skip
CR4_BITS = (
    ("PAE", CR4_PAE), ("OSFXSR", CR4_OSFXSR), ("OSXMMEXCPT", CR4_OSXMMEXCPT),
    ("LA57", CR4_LA57), ("PCIDE", CR4_PCIDE), ("FRED", CR4_FRED),
)  # fmt: skip
EFER_BITS = (("SCE", EFER_SCE), ("LME", EFER_LME), ("LMA", EFER_LMA), ("NXE", EFER_NXE))


def info_cr(at: MachineAt, step: int) -> CrInfo:
    d = at.descriptors
    regs = at.regs(step)
    root = decode_root(regs.cr3, at.pcide)
    which = (
        "user root"
        if regs.cr3 == at.machine.user_cr3 and at.machine.config.pti
        else "kernel root"
        if regs.cr3 == at.machine.kernel_cr3
        else "neither KPTI root"
    )
    cr3_bits = [f"PGD {root.table:#x}"]
    if root.pcid is not None:
        cr3_bits.append(f"PCID {root.pcid}")
    if root.pti_user_table:
        cr3_bits.append("PTI user PGD (bit 12)")
    if root.pti_user_pcid:
        cr3_bits.append("PTI user PCID (bit 11)")
    return CrInfo(
        step,
        (
            Bits("cr0", d.cr0, _set(d.cr0, CR0_BITS)),
            Bits("cr2", d.cr2, ()),
            Bits("cr3", regs.cr3, tuple(cr3_bits), which),
            Bits("cr4", d.cr4, _set(d.cr4, CR4_BITS)),
        ),
        root,
    )


def info_msr(at: MachineAt, step: int) -> MsrInfo:
    msrs = at.trace.msrs
    regs = at.regs(step)
    star = msrs["STAR"]
    lstar = msrs["LSTAR"]
    label = next((n for n, a in at.trace.symbols.items() if a == lstar), "")
    mask = msrs["SYSCALL_MASK"]
    return MsrInfo(
        step,
        (
            Bits("EFER", msrs["EFER"], _set(msrs["EFER"], EFER_BITS)),
            Bits(
                "STAR",
                star,
                (f"SYSCALL CS {star >> 32 & 0xFFFF:#x}", f"SYSRET base {star >> 48 & 0xFFFF:#x}"),
                "SYSRET to 64-bit loads CS = base + 16, SS = base + 8 (RPL 3)",
            ),
            Bits("LSTAR", lstar, (label,) if label else (), "where SYSCALL jumps"),
            Bits("SYSCALL_MASK", mask, tuple(flag_names(mask)), "RFLAGS bits SYSCALL clears"),
            Bits("FS_BASE", regs.fs_base, ()),
            Bits("GS_BASE", regs.gs_base, ()),
            Bits(
                "KERNEL_GS_BASE",
                regs.kernel_gs_base,
                (),
                "swapgs exchanges it with GS_BASE",
            ),
        ),
    )


__all__ = [
    "Bits", "CrInfo", "Descriptor", "GdtInfo", "IdtInfo", "Info", "MsrInfo", "TssField", "TssInfo",
    "decode_descriptor", "info_cr", "info_gdt", "info_idt", "info_msr", "info_tss",
]  # fmt: skip
