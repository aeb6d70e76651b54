"""What the machine holds when a run may start, as Linux's boot leaves it: the physical
memory and both page-table roots (:func:`lay_out_memory`), and the CPU at CPL 0 with its
descriptor tables and SYSCALL (or FRED) MSRs (:func:`start_cpu`).

:class:`engine.machine.core.Machine` calls both once, when it is built; every run then
starts from the pristine copies and the saved context they leave.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from unicorn import UC_PROT_ALL
from unicorn import x86_const as X

from engine import constants as C
from engine import layout as L
from engine.constants import (
    CR0_ET,
    CR0_MP,
    CR0_NE,
    CR0_PE,
    CR0_PG,
    CR0_WP,
    CR4_LA57,
    CR4_OSFXSR,
    CR4_OSXMMEXCPT,
    CR4_PAE,
    CR4_PCIDE,
    EFER_LMA,
    EFER_LME,
    EFER_NXE,
    EFER_SCE,
    GDT_ENTRIES,
    IO_BITMAP_OFFSET_INVALID,
    KERNEL_CS,
    KERNEL_DS,
    KERNEL_PCID,
    MASK64,
    MSR_CSTAR,
    MSR_EFER,
    MSR_IA32_SYSENTER_CS,
    MSR_IA32_SYSENTER_EIP,
    MSR_IA32_SYSENTER_ESP,
    MSR_LSTAR,
    MSR_STAR,
    MSR_SYSCALL_MASK,
    PTI_USER_PCID_MASK,
    PTI_USER_PGTABLE_MASK,
    RFLAGS_FIXED,
    STAR_VALUE,
    TSS_SELECTOR,
    TSS_SIZE,
    TSS_io_bitmap_base,
    TSS_sp0,
)
from engine.kernel.c_source import TASKS
from engine.machine import idt
from engine.machine.paging import NX, RW, US, PageTableBuilder

if TYPE_CHECKING:
    from engine.machine.core import Machine

# GDT (arch/x86/kernel/cpu/common.c, gdt_page): flat descriptors, accessed bit preset
# so that loading a selector never writes the (read-only mapped) GDT.
GDT_DESCRIPTORS: tuple[int, ...] = (
    0x0000000000000000,  # 0x00 null
    0x00CF9B000000FFFF,  # 0x08 __KERNEL32_CS
    0x00AF9B000000FFFF,  # 0x10 __KERNEL_CS (L=1, DPL 0)
    0x00CF93000000FFFF,  # 0x18 __KERNEL_DS
    0x00CFFB000000FFFF,  # 0x23 __USER32_CS (DPL 3)
    0x00CFF3000000FFFF,  # 0x2b __USER_DS (DPL 3)
    0x00AFFB000000FFFF,  # 0x33 __USER_CS (L=1, DPL 3)
    0x0000000000000000,
)

#: Type of a busy 64-bit TSS with P=1, DPL 0 (what LTR leaves in the descriptor).
TSS_BUSY_PRESENT = 0x8B


def tss_descriptor(base: int, limit: int) -> tuple[int, int]:
    """The 16-byte system descriptor of a 64-bit TSS (Intel SDM vol. 3A, 8.2.3)."""
    low = (
        (limit & 0xFFFF)
        | (base & 0xFFFFFF) << 16
        | TSS_BUSY_PRESENT << 40
        | ((limit >> 16) & 0xF) << 48
        | ((base >> 24) & 0xFF) << 56
    )
    return low, base >> 32


@dataclass
class PhysRegion:
    """One range of guest-physical memory and its contents at power-on."""

    base: int
    pristine: bytearray
    writable: bool = True


def coalesce(regions: Iterable[tuple[int, bytes | bytearray]]) -> list[tuple[int, bytes]]:
    """Join regions that follow each other in physical memory (page-padded) into one each."""
    out: list[tuple[int, bytearray]] = []
    for base, data in sorted(regions, key=lambda r: r[0]):
        padded = bytearray(data)
        padded += bytes(-len(padded) % L.PAGE)
        if out and out[-1][0] + len(out[-1][1]) == base:
            out[-1][1].extend(padded)
        else:
            out.append((base, padded))
    return [(base, bytes(data)) for base, data in out]


def region(m: Machine, base: int, size: int, writable: bool = True) -> bytearray:
    """A new zeroed physical region of the machine."""
    buf = bytearray(size)
    m.regions.append(PhysRegion(base, buf, writable))
    return buf


def lay_out_memory(m: Machine) -> None:
    """Physical memory and both roots' page tables, as the kernel has them once booted:
    its text, the entry text with the IDT stubs, the cpu_entry_area (GDT, entry stack),
    the per-CPU area with cpu_tss_rw, the task stack and the user's ranges; then CR3's
    two values.  Every region keeps a pristine copy for the next run."""
    levels = m.config.paging
    pt = PageTableBuilder(L.PHYS_PAGE_TABLES, L.PHYS_PAGE_TABLES_SIZE, levels)
    pair = pt.alloc(2, align=0x2000)  # KPTI: kernel PGD and user PGD, 8 KiB aligned
    m.kernel_pgd, m.user_pgd = pair, pair + 0x1000
    _kernel_regions(m)
    _map_pages(m, pt)

    # Page tables are not written by the MMU (A/D preset) nor by the code: not restored.
    used = pt.alloc(1) - L.PHYS_PAGE_TABLES
    m.regions.insert(0, PhysRegion(L.PHYS_PAGE_TABLES, pt.pool[:used], writable=False))
    # Physically adjacent regions (a [[memory]] range is one region per page) are mapped
    # as one: Unicorn's mem_map costs grow with the number of regions already mapped,
    # and 4096 one-page maps of a 16 MiB range took seconds.
    for base, data in coalesce((r.base, r.pristine) for r in m.regions):
        m.uc.mem_map(base, (len(data) + L.PAGE - 1) // L.PAGE * L.PAGE, UC_PROT_ALL)
        m.uc.mem_write(base, data)
    # What a run can change, restored before the next one.
    m._pristine = coalesce((r.base, r.pristine) for r in m.regions if r.writable)

    pcid = m.config.pcid
    m.kernel_cr3 = m.kernel_pgd | (KERNEL_PCID if pcid else 0)
    if m.config.pti:
        user_pcid = (KERNEL_PCID | PTI_USER_PCID_MASK) if pcid else 0
        m.user_cr3 = m.kernel_pgd | PTI_USER_PGTABLE_MASK | user_pcid
    else:
        m.user_cr3 = m.kernel_cr3


def _kernel_regions(m: Machine) -> None:
    """The kernel's memory: text, entry text with the IDT stubs, the IDT page, the
    task stack, the cpu_entry_area (GDT with the TSS descriptor) and the per-CPU area."""
    lay = m.layout
    text = region(m, L.PHYS_KERNEL_TEXT, L.KERNEL_TEXT_SIZE, writable=False)
    off = L.DO_SYSCALL_64 - L.KERNEL_TEXT
    text[off : off + len(m.image.do_syscall_64.code)] = m.image.do_syscall_64.code
    for stub in m.image.c_stubs:
        off = stub.address - L.KERNEL_TEXT
        text[off : off + len(stub.code)] = stub.code
    entry = region(m, L.PHYS_ENTRY_TEXT, L.ENTRY_TEXT_SIZE, writable=False)
    entry[: len(m.image.entry_code)] = m.image.entry_code
    off = L.LAUNCH_STUB - L.ENTRY_TEXT
    entry[off : off + len(m.image.launch.code)] = m.image.launch.code
    kernel = m.config.kernel
    stubs = idt.stub_code(kernel)
    assert len(m.image.entry_code) <= idt.STUBS - L.ENTRY_TEXT, "entry code over the stubs"
    entry[idt.STUBS - L.ENTRY_TEXT : idt.STUBS - L.ENTRY_TEXT + len(stubs)] = stubs
    # x86_verw_sel: .word __KERNEL_DS (arch/x86/entry/entry.S), what CLEAR_CPU_BUFFERS'
    # VERW tests
    off = L.X86_VERW_SEL - L.ENTRY_TEXT
    entry[off : off + 2] = KERNEL_DS.to_bytes(2, "little")
    table = idt.idt_page(kernel, m.image.symbols, m.config.ia32_emulation)
    region(m, idt.PHYS_IDT, L.PAGE, writable=False)[:] = table
    rodata = region(m, idt.PHYS_KERNEL_RODATA, L.PAGE, writable=False)
    rodata[: len(idt.banner(kernel))] = idt.banner(kernel)
    region(m, L.PHYS_TASK_STACK, L.THREAD_SIZE)
    cea = region(m, L.PHYS_CEA, 2 * L.PAGE)
    for i, desc in enumerate(GDT_DESCRIPTORS):
        struct.pack_into("<Q", cea, 8 * i, desc)
    # GDT_ENTRY_TSS: cpu_tss_rw, loaded into TR (set_tss_desc() and load_TR_desc()).
    struct.pack_into("<2Q", cea, TSS_SELECTOR, *tss_descriptor(lay.tss, TSS_SIZE - 1))
    percpu = region(m, L.PHYS_PERCPU, m.kernel.percpu_size)
    struct.pack_into("<Q", percpu, L.PERCPU_TSS + TSS_sp0, lay.entry_stack_top)
    # the top of the task stack: TSS.sp1 in v5.8, a per-CPU variable of its own later
    struct.pack_into("<Q", percpu, m.kernel.top_of_stack, lay.task_stack_top)
    struct.pack_into("<H", percpu, L.PERCPU_TSS + TSS_io_bitmap_base, IO_BITMAP_OFFSET_INVALID)
    # current: the per-CPU current_task and the task_struct it points at, whose flags and
    # kstack_offset the modelled C side reads (a run writes the scenario's [task] there)
    region(m, L.PHYS_TASK_STRUCT, L.TASK_STRUCT_SIZE)
    struct.pack_into("<Q", percpu, TASKS[m.config.kernel].current_task, lay.task_struct)


def _map_pages(m: Machine, pt: PageTableBuilder) -> None:
    """The user's ranges (made here, after the kernel's regions), and every page in the
    roots that Linux maps it in: both with PTI, or the kernel root only."""
    lay = m.layout

    def both(v: int, p: int, flags: int) -> None:
        pt.map_page(m.kernel_pgd, v, p, flags)
        if m.config.pti:
            pt.map_page(m.user_pgd, v, p, flags)

    def kernel_only(v: int, p: int, flags: int) -> None:
        pt.map_page(m.kernel_pgd, v, p, flags)

    # User memory: in both roots (the kernel reaches it for copy_from_user).
    phys = L.PHYS_USER
    for u in m.user:
        buf = region(m, phys, u.size, writable=u.writable)
        buf[u.data_offset : u.data_offset + len(u.data)] = u.data
        for o in range(0, u.size, L.PAGE):
            flags = US | (RW if u.writable else 0) | (0 if u.executable else NX)
            both(u.vaddr + o, phys + o, flags)
        phys += u.size
    # .entry.text and the cpu_entry_area (GDT, entry stack): in both roots.
    for o in range(0, L.ENTRY_TEXT_SIZE, L.PAGE):
        both(L.ENTRY_TEXT + o, L.PHYS_ENTRY_TEXT + o, 0)
    both(L.CEA_GDT, L.PHYS_CEA, NX)
    both(L.CEA_ENTRY_STACK, L.PHYS_CEA + L.PAGE, RW | NX)
    # cpu_tss_rw: pti_clone_user_shared() maps each CPU's TSS page into the user root.
    for o in range(0, m.kernel.percpu_size, L.PAGE):
        v, p = lay.percpu_base + o, L.PHYS_PERCPU + o
        (both if o == L.PERCPU_TSS else kernel_only)(v, p, RW | NX)
    # Kernel text (do_syscall_64) and the task stack: kernel root only.
    for o in range(0, L.KERNEL_TEXT_SIZE, L.PAGE):
        kernel_only(L.KERNEL_TEXT + o, L.PHYS_KERNEL_TEXT + o, 0)
    for o in range(0, L.THREAD_SIZE, L.PAGE):
        kernel_only(lay.task_stack_base + o, L.PHYS_TASK_STACK + o, RW | NX)
    # Mapped last, so the tables above keep their physical addresses: the IDT in the
    # cpu_entry_area (both roots, read-only, as Linux maps it) and the banner's page.
    both(idt.CEA_RO_IDT, idt.PHYS_IDT, NX)
    kernel_only(idt.KERNEL_RODATA, idt.PHYS_KERNEL_RODATA, NX)
    for o in range(0, L.TASK_STRUCT_SIZE, L.PAGE):
        kernel_only(lay.task_struct + o, L.PHYS_TASK_STRUCT + o, RW | NX)
    if m.config.pti:
        # pti_set_user_pgtbl(): the kernel's copy of user PGD entries is NX, so the
        # kernel can never execute user code through it.
        for u in m.user:
            pt.set_top_flags(m.kernel_pgd, u.vaddr, NX)


def start_cpu(m: Machine) -> None:
    """The CPU at CPL 0 as syscall_init() leaves it: control registers, GDTR, IDTR, TR,
    the SYSCALL MSRs (or FRED's), kept as the context each run starts from."""
    uc, cfg = m.uc, m.config
    uc.reg_write(X.UC_X86_REG_CR3, m.kernel_pgd)
    cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | (CR4_LA57 if cfg.paging == 5 else 0)
    uc.reg_write(X.UC_X86_REG_CR4, cr4)
    uc.reg_write(X.UC_X86_REG_MSR, (MSR_EFER, EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE))
    uc.reg_write(X.UC_X86_REG_CR0, CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG)
    if cfg.pcid:
        # CR4.PCIDE may only be set while CR3[11:0] is 0 (Intel SDM 4.10.1).
        uc.reg_write(X.UC_X86_REG_CR4, cr4 | CR4_PCIDE)
    uc.reg_write(X.UC_X86_REG_CR3, m.kernel_cr3)
    uc.reg_write(X.UC_X86_REG_GDTR, (0, L.CEA_GDT, 8 * GDT_ENTRIES - 1, 0))
    uc.reg_write(X.UC_X86_REG_IDTR, (0, idt.CEA_RO_IDT, idt.IDT_LIMIT, 0))
    # TR as LTR leaves it: the CPU reads the I/O-permission bitmap base from this TSS
    # when user code runs IN or OUT with CPL > IOPL.
    uc.reg_write(X.UC_X86_REG_TR, (TSS_SELECTOR, m.layout.tss, TSS_SIZE - 1, TSS_BUSY_PRESENT))
    uc.reg_write(X.UC_X86_REG_CS, KERNEL_CS)
    uc.reg_write(X.UC_X86_REG_SS, KERNEL_DS)
    uc.reg_write(X.UC_X86_REG_DS, 0)
    uc.reg_write(X.UC_X86_REG_ES, 0)
    # syscall_init(), arch/x86/kernel/cpu/common.c (the mask differs by version)
    uc.reg_write(X.UC_X86_REG_MSR, (MSR_STAR, STAR_VALUE))
    if not cfg.fred:
        # with FRED, syscall_init() writes STAR only (idt_syscall_init() is skipped:
        # "FRED uses the ring 3 FRED entrypoint for SYSCALL and SYSENTER")
        uc.reg_write(X.UC_X86_REG_MSR, (MSR_LSTAR, m.image.symbols["entry_SYSCALL_64"]))
        # wrmsrl_cstar() writes AMD's only (Intel's CSTAR is never used): entry_SYSCALL_compat,
        # or with ia32_emulation=off the ignore entry (idt_syscall_init)
        sym = m.image.symbols
        cstar = sym.get("entry_SYSCALL32_ignore", sym.get("entry_SYSCALL_compat", 0))
        cstar = cstar if cfg.cpu == "amd" else 0
        uc.reg_write(X.UC_X86_REG_MSR, (MSR_CSTAR, cstar))
        # the SYSENTER MSRs (idt_syscall_init / syscall_init): __KERNEL_CS, the top of the
        # entry stack (cpu_entry_stack(cpu) + 1) and entry_SYSENTER_compat; with
        # ia32_emulation=off GDT_ENTRY_INVALID_SEG (0), 0, 0.  "On AMD CPUs these MSRs are
        # 32-bit, CPU truncates MSR_IA32_SYSENTER_EIP" (AMD takes no SYSENTER in long mode).
        eip = sym.get("entry_SYSENTER_compat", 0) if cfg.ia32_emulation else 0
        wide = MASK64 if cfg.cpu == "intel" else 0xFFFFFFFF
        for msr, value in (
            (MSR_IA32_SYSENTER_CS, KERNEL_CS if eip else 0),
            (MSR_IA32_SYSENTER_ESP, L.ENTRY_STACK_TOP if eip else 0),
            (MSR_IA32_SYSENTER_EIP, eip),
        ):
            uc.reg_write(X.UC_X86_REG_MSR, (msr, value & wide))
        uc.reg_write(X.UC_X86_REG_MSR, (MSR_SYSCALL_MASK, m.kernel.syscall_mask))
    uc.reg_write(X.UC_X86_REG_RSP, m.layout.entry_stack_top)
    uc.reg_write(X.UC_X86_REG_RFLAGS, RFLAGS_FIXED)
    if cfg.fred:
        init_fred(m)
    m._kernel_ctx = uc.context_save()


def init_fred(m: Machine) -> None:
    """cpu_init_fred_exceptions() (arch/x86/kernel/fred.c, 6.12), as its writes leave
    the CPU: IA32_FRED_CONFIG = FRED_CONFIG_REDZONE | FRED_CONFIG_INT_STKLVL(0) |
    asm_fred_entrypoint_user, STKLVLS 0, RSP0 = the per-CPU fred_rsp0 (the task stack's
    top, task_stack_page + THREAD_SIZE), RSP1-3 0, then CR4.FRED.  cpu_init_fred_rsps()
    would give levels 1-3 the #DB/NMI/#DF stacks; none is built, as no event here
    uses them.  6.12 writes no FRED_SSP (no supervisor shadow stacks): they stay 0.

    Unicorn keeps no FRED MSR (it drops the writes), so the model holds them here
    (engine.machine.modelled reads them from :attr:`fred_msrs`).
    """
    m.fred_msrs = {
        C.MSR_IA32_FRED_CONFIG: C.FRED_CONFIG_REDZONE | m.image.symbols["asm_fred_entrypoint_user"],
        C.MSR_IA32_FRED_STKLVLS: 0,
        C.MSR_IA32_FRED_RSP0: m.layout.task_stack_top,
        C.MSR_IA32_FRED_RSP1: 0,
        C.MSR_IA32_FRED_RSP2: 0,
        C.MSR_IA32_FRED_RSP3: 0,
        C.MSR_IA32_FRED_SSP0: 0,
        C.MSR_IA32_FRED_SSP1: 0,
        C.MSR_IA32_FRED_SSP2: 0,
        C.MSR_IA32_FRED_SSP3: 0,
    }
    cr4 = int(m.uc.reg_read(X.UC_X86_REG_CR4))
    m.uc.reg_write(X.UC_X86_REG_CR4, cr4 | C.CR4_FRED)


__all__ = [
    "GDT_DESCRIPTORS", "TSS_BUSY_PRESENT", "PhysRegion", "coalesce", "init_fred",
    "lay_out_memory", "region", "start_cpu", "tss_descriptor",
]  # fmt: skip
