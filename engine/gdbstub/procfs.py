"""The recording as a Linux process looks through procfs: the files gdb front-ends read.

GEF and pwndbg take a remote target to be a Linux process and learn its memory map
from ``/proc/PID/maps`` and its binary from ``/proc/PID/exe``, fetched over the
protocol's host I/O (vFile), and its entry point from the auxiliary vector.  These
are built here from the emulated machine: the maps from the page tables of every
CR3 the recording ran under (a front-end reads the file once per session, so it
must cover the kernel's view as well as the user's), the auxv from the recording's
first user instruction.  Nothing here reads the disk the stub runs on.
"""

from __future__ import annotations

import re
import struct

from engine import layout as L
from engine.gdbstub.pagetables import Run, leaves, union
from engine.gdbstub.replay import Replay
from engine.machine import idt
from engine.machine.paging import ADDR_MASK

#: The files served, under any pid (gdb asks for its placeholder 42000, pwndbg for
#: the thread id 1) or ``self``.  Anything else under /proc, or elsewhere, is ENOENT.
PROC_PATH = re.compile(r"/proc/(?:[1-9][0-9]{0,9}|self)/(maps|exe|cmdline|environ)")

# auxv types (include/uapi/linux/auxvec.h)
AT_NULL, AT_PAGESZ = 0, 6


def proc_file(path: str) -> str | None:
    """Which procfs file *path* names (``maps``, ``exe``, ...), None if none served."""
    m = PROC_PATH.fullmatch(path)
    return m.group(1) if m else None


def roots(replay: Replay) -> list[int]:
    """Every page-table root the recording ran under (CR3 without PCID and flag bits)."""
    cr3s = {replay.trace.initial.cr3, *(s.regs.cr3 for s in replay.trace.steps)}
    return sorted({cr3 & ADDR_MASK for cr3 in cr3s})


def _labels(replay: Replay) -> list[tuple[int, int, str]]:
    """(start, end, name) of the regions the machine builds; no spaces, as maps wants."""
    m = replay.machine
    lay = m.layout
    out = [(u.vaddr, u.vaddr + u.size, "[stack]" if u.name == "stack" else f"[{u.name}]")
           for u in m.user]  # fmt: skip
    out += [
        (L.KERNEL_TEXT, L.KERNEL_TEXT + L.KERNEL_TEXT_SIZE, "[kernel.text]"),
        (L.ENTRY_TEXT, L.ENTRY_TEXT + L.ENTRY_TEXT_SIZE, "[entry.text]"),
        (idt.KERNEL_RODATA, idt.KERNEL_RODATA + L.PAGE, "[kernel.rodata]"),
        (idt.CEA_RO_IDT, idt.CEA_RO_IDT + L.PAGE, "[cea.idt]"),
        (L.CEA_GDT, L.CEA_GDT + L.PAGE, "[cea.gdt]"),
        (L.CEA_ENTRY_STACK, L.CEA_ENTRY_STACK + L.PAGE, "[cea.entry_stack]"),
        (lay.task_stack_base, lay.task_stack_top, "[kernel.task_stack]"),
        (lay.task_struct, lay.task_struct + L.TASK_STRUCT_SIZE, "[kernel.task_struct]"),
        (lay.percpu_base, lay.percpu_base + m.kernel.percpu_size, "[percpu]"),
    ]
    return out


def memory_runs(replay: Replay) -> list[Run]:
    """The union of every root's mappings, with the permissions the walks give."""
    m = replay.machine
    return union(leaves(m.read_phys, cr3, m.config.paging) for cr3 in roots(replay))


def maps(replay: Replay) -> bytes:
    """``/proc/PID/maps`` (fs/proc/task_mmu.c's format): a line per run of pages with
    the same permissions and region name."""
    labels = _labels(replay)
    spans: list[tuple[int, int, str, str]] = []
    for run in memory_runs(replay):
        perms = ("r" + ("w" if run.writable else "-") + ("x" if run.executable else "-")
                 + "p")  # fmt: skip
        for lo in range(run.start, run.end, L.PAGE):
            name = next((n for a, b, n in labels if a <= lo < b), "")
            if spans and spans[-1][1] == lo and spans[-1][2:] == (perms, name):
                spans[-1] = (spans[-1][0], lo + L.PAGE, perms, name)
            else:
                spans.append((lo, lo + L.PAGE, perms, name))
    lines = [f"{lo:016x}-{hi:016x} {perms} 00000000 00:00 0".ljust(73) + f" {name}"
             for lo, hi, perms, name in spans]  # fmt: skip
    return "".join(line.rstrip() + "\n" for line in lines).encode()


def auxv() -> bytes:
    """A minimal auxiliary vector: only what is true of the machine, its page size.

    The entries that describe the exec'd ELF (AT_ENTRY, AT_PHDR, AT_EXECFN, AT_BASE) and
    AT_RANDOM are left out: the user code was placed in memory, not loaded from an ELF,
    and no such bytes exist in the machine.  With an AT_ENTRY, pwndbg looks for that
    ELF's header at the entry page and prints "Could not find ELF base!" at every stop.
    """
    pairs = ((AT_PAGESZ, L.PAGE), (AT_NULL, 0))
    return b"".join(struct.pack("<QQ", k, v) for k, v in pairs)


__all__ = ["PROC_PATH", "auxv", "maps", "memory_runs", "proc_file", "roots"]
