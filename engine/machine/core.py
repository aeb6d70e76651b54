"""The emulated x86-64 machine: Unicorn with real paging, a GDT, MSRs and a per-CPU area.

Built once per (CPU, paging, PTI, PCID, user memory) and reset cheaply between
runs: every physical region keeps a pristine copy, and the CPU state at CPL 0 is
kept as a Unicorn context.
"""

from __future__ import annotations

import functools
import mmap
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from unicorn import UC_ARCH_X86, UC_MODE_64, UC_PROT_ALL, Uc
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
    CR3_PCID_MASK,
    CR4_LA57,
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
    MSR_CSTAR,
    MSR_EFER,
    MSR_LSTAR,
    MSR_STAR,
    MSR_SYSCALL_MASK,
    PTI_USER_PCID_MASK,
    PTI_USER_PGTABLE_MASK,
    RFLAGS_FIXED,
    STAR_VALUE,
    TSS_SELECTOR,
    TSS_SIZE,
    X86_CR3_PCID_NOFLUSH,
    TSS_io_bitmap_base,
    TSS_sp0,
)
from engine.errors import EmulatorMemoryError
from engine.i18n import N_, msg
from engine.kernel.image import KernelImage, build_image
from engine.kernel.macros import Features
from engine.machine import idt
from engine.machine.paging import NX, RW, US, PageTableBuilder, PageWalk, walk
from engine.machine.regfile import MsrAccess, RegisterFile
from engine.scenario.model import MachineConfig
from engine.trace import MappedRegion, RootSummary

#: The FRED MSRs as the trace names them ("IA32_" dropped), in msr-index.h's order.
FRED_MSR_NAMES: dict[str, int] = {
    "FRED_RSP0": C.MSR_IA32_FRED_RSP0,
    "FRED_RSP1": C.MSR_IA32_FRED_RSP1,
    "FRED_RSP2": C.MSR_IA32_FRED_RSP2,
    "FRED_RSP3": C.MSR_IA32_FRED_RSP3,
    "FRED_STKLVLS": C.MSR_IA32_FRED_STKLVLS,
    "FRED_SSP0": C.MSR_IA32_FRED_SSP0,
    "FRED_SSP1": C.MSR_IA32_FRED_SSP1,
    "FRED_SSP2": C.MSR_IA32_FRED_SSP2,
    "FRED_SSP3": C.MSR_IA32_FRED_SSP3,
    "FRED_CONFIG": C.MSR_IA32_FRED_CONFIG,
}

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

#: Unicorn's translated-code buffer per machine.  The entry path and user code translate
#: to well under a megabyte; Unicorn's default of 1 GiB made two machines (compare) fail
#: under a 2 GiB address-space limit.
TCG_BUFFER_SIZE = 64 << 20
#: What a machine needs beyond the buffer: guest RAM, page tables, QEMU's own tables.
EMULATOR_HEADROOM = 192 << 20


def ensure_emulator_memory() -> None:
    """Raise :class:`EmulatorMemoryError` unless a machine's memory can be mapped now.

    Unicorn's C code ends the process when its buffer cannot be allocated; this asks the
    kernel for the same amount first (and gives it back) so that the error is a sentence.
    """
    size = TCG_BUFFER_SIZE + EMULATOR_HEADROOM
    try:
        probe = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, MemoryError, OverflowError):
        raise EmulatorMemoryError(
            f"cannot get memory for the emulator ({size >> 20} MiB of address space; "
            "is `ulimit -v` too low?)"
        ) from None
    probe.close()


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


GPRS: dict[str, int] = {
    "rax": X.UC_X86_REG_RAX, "rbx": X.UC_X86_REG_RBX, "rcx": X.UC_X86_REG_RCX,
    "rdx": X.UC_X86_REG_RDX, "rsi": X.UC_X86_REG_RSI, "rdi": X.UC_X86_REG_RDI,
    "rbp": X.UC_X86_REG_RBP, "rsp": X.UC_X86_REG_RSP, "r8": X.UC_X86_REG_R8,
    "r9": X.UC_X86_REG_R9, "r10": X.UC_X86_REG_R10, "r11": X.UC_X86_REG_R11,
    "r12": X.UC_X86_REG_R12, "r13": X.UC_X86_REG_R13, "r14": X.UC_X86_REG_R14,
    "r15": X.UC_X86_REG_R15,
}  # fmt: skip

#: Register ids read for every recorded step, in :data:`engine.trace.REG_NAMES` order
#: (kernel_gs_base, an MSR, is read separately and goes before cr3).
STEP_REG_IDS: tuple[int, ...] = (
    *GPRS.values(),
    X.UC_X86_REG_RIP, X.UC_X86_REG_RFLAGS, X.UC_X86_REG_CS, X.UC_X86_REG_SS,
    X.UC_X86_REG_FS_BASE, X.UC_X86_REG_GS_BASE, X.UC_X86_REG_CR3,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class UserMapping:
    """A range of user memory: page-aligned, with its initial contents."""

    name: str
    vaddr: int
    size: int
    writable: bool
    executable: bool
    data: bytes = b""
    data_offset: int = 0


@dataclass
class _PhysRegion:
    base: int
    pristine: bytearray
    writable: bool = True


def _coalesce(regions: Iterable[tuple[int, bytes | bytearray]]) -> list[tuple[int, bytes]]:
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


@dataclass
class Machine:
    """Unicorn plus everything the kernel expects to find in memory and in MSRs."""

    config: MachineConfig
    user: tuple[UserMapping, ...]
    uc: Uc = field(init=False)
    image: KernelImage = field(init=False)
    layout: L.Layout = field(init=False)
    kernel_pgd: int = field(init=False)
    user_pgd: int = field(init=False)
    kernel_cr3: int = field(init=False)
    user_cr3: int = field(init=False)
    regions: list[_PhysRegion] = field(init=False, default_factory=list)
    _kernel_ctx: object = field(init=False)
    step_regs: RegisterFile = field(init=False)
    gprs: RegisterFile = field(init=False)
    rflags_reg: RegisterFile = field(init=False)
    cs_reg: RegisterFile = field(init=False)
    transition_regs: RegisterFile = field(init=False)
    msr: MsrAccess = field(init=False)
    #: the FRED MSRs by number, when the machine has FRED (Unicorn keeps none of them)
    fred_msrs: dict[int, int] = field(init=False, default_factory=dict)
    _walks: dict[tuple[int, int], PageWalk] = field(init=False, default_factory=dict)
    _pristine: list[tuple[int, bytes]] = field(init=False, default_factory=list)
    #: Told of every write made through :meth:`write_phys` (a recorded run's memory log:
    #: the modelled writes do not pass through Unicorn's write hooks).
    write_observer: Callable[[int, bytes], None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        cfg = self.config
        self.layout = L.Layout(cfg.paging)
        self.image = build_image(
            Features(
                cfg.pti,
                cfg.pcid,
                cfg.paging == 5,
                tuple(sorted(cfg.removed_checks)),
                cfg.kernel,
                cfg.fred,
            )
        )
        self.kernel = self.image.kernel
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        # Unicorn reserves its translation buffer on first use (1 GiB by default) and, if
        # it cannot, prints a line and exits the process: ask for less, and first check
        # that it can be had, so that a low ulimit -v is one clear error, not exit 1.
        self.uc.ctl_set_tcg_buffer_size(TCG_BUFFER_SIZE)  # type: ignore[attr-defined]  # not in the stubs
        ensure_emulator_memory()
        # A CPU model with PCID and LA57 in CPUID; the default qemu64 model has neither.
        self.uc.ctl_set_cpu_model(X.UC_CPU_X86_ICELAKE_SERVER)
        self.step_regs = RegisterFile(self.uc, STEP_REG_IDS)
        self.gprs = RegisterFile(self.uc, tuple(GPRS.values()))
        self.rflags_reg = RegisterFile(self.uc, (X.UC_X86_REG_RFLAGS,))
        self.cs_reg = RegisterFile(self.uc, (X.UC_X86_REG_CS,))
        # what SYSCALL writes, in one call
        self.transition_regs = RegisterFile(
            self.uc, (X.UC_X86_REG_RCX, X.UC_X86_REG_R11, X.UC_X86_REG_RFLAGS, X.UC_X86_REG_RIP)
        )
        self.msr = MsrAccess(self.uc)
        self._build_memory()
        self._build_cpu()

    # -- memory --------------------------------------------------------------------
    def _region(self, base: int, size: int, writable: bool = True) -> bytearray:
        buf = bytearray(size)
        self.regions.append(_PhysRegion(base, buf, writable))
        return buf

    def _build_memory(self) -> None:
        lay = self.layout
        levels = self.config.paging
        pt = PageTableBuilder(L.PHYS_PAGE_TABLES, L.PHYS_PAGE_TABLES_SIZE, levels)
        pair = pt.alloc(2, align=0x2000)  # KPTI: kernel PGD and user PGD, 8 KiB aligned
        self.kernel_pgd, self.user_pgd = pair, pair + 0x1000

        text = self._region(L.PHYS_KERNEL_TEXT, L.KERNEL_TEXT_SIZE, writable=False)
        off = L.DO_SYSCALL_64 - L.KERNEL_TEXT
        text[off : off + len(self.image.do_syscall_64.code)] = self.image.do_syscall_64.code
        entry = self._region(L.PHYS_ENTRY_TEXT, L.ENTRY_TEXT_SIZE, writable=False)
        entry[: len(self.image.entry_code)] = self.image.entry_code
        off = L.LAUNCH_STUB - L.ENTRY_TEXT
        entry[off : off + len(self.image.launch.code)] = self.image.launch.code
        kernel = self.config.kernel
        stubs = idt.stub_code(kernel)
        assert len(self.image.entry_code) <= idt.STUBS - L.ENTRY_TEXT, "entry code over the stubs"
        entry[idt.STUBS - L.ENTRY_TEXT : idt.STUBS - L.ENTRY_TEXT + len(stubs)] = stubs
        self._region(idt.PHYS_IDT, L.PAGE, writable=False)[:] = idt.idt_page(kernel)
        rodata = self._region(idt.PHYS_KERNEL_RODATA, L.PAGE, writable=False)
        rodata[: len(idt.banner(kernel))] = idt.banner(kernel)
        self._region(L.PHYS_TASK_STACK, L.THREAD_SIZE)
        cea = self._region(L.PHYS_CEA, 2 * L.PAGE)
        for i, desc in enumerate(GDT_DESCRIPTORS):
            struct.pack_into("<Q", cea, 8 * i, desc)
        # GDT_ENTRY_TSS: cpu_tss_rw, loaded into TR (set_tss_desc() and load_TR_desc()).
        struct.pack_into("<2Q", cea, TSS_SELECTOR, *tss_descriptor(lay.tss, TSS_SIZE - 1))
        percpu = self._region(L.PHYS_PERCPU, self.kernel.percpu_size)
        struct.pack_into("<Q", percpu, L.PERCPU_TSS + TSS_sp0, lay.entry_stack_top)
        # the top of the task stack: TSS.sp1 in v5.8, a per-CPU variable of its own later
        struct.pack_into("<Q", percpu, self.kernel.top_of_stack, lay.task_stack_top)
        struct.pack_into("<H", percpu, L.PERCPU_TSS + TSS_io_bitmap_base, IO_BITMAP_OFFSET_INVALID)

        def both(v: int, p: int, flags: int) -> None:
            pt.map_page(self.kernel_pgd, v, p, flags)
            if self.config.pti:
                pt.map_page(self.user_pgd, v, p, flags)

        def kernel_only(v: int, p: int, flags: int) -> None:
            pt.map_page(self.kernel_pgd, v, p, flags)

        # User memory: in both roots (the kernel reaches it for copy_from_user).
        phys = L.PHYS_USER
        for m in self.user:
            buf = self._region(phys, m.size, writable=m.writable)
            buf[m.data_offset : m.data_offset + len(m.data)] = m.data
            for o in range(0, m.size, L.PAGE):
                flags = US | (RW if m.writable else 0) | (0 if m.executable else NX)
                both(m.vaddr + o, phys + o, flags)
            phys += m.size
        # .entry.text and the cpu_entry_area (GDT, entry stack): in both roots.
        for o in range(0, L.ENTRY_TEXT_SIZE, L.PAGE):
            both(L.ENTRY_TEXT + o, L.PHYS_ENTRY_TEXT + o, 0)
        both(L.CEA_GDT, L.PHYS_CEA, NX)
        both(L.CEA_ENTRY_STACK, L.PHYS_CEA + L.PAGE, RW | NX)
        # cpu_tss_rw: pti_clone_user_shared() maps each CPU's TSS page into the user root.
        for o in range(0, self.kernel.percpu_size, L.PAGE):
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
        if self.config.pti:
            # pti_set_user_pgtbl(): the kernel's copy of user PGD entries is NX, so the
            # kernel can never execute user code through it.
            for m in self.user:
                pt.set_top_flags(self.kernel_pgd, m.vaddr, NX)

        # Page tables are not written by the MMU (A/D preset) nor by the code: not restored.
        used = pt.alloc(1) - L.PHYS_PAGE_TABLES
        self.regions.insert(0, _PhysRegion(L.PHYS_PAGE_TABLES, pt.pool[:used], writable=False))
        # Physically adjacent regions (a [[memory]] range is one region per page) are mapped
        # as one: Unicorn's mem_map costs grow with the number of regions already mapped,
        # and 4096 one-page maps of a 16 MiB range took seconds.
        for base, data in _coalesce((r.base, r.pristine) for r in self.regions):
            self.uc.mem_map(base, (len(data) + L.PAGE - 1) // L.PAGE * L.PAGE, UC_PROT_ALL)
            self.uc.mem_write(base, data)
        # What a run can change, restored before the next one.
        self._pristine = _coalesce((r.base, r.pristine) for r in self.regions if r.writable)

        pcid = self.config.pcid
        self.kernel_cr3 = self.kernel_pgd | (KERNEL_PCID if pcid else 0)
        if self.config.pti:
            user_pcid = (KERNEL_PCID | PTI_USER_PCID_MASK) if pcid else 0
            self.user_cr3 = self.kernel_pgd | PTI_USER_PGTABLE_MASK | user_pcid
        else:
            self.user_cr3 = self.kernel_cr3

    # -- CPU -----------------------------------------------------------------------
    def _build_cpu(self) -> None:
        uc, cfg = self.uc, self.config
        uc.reg_write(X.UC_X86_REG_CR3, self.kernel_pgd)
        cr4 = CR4_PAE | (CR4_LA57 if cfg.paging == 5 else 0)
        uc.reg_write(X.UC_X86_REG_CR4, cr4)
        uc.reg_write(X.UC_X86_REG_MSR, (MSR_EFER, EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE))
        uc.reg_write(X.UC_X86_REG_CR0, CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG)
        if cfg.pcid:
            # CR4.PCIDE may only be set while CR3[11:0] is 0 (Intel SDM 4.10.1).
            uc.reg_write(X.UC_X86_REG_CR4, cr4 | CR4_PCIDE)
        uc.reg_write(X.UC_X86_REG_CR3, self.kernel_cr3)
        uc.reg_write(X.UC_X86_REG_GDTR, (0, L.CEA_GDT, 8 * GDT_ENTRIES - 1, 0))
        uc.reg_write(X.UC_X86_REG_IDTR, (0, idt.CEA_RO_IDT, idt.IDT_LIMIT, 0))
        # TR as LTR leaves it: the CPU reads the I/O-permission bitmap base from this TSS
        # when user code runs IN or OUT with CPL > IOPL.
        uc.reg_write(
            X.UC_X86_REG_TR, (TSS_SELECTOR, self.layout.tss, TSS_SIZE - 1, TSS_BUSY_PRESENT)
        )
        uc.reg_write(X.UC_X86_REG_CS, KERNEL_CS)
        uc.reg_write(X.UC_X86_REG_SS, KERNEL_DS)
        uc.reg_write(X.UC_X86_REG_DS, 0)
        uc.reg_write(X.UC_X86_REG_ES, 0)
        # syscall_init(), arch/x86/kernel/cpu/common.c (the mask differs by version)
        uc.reg_write(X.UC_X86_REG_MSR, (MSR_STAR, STAR_VALUE))
        if not cfg.fred:
            # with FRED, syscall_init() writes STAR only (idt_syscall_init() is skipped:
            # "FRED uses the ring 3 FRED entrypoint for SYSCALL and SYSENTER")
            uc.reg_write(X.UC_X86_REG_MSR, (MSR_LSTAR, self.image.symbols["entry_SYSCALL_64"]))
            uc.reg_write(X.UC_X86_REG_MSR, (MSR_CSTAR, 0))
            uc.reg_write(X.UC_X86_REG_MSR, (MSR_SYSCALL_MASK, self.kernel.syscall_mask))
        uc.reg_write(X.UC_X86_REG_RSP, self.layout.entry_stack_top)
        uc.reg_write(X.UC_X86_REG_RFLAGS, RFLAGS_FIXED)
        if cfg.fred:
            self._init_fred()
        self._kernel_ctx = uc.context_save()

    def _init_fred(self) -> None:
        """cpu_init_fred_exceptions() (arch/x86/kernel/fred.c, 6.12), as its writes leave
        the CPU: IA32_FRED_CONFIG = FRED_CONFIG_REDZONE | FRED_CONFIG_INT_STKLVL(0) |
        asm_fred_entrypoint_user, STKLVLS 0, RSP0 = the per-CPU fred_rsp0 (the task stack's
        top, task_stack_page + THREAD_SIZE), RSP1-3 0, then CR4.FRED.  cpu_init_fred_rsps()
        would give levels 1-3 the #DB/NMI/#DF stacks; none is built, as no event here
        uses them.  6.12 writes no FRED_SSP (no supervisor shadow stacks): they stay 0.

        Unicorn keeps no FRED MSR (it drops the writes), so the model holds them here
        (engine.machine.modelled reads them from :attr:`fred_msrs`).
        """
        self.fred_msrs = {
            C.MSR_IA32_FRED_CONFIG: C.FRED_CONFIG_REDZONE
            | self.image.symbols["asm_fred_entrypoint_user"],
            C.MSR_IA32_FRED_STKLVLS: 0,
            C.MSR_IA32_FRED_RSP0: self.layout.task_stack_top,
            C.MSR_IA32_FRED_RSP1: 0,
            C.MSR_IA32_FRED_RSP2: 0,
            C.MSR_IA32_FRED_RSP3: 0,
            C.MSR_IA32_FRED_SSP0: 0,
            C.MSR_IA32_FRED_SSP1: 0,
            C.MSR_IA32_FRED_SSP2: 0,
            C.MSR_IA32_FRED_SSP3: 0,
        }
        cr4 = int(self.uc.reg_read(X.UC_X86_REG_CR4))
        self.uc.reg_write(X.UC_X86_REG_CR4, cr4 | C.CR4_FRED)

    @functools.cached_property
    def task_stack_phys(self) -> int:
        """Physical base of the task stack (contiguous, checked by walking the kernel root)."""
        return self._contiguous(self.layout.task_stack_base, self.layout.task_stack_top)

    @functools.cached_property
    def entry_stack_phys(self) -> int:
        return self._contiguous(L.CEA_ENTRY_STACK, L.ENTRY_STACK_TOP)

    def _contiguous(self, lo: int, hi: int) -> int:
        base = self.walk(self.kernel_cr3, lo).phys
        assert base is not None
        for v in range(lo, hi, L.PAGE):
            assert self.walk(self.kernel_cr3, v).phys == base + (v - lo), "not contiguous"
        return base

    def reset(self) -> None:
        """Back to the state right after build: memory contents and the CPL-0 context."""
        self.restore_memory(self._pristine)
        self.uc.context_restore(self._kernel_ctx)

    def snapshot_memory(self) -> list[tuple[int, bytes]]:
        """The current contents of every region a run can change."""
        return [(base, bytes(self.uc.mem_read(base, len(data)))) for base, data in self._pristine]

    def restore_memory(self, snapshot: list[tuple[int, bytes]]) -> None:
        for base, data in snapshot:
            self.uc.mem_write(base, data)

    def restore_kernel_context(self) -> None:
        self.uc.context_restore(self._kernel_ctx)

    # -- reading the machine -------------------------------------------------------
    def read_msr(self, msr: int) -> int:
        return self.msr.read(msr)

    def write_msr(self, msr: int, value: int) -> None:
        self.msr.write(msr, value)

    def read_phys(self, addr: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(addr, size))

    def write_phys(self, addr: int, data: bytes) -> None:
        """A write by a modelled part of the machine (not a CPU store): the log is told."""
        self.uc.mem_write(addr, data)
        if self.write_observer is not None:
            self.write_observer(addr, data)

    def fixed_memory(self) -> list[tuple[int, bytes]]:
        """The regions no run writes (kernel text, page tables), as built.

        With a :meth:`snapshot_memory` of the others, that is all of physical memory.
        """
        return [(r.base, bytes(r.pristine)) for r in self.regions if not r.writable]

    def walk(self, cr3: int, vaddr: int) -> PageWalk:
        """Walk the tables under *cr3* for *vaddr*, reading emulated memory.

        Results are cached per page: after build nothing writes the page tables
        (A/D bits are preset and no mapping of them exists), so a walk's answer
        cannot change.
        """
        key = (cr3 & 0x000FFFFFFFFFF000, vaddr >> 12)
        page = self._walks.get(key)
        if page is None:
            page = walk(self.read_phys, cr3, vaddr & ~0xFFF, self.config.paging)
            self._walks[key] = page
        if page.phys is None:
            return PageWalk(vaddr, None, page.flags, page.entries)
        return PageWalk(vaddr, page.phys | (vaddr & 0xFFF), page.flags, page.entries)

    def read_virt(self, cr3: int, vaddr: int, size: int) -> bytes | None:
        """Read *size* bytes at *vaddr* through the tables under *cr3*; None if unmapped."""
        out = bytearray()
        while size:
            w = self.walk(cr3, vaddr)
            if w.phys is None:
                return None
            n = min(size, L.PAGE - (vaddr & 0xFFF))
            out += self.read_phys(w.phys, n)
            vaddr, size = vaddr + n, size - n
        return bytes(out)

    def write_virt(self, cr3: int, vaddr: int, data: bytes, supervisor: bool = False) -> bool:
        """Write *data* at *vaddr* through the tables under *cr3* (user pages only, unless
        *supervisor*: a write the CPU makes at CPL 0, such as a pushed FRED frame)."""
        while data:
            w = self.walk(cr3, vaddr)
            if w.phys is None or not (supervisor or w.flags & US) or not w.flags & RW:
                return False
            n = min(len(data), L.PAGE - (vaddr & 0xFFF))
            self.write_phys(w.phys, data[:n])
            vaddr, data = vaddr + n, data[n:]
        return True

    def read_u64(self, cr3: int, vaddr: int) -> int | None:
        raw = self.read_virt(cr3, vaddr, 8)
        return None if raw is None else int(struct.unpack("<Q", raw)[0])

    def named_regions(self) -> list[tuple[str, int]]:
        """The places whose mapping the page-table panel reports, with one address each."""
        lay = self.layout
        out: list[tuple[str, int]] = []
        for m in self.user:  # one entry per run of pages with the same name
            if not out or out[-1][0] != f"user {m.name}":
                out.append((msg("user {name}", name=m.name), m.vaddr))
        out += [
            (N_("entry text"), L.ENTRY_TEXT),
            ("cpu_entry_area GDT", L.CEA_GDT),
            (N_("entry stack"), L.CEA_ENTRY_STACK),
            ("cpu_tss_rw", lay.tss),
            (N_("task stack"), lay.task_stack_base),
            (N_("per-CPU data"), lay.tlbstate),
            (N_("kernel text"), L.DO_SYSCALL_64),
        ]
        return out

    @functools.cached_property
    def roots(self) -> tuple[RootSummary, ...]:
        """:meth:`summarize_roots`, once: the tables do not change from run to run."""
        return self.summarize_roots()

    def summarize_roots(self) -> tuple[RootSummary, ...]:
        """Walk both roots over the named regions (the user root only exists with PTI)."""
        roots = [(N_("kernel"), self.kernel_cr3)]
        if self.config.pti:
            roots.append((N_("user"), self.user_cr3))
        out = []
        for name, cr3 in roots:
            regions = []
            for rname, addr in self.named_regions():
                w = self.walk(cr3, addr)
                regions.append(MappedRegion(rname, addr, w.mapped, w.phys, w.describe()))
            pcid = cr3 & CR3_PCID_MASK if self.config.pcid else 0
            pgd = cr3 & ~CR3_PCID_MASK & ~X86_CR3_PCID_NOFLUSH
            out.append(RootSummary(name, cr3, pgd, pcid, tuple(regions)))
        return tuple(out)

    def msrs(self) -> dict[str, int]:
        """The MSRs that set up SYSCALL, read from the CPU (FS/GS bases are in each step)."""
        out = {
            "EFER": self.read_msr(MSR_EFER),
            "STAR": self.read_msr(MSR_STAR),
            "LSTAR": self.read_msr(MSR_LSTAR),
            "SYSCALL_MASK": self.read_msr(MSR_SYSCALL_MASK),
        }
        if self.config.fred:
            # held by the model (see _init_fred), in msr-index.h's order
            out |= {name: self.fred_msrs[num] for name, num in FRED_MSR_NAMES.items()}
        return out
