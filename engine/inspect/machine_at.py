"""One recorded run, readable at any step: its trace, its machine, and its memory history.

Everything the inspection functions read comes from here: the registers the trace
recorded for the step, memory from the run's write log (engine.run.memlog) at that
step, the roots KPTI switches between, and the control registers and descriptor-table
registers of the machine, which nothing in a run writes (the entry code has no MOV to
CR0/CR4, LGDT, LIDT or LTR; user code at CPL 3 cannot run them).
"""

from __future__ import annotations

from dataclasses import dataclass

from unicorn import x86_const as X

from engine import layout as L
from engine.constants import CR4_PCIDE, PT_REGS_SIZE
from engine.errors import EngineError
from engine.inspect.pagewalk import PageWalkReport, Root, RootWalk, walk_root
from engine.machine.core import Machine
from engine.run.memlog import MemoryHistory
from engine.run.recorder import FRED_INFO_SIZE
from engine.run.session import Session
from engine.scenario.model import Scenario
from engine.trace import Regs, Step, Trace


class InspectError(EngineError):
    """A request the inspector cannot answer (a step out of range, a bad expression...)."""


#: Where ``x`` and ``walk`` read through: one of the two roots, or the step's own CR3.
LIVE = "live"


@dataclass(frozen=True, slots=True)
class DescriptorRegs:
    """GDTR, IDTR and TR as the machine holds them: (selector, base, limit, flags)."""

    gdtr: tuple[int, int, int, int]
    idtr: tuple[int, int, int, int]
    tr: tuple[int, int, int, int]
    cr0: int
    cr2: int
    cr4: int


class MachineAt:
    """A scenario's recorded run with its memory log, read at any step."""

    def __init__(self, session: Session, trace: Trace):
        history = session.memory_history()
        if history is None:
            raise InspectError("the run kept no memory (it never reached its first instruction)")
        self.session = session
        self.trace = trace
        self.machine: Machine = session.machine
        self.history: MemoryHistory = history
        uc = self.machine.uc
        self.descriptors = DescriptorRegs(
            gdtr=tuple(uc.reg_read(X.UC_X86_REG_GDTR)),
            idtr=tuple(uc.reg_read(X.UC_X86_REG_IDTR)),
            tr=tuple(uc.reg_read(X.UC_X86_REG_TR)),
            cr0=int(uc.reg_read(X.UC_X86_REG_CR0)),
            cr2=int(uc.reg_read(X.UC_X86_REG_CR2)),
            cr4=int(uc.reg_read(X.UC_X86_REG_CR4)),
        )

    @classmethod
    def run(cls, scenario: Scenario) -> MachineAt:
        """Build the machine, run *scenario* once with its memory log, and keep both."""
        session = Session(scenario)
        return cls(session, session.run())

    # -- steps -----------------------------------------------------------------------
    @property
    def last(self) -> int:
        return len(self.trace.steps)

    def check_step(self, step: int) -> int:
        if not 0 <= step <= self.last:
            raise InspectError(f"step {step} is outside 0..{self.last}")
        return step

    def regs(self, step: int) -> Regs:
        """The registers after *step* (0: before the first)."""
        self.check_step(step)
        return self.trace.initial if step == 0 else self.trace.steps[step - 1].regs

    def record(self, step: int) -> Step | None:
        """The step's own record (None for step 0)."""
        self.check_step(step)
        return None if step == 0 else self.trace.steps[step - 1]

    # -- roots -----------------------------------------------------------------------
    @property
    def levels(self) -> int:
        return self.machine.config.paging

    @property
    def pcide(self) -> bool:
        return bool(self.descriptors.cr4 & CR4_PCIDE)

    def root_cr3(self, root: Root) -> int:
        m = self.machine
        return m.user_cr3 if root is Root.USER else m.kernel_cr3

    def cr3(self, step: int, root: Root | str) -> int:
        """The CR3 *root* means at *step*: a KPTI root, or ``live`` (the step's CR3)."""
        if root == LIVE:
            return self.regs(step).cr3
        return self.root_cr3(Root(root))

    @property
    def pt_regs_base(self) -> int:
        """Where struct pt_regs sits: at the top of the task stack, or on a FRED machine
        under the 16 bytes of struct fred_info that end struct fred_frame (asm/fred.h)."""
        top = self.machine.layout.task_stack_top
        if self.machine.config.fred:
            top -= FRED_INFO_SIZE
        return top - PT_REGS_SIZE

    # -- memory at a step -------------------------------------------------------------
    def read_phys(self, step: int, address: int, size: int) -> bytes | None:
        return self.history.read_phys(self.check_step(step), address, size)

    def walk_root(self, step: int, root: Root, cr3: int, vaddr: int) -> RootWalk:
        self.check_step(step)

        def read(address: int, size: int) -> bytes | None:
            return self.history.read_phys(step, address, size)

        return walk_root(read, root, cr3, vaddr, self.levels, self.pcide)

    def walk(self, step: int, vaddr: int) -> PageWalkReport:
        """*vaddr* walked at *step* under the user root, then the kernel root."""
        walks = tuple(self.walk_root(step, r, self.root_cr3(r), vaddr) for r in Root)
        return PageWalkReport(step, vaddr & (1 << 64) - 1, self.regs(step).cr3, walks)

    def read_virt(self, step: int, cr3: int, vaddr: int, size: int) -> bytes | None:
        """*size* bytes at *vaddr* through *cr3* at *step*; None if any byte is unmapped."""
        out = bytearray()
        root = Root.USER if cr3 == self.machine.user_cr3 else Root.KERNEL  # only a label
        while size > 0:
            w = self.walk_root(step, root, cr3, vaddr)
            if w.result.physical is None:
                return None
            n = min(size, L.PAGE - (vaddr & (L.PAGE - 1)))
            chunk = self.read_phys(step, w.result.physical, n)
            if chunk is None:
                return None
            out += chunk
            vaddr, size = (vaddr + n) & (1 << 64) - 1, size - n
        return bytes(out)


__all__ = ["LIVE", "DescriptorRegs", "InspectError", "MachineAt"]
