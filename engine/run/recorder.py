"""The step recorder: after every step, the registers and both kernel stacks, read anew.

A step is opened when its instruction is about to run (:meth:`StepRecorder.begin`)
and closed when the next one is, or when the engine ends the run
(:meth:`StepRecorder.finish`).  Closing a step reads the registers from the CPU and
the stack words from emulated memory *then*, whatever wrote them: the CPU through
Unicorn, or a modelled part of the machine (SYSCALL, do_syscall_64 and the
[handler.set] writes, the SYSRET/IRET models) writing memory directly.  The memory
hooks only say *which* words have been used as stack so far, never their values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import compress
from operator import ne

from unicorn import x86_const as X

from engine import layout as L
from engine.asm import disasm_one
from engine.constants import (
    MSR_KERNEL_GS_BASE,
    PT_REGS_FIELDS,
    PT_REGS_SIZE,
    SELECTOR_RPL_MASK,
)
from engine.i18n import N_, msg
from engine.kernel.image import KernelImage
from engine.kernel.vdso32 import Vdso32
from engine.machine.core import Machine
from engine.machine.regfile import RegisterFile
from engine.run.memlog import WriteLog
from engine.run.user import long_mode_cs
from engine.scenario.model import Scenario
from engine.trace import (
    REG_NAMES,
    SLOT_RETURN_ADDRESS,
    SLOT_SAVED_AX,
    CheckState,
    CStatement,
    Door,
    Event,
    EventKind,
    ExitPath,
    Regs,
    StackName,
    StackSlot,
    Step,
    StepKind,
)

#: What a stack-switch event calls each stack.
STACK_NAMES: dict[StackName, str] = {
    StackName.USER: N_("user stack"),
    StackName.TASK: N_("task's kernel stack"),
    StackName.ENTRY: N_("per-CPU trampoline (entry) stack"),
    StackName.OTHER: N_("no stack (RSP holds something else)"),
}

#: The words each exit builds on the entry stack, from its top down.
#: How the C side reads in the source panel under FRED (entry_fred.c, 6.12).
FRED_C_CALL = "fred_entry_from_user(regs) → fred_other(regs) → do_syscall_64(regs, nr)"
#: ... and after int $0x80, a software-interrupt event (entry_fred.c, common.c)
FRED_INT80_CALL = "fred_entry_from_user(regs) → fred_intx(regs) → fred_int80_emulation(regs)"

#: The FRED frame's names for pt_regs' CS and SS words (asm/ptrace.h's union members),
#: and struct fred_info's two words above pt_regs (asm/fred.h).
FRED_SLOTS: dict[str, str] = {"cs": "fred_cs", "ss": "fred_ss"}
FRED_INFO_SLOTS: tuple[str, ...] = ("edata", "resv")
FRED_INFO_SIZE = 8 * len(FRED_INFO_SLOTS)

#: The words int $0x80 leaves on the entry stack, from its top down: the hardware frame
#: the CPU pushed (engine.machine.modelled.HW_FRAME_FIELDS), then entry_INT80_compat's
#: pushes of RAX (the future orig_ax) and RDI.  The IRET exit later rebuilds its own
#: frame over them (ENTRY_FRAME_SLOTS[IRET]).
INT80_ENTRY_SLOTS: tuple[str, ...] = ("ss", "sp", "flags", "cs", "ip", "orig_ax", "di")
#: 6.1's and 6.12's asm_int80_emulation builds all of pt_regs there (orig_ax -1, then
#: error_entry's pushes), with the return addresses of its calls below it.
IDTENTRY_SLOTS: tuple[str, ...] = (
    *reversed(PT_REGS_FIELDS),
    SLOT_RETURN_ADDRESS,  # of call error_entry
    SLOT_RETURN_ADDRESS,  # of error_entry's call sync_regs
)

ENTRY_FRAME_SLOTS: dict[ExitPath, tuple[str, ...]] = {
    ExitPath.SYSRET: ("sp", "di", SLOT_SAVED_AX),
    ExitPath.IRET: ("ss", "sp", "flags", "cs", "ip", "di", SLOT_SAVED_AX),
    ExitPath.ERETU: (),  # FRED uses no entry (trampoline) stack
}


#: Bytes of one stack word.
WORD = 8

#: The longest x86 instruction.
MAX_INSN = 15

#: At most this many distinct user instructions (address and bytes) are kept decoded:
#: code that rewrites itself on every turn of a loop must not grow the table unbounded.
USER_INSNS_KEPT = 4096


@dataclass
class Pending:
    """A step whose instruction is running: what is known before it completes."""

    rip: int
    code: bytes
    text: str
    source_line: int | None
    source: str
    macro: str | None
    label: str
    cpl: int
    events: list[Event] = field(default_factory=list)
    modelled: bool = False
    writes: list[int] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    rewritten: tuple[tuple[str, int, int], ...] = ()
    cr3_written: int | None = None  # what this step's MOV to CR3 wrote
    kind: StepKind = StepKind.INSTRUCTION
    c: CStatement | None = None  # a C statement's place and values


@dataclass
class _StackWatch:
    """One kernel stack: its virtual range, physical base, and the words used so far."""

    lo: int
    hi: int
    phys: int
    used_low: int | None = None  # lowest word written so far this run
    raw: bytes = b""
    slots: tuple[StackSlot, ...] = ()
    names: tuple[str, ...] = ()
    #: FRED: the 64-byte FRED frame ends the stack, so pt_regs ends 16 bytes below the
    #: top (struct fred_frame: pt_regs, then fred_info's edata and resv) and its CS and
    #: SS words carry the event information (struct fred_cs, fred_ss)
    fred: bool = False

    def read(self, m: Machine, names: tuple[str, ...], pt_regs: bool) -> tuple[StackSlot, ...]:
        """Every word from the lowest one used up to the top, read from memory now."""
        low = self.used_low
        if low is None:
            return ()
        raw = m.read_phys(self.phys + (low - self.lo), self.hi - low)
        if raw == self.raw and names == self.names:
            return self.slots  # same words, same names: the same records
        out = []
        for off in range(len(raw) - WORD, -1, -WORD):
            addr = low + off
            value = int.from_bytes(raw[off : off + WORD], "little")
            if pt_regs:
                pt_top = self.hi - (FRED_INFO_SIZE if self.fred else 0)
                field_off = addr - (pt_top - PT_REGS_SIZE)
                inside = 0 <= field_off < PT_REGS_SIZE
                slot = PT_REGS_FIELDS[field_off // WORD] if inside else SLOT_RETURN_ADDRESS
                if self.fred:
                    if addr >= pt_top:
                        slot = FRED_INFO_SLOTS[(addr - pt_top) // WORD]
                    else:
                        slot = FRED_SLOTS.get(slot, slot)
            else:
                index = (self.hi - addr) // WORD - 1
                slot = names[index] if index < len(names) else ""
            out.append(StackSlot(addr, value, slot))
        self.raw, self.names, self.slots = raw, names, tuple(out)
        return self.slots


class StepRecorder:
    """Builds :class:`Step` records from the machine as it is after each step."""

    def __init__(self, machine: Machine, scenario: Scenario, call_line: int | None):
        self.m = machine
        self.sc = scenario
        self.img: KernelImage = machine.image
        self.call_line = call_line
        self.do_sys = self.img.symbols["do_syscall_64"]
        #: the other modelled C functions' stubs → the source line that calls each
        self.c_calls: dict[int, int | None] = {}
        lay = machine.layout
        self.task = _StackWatch(
            lay.task_stack_base, lay.task_stack_top, machine.task_stack_phys,
            fred=scenario.machine.fred,
        )  # fmt: skip
        self.entry = _StackWatch(L.CEA_ENTRY_STACK, L.ENTRY_STACK_TOP, machine.entry_stack_phys)
        self.steps: list[Step] = []
        self.prev_regs: Regs | None = None
        self.last_stack: StackName | None = None
        #: RSP has been on the task stack (after int $0x80, a later move back to the entry
        #: stack is the IRET exit's, which names the words anew)
        self.visited_task = False
        self.exit_frame = False
        self.int80_slots = (
            IDTENTRY_SLOTS if "asm_int80_emulation" in self.img.symbols else INT80_ENTRY_SLOTS
        )
        self.cr3_written: int | None = None
        #: Called with each step as it is recorded, the machine still in that state
        #: (the invariant tests compare the record with their own reads).
        self.on_step: Callable[[Step], None] | None = None
        #: The run's memory log, told where each step ends (None: not kept).
        self.memory: WriteLog | None = None
        # What a step of user code reads before it runs, in one call (CS for the CPL,
        # CR3 to find its bytes).
        self._cs_cr3 = RegisterFile(machine.uc, (X.UC_X86_REG_CS, X.UC_X86_REG_CR3))
        # The user mappings are fixed when the machine is built.
        self._user_ranges = tuple((u.vaddr, u.vaddr + u.size) for u in machine.user)
        #: (the registers of :attr:`prev_regs`, their values in REG_NAMES order): a step's
        #: values are compared with these as read, before a Regs is built from them.
        self._prev_values: tuple[Regs | None, list[int]] = (None, [])
        #: Each distinct tuple of changed-register names, kept once.
        self._changed: dict[tuple[str, ...], tuple[str, ...]] = {}
        #: A user instruction's bytes as read -> (bytes, text, source) (see :meth:`begin`).
        self._user_insns: dict[tuple[int, bytes, int], tuple[bytes, str, str]] = {}
        #: the C call fred_entry_from_user makes for this run's event (int $0x80 sets its own)
        self.fred_call = FRED_C_CALL
        #: a 32-bit task's vDSO, whose instructions are shown with their source (the Run's)
        self.vdso: Vdso32 | None = None

    # -- reading the machine ---------------------------------------------------------
    def read_regs(self) -> Regs:
        vals = self.m.step_regs.read()
        cr3 = vals.pop()
        return Regs(*vals, self.m.read_msr(MSR_KERNEL_GS_BASE), cr3)  # type: ignore[call-arg]

    def cpl(self) -> int:
        return int(self.m.cs_reg.read()[0]) & SELECTOR_RPL_MASK

    def stack_name(self, rsp: int) -> StackName:
        if self.task.lo <= rsp <= self.task.hi:
            return StackName.TASK
        if self.entry.lo <= rsp <= self.entry.hi:
            return StackName.ENTRY
        # user memory the scenario mapped (RSP may hold a stack-top address one past it);
        # anything else, e.g. the CR3 value SWITCH_TO_KERNEL_CR3 keeps in RSP, is no stack
        for lo, hi in self._user_ranges:
            if lo < rsp <= hi:
                return StackName.USER
        return StackName.OTHER

    # -- memory hooks: which words are stack ----------------------------------------------
    def virt(self, phys: int) -> int:
        """The stack address of a physical address inside one of the two stacks."""
        off = phys - self.task.phys
        if 0 <= off < self.task.hi - self.task.lo:
            return self.task.lo + off
        return self.entry.lo + (phys - self.entry.phys)

    def wrote(self, vaddr: int) -> None:
        watch = self.task if self.task.lo <= vaddr < self.task.hi else self.entry
        if watch.used_low is None or vaddr < watch.used_low:
            watch.used_low = vaddr

    # -- steps ---------------------------------------------------------------------------
    def begin(self, address: int, size: int) -> Pending:
        asm = self.img.by_address.get(address)
        if asm is not None:
            cpl = self.cpl()
            meta = asm.item.meta
            line = getattr(meta, "line", 0) or None
            source = self.img.source[line - 1].text.strip() if line else ""
            c_function = self._c_function(address)
            if c_function is not None:
                line, source = c_function
            code, text = asm.code, asm.text
            if asm.item.opaque:
                # bytes the CPU reads with the next items' as one instruction (a movabs
                # over srso_safe_ret): what it runs is what the memory decodes to
                whole = self.m.read_virt(self._cs_cr3.read()[1], address, MAX_INSN) or b""
                decoded = disasm_one(whole, address)
                if decoded is not None:
                    # Capstone writes a 64-bit immediate in decimal; the listing's are hex
                    text = re.sub(r"\$(\d{10,})", lambda m: f"${int(m[1]):#x}", decoded[0])
                    code = whole[: decoded[1]]
            return Pending(
                address,
                code,
                text,
                line,
                source,
                getattr(meta, "macro", None),
                self.img.label_at(address),
                cpl,
            )
        # Unicorn's size is 0 for an instruction that faults at translation (a privileged
        # one at CPL 3, say): decode what memory holds instead.
        cs, cr3 = self._cs_cr3.read()
        cpl = cs & SELECTOR_RPL_MASK
        m = self.m
        raw = m.read_virt(cr3, address, MAX_INSN) or m.read_virt(
            cr3, address, L.PAGE - (address & (L.PAGE - 1))
        )
        # The bytes are read anew at every step (code may be rewritten); what is made from
        # them and the address alone (the text, the statement) is kept for a loop's
        # next turn.
        # compatibility mode (CS __USER32_CS after a far return) runs 32-bit code
        bits = 64 if long_mode_cs(cs) else 32
        known = self._user_insns.get((address, raw or b"", bits))
        if known is not None:
            code, text, source = known
            return Pending(address, code, text, None, source, None, "user", cpl)
        d = disasm_one(raw or b"", address, bits)
        text, length = d if d else ("(bad)", max(size, 0))
        code = (raw or b"")[:length]
        stmt = self.sc.code.statement_at(address) if self.sc.code else None
        vline = self.vdso.line_at(address) if self.vdso is not None else None
        if stmt is None and vline is not None and raw and raw.startswith(vline.code):
            stmt = vline.source  # the vDSO's own source line
        elif stmt is None and not self._in_user_code(address):
            # Memory past the program (zeroed pages decode as addb %al, (%rax)): not
            # something the user wrote, so not shown as their source.
            stmt = msg(
                "(not in the user's code: bytes {bytes})", bytes=code.hex(" ") or N_("unreadable")
            )
        if len(self._user_insns) < USER_INSNS_KEPT:
            self._user_insns[(address, raw or b"", bits)] = (code, text, stmt or text)
        return Pending(address, code, text, None, stmt or text, None, "user", cpl)

    def _c_function(self, address: int) -> tuple[int | None, str] | None:
        """A modelled C function's stub is shown inside the source line that calls it: that
        line, and the call as C (None: *address* is not a stub)."""
        if address == self.do_sys:
            call = self.fred_call if self.img.features.fred else self.img.kernel.c_call
            return self.call_line, f"{call}   /* C code: modelled */"
        if address in self.c_calls:
            name = self.img.label_at(address)
            return self.c_calls[address], f"{name}(regs)   /* C code: modelled */"
        return None

    def amend_last(self, event: Event) -> None:
        """Give *event* to the step already recorded last (a model's after-effect)."""
        last = self.steps[-1]
        self.steps[-1] = replace(
            last, events=(*last.events, event), modelled=last.modelled or event.modelled
        )

    def _in_user_code(self, address: int) -> bool:
        c = self.sc.code
        return c is not None and c.address <= address < c.address + len(c.code)

    def finish(
        self,
        p: Pending,
        checks: tuple[CheckState, ...],
        exit_path: ExitPath,
        door: Door = Door.SYSCALL,
    ) -> Step:
        """Close *p* with the machine as it is now; *exit_path* names the entry-stack frame
        (after int $0x80, *door*, the hardware frame until the exit rebuilds it).

        The per-step hot path of every recorded run, in one function on purpose: a call
        per part would cost more than the part (it builds the Step record, field by field)."""
        vals = self.m.step_regs.read()
        cr3 = vals.pop()
        vals += (self.m.read_msr(MSR_KERNEL_GS_BASE), cr3)  # REG_NAMES order
        prev = self.prev_regs
        if prev is None:
            regs = Regs(*vals)
            changed: tuple[str, ...] = ()
        else:
            known, prev_vals = self._prev_values
            if known is not prev:  # prev_regs was set from outside (the launch)
                prev_vals = list(prev.values())
            # Equal records are shared with the step before (a loop repeats them
            # thousands of times): a long trace is then stored, and read back, once per
            # distinct value.
            if vals == prev_vals:
                regs, changed = prev, ()
            else:
                regs = Regs(*vals)
                # Regs.changed_from, on the values as read
                changed = tuple(compress(REG_NAMES, map(ne, vals, prev_vals)))
                changed = self._changed.setdefault(changed, changed)
        self._prev_values = (regs, vals)
        if self.steps and checks == self.steps[-1].checks:
            checks = self.steps[-1].checks
        if p.cr3_written is not None:
            self.cr3_written = p.cr3_written
        stack_name = self.stack_name(regs.rsp)
        # RSP also serves as a scratch register (it holds CR3 in SWITCH_TO_KERNEL_CR3):
        # only a move onto another real stack is an event.
        if stack_name is not StackName.OTHER and stack_name is not self.last_stack:
            if self.last_stack is not None:
                text = msg(
                    "RSP {rsp:#x}: now on the {stack}", rsp=regs.rsp, stack=STACK_NAMES[stack_name]
                )
                p.events.append(Event(EventKind.STACK_SWITCH, text))
            self.last_stack = stack_name
        frame = ENTRY_FRAME_SLOTS[exit_path]
        if door is Door.INT80:
            if stack_name is StackName.TASK:
                self.visited_task = True
            elif stack_name is StackName.ENTRY and self.visited_task:
                self.exit_frame = True  # the exit's move back: its frame from here on
            if not self.exit_frame:
                frame = self.int80_slots
        elif door.fast32 and exit_path is not ExitPath.IRET:
            # entry_SYSENTER_compat saves RAX on the entry stack for its CR3 switch; the
            # compat SYSCALL entry and the SYSRETL exit leave that stack alone
            frame = (SLOT_SAVED_AX,) if door is Door.SYSENTER else ()
        step = Step(
            index=len(self.steps),
            rip=p.rip,
            code=p.code,
            text=p.text,
            source_line=p.source_line,
            source=p.source,
            macro=p.macro,
            label=p.label,
            cpl=p.cpl,
            regs=regs,
            changed=changed,
            stack=self.task.read(self.m, (), pt_regs=True),
            entry_stack=self.entry.read(self.m, frame, pt_regs=False),
            stack_writes=tuple(p.writes),
            stack_reads=tuple(p.reads),
            checks=checks,
            events=tuple(p.events),
            modelled=p.modelled,
            stack_name=stack_name,
            rewritten=p.rewritten,
            cr3_written=self.cr3_written,
            kind=p.kind,
            c=p.c,
        )
        self.steps.append(step)
        if self.memory is not None:
            self.memory.close_step(self.m.read_phys)
        self.prev_regs = regs
        if self.on_step is not None:
            self.on_step(step)
        return step


__all__ = [
    "ENTRY_FRAME_SLOTS", "INT80_ENTRY_SLOTS", "STACK_NAMES", "WORD", "Pending", "StepRecorder",
]  # fmt: skip
