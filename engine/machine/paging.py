"""Real x86-64 page tables, built in emulated physical memory, and a reader for them.

The emulated MMU (Unicorn's softmmu) walks these tables; :func:`walk` reads the
same entries back out of emulated memory to explain what a root maps.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import EngineError
from engine.layout import PAGE

P = 1 << 0
RW = 1 << 1
US = 1 << 2
A = 1 << 5
D = 1 << 6
NX = 1 << 63
ADDR_MASK = 0x000FFFFFFFFFF000

# Accessed/dirty bits are set up front: the MMU would otherwise set them on first
# use, and the tables would then differ from one run to the next.
TABLE_FLAGS = P | RW | US | A


class PageTablePoolExhausted(EngineError):
    """The machine's fixed pool of page-table pages is used up (too many scattered mappings)."""


class PageTableBuilder:
    """Allocates table pages from a physical pool held as a bytearray."""

    def __init__(self, pool_phys: int, pool_size: int, levels: int):
        self.pool_phys = pool_phys
        self.pool = bytearray(pool_size)
        self.levels = levels
        self._next = 0

    def alloc(self, pages: int = 1, align: int = PAGE) -> int:
        offset = (self._next + align - 1) // align * align
        if offset + pages * PAGE > len(self.pool):
            raise PageTablePoolExhausted(
                f"page-table pool exhausted ({len(self.pool) // PAGE} pages): "
                "the [[memory]] ranges are spread over too many page tables"
            )
        self._next = offset + pages * PAGE
        return self.pool_phys + offset

    def _entry(self, table: int, index: int) -> int:
        off = table - self.pool_phys + 8 * index
        return int(struct.unpack_from("<Q", self.pool, off)[0])

    def _set(self, table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", self.pool, table - self.pool_phys + 8 * index, value)

    def map_page(self, root: int, vaddr: int, paddr: int, flags: int) -> None:
        """Map one 4 KiB page *vaddr* → *paddr* with leaf *flags* (P is added)."""
        table = root
        for level in range(self.levels, 1, -1):
            index = (vaddr >> (12 + 9 * (level - 1))) & 0x1FF
            entry = self._entry(table, index)
            if not entry & P:
                new = self.alloc()
                entry = new | TABLE_FLAGS
                self._set(table, index, entry)
            table = entry & ADDR_MASK
        self._set(table, (vaddr >> 12) & 0x1FF, (paddr & ADDR_MASK) | flags | P | A | D)

    def set_top_flags(self, root: int, vaddr: int, add: int) -> None:
        """OR *add* into the top-level entry covering *vaddr* (KPTI's NX on user PGD entries)."""
        index = (vaddr >> (12 + 9 * (self.levels - 1))) & 0x1FF
        entry = self._entry(root, index)
        if entry & P:
            self._set(root, index, entry | add)


@dataclass(frozen=True, slots=True)
class PageWalk:
    """The result of walking one root for one virtual address."""

    vaddr: int
    phys: int | None  # None when not mapped
    flags: int  # effective: leaf entry flags, with US/RW ANDed and NX ORed over the levels
    entries: tuple[tuple[int, int, int], ...]  # (level, entry physical address, entry value)

    @property
    def mapped(self) -> bool:
        return self.phys is not None

    def describe(self) -> str:
        if self.phys is None:
            return "not mapped"
        rw = "rw" if self.flags & RW else "r-"
        x = "-" if self.flags & NX else "x"
        who = "user" if self.flags & US else "kernel"
        return f"{rw}{x} {who}"


def walk(read_phys: Callable[[int, int], bytes], cr3: int, vaddr: int, levels: int) -> PageWalk:
    """Walk the tables under *cr3* for *vaddr*, reading emulated physical memory."""
    table = cr3 & ADDR_MASK
    us, rw, nx = True, True, False
    entries: list[tuple[int, int, int]] = []
    for level in range(levels, 0, -1):
        index = (vaddr >> (12 + 9 * (level - 1))) & 0x1FF
        addr = table + 8 * index
        value = int(struct.unpack("<Q", read_phys(addr, 8))[0])
        entries.append((level, addr, value))
        if not value & P:
            return PageWalk(vaddr, None, 0, tuple(entries))
        us &= bool(value & US)
        rw &= bool(value & RW)
        nx |= bool(value & NX)
        if level == 1:
            flags = (value & 0xFFF) & ~(US | RW) | (US if us else 0) | (RW if rw else 0)
            flags |= NX if nx else 0
            return PageWalk(vaddr, (value & ADDR_MASK) | (vaddr & 0xFFF), flags, tuple(entries))
        table = value & ADDR_MASK
    raise AssertionError("unreachable")
