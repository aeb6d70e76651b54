"""Every mapping a root's page tables hold, read out of emulated physical memory.

The front-ends want whole address-space listings (``/proc/PID/maps``, QEMU's
``info mem`` and ``info tlb``) where the engine only ever walks one address.  This
walks a whole tree instead: each table page is read once, present entries are
followed, large pages (PS at levels 2 and 3) end the walk, and the effective
permissions are combined over the levels as the MMU does (U/S and R/W ANDed, NX
ORed; Intel SDM vol. 3A, 4.6).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.machine.paging import ADDR_MASK, NX, RW, US, P

PS = 1 << 7
_ENTRIES = struct.Struct("<512Q")


@dataclass(frozen=True, slots=True)
class Leaf:
    """One present leaf entry: a 4 KiB, 2 MiB or 1 GiB page."""

    vaddr: int  # canonical (sign-extended)
    phys: int
    size: int
    entry: int  # the leaf entry as stored (QEMU's info tlb prints its bits)
    user: bool
    writable: bool
    executable: bool


def canonical(vaddr: int, levels: int) -> int:
    top = 12 + 9 * levels  # 48 or 57 bits
    if vaddr & (1 << (top - 1)):
        vaddr |= ((1 << 64) - 1) ^ ((1 << top) - 1)
    return vaddr


def leaves(read_phys: Callable[[int, int], bytes], cr3: int, levels: int) -> list[Leaf]:
    """Every present leaf under *cr3*, in address order."""
    out: list[Leaf] = []
    seen: set[tuple[int, int]] = set()

    def visit(table: int, level: int, base: int, us: bool, rw: bool, nx: bool) -> None:
        if (table, level) in seen:  # a malformed loop cannot recurse forever
            return
        seen.add((table, level))
        try:
            entries = _ENTRIES.unpack(read_phys(table, 0x1000))
        except Exception:  # table outside emulated memory: nothing mapped below
            return
        shift = 12 + 9 * (level - 1)
        for index, e in enumerate(entries):
            if not e & P:
                continue
            va = base | index << shift
            u, w, x = us and bool(e & US), rw and bool(e & RW), not (nx or e & NX)
            if level == 1 or (level in (2, 3) and e & PS):
                size = 1 << shift
                phys = e & ADDR_MASK & ~(size - 1)
                out.append(Leaf(canonical(va, levels), phys, size, e, u, w, x))
            else:
                visit(e & ADDR_MASK, level - 1, va, u, w, not x)

    visit(cr3 & ADDR_MASK, levels, 0, True, True, False)
    out.sort(key=lambda leaf: leaf.vaddr)
    return out


@dataclass(frozen=True, slots=True)
class Run:
    """Adjacent pages with the same permissions, as ``/proc/PID/maps`` lists them."""

    start: int
    end: int
    user: bool
    writable: bool
    executable: bool


def runs(pages: Iterable[tuple[int, int, bool, bool, bool]]) -> list[Run]:
    """Merge ``(vaddr, size, user, writable, executable)`` pages into runs."""
    out: list[Run] = []
    for va, size, u, w, x in sorted(pages):
        last = out[-1] if out else None
        if last and last.end == va and (last.user, last.writable, last.executable) == (u, w, x):
            out[-1] = Run(last.start, va + size, u, w, x)
        else:
            out.append(Run(va, va + size, u, w, x))
    return out


def union(per_root: Iterable[list[Leaf]]) -> list[Run]:
    """The runs of every page mapped under any of the roots, each page's permissions
    the union of what the roots give it (the kernel's view of user code is NX under
    KPTI; the user's view is not: the page is executable)."""
    pages: dict[int, tuple[bool, bool, bool]] = {}
    for leaves_ in per_root:
        for leaf in leaves_:
            for va in range(leaf.vaddr, leaf.vaddr + leaf.size, 0x1000):
                u, w, x = pages.get(va, (False, False, False))
                pages[va] = (u or leaf.user, w or leaf.writable, x or leaf.executable)
    return runs((va, 0x1000, *perm) for va, perm in pages.items())


__all__ = ["Leaf", "Run", "canonical", "leaves", "runs", "union"]
