"""One SYSCALL round trip on the machine, in phases.

The engine enters user mode with an IRETQ of its own (engine.run.launch, not recorded);
the user's code runs at CPL 3 up to its ``syscall``; the SYSCALL ring transition is
modelled (engine.machine.modelled); entry_SYSCALL_64 runs instruction by instruction in
Unicorn, with the models of engine.run.actions at the addresses that need one; one of the
two exits returns to CPL 3, where the engine lets the CPU fetch, but not execute, the
instruction at the return RIP.  Under FRED (6.12, ``[machine] fred``) the SYSCALL is a
FRED event into asm_fred_entrypoint_user and the exit is ERETU: the emulation stops at
it, the model returns to CPL 3 and the CPU fetches the instruction it returned to.
Any CPU exception on the way ends the run.  Where the
steps go is the sink's business (engine.run.sink): recorded, or a sweep.

Unicorn swallows Python exceptions raised inside hooks (unicorn-engine/unicorn#1386,
#1987, #2129), so every hook is wrapped by the Session: it catches, stores, stops the
emulation, and the exception is re-raised once ``emu_start`` has returned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from enum import Enum
from typing import Any, NoReturn

from unicorn import UcError
from unicorn import x86_const as X

from engine import layout as L
from engine.checks import initial_states
from engine.constants import (
    EXCEPTION_NAMES,
    MSR_CSTAR,
    MSR_IA32_SYSENTER_EIP,
    VEC_DB,
    user_space_top,
)
from engine.errors import HookError
from engine.i18n import N_, msg
from engine.kernel.common_c import CCheck
from engine.kernel.vdso32 import vdso32
from engine.machine.core import Machine
from engine.machine.faults import fault_from_ucerror, from_interrupt
from engine.machine.modelled import error_code
from engine.run.actions import EntryActions, entry_points
from engine.run.c_side import CWalk
from engine.run.int80 import VEC_INT80, Int80Door
from engine.run.launch import enter_user_mode
from engine.run.memlog import WriteLog
from engine.run.recorder import StepRecorder
from engine.run.sink import Recording, StepSink, Sweep
from engine.run.sysenter import SysenterDoor
from engine.run.user import UserActions, long_mode_cs
from engine.scenario.model import Scenario
from engine.trace import (
    CheckName,
    CheckState,
    Door,
    Event,
    EventKind,
    ExitPath,
    Fault,
    Regs,
    Trace,
    Trip,
)

#: The instruction count the kernel half runs with.  Unicorn 2.1 reports a CPU
#: exception by its own vector only when ``emu_start`` has a count (otherwise as
#: #DF); the kernel path is a few hundred instructions, so this never ends it.
KERNEL_COUNT = 1 << 30

#: Bytes of a ``syscall`` instruction (0f 05).
SYSCALL_SIZE = 2

#: Kept per Session: the CPU context and memory after entering user mode, by launch key.
Launches = dict[tuple[object, ...], tuple[object, list[tuple[int, bytes]]]]


class Stop(Exception):
    """Raised inside the engine to end the run cleanly (not an error)."""


class Phase(Enum):
    """Where the round trip stands."""

    LAUNCH = "launch"  # the engine's own IRETQ into user mode
    USER = "user"  # the user's code at CPL 3
    KERNEL = "kernel"  # from the SYSCALL transition to the exit instruction
    RETURNED = "returned"  # SYSRET, IRET or ERETU has run: the next instruction ends the run


class Run:
    """One round trip of *scenario* on *machine*; ``record`` keeps every step.  It is the
    object Unicorn's hooks reach, so the hooks and the phases they move through stay
    together here (about 340 lines: a third of them the state __init__ sets up, each
    attribute commented, and a run that makes a second round trip after a signal's
    handler keeps its first trip's results here); the models live in engine.run.actions,
    engine.run.compat_c, engine.run.fred_c, engine.run.c_side, engine.run.signal,
    engine.run.user, engine.run.int80 and engine.run.sysenter."""

    def __init__(
        self,
        machine: Machine,
        scenario: Scenario,
        record: bool,
        launches: Launches | None,
        memory: bool = True,
    ):
        """The state every hook and model of one round trip reads and writes, set up in
        one place (long for that reason: each attribute is commented where it is made)."""
        self.launches = launches
        self.m = machine
        self.sc = scenario
        self.img = machine.image
        self.kernel = machine.image.kernel  # everything version-specific comes from here
        self.uc = machine.uc
        self.paging = scenario.machine.paging
        self.points = entry_points(self.img.features)
        self.pcide = machine.config.pcid  # CR4.PCIDE, set at build when the CPU has PCID
        self.user_top = user_space_top(self.paging)
        self.rec = StepRecorder(machine, scenario, self.points.call_line)
        self.rec.c_calls = self.points.c_calls
        self.recording = Recording(self, self.rec) if record else None
        self.sink: StepSink = self.recording or Sweep(self)
        #: What each recorded step wrote to memory, and the memory at step 0 (the
        #: launch's snapshot of the writable regions): memory at any step, cheaply.
        self.memory: WriteLog | None = WriteLog() if record and memory else None
        self.rec.memory = self.memory
        self.launch_memory: list[tuple[int, bytes]] | None = None

        self.phase = Phase.LAUNCH
        self.initial: Regs | None = None
        #: FRED: SYSCALL is a FRED event and ERETU the exit (engine.machine.modelled)
        self.fred = scenario.machine.fred
        #: the ERETU the kernel reached (the emulation stops there for the model)
        self.eretu_at: int | None = None
        #: ERETU pended a single-step #DB (EretuReturn.pends_single_step): it is taken
        #: where the CPU would fetch the first user instruction
        self.eretu_pended_db = False
        #: the CPU context at CPL 3 right after entering user mode (ERETU returns to it)
        self.user_ctx: object | None = None
        self.checks: list[CheckState] = self.initial_checks()
        self.failed_check: CheckName | None = None
        self.exit: ExitPath | None = None
        self.fault: Fault | None = None
        self.stopped = ""
        self.hook_error: BaseException | None = None
        self.syscall_hit: int | None = None
        #: the RIP after the user's ``int $0x80`` (delivered through the IDT, modelled)
        self.int80_hit: int | None = None
        #: the address of the user's (or the vDSO's) SYSENTER, once Unicorn reached it
        self.sysenter_hit: int | None = None
        self.door = Door.SYSCALL
        #: where RIP belongs when a hook stopped the run on an instruction that did not
        #: complete (Unicorn's SYSCALL helper has already moved RIP past it)
        self.rewind_rip: int | None = None
        self.pt_at_call: dict[str, int] = {}
        #: 6.12's do_syscall_64 walk, whose frame the C return pops (engine.run.c_side)
        self.c_frame: CWalk | None = None
        #: a signal was delivered on the way out (engine.run.signal): back at CPL 3 the
        #: handler runs, and its restorer's rt_sigreturn is a second round trip
        self.signal_delivered = False
        #: the first round trip, kept when a second one begins (the trace reports it)
        self.first_trip: Trip | None = None
        #: the SYSCALL of the round trip under way is not the first
        self.again = False
        #: the step index of the second trip's SYSCALL
        self.second_trip_at = 0
        self.pt_after_call: dict[str, int] = {}
        self.handler_lines: list[str] = []
        self.output = b""
        self.user_count = 0
        self.all_events: list[Event] = []
        #: A model's correction to the instruction running now, applied once it has
        #: completed and before anything reads the machine (SYSRET's RFLAGS).
        self.after_step: Callable[[], None] | None = None
        assert scenario.code is not None
        #: a 32-bit task's vDSO (engine.kernel.vdso32): its landing pad is where the fast
        #: 32-bit returns go
        self.vdso = vdso32(scenario.machine.cpu) if scenario.mode == "compat" else None
        self.rec.vdso = self.vdso
        self.landing_pad = self.vdso.symbols["int80_landing_pad"] if self.vdso else None
        self.actions = EntryActions(self, per_instruction=record)
        self.user_actions = UserActions(self)
        self.int80_door = Int80Door(self)
        self.sysenter_door = SysenterDoor(self)

    def cpl(self) -> int:
        return self.rec.cpl()

    # -- ending and telling ------------------------------------------------------------
    def stop(self, why: str) -> NoReturn:
        """End the run here, saying *why* (the trace's ``stopped``)."""
        self.stopped = why
        raise Stop

    def stop_at_cap(self, why: str) -> NoReturn:
        self.event(Event(EventKind.CAP, msg("step cap of {cap} reached", cap=self.sc.step_cap)))
        self.stop(why)

    def stack_written(self, start: int, end: int) -> None:
        """A model, not the CPU, stored the stack words in [start, end): tell the recorder
        and the open step, as the memory hooks would have for the CPU's own stores."""
        self.rec.wrote(start)
        if self.recording is not None and self.recording.pending is not None:
            self.recording.pending.writes.extend(range(start, end, 8))

    def event(self, ev: Event) -> None:
        self.all_events.append(ev)
        self.sink.attach(ev)

    def decide(self, c: CCheck) -> None:
        """A C condition's verdict becomes its check's state."""
        i = next(i for i, s in enumerate(self.checks) if s.name == c.state.name)
        self.checks[i] = c.state

    def initial_checks(self) -> list[CheckState]:
        """The kernel's checks, none made yet (under FRED nothing decides between SYSRET
        and IRET: no check is tracked)."""
        return initial_states(
            self.img.features.removed_checks, () if self.fred else self.kernel.checks
        )

    def next_trip(self) -> None:
        """The first round trip is over and the run goes on in user mode (a delivered
        signal's handler runs): keep the first trip's results and start a fresh one."""
        self.first_trip = self.trip(0)
        self.checks = self.initial_checks()
        self.failed_check = None
        self.exit = None
        self.syscall_hit = None
        self.c_frame = None
        self.signal_delivered = False
        self.pt_at_call, self.pt_after_call, self.handler_lines = {}, {}, []
        self.phase = Phase.USER
        self.again = True

    def trip(self, first_step: int) -> Trip:
        """The round trip under way, as it stands, begun at step *first_step*."""
        return Trip(
            first_step, self.exit, self.failed_check, tuple(self.checks), self.pt_at_call,
            self.pt_after_call, tuple(self.handler_lines),
        )  # fmt: skip

    def returning(self) -> None:
        """The exit instruction runs now; the next instruction is user code again."""
        self.phase = Phase.RETURNED

    def model_fault(self, vector: int, rip: int, reason: str, code: int | None = None) -> NoReturn:
        """A modelled exception ends the run (*code*: its error code, if the model knows it)."""
        code = error_code(vector) if code is None else code
        self.fault = Fault(
            vector, EXCEPTION_NAMES[vector], self.cpl(), rip, None, True, reason, code
        )
        self.event(Event(EventKind.FAULT, self.fault.describe(tag_modelled=False), modelled=True))
        self.stop(msg("{fault} (modelled) at {rip:#x}", fault=EXCEPTION_NAMES[vector], rip=rip))

    # -- hooks (the Session installs them; see engine.run.sink for which) ----------------
    def on_code_recorded(self, uc: Any, address: int, size: int, data: Any) -> None:
        recording = self.recording
        assert recording is not None
        self.actions.fix_cr3()  # belongs to the MOV to CR3 still open as the pending step
        self._after_step()
        recording.finish()
        if self.phase is Phase.LAUNCH:
            if address == L.LAUNCH_STUB:
                return
            self.phase = Phase.USER
        elif self.phase is Phase.RETURNED:
            self.user_actions.returned()
        pending = recording.open(address, size)
        if self.phase is Phase.USER:
            self._user_instruction(address)
        if address in self.points.swapgs:
            self.event(Event(EventKind.SWAPGS, N_("swapgs: GS_BASE ⇄ KERNEL_GS_BASE")))
        elif address in self.points.mov_cr3:
            _, value = self.actions.mov_cr3_source(address)
            pending.cr3_written = value
            self.event(
                Event(
                    EventKind.CR3_SWITCH,
                    msg("MOV to CR3 {value:#x}: page-table root switch", value=value),
                )
            )
        action = self.actions.table.get(address)
        if action is not None:
            action(address)

    def on_code_special(self, uc: Any, address: int, size: int, data: Any) -> None:
        self.actions.table[address](address)

    def on_code_user(self, uc: Any, address: int, size: int, data: Any) -> None:
        self._after_step()
        if self.phase is Phase.RETURNED:
            self.user_actions.returned()
        self.phase = Phase.USER
        self._user_instruction(address)

    def on_syscall(self, uc: Any, data: Any) -> None:
        # Unicorn calls this hook from its syscall helper before the helper advances RIP:
        # RIP is the address of the `syscall` (0f 05, always 2 bytes).  After emu_stop it
        # has moved past it, so the address is taken here.
        rip = int(uc.reg_read(X.UC_X86_REG_RIP))
        if not long_mode_cs(int(uc.reg_read(X.UC_X86_REG_CS))):
            self.user_actions.syscall_compat(rip)
        self.syscall_hit = rip
        uc.emu_stop()

    def on_sysenter(self, uc: Any, data: Any) -> None:
        # As for SYSCALL: RIP is the SYSENTER's address here, past it after emu_stop.  The
        # code hook (SysenterDoor.at_sysenter) has already stopped the run where the CPU
        # faults or the entry is not modelled.
        if self.phase is Phase.USER:
            self.sysenter_door.hit(int(uc.reg_read(X.UC_X86_REG_RIP)))

    def on_intr(self, uc: Any, intno: int, data: Any) -> None:
        rip = int(uc.reg_read(X.UC_X86_REG_RIP))
        if intno == VEC_DB and (self.syscall_hit is not None or self.int80_hit is not None):
            # model: SYSCALL masks TF through MSR_SYSCALL_MASK, and interrupt delivery
            # clears it, so no single-step trap is taken on the way into the kernel.
            return
        if intno == VEC_DB and self.sysenter_hit is not None and self.phase is Phase.KERNEL:
            # SYSENTER leaves TF set: the entry single-steps until .Lsysenter_fix_flags, and
            # Linux's #DB handler ignores those traps (is_sysenter_singlestep), as here
            return
        if intno == VEC_INT80 and self.phase is Phase.USER:
            # Unicorn has moved RIP past the int (its exception_next_eip) before the hook
            self.int80_door.int80(rip)
            self.int80_hit = rip
            uc.emu_stop()
            return
        # Vectors past 31 only come from INT n: not the SYSCALL path, and not emulated.
        cr3, cr2 = (int(uc.reg_read(r)) for r in (X.UC_X86_REG_CR3, X.UC_X86_REG_CR2))
        self.fault = from_interrupt(self.m, intno, rip, self.cpl(), cr3, cr2)
        self.event(Event(EventKind.FAULT, self.fault.describe()))
        f = self.fault
        self.stop(msg("{fault} at CPL {cpl}, RIP {rip:#x}", fault=f.name, cpl=f.cpl, rip=rip))

    def _after_step(self) -> None:
        """The model's part of the instruction that just completed (see ``after_step``)."""
        fix, self.after_step = self.after_step, None
        if fix is not None:
            fix()

    # -- user mode ---------------------------------------------------------------------
    def _user_instruction(self, address: int) -> None:
        if self.initial is None:
            self.initial = self.rec.read_regs()
            self.rec.prev_regs = self.initial
            if self.memory is not None:
                self.memory.start()  # step 0: the launch's writes are in launch_memory
        self.user_count += 1
        if self.user_count > self.sc.step_cap:
            cap = self.sc.step_cap
            self.stop_at_cap(msg("stopped at the step cap ({cap}) in user code", cap=cap))
        self.user_actions.before(address)

    # -- the round trip ----------------------------------------------------------------
    def emu(self, start: int, count: int = 0) -> None:
        """Run Unicorn from *start*; an error a hook raised is raised here, an emulation
        error becomes the run's fault."""
        try:
            self.uc.emu_start(start, 0, count=count)
        except UcError as exc:
            if self.hook_error is None and self.fault is None:
                rip = int(self.uc.reg_read(X.UC_X86_REG_RIP))
                self.fault, said, self.stopped = fault_from_ucerror(exc, rip, self.cpl())
                self.event(Event(EventKind.FAULT, said))
        if self.hook_error is not None:
            err = self.hook_error
            raise HookError(f"error inside a Unicorn hook: {err!r}") from err

    def _phases(self) -> None:
        """User mode up to the syscall, the transition, the kernel; :class:`Stop` ends it."""
        enter_user_mode(self)
        if self.fault is not None or self.stopped:
            return
        # One past the cap: the cap's own check stops the run first.  Any count will
        # do for the vectors (see engine.machine.modelled), and this one also bounds a loop.
        self.emu(self.sc.rip, count=self.sc.step_cap + 1)
        if self.fault is not None or self.stopped:
            return
        if self.int80_hit is not None:
            self.phase = Phase.KERNEL
            door = self.int80_door
            start = door.fred_int80_delivery() if self.fred else door.int80_delivery()
            self.emu(start, count=KERNEL_COUNT)
        elif self.sysenter_hit is not None:
            self.phase = Phase.KERNEL
            self.emu(self.sysenter_door.sysenter_enter(), count=KERNEL_COUNT)
            return
        elif self.syscall_hit is None:
            self.stopped = N_("user code ended without reaching a syscall")
            return
        else:
            self._syscall_trip()
            # the signal handler's restorer made a second SYSCALL (rt_sigreturn)
            while self.again and self.syscall_hit is not None and self._ongoing():
                self.second_trip_at = len(self.rec.steps)
                self.again = False
                self._syscall_trip()
        if self.eretu_at is not None and self.fault is None and not self.stopped:
            # the ERETU model, then the CPU fetches the instruction it returned to
            rip = self.user_actions.eretu(self.eretu_at)
            self.emu(rip, count=1)

    def _ongoing(self) -> bool:
        return self.fault is None and not self.stopped

    def _syscall_trip(self) -> None:
        """The SYSCALL transition (modelled), then the kernel from the entry point."""
        self.phase = Phase.KERNEL
        self.user_actions.syscall()
        # a compat SYSCALL entered at CSTAR, which the transition put in RIP
        compat = self.door is Door.SYSCALL32
        entry = int(self.uc.reg_read(X.UC_X86_REG_RIP)) if compat else self.points.entry
        self.emu(entry, count=KERNEL_COUNT)

    def execute(self) -> Trace:
        # Stop out of a modelled step (the step cap on the SYSCALL) ends the run where
        # it stands, as one raised in a hook does.
        if self.memory is not None:
            self.m.write_observer = self.memory.direct
        try:
            with contextlib.suppress(Stop):
                self._phases()
            if self.rewind_rip is not None:
                self.uc.reg_write(X.UC_X86_REG_RIP, self.rewind_rip)
            self._after_step()
            with contextlib.suppress(Stop):  # the cap on the last step: it is recorded
                self.sink.finish()
        finally:
            self.m.write_observer = None
        final = self.rec.read_regs()
        if not self.stopped:
            self.stopped = N_("emulation ended")
        return build_trace(self, final)


def _msrs(run: Run) -> dict[str, int]:
    """The MSRs the run's door used: SYSCALL's, and a 32-bit fast door's entry MSR."""
    msrs = run.m.msrs()
    if run.door is Door.SYSCALL32:
        msrs["CSTAR"] = run.m.read_msr(MSR_CSTAR)
    elif run.door is Door.SYSENTER:
        msrs["SYSENTER_EIP"] = run.m.read_msr(MSR_IA32_SYSENTER_EIP)
    return msrs


def build_trace(run: Run, final: Regs) -> Trace:
    """The record of *run*, ended with the machine in state *final*: the first round
    trip's exit, checks and pt_regs, and any later trip's in ``trips``."""
    sc = run.sc
    # what the run did last is a second trip's when there was one; the trace leads with
    # the first
    last = run.trip(run.second_trip_at)
    first = run.first_trip or last
    later = (last,) if run.first_trip is not None else ()
    return Trace(
        scenario=sc.name,
        path=sc.path,
        kernel=sc.kernel,
        cpu=sc.machine.cpu,
        paging=sc.machine.paging,
        pti=sc.machine.pti,
        pcid=sc.machine.pcid,
        initial=run.initial or final,
        steps=tuple(run.rec.steps),
        exit=first.exit,
        failed_check=first.failed_check,
        checks=first.checks,
        fault=run.fault,
        pt_regs_at_call=first.pt_regs_at_call,
        pt_regs_after_call=first.pt_regs_after_call,
        handler=first.handler,
        output=run.output,
        final=final,
        final_cpl=final.cpl,
        msrs=_msrs(run),
        roots=run.m.roots,
        source=run.img.source,
        symbols=dict(run.img.symbols),
        stopped=run.stopped,
        events=tuple(run.all_events),
        not_removed=sc.not_removed,
        user_code=sc.code.listing if sc.code is not None else (),
        door=run.door,
        trips=later,
    )


__all__ = ["KERNEL_COUNT", "Phase", "Run", "Stop", "build_trace"]
