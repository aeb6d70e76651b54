"""Pure decoders that turn raw register and MSR values into the words a learner reads.

Nothing here imports Textual: the panels call these, and the tests check them directly.
The bit layouts come from the Intel SDM and the v5.8 headers (engine.constants).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.constants import (
    CR3_PCID_MASK,
    EFER_LMA,
    EFER_LME,
    EFER_NXE,
    EFER_SCE,
    IOPL,
    KERNEL32_CS,
    KERNEL_CS,
    KERNEL_DS,
    MASK64,
    PTI_USER_PGTABLE_MASK,
    USER32_CS,
    USER_CS,
    USER_DS,
    X86_CR3_PCID_NOFLUSH,
    is_canonical,
    sign_extend,
)
from engine.constants import RFLAGS_BITS as _ALL_FLAGS

#: RFLAGS bits worth naming, in bit order.  IOPL is two bits and is shown as a number.
RFLAGS_BITS: tuple[tuple[str, int], ...] = tuple((n, b) for n, b in _ALL_FLAGS if n != "IOPL")
IOPL_MASK = IOPL
IOPL_SHIFT = 12

#: EFER bits the SYSCALL path depends on.
EFER_BITS: tuple[tuple[str, int], ...] = (
    ("SCE", EFER_SCE),
    ("LME", EFER_LME),
    ("LMA", EFER_LMA),
    ("NXE", EFER_NXE),
)

#: Selector values of arch/x86/include/asm/segment.h, for naming CS and SS.
SELECTOR_NAMES: dict[int, str] = {
    KERNEL32_CS: "__KERNEL32_CS",
    KERNEL_CS: "__KERNEL_CS",
    KERNEL_DS: "__KERNEL_DS",
    USER32_CS: "__USER32_CS",
    USER_DS: "__USER_DS",
    USER_CS: "__USER_CS",
}

CR3_NOFLUSH = X86_CR3_PCID_NOFLUSH
#: Bit 12 selects the user half of the 8 KiB KPTI PGD pair.
CR3_PTI_USER = PTI_USER_PGTABLE_MASK
#: Physical-address bits of CR3 (51:12).
CR3_ADDR_MASK = 0x000F_FFFF_FFFF_F000


def rflags_set(value: int) -> list[str]:
    """Names of the RFLAGS bits set in ``value`` (IOPL included when non-zero)."""
    names = [name for name, bit in RFLAGS_BITS if value & bit]
    iopl = (value & IOPL_MASK) >> IOPL_SHIFT
    if iopl:
        names.append(f"IOPL{iopl}")
    return names


def fmask_names(value: int) -> list[str]:
    """Flags SYSCALL clears: the RFLAGS names of the bits set in SYSCALL_MASK."""
    names = [name for name, bit in RFLAGS_BITS if value & bit]
    if value & IOPL_MASK:
        names.append("IOPL")
    return names


def efer_set(value: int) -> list[str]:
    return [name for name, bit in EFER_BITS if value & bit]


@dataclass(frozen=True, slots=True)
class StarFields:
    """The selectors SYSCALL and SYSRET derive from IA32_STAR."""

    syscall_cs: int
    syscall_ss: int
    sysret_cs: int
    sysret_ss: int


def decode_star(value: int) -> StarFields:
    """SYSCALL: CS = STAR[47:32] & ~3, SS = that + 8.  64-bit SYSRET: CS = STAR[63:48] + 16
    and SS = STAR[63:48] + 8, both with RPL forced to 3."""
    syscall_base = (value >> 32) & 0xFFFF
    sysret_base = (value >> 48) & 0xFFFF
    return StarFields(
        syscall_cs=syscall_base & 0xFFFC,
        syscall_ss=(syscall_base + 8) & 0xFFFF,
        sysret_cs=((sysret_base + 16) | 3) & 0xFFFF,
        sysret_ss=((sysret_base + 8) | 3) & 0xFFFF,
    )


@dataclass(frozen=True, slots=True)
class FredConfigFields:
    """IA32_FRED_CONFIG as 6.12 composes it (asm/fred.h's FRED_CONFIG_* macros)."""

    entrypoint: int  # bits 63:12: the ring-3 entry; ring-0 events enter 256 bytes on
    redzone: int  # bits 8:6, in 64-byte lines: reserved below RSP for ring-0 events
    int_stack_level: int  # bits 10:9: the stack level of external interrupts


def decode_fred_config(value: int) -> FredConfigFields:
    """FRED_CONFIG_ENTRYPOINT(p) | FRED_CONFIG_INT_STKLVL(l) (l << 9) |
    FRED_CONFIG_REDZONE (lines << 6): the fields each macro sets."""
    return FredConfigFields(
        entrypoint=value & ~0xFFF & (2**64 - 1),
        redzone=((value >> 6) & 7) * 64,
        int_stack_level=(value >> 9) & 3,
    )


@dataclass(frozen=True, slots=True)
class Cr3Fields:
    pgd: int  # physical address of the top-level table (bits 51:12, bit 12 included)
    pcid: int
    user_half: bool  # bit 12: the KPTI user PGD of the pair
    noflush: bool  # bit 63: keep this PCID's TLB entries


def decode_cr3(value: int) -> Cr3Fields:
    return Cr3Fields(
        pgd=value & CR3_ADDR_MASK,
        pcid=value & CR3_PCID_MASK,
        user_half=bool(value & CR3_PTI_USER),
        noflush=bool(value & CR3_NOFLUSH),
    )


def same_root(cr3: int, root_cr3: int) -> bool:
    """Whether two CR3 values select the same page-table root.

    Bit 63 (no-flush) is a write-only hint and the PCID tags the TLB, not the walk, so only
    the table address decides which root is live.
    """
    return (cr3 & CR3_ADDR_MASK) == (root_cr3 & CR3_ADDR_MASK)


def selector_name(value: int) -> str:
    return SELECTOR_NAMES.get(value, f"index {value >> 3}")


def symbol_at(address: int, symbols: Mapping[str, int]) -> str | None:
    """The symbol exactly at ``address``, preferring the shortest (outermost) name."""
    names = [name for name, value in symbols.items() if value == address]
    return min(names, key=lambda n: (len(n), n)) if names else None


def hex64(value: int) -> str:
    return f"{value & MASK64:016x}"


__all__ = [
    "CR3_ADDR_MASK", "CR3_NOFLUSH", "CR3_PCID_MASK", "CR3_PTI_USER", "EFER_BITS", "IOPL_MASK",
    "RFLAGS_BITS", "SELECTOR_NAMES", "Cr3Fields", "FredConfigFields", "StarFields", "decode_cr3",
    "decode_fred_config", "decode_star",
    "efer_set", "fmask_names", "hex64", "is_canonical", "rflags_set", "same_root",
    "selector_name", "sign_extend", "symbol_at",
]  # fmt: skip
