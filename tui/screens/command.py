"""The ``:`` prompt: x, walk, info, break, watch and delete at the step on screen.

The machine behind the answers is the debugger's (built in this process the first time a
command runs: the scenario run again with its memory log, engine.inspect.machine_at); the
dialog answers in its own box and tells the debugger what ran (messages up, through the
callback it was given): x and walk pin the memory and walk panels, break, watch and delete
give the debugger its new points.  Up and down walk
the history, Tab completes the last word.  Every answer is plain text (engine.views.inspect),
shown as Text, never markup; an error is one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine.errors import EngineError, escape
from engine.i18n import N_, _
from tui.text import localized_bindings

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.inspect.breakpoints import Points
    from engine.inspect.command import Answer
    from engine.inspect.machine_at import MachineAt

#: Lines typed this session, newest last (shared by every prompt the app opens).
HISTORY: list[str] = []
MAX_HISTORY = 200


def answer_text(result: Answer) -> list[str]:
    """The text of one answer."""
    from engine.inspect.command import HideAnswer, PointsAnswer
    from engine.inspect.examine import Examination
    from engine.inspect.pagewalk import PageWalkReport
    from engine.views.inspect import info_lines, points_lines, walk_lines, x_lines

    if isinstance(result, PointsAnswer):
        return points_lines(result)
    if isinstance(result, HideAnswer):
        return ["hidden: " + ", ".join(result.panels)]
    if isinstance(result, Examination):
        return x_lines(result)
    if isinstance(result, PageWalkReport):
        return walk_lines(result)
    return info_lines(result)


def answer_lines(at: MachineAt, step: int, line: str) -> list[str]:
    """The text of the answer to *line* at *step*, or its one-line error."""
    from engine.inspect.command import run_command

    try:
        return answer_text(run_command(at, step, line))
    except EngineError as exc:
        return [escape(str(exc))]


class CommandDialog(ModalScreen[None]):
    """A prompt over the debugger; Escape closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "cancel", N_("cancel"), tooltip=N_("Close the command line"), id="cancel"
        ),
        Binding("up", "history(-1)", show=False),
        Binding("down", "history(1)", show=False),
        Binding("tab", "complete", show=False, priority=True),
    ]

    def __init__(
        self,
        step: int,
        machine: Callable[[], MachineAt],
        points: Callable[[], Points],
        answered: Callable[[str, Answer], None],
    ) -> None:
        super().__init__()
        self.step = step
        self.machine = machine
        self._points = points
        self._answered = answered
        self._back = len(HISTORY)

    def compose(self) -> ComposeResult:
        with Vertical(id="command"):
            yield Label(
                _(
                    "x/N[gwhbis] ADDR [--root user|kernel|live], walk ADDR, "
                    "info gdt|tss|idt|cr|msr|break, hide [memory|walk]"
                ),
                markup=False,  # the brackets are the syntax's, not markup
            )
            yield Label(
                _("break LABEL|LINE|*ADDR [if COND], watch ADDR|SLOT, delete [N]"), markup=False
            )
            yield Input(placeholder="walk $rsp", id="command-line")
            with VerticalScroll(id="answer-scroll"):
                yield Static("", id="answer")

    def on_mount(self) -> None:
        localized_bindings(self)
        self.query_one("#command").border_title = _("step {step}").format(step=self.step)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        line = event.value.strip()
        if not line:
            return
        if not HISTORY or HISTORY[-1] != line:
            HISTORY.append(line)
            del HISTORY[:-MAX_HISTORY]
        self._back = len(HISTORY)
        from engine.inspect.command import run_command

        try:
            answer = run_command(self.machine(), self.step, line, self._points())
            lines = answer_text(answer)
        except EngineError as exc:
            lines = [escape(str(exc))]
        else:
            self._answered(line, answer)
            event.input.value = ""  # as a prompt does: the next command starts empty
        self.query_one("#answer", Static).update(Text("\n".join(lines)))

    def action_history(self, delta: int) -> None:
        if not HISTORY:
            return
        self._back = max(0, min(len(HISTORY), self._back + delta))
        entry = HISTORY[self._back] if self._back < len(HISTORY) else ""
        box = self.query_one("#command-line", Input)
        box.value = entry
        box.cursor_position = len(entry)

    def action_complete(self) -> None:
        from engine.inspect.command import completions

        box = self.query_one("#command-line", Input)
        try:
            options = completions(self.machine(), box.value)
        except EngineError as exc:
            self.query_one("#answer", Static).update(Text(escape(str(exc))))
            return
        if not options:
            return
        words = box.value.split()
        last = "" if box.value.endswith(" ") or not words else words[-1]
        common = options[0]
        for o in options[1:]:
            while not o.startswith(common):
                common = common[:-1]
        box.value = box.value[: len(box.value) - len(last)] + common
        box.cursor_position = len(box.value)
        if len(options) > 1:
            self.query_one("#answer", Static).update(Text("  ".join(options[:60])))

    def action_cancel(self) -> None:
        self.dismiss(None)


__all__ = ["CommandDialog", "answer_lines"]
