"""Dialog asking which step to jump to."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class GotoDialog(ModalScreen[int | None]):
    """Returns a position in 0..end, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel", tooltip="Close without jumping", id="cancel")
    ]

    def __init__(self, current: int, end: int) -> None:
        super().__init__()
        self.current = current
        self.end = end

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Step number: 0 is before the first instruction, {self.end} the end.")
            yield Input(
                placeholder=f"0–{self.end}",
                type="integer",
                id="step-number",
                select_on_focus=True,
            )
            yield Label("", id="error")

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = "go to step"

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        try:
            position = int(text)
        except ValueError:
            position = -1
        if not 0 <= position <= self.end:
            self.query_one("#error", Label).update(f"Enter a number from 0 to {self.end}.")
            return
        self.dismiss(position)

    def action_cancel(self) -> None:
        self.dismiss(None)
