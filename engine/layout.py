"""Where things live, virtually and physically, on the emulated machine.

Addresses follow a v5.8 kernel without KASLR: text near 0xffffffff81000000, the
per-CPU area in the direct map (0xffff888000000000 + phys), the task stack in
vmalloc space (0xffffc90000000000), the cpu_entry_area at 0xfffffe0000000000.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.constants import user_space_top

PAGE = 0x1000

DIRECT_MAP = 0xFFFF888000000000
DIRECT_MAP_LA57 = 0xFF11000000000000

# Physical memory, mapped sparsely into Unicorn.
PHYS_PAGE_TABLES = 0x00100000  # bump allocator for page-table pages
PHYS_PAGE_TABLES_SIZE = 0x00100000
PHYS_KERNEL_TEXT = 0x01000000
PHYS_ENTRY_TEXT = 0x01A00000
PHYS_TASK_STACK = 0x02000000
PHYS_CEA = 0x02100000  # cpu_entry_area: GDT page, entry stack page
#: ``current``'s struct task_struct (its thread_info first), in the direct map as a slab
#: object is; the per-CPU current_task points at it (engine.kernel.c_source.TASKS)
PHYS_TASK_STRUCT = 0x02200000
TASK_STRUCT_SIZE = 0x2000
PHYS_USER = 0x04000000  # user pages, allocated in order
PHYS_PERCPU = 0x1F400000

KERNEL_TEXT = 0xFFFFFFFF81000000
KERNEL_TEXT_SIZE = 0x4000
DO_SYSCALL_64 = 0xFFFFFFFF810025F0
#: the modelled do_int80_syscall_32 (v5.8's int $0x80 C entry): its own stub, after it
DO_INT80_SYSCALL_32 = DO_SYSCALL_64 + 0x10
#: 6.1's and 6.12's int $0x80 C side: sync_regs (error_entry's copy of pt_regs to the task
#: stack) and do_int80_emulation, each a stub of its own
SYNC_REGS = DO_SYSCALL_64 + 0x20
DO_INT80_EMULATION = DO_SYSCALL_64 + 0x30
#: do_fast_syscall_32, the C side of the compat SYSCALL (and SYSENTER) entry
DO_FAST_SYSCALL_32 = DO_SYSCALL_64 + 0x40
#: do_SYSENTER_32, the SYSENTER entry's C side (regs->sp and IF, then do_fast_syscall_32)
DO_SYSENTER_32 = DO_SYSCALL_64 + 0x50
ENTRY_TEXT = 0xFFFFFFFF81A00000
ENTRY_TEXT_SIZE = 0x2000
LAUNCH_STUB = ENTRY_TEXT + 0x1000  # the engine's own iretq into user mode
#: x86_verw_sel, the selector CLEAR_CPU_BUFFERS' VERW reads (``.word __KERNEL_DS``,
#: arch/x86/entry/entry.S): in the entry text, which both page-table roots map, as the
#: kernel's is (on the SYSRET path VERW runs on the user root).  machine.boot writes it.
X86_VERW_SEL = ENTRY_TEXT + 0x1800

#: Where a 32-bit task's vDSO (vdso32) is mapped on this machine; the kernel randomises
#: the address (map_vdso_randomized), this machine takes one a real task could have.
VDSO32_BASE = 0xF7FC1000

THREAD_SIZE = 0x4000
TASK_STACK_BASE = 0xFFFFC90000010000

CEA_BASE = 0xFFFFFE0000001000  # per-CPU cpu_entry_area of CPU 0
CEA_GDT = CEA_BASE
CEA_ENTRY_STACK = CEA_BASE + PAGE  # entry_stack_page
ENTRY_STACK_TOP = CEA_ENTRY_STACK + PAGE  # TSS.sp0

PERCPU_SIZE = 0x8000
PERCPU_TLBSTATE = 0x2C00  # cpu_tlbstate: not in the user page tables
PERCPU_TSS = 0x6000  # cpu_tss_rw: page-aligned, cloned into the user page tables


@dataclass(frozen=True, slots=True)
class Layout:
    """Addresses that depend on the paging mode."""

    paging: int

    @property
    def direct_map(self) -> int:
        return DIRECT_MAP_LA57 if self.paging == 5 else DIRECT_MAP

    @property
    def percpu_base(self) -> int:
        return self.direct_map + PHYS_PERCPU

    @property
    def task_struct(self) -> int:
        return self.direct_map + PHYS_TASK_STRUCT

    @property
    def tss(self) -> int:
        return self.percpu_base + PERCPU_TSS

    @property
    def tlbstate(self) -> int:
        return self.percpu_base + PERCPU_TLBSTATE

    @property
    def task_size_max(self) -> int:
        return user_space_top(self.paging) - PAGE

    @property
    def task_stack_base(self) -> int:
        # vmalloc space starts at 0xffffc90000000000 (4-level), 0xffa0000000000000 (5-level).
        return TASK_STACK_BASE if self.paging == 4 else 0xFFA0000000010000

    @property
    def task_stack_top(self) -> int:
        return self.task_stack_base + THREAD_SIZE

    @property
    def entry_stack_top(self) -> int:
        return ENTRY_STACK_TOP


def tables_needed(ranges: Iterable[tuple[int, int]], levels: int) -> int:
    """Table pages below the root that mapping the ``[start, end)`` *ranges* in one root needs.

    A table at level *n* (1 = page table) covers ``2**(12 + 9n)`` bytes, so the
    count is the number of distinct such spans the ranges touch, summed over levels.
    """
    spans = list(ranges)
    total = 0
    for level in range(1, levels):
        shift = 12 + 9 * level
        seen: set[int] = set()
        for start, end in spans:
            if end > start:
                seen.update(range(start >> shift, ((end - 1) >> shift) + 1))
        total += len(seen)
    return total
