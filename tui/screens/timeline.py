"""Positions in a recorded trace and how the navigation keys move between them.

Position ``p`` runs from 0 to ``len(trace.steps)``: 0 is the state before anything ran
(``trace.initial``); ``p = k`` is the state right after ``steps[k - 1]``, which is then the
instruction "just executed", while ``steps[k]`` (if any) runs next.  Because the whole run is
recorded, moving backwards is as cheap as moving forwards.

Nothing here imports Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.trace import CheckResult, CheckState, Fault, Regs, SourceLine, Step, Trace

#: Event kinds that make `continue` stop.  Besides the ones that decide the outcome (a check
#: verdict, the exit instruction, a fault) the stops include the three moves a learner should
#: not run past: entering the kernel, switching CR3 and swapping GS, and the C call.
STOP_KINDS = frozenset(
    {"syscall", "cr3_switch", "swapgs", "handler", "check", "sysret", "iret", "return",
     "fault", "exit"}
)  # fmt: skip


def line_key(step: Step) -> tuple[str, int]:
    """What `next` treats as one line: a source line, or a single user instruction."""
    if step.source_line is None:
        return ("user", step.rip)
    return ("source", step.source_line)


def _checks_moved(before: tuple[CheckState, ...], after: tuple[CheckState, ...]) -> bool:
    return tuple(c.result for c in before) != tuple(c.result for c in after)


@dataclass(frozen=True)
class Timeline:
    """A trace plus the positions the navigation keys can land on."""

    trace: Trace
    stops: tuple[int, ...] = field(init=False)
    fault_position: int | None = field(init=False)

    def __post_init__(self) -> None:
        stops: list[int] = []
        fault_position: int | None = None
        previous: tuple[CheckState, ...] = ()
        for k, step in enumerate(self.trace.steps, start=1):
            kinds = {event.kind for event in step.events}
            # A verdict shows up as a check changing state even if no event names it.
            if kinds & STOP_KINDS or (previous and _checks_moved(previous, step.checks)):
                stops.append(k)
            if "fault" in kinds and fault_position is None:
                fault_position = k
            previous = step.checks
        if self.trace.fault is not None and fault_position is None:
            # The faulting instruction did not complete, so it may have no step of its own:
            # the fault is then what happened after the last recorded one.
            fault_position = len(self.trace.steps)
        object.__setattr__(self, "stops", tuple(stops))
        object.__setattr__(self, "fault_position", fault_position)

    @property
    def end(self) -> int:
        return len(self.trace.steps)

    def clamp(self, position: int) -> int:
        return max(0, min(position, self.end))

    def ran(self, position: int) -> Step | None:
        """The step executed last at ``position`` (None at 0)."""
        return self.trace.steps[position - 1] if position > 0 else None

    def upcoming(self, position: int) -> Step | None:
        """The step that runs next from ``position`` (None at the end)."""
        return self.trace.steps[position] if position < self.end else None

    def focus(self, position: int) -> Step | None:
        """The step the source panels explain: the one just run, or the first one at 0."""
        return self.ran(position) or self.upcoming(position)

    def regs(self, position: int) -> Regs:
        step = self.ran(position)
        return step.regs if step is not None else self.trace.initial

    def before(self, position: int) -> Regs | None:
        """Registers before the last step, None at 0 (nothing changed yet)."""
        return self.regs(position - 1) if position > 0 else None

    def changed(self, position: int) -> frozenset[str]:
        """Registers the last step changed; at 0 nothing has changed, everything is new."""
        step = self.ran(position)
        return frozenset(step.changed) if step is not None else frozenset()

    def checks(self, position: int) -> tuple[CheckState, ...]:
        step = self.ran(position)
        if step is None and self.trace.steps:
            step = self.trace.steps[0]
        if step is None:
            return self.trace.checks
        final = self.trace.checks
        if [c.name for c in step.checks] != [c.name for c in final]:
            # a user step before the door was known (int $0x80, a 32-bit SYSCALL or
            # SYSENTER) carries the 64-bit checks: the run's own list, none reached yet
            return tuple(
                CheckState(c.name, CheckResult.REMOVED if c.result == "removed" else
                           CheckResult.NOT_REACHED)
                for c in final
            )  # fmt: skip
        return step.checks

    def source_line(self, step: Step | None) -> SourceLine | None:
        if step is None or step.source_line is None:
            return None
        index = step.source_line - 1
        return self.trace.source[index] if 0 <= index < len(self.trace.source) else None

    def fault_at(self, position: int) -> Fault | None:
        """The run's fault once the position has reached it."""
        if self.fault_position is not None and position >= self.fault_position:
            return self.trace.fault
        return None

    def handler_lines(self, step: Step) -> tuple[str, ...]:
        """What the system call did, for the step that ran it: its round trip's lines (a
        run's second trip, after a signal's handler, has its own), on the system call's
        own step of the C side (a signal's delivery, also a handler event, has none)."""
        if step.c is not None and step.c.key != "body":
            return ()
        later = [t for t in self.trace.trips if step.index >= t.first_step]
        return later[-1].handler if later else self.trace.handler

    def next_line(self, position: int) -> int:
        """Run the rest of the line that the next instruction belongs to: the whole macro
        when standing at its start, the remainder when in the middle of it."""
        if position >= self.end:
            return self.end
        key = line_key(self.trace.steps[position])
        while position < self.end and line_key(self.trace.steps[position]) == key:
            position += 1
        return position

    def next_stop(self, position: int) -> int:
        """The first stop after ``position``, or the end of the trace."""
        for stop in self.stops:
            if stop > position:
                return stop
        return self.end
