"""The emulated x86-64 machine: Unicorn with real paging, a GDT, MSRs and a per-CPU area.

Built once per (CPU, paging, PTI, PCID, user memory) and reset cheaply between
runs: every physical region keeps a pristine copy, and the CPU state at CPL 0 is
kept as a Unicorn context.
"""

from __future__ import annotations

import functools
import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn import x86_const as X

from engine import constants as C
from engine import layout as L
from engine.constants import (
    CR3_PCID_MASK,
    MSR_EFER,
    MSR_LSTAR,
    MSR_STAR,
    MSR_SYSCALL_MASK,
    X86_CR3_PCID_NOFLUSH,
)
from engine.errors import EmulatorMemoryError
from engine.i18n import N_, msg
from engine.kernel.image import KernelImage, build_image
from engine.kernel.macros import Features
from engine.machine import boot
from engine.machine.boot import PhysRegion
from engine.machine.paging import RW, US, PageWalk, walk
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
    regions: list[PhysRegion] = field(init=False, default_factory=list)
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
                mds=cfg.cpu_model == "skylake-client",
                espfix64=cfg.flavour == "generic",
                srso=cfg.cpu_model == "epyc-rome",
                ia32=cfg.ia32_emulation,
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
        boot.lay_out_memory(self)
        boot.start_cpu(self)

    # -- memory --------------------------------------------------------------------
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
            # held by the model (see boot.init_fred), in msr-index.h's order
            out |= {name: self.fred_msrs[num] for name, num in FRED_MSR_NAMES.items()}
        return out
