"""The page walk of one virtual address under one CR3, level by level, as the MMU does it.

Intel SDM vol. 3A, 4.5 (4-level and 5-level paging): the root is CR3[51:12]; each
level indexes its table with 9 bits of the address; an entry with P=0 stops the walk
(#PF); PS=1 in a PDPTE or PDE maps a 1 GiB or 2 MiB page, and is reserved in a
PML4E/PML5E; the access rights are the AND of R/W and U/S over the levels and the
OR of XD (NX, with EFER.NXE).  A non-canonical address is never walked: the access
raises #GP before paging.  The tables are read through *read_phys*, so the walk is of
the memory the caller gives: the memory log at some step, or the live machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from engine.constants import (
    CR3_PCID_MASK,
    PTI_USER_PCID_MASK,
    PTI_USER_PGTABLE_MASK,
    X86_CR3_PCID_NOFLUSH,
)
from engine.machine.paging import ADDR_MASK

#: The bits of a paging-structure entry, by position, as decoded (bit 7 is PAT in a PTE).
ENTRY_BITS: tuple[tuple[str, int], ...] = (
    ("P", 0), ("RW", 1), ("US", 2), ("PWT", 3), ("PCD", 4),
    ("A", 5), ("D", 6), ("PS", 7), ("G", 8), ("NX", 63),
)  # fmt: skip

_P, _RW, _US, _PS, _NX = 1, 1 << 1, 1 << 2, 1 << 7, 1 << 63


class Root(StrEnum):
    """The two page-table roots of KPTI (without PTI both are the kernel's)."""

    USER = "user"
    KERNEL = "kernel"


class Stop(StrEnum):
    """Why a walk ended without a translation."""

    NON_CANONICAL = "non_canonical"  # #GP before any table is read
    NOT_PRESENT = "not_present"  # P=0 at some level: #PF
    RESERVED = "reserved"  # PS=1 where the SDM reserves it: #PF with RSVD
    NO_MEMORY = "no_memory"  # the table address is not in emulated memory


def stop_text(result: WalkResult, levels: int) -> str:
    """Where and why a walk stopped, or what a CPL-3 access of the mapping would do."""
    if result.stop is Stop.NON_CANONICAL:
        return "non-canonical address: #GP before any table is read"
    if result.stop is Stop.NOT_PRESENT:
        at = result.stop_level
        assert at is not None
        return f"not present at level {at} ({level_name(at, levels)}): #PF"
    if result.stop is Stop.RESERVED:
        return f"PS set at level {result.stop_level}, where it is reserved: #PF (RSVD)"
    if result.stop is Stop.NO_MEMORY:
        return f"the level-{result.stop_level} table is not in emulated memory"
    size = {4096: "4 KiB", 2 << 20: "2 MiB", 1 << 30: "1 GiB"}.get(result.page_size or 0, "?")
    parts = [f"mapped: {size} page, physical address {result.physical:#x}"]
    if result.user_denied_at is not None:
        parts.append(f"US=0 at level {result.user_denied_at}: a CPL-3 access faults")
    if result.read_only_at is not None:
        parts.append(f"RW=0 at level {result.read_only_at}: writes fault (CR0.WP=1)")
    if result.nx_at is not None:
        parts.append(f"NX at level {result.nx_at}: no instruction fetch")
    return "; ".join(parts)


def level_name(level: int, levels: int) -> str:
    """Linux's name of the table at *level* (with the SDM's in brackets)."""
    if level == 5:
        return "PGD (PML5)"
    if level == 4:
        return "PGD (PML4)" if levels == 4 else "P4D (PML4)"
    return {3: "PUD (PDPT)", 2: "PMD (PD)", 1: "PTE (PT)"}[level]


@dataclass(frozen=True, slots=True)
class RootDecode:
    """CR3 decoded: the root table, the PCID, and KPTI's two bits in it."""

    cr3: int
    table: int  # physical address of the top-level table
    pcid: int | None  # CR3[11:0] when CR4.PCIDE=1
    pti_user_table: bool  # bit 12: the user half of the 8 KiB PGD pair
    pti_user_pcid: bool  # bit 11: the user PCID (only with PCID)
    noflush: bool  # bit 63 (never stored by the CPU: shown if a value carries it)


def decode_root(cr3: int, pcide: bool) -> RootDecode:
    return RootDecode(
        cr3=cr3,
        table=cr3 & ADDR_MASK,
        pcid=cr3 & CR3_PCID_MASK if pcide else None,
        pti_user_table=bool(cr3 & PTI_USER_PGTABLE_MASK),
        pti_user_pcid=pcide and bool(cr3 & PTI_USER_PCID_MASK),
        noflush=bool(cr3 & X86_CR3_PCID_NOFLUSH),
    )


@dataclass(frozen=True, slots=True)
class LevelStep:
    """One table read by the walk."""

    level: int  # 5/4 = the root's table ... 1 = the page table
    name: str
    table: int  # physical address of the table
    index: int
    entry_address: int  # physical address of the entry
    entry: int
    bits: tuple[str, ...]  # the set bits of ENTRY_BITS (PAT for bit 7 of a PTE)
    next: int | None  # the next table's (or the page's) physical address, when present

    @property
    def present(self) -> bool:
        return bool(self.entry & _P)


@dataclass(frozen=True, slots=True)
class WalkResult:
    """What the walk concluded, and what each kind of access would do."""

    mapped: bool
    physical: int | None
    page_size: int | None  # 4096, 2 MiB or 1 GiB
    stop: Stop | None
    stop_level: int | None  # the level whose entry stopped it (None: before any)
    writable: bool  # R/W=1 at every level
    user: bool  # U/S=1 at every level: CPL 3 may access it
    executable: bool  # no NX at any level
    user_denied_at: int | None  # the first level with U/S=0 (why CPL 3 faults)
    read_only_at: int | None  # the first level with R/W=0
    nx_at: int | None  # the first level with NX=1


@dataclass(frozen=True, slots=True)
class RootWalk:
    """The walk of one address under one root."""

    root: Root
    vaddr: int
    levels_total: int
    decode: RootDecode
    levels: tuple[LevelStep, ...]
    result: WalkResult


@dataclass(frozen=True, slots=True)
class PageWalkReport:
    """One address walked under both roots, at one step."""

    step: int
    vaddr: int
    live_cr3: int
    walks: tuple[RootWalk, ...]  # user root first, then kernel


def canonical(vaddr: int, levels: int) -> bool:
    """Bits 63..47 (63..56 with LA57) all equal."""
    top = vaddr >> (12 + 9 * levels - 1)
    return top in (0, (1 << (64 - (12 + 9 * levels - 1))) - 1)


def _bits(entry: int, level: int) -> tuple[str, ...]:
    out = []
    for name, bit in ENTRY_BITS:
        if entry >> bit & 1:
            out.append("PAT" if name == "PS" and level == 1 else name)
    return tuple(out)


def _first(levels: list[LevelStep], missing: int) -> int | None:
    return next((s.level for s in levels if not s.entry & missing), None)


def walk_root(
    read_phys: Callable[[int, int], bytes | None],
    root: Root,
    cr3: int,
    vaddr: int,
    levels: int,
    pcide: bool,
) -> RootWalk:
    """Walk *vaddr* under *cr3*, reading the tables with *read_phys* (None: no memory).

    One function, level after level as the SDM's 4.5 describes the walk (canonical
    check, then each table's entry: P, PS, the rights accumulated), so that it reads
    against the manual; that is why it is longer than a function usually is here."""
    vaddr &= (1 << 64) - 1
    decode = decode_root(cr3, pcide)
    steps: list[LevelStep] = []

    def done(
        stop: Stop | None, at: int | None, phys: int | None = None, size: int | None = None
    ) -> RootWalk:
        # Rights come from the present entries only (a not-present entry's bits mean nothing).
        present = [s for s in steps if s.entry & _P]
        rw = all(s.entry & _RW for s in present)
        us = all(s.entry & _US for s in present)
        nx = any(s.entry & _NX for s in present)
        mapped = stop is None
        result = WalkResult(
            mapped=mapped,
            physical=phys,
            page_size=size,
            stop=stop,
            stop_level=at,
            writable=mapped and rw,
            user=mapped and us,
            executable=mapped and not nx,
            user_denied_at=_first(present, _US),
            read_only_at=_first(present, _RW),
            nx_at=next((s.level for s in present if s.entry & _NX), None),
        )
        return RootWalk(root, vaddr, levels, decode, tuple(steps), result)

    if not canonical(vaddr, levels):
        return done(Stop.NON_CANONICAL, None)
    table = decode.table
    for level in range(levels, 0, -1):
        shift = 12 + 9 * (level - 1)
        index = (vaddr >> shift) & 0x1FF
        at = table + 8 * index
        raw = read_phys(at, 8)
        if raw is None or len(raw) != 8:
            return done(Stop.NO_MEMORY, level)
        entry = int.from_bytes(raw, "little")
        present = bool(entry & _P)
        large = level in (2, 3) and bool(entry & _PS)
        nxt: int | None
        if present and large:
            nxt = entry & ADDR_MASK & ~((1 << shift) - 1)
        else:
            nxt = entry & ADDR_MASK if present else None
        steps.append(
            LevelStep(
                level, level_name(level, levels), table, index, at, entry, _bits(entry, level), nxt
            )
        )
        if not present:
            return done(Stop.NOT_PRESENT, level)
        if level >= 4 and entry & _PS:
            return done(Stop.RESERVED, level)
        if large or level == 1:
            assert nxt is not None
            return done(None, None, nxt | (vaddr & ((1 << shift) - 1)), 1 << shift)
        assert nxt is not None
        table = nxt
    raise AssertionError("unreachable: level 1 always ends the walk")


__all__ = [
    "ENTRY_BITS", "LevelStep", "PageWalkReport", "Root", "RootDecode", "RootWalk", "Stop",
    "WalkResult", "canonical", "decode_root", "level_name", "stop_text", "walk_root",
]  # fmt: skip
