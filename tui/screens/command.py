"""The ``:`` prompt: x, walk and info at the step on screen, answered in the dialog.

The machine behind the answers is built in this process the first time a command runs
(the scenario run again with its memory log, engine.inspect.machine_at; runs are
deterministic, and its steps are checked against the trace on screen).  Up and down walk
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
from engine.trace import Trace
from tui.text import localized_bindings

if TYPE_CHECKING:
    from engine.inspect.machine_at import MachineAt

#: Lines typed this session, newest last (shared by every prompt the app opens).
HISTORY: list[str] = []
MAX_HISTORY = 200


def answer_lines(at: MachineAt, step: int, line: str) -> list[str]:
    """The text of the answer to *line* at *step*, or its one-line error."""
    from engine.inspect.command import run_command
    from engine.inspect.examine import Examination
    from engine.inspect.pagewalk import PageWalkReport
    from engine.views.inspect import info_lines, walk_lines, x_lines

    try:
        result = run_command(at, step, line)
    except EngineError as exc:
        return [escape(str(exc))]
    if isinstance(result, Examination):
        return x_lines(result)
    if isinstance(result, PageWalkReport):
        return walk_lines(result)
    return info_lines(result)


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

    def __init__(self, trace: Trace, source: bytes | None, step: int) -> None:
        super().__init__()
        self.trace = trace
        self.source = source
        self.step = step
        self._at: MachineAt | None = None
        self._back = len(HISTORY)

    def compose(self) -> ComposeResult:
        with Vertical(id="command"):
            yield Label(
                _("x/N[gwhbis] ADDR [--root user|kernel|live], walk ADDR, info gdt|tss|idt|cr|msr")
            )
            yield Input(placeholder="walk $rsp", id="command-line")
            with VerticalScroll(id="answer-scroll"):
                yield Static("", id="answer")

    def on_mount(self) -> None:
        localized_bindings(self)
        self.query_one("#command").border_title = _("step {step}").format(step=self.step)

    def machine(self) -> MachineAt:
        if self._at is None:
            from engine.errors import ScenarioError
            from engine.inspect.machine_at import InspectError, MachineAt
            from engine.scenario.parse import parse_scenario

            if self.source is None or self.trace.path is None:
                raise InspectError("this trace has no scenario file to run again")
            try:
                text = self.source.decode("utf-8")
            except UnicodeDecodeError:
                raise ScenarioError(self.trace.path, None, "not UTF-8 text") from None
            at = MachineAt.run(parse_scenario(text, self.trace.path))
            if at.trace.steps != self.trace.steps:
                raise InspectError("running the scenario again gave another run")
            self._at = at
        return self._at

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        line = event.value.strip()
        if not line:
            return
        if not HISTORY or HISTORY[-1] != line:
            HISTORY.append(line)
            del HISTORY[:-MAX_HISTORY]
        self._back = len(HISTORY)
        try:
            lines = answer_lines(self.machine(), self.step, line)
        except EngineError as exc:
            lines = [escape(str(exc))]
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
