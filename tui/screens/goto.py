"""Dialog asking which step to jump to."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from engine.i18n import N_, _
from tui.text import localized_bindings


class GotoDialog(ModalScreen[int | None]):
    """Returns a position in 0..end, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", N_("cancel"), tooltip=N_("Close without jumping"), id="cancel")
    ]

    def __init__(self, current: int, end: int) -> None:
        super().__init__()
        self.current = current
        self.end = end

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(
                _("Step number: 0 is before the first instruction, {end} the end.").format(
                    end=self.end
                )
            )
            yield Input(
                placeholder=f"0–{self.end}",
                type="integer",
                id="step-number",
                select_on_focus=True,
            )
            yield Label("", id="error")

    def on_mount(self) -> None:
        localized_bindings(self)
        self.query_one("#dialog").border_title = _("go to step")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        try:
            position = int(text)
        except ValueError:
            position = -1
        if not 0 <= position <= self.end:
            error = _("Enter a number from 0 to {end}.").format(end=self.end)
            self.query_one("#error", Label).update(error)
            return
        self.dismiss(position)

    def action_cancel(self) -> None:
        self.dismiss(None)
