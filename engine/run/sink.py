"""Where a run's steps go: recorded one by one (the debugger, the trace) or nowhere (a sweep).

A :class:`~engine.run.roundtrip.Run` talks to one sink and never asks which mode it is in.
The recording sink opens a step before every instruction and closes it after, with the
machine read anew (engine.run.recorder); the sweep sink runs the same round trip with hooks
only where the entry code needs a model, and keeps only what the verdict needs (the check
results, the exit), which is what makes thousands of round trips a second possible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, Uc
from unicorn import x86_const as X

from engine.checks import describe, evaluate
from engine.constants import MASK64, ZF
from engine.i18n import N_, msg
from engine.kernel.common_c import CCheck
from engine.run.recorder import WORD, Pending, StepRecorder
from engine.run.syscalls import PtRegs
from engine.trace import (
    CheckResult,
    CheckState,
    CStatement,
    Door,
    Event,
    EventKind,
    ExitPath,
    StepKind,
)

if TYPE_CHECKING:
    from engine.run.roundtrip import Run

#: A C statement's place in the kernel's tree: (file, line, the statement as written).
CLine = tuple[str, int, str]
#: The values a C statement shows: (name as the C writes it, value).
Values = Sequence[tuple[str, int]]

#: Picks, from the run active when a hook fires, the method the hook calls.
Select = Callable[["Run"], Callable[..., Any]]
#: Adds a Unicorn hook: (hook type, which method to call, begin address, end address).
AddHook = Callable[[int, Select, int, int], None]


class StepSink(Protocol):
    """What a run hands its steps to."""

    def install(self, uc: Uc, add: AddHook) -> None:
        """Add the Unicorn hooks this sink needs (the run's own are already there)."""

    def finish(self) -> None:
        """Close the step that is open, if any (the step cap may stop the run here)."""

    def attach(self, event: Event) -> None:
        """Give *event* to the step it belongs to."""

    def rewrote(self, rewritten: tuple[tuple[str, int, int], ...]) -> None:
        """The pt_regs words the modelled C side changed: (slot, old, new)."""

    def assembly_check(self, current: CheckState, rflags: int) -> CheckState:
        """The new state of *current*, whose ``jne`` is about to run, with ZF in *rflags*."""

    def c_checks(
        self, address: int, results: Sequence[CCheck], sysret: bool, side: CSide | None = None
    ) -> None:
        """C conditions decided at the RET of a modelled C function at *address* (6.12's
        do_syscall_64 unless *side* names another); its verdict goes to RAX."""

    def c_statement(self, key: str, where: CLine, stack: tuple[str, ...], values: Values,
                    text: str) -> None:  # fmt: skip
        """A statement of do_syscall_64's C side begins (engine.run.c_side): what the walk
        does next belongs to it.  *where* is its (file, line, source) in the kernel's tree,
        *stack* the calls it is inside, *values* what it reads and writes, *text* the
        step's one-line form (the source when empty)."""

    def c_return(self) -> None:
        """do_syscall_64's C is done; its RET instruction runs next."""


@dataclass(frozen=True, slots=True)
class CSide:
    """The modelled C function whose conditions decide the exit: its name, its call as the
    source panel shows it, the source line of that call, and whether it returns a bool
    (6.12's, and 6.1's do_syscall_64) or 0/1 in a long (do_fast_syscall_32 before 6.12)."""

    function: str
    call: str
    line: int | None
    as_long: bool = False

    def exit_word(self, sysret: bool) -> str:
        if not sysret:
            return "IRET"
        return "SYSRET" if self.function == "do_syscall_64" else "SYSRETL"

    def returned(self, sysret: bool) -> str:
        """The event of the function's return: the value and the exit it picks."""
        if self.function == "do_syscall_64":
            return msg(
                "do_syscall_64 returns {ret}: AL = {al} → {exit}",
                ret=self.word(sysret), al=int(sysret), exit=self.exit_word(sysret),
            )  # fmt: skip
        return msg(
            "{function} returns {ret} in RAX → {exit}",
            function=self.function, ret=self.word(sysret), exit=self.exit_word(sysret),
        )  # fmt: skip

    def word(self, sysret: bool) -> str:
        if self.as_long:
            return "1" if sysret else "0"
        return "true" if sysret else "false"


def _recording(run: Run) -> Recording:
    assert run.recording is not None  # recording hooks are installed for recorded runs only
    return run.recording


class Recording:
    """Every instruction becomes a :class:`~engine.trace.Step`, read from the machine."""

    def __init__(self, run: Run, recorder: StepRecorder) -> None:
        self.run = run
        self.rec = recorder
        self.pending: Pending | None = None

    def install(self, uc: Uc, add: AddHook) -> None:
        add(UC_HOOK_CODE, lambda run: run.on_code_recorded, 1, 0)
        for w in (self.rec.task, self.rec.entry):
            lo, hi = w.phys, w.phys + (w.hi - w.lo) - 1
            add(UC_HOOK_MEM_WRITE, lambda run: _recording(run).on_mem_write, lo, hi)
            add(UC_HOOK_MEM_READ, lambda run: _recording(run).on_mem_read, lo, hi)
        if self.run.memory is not None:
            # Every store anywhere, for the memory log (physical addresses, as above).
            add(UC_HOOK_MEM_WRITE, lambda run: _recording(run).on_mem_log, 1, 0)

    # The memory hooks say which words are stack, never their values (engine.run.recorder).
    def on_mem_write(
        self, uc: Any, access: int, address: int, size: int, value: int, data: Any
    ) -> None:
        a = self.rec.virt(address) & ~(WORD - 1)
        self.rec.wrote(a)
        if self.pending is not None:
            self.pending.writes.append(a)

    def on_mem_log(
        self, uc: Any, access: int, address: int, size: int, value: int, data: Any
    ) -> None:
        memory = self.run.memory
        if memory is not None:
            memory.stored(address, size, value)

    def on_mem_read(
        self, uc: Any, access: int, address: int, size: int, value: int, data: Any
    ) -> None:
        if self.pending is not None:
            self.pending.reads.append(self.rec.virt(address) & ~(WORD - 1))

    def open(self, address: int, size: int) -> Pending:
        self.pending = self.rec.begin(address, size)
        return self.pending

    def finish(self) -> None:
        p = self.pending
        if p is None:
            return
        self.pending = None
        run = self.run
        if run.fred:
            path = ExitPath.ERETU
        elif run.door is Door.INT80:
            path = ExitPath.IRET  # no SYSRET decision after int $0x80
        else:
            path = ExitPath.IRET if run.failed_check else ExitPath.SYSRET
        self.rec.finish(p, tuple(run.checks), path, run.door)
        if len(self.rec.steps) >= run.sc.step_cap:
            run.stop_at_cap(msg("stopped at the step cap ({cap})", cap=run.sc.step_cap))

    def attach(self, event: Event) -> None:
        if self.pending is not None:
            self.pending.events.append(event)
            if event.modelled:
                self.pending.modelled = True
        elif self.rec.steps:
            self.rec.amend_last(event)

    def rewrote(self, rewritten: tuple[tuple[str, int, int], ...]) -> None:
        if self.pending is not None:
            self.pending.rewritten = rewritten

    def assembly_check(self, current: CheckState, rflags: int) -> CheckState:
        name = current.name
        r = self.rec.read_regs()
        state = evaluate(name, rflags, r, PtRegs(self.run.m, r.cr3, r.rsp).read())
        verdict = (
            N_("FAIL → IRET via swapgs_restore_regs_and_return_to_usermode")
            if state.result is CheckResult.FAIL
            else N_("pass")
        )
        text = msg(
            "{check}: {verdict} ({detail})",
            check=str(name),
            verdict=verdict,
            detail=describe(state),
        )
        self.run.event(Event(EventKind.CHECK, text))
        return state

    def c_checks(
        self, address: int, results: Sequence[CCheck], sysret: bool, side: CSide | None = None
    ) -> None:
        """The C part becomes steps of its own, none of them an executed instruction.

        The system call, one step per condition the compiled code tests, and the return of
        the bool in AL; then the real RET runs.
        """
        run = self.run
        side = side or CSide("do_syscall_64", run.kernel.c_call, run.points.call_line)
        ret = side.word(sysret)
        body = self.pending
        if body is not None:
            if body.kind is not StepKind.C_STATEMENT:
                # The step that ran the system call is C, not the RET at this address (a
                # 32-bit door's C side; do_syscall_64's statements are steps already).
                body.code, body.text = b"", "(C) the system call and exit work"
                body.kind = StepKind.C_CALL
                body.source = f"{side.call}: the system call   /* C code: modelled */"
                body.modelled = True
            self.finish()
            for c in results:
                verdict = (
                    msg("FAIL → return {ret} (IRET)", ret=side.word(False))
                    if not c.passed
                    else N_("pass")
                )
                self.pending = self._c_step(
                    side, address, f"(C) {c.condition}", c.source, StepKind.C_CONDITION
                )
                run.decide(c)
                run.event(
                    Event(
                        EventKind.CHECK,
                        msg(
                            "{check}: {verdict} ({detail})",
                            check=c.name,
                            verdict=verdict,
                            detail=describe(c.state),
                        ),
                        modelled=True,
                    )
                )
                self.finish()
            self.pending = self._c_step(
                side,
                address,
                f"(C) return {ret}",
                f"return {ret};   /* {side.exit_word(sysret)} */",
                StepKind.C_RETURN_TRUE if sysret else StepKind.C_RETURN_FALSE,
            )
        else:
            for c in results:
                run.decide(c)
        run.uc.reg_write(X.UC_X86_REG_RAX, int(sysret))
        if run.c_frame is not None:
            run.c_frame.restore_rsp()  # the return pops the frame
        # the verdict of the C checks, as the value returned
        run.event(Event(EventKind.CHECK, side.returned(sysret), modelled=True))
        self.finish()
        self.pending = self.rec.begin(address, 1)

    def c_statement(self, key: str, where: CLine, stack: tuple[str, ...], values: Values,
                    text: str) -> None:  # fmt: skip
        file, line, source = where
        st = CStatement(key, file, line, stack, tuple((n, v & MASK64) for n, v in values))
        text = text or source
        p = self.pending
        run = self.run
        if p is not None and p.kind is StepKind.INSTRUCTION:
            # the stub's RET, where the C side is modelled: its first statement, not a RET
            p.code, p.kind, p.modelled = b"", StepKind.C_STATEMENT, True
        else:
            self.finish()
            p = Pending(
                run.points.do_sys, b"", "", run.points.call_line, "", None, "", 0,
                modelled=True, kind=StepKind.C_STATEMENT,
            )  # fmt: skip
            self.pending = p
        p.text, p.source, p.label, p.c = f"(C) {text}", source, st.function, st

    def c_return(self) -> None:
        self.finish()
        self.pending = self.rec.begin(self.run.points.do_sys, 1)

    def _c_step(self, side: CSide, address: int, text: str, source: str, kind: StepKind) -> Pending:
        return Pending(
            address, b"", text, side.line, source, None, side.function, 0, modelled=True, kind=kind
        )


class Sweep:
    """No steps: hooks only at the addresses the entry code models, and in user space."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def install(self, uc: Uc, add: AddHook) -> None:
        run = self.run
        for a in run.actions.table:
            add(UC_HOOK_CODE, lambda r: r.on_code_special, a, a)
        # Any instruction in user space: the user's code, and the return to it.
        add(UC_HOOK_CODE, lambda r: r.on_code_user, 0, run.user_top - 1)

    def finish(self) -> None:
        pass

    def attach(self, event: Event) -> None:
        pass

    def rewrote(self, rewritten: tuple[tuple[str, int, int], ...]) -> None:
        pass

    def assembly_check(self, current: CheckState, rflags: int) -> CheckState:
        # every check branches with jne/jnz: taken (FAIL) when ZF is clear
        return CheckState(current.name, CheckResult.PASS if rflags & ZF else CheckResult.FAIL)

    def c_checks(
        self, address: int, results: Sequence[CCheck], sysret: bool, side: CSide | None = None
    ) -> None:
        for c in results:
            self.run.decide(c)
        self.run.uc.reg_write(X.UC_X86_REG_RAX, int(sysret))
        if self.run.c_frame is not None:
            self.run.c_frame.restore_rsp()

    def c_statement(self, key: str, where: CLine, stack: tuple[str, ...], values: Values,
                    text: str) -> None:  # fmt: skip
        pass  # no steps: only what the statement does to the machine counts

    def c_return(self) -> None:
        pass


__all__ = ["Recording", "StepSink", "Sweep"]
