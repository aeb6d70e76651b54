"""``syscall-tui compare SCENARIO --against TRACE`` in a terminal: the real kernel's
instructions beside the engine's, one row each, the cursor on the first place they part.

Every text from the trace file is shown as plain text (rich.text.Text, control characters
escaped): the file is untrusted and no part of it is read as markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.compare.real import Against
from engine.compare.render import against_lines, printable
from engine.i18n import N_, _, tr


class AgainstScreen(Screen[None]):
    """The engine's run beside a real trace of it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_difference", N_("next ≠")),
        Binding("p", "previous_difference", N_("previous ≠")),
        Binding("q", "app.quit", N_("quit")),
    ]

    def __init__(self, report: Against) -> None:
        super().__init__()
        self.report = report
        self.parts = [r.index for r in report.rows if not r.same]

    def compose(self) -> ComposeResult:
        lines = [tr(line) for line in against_lines(self.report, summary=True)]
        yield Static(Text(lines[0]), id="against-machine")
        yield DataTable(id="against-rows", cursor_type="row", zebra_stripes=False)
        yield Static(Text("\n".join(lines[1:])), id="against-verdict")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "", _("at (real)"), _("real instruction"), _("engine instruction"))
        for r in self.report.rows:
            style = "" if r.same else "bold"
            table.add_row(
                str(r.index),
                "=" if r.same else "≠",
                Text(printable(r.real_at)),
                # gdb's trailing "# 0x..." (the address it resolved) is left out: the
                # column would push the engine's off the screen
                Text(printable(r.real.split("#")[0].rstrip()) if r.real else "-", style=style),
                Text(r.engine or "-", style=style),
                key=str(r.index),
            )
        if self.parts:
            table.move_cursor(row=self.parts[0])
        table.focus()

    def _go(self, forward: bool) -> None:
        table = self.query_one(DataTable)
        here = table.cursor_row
        later = [i for i in self.parts if (i > here if forward else i < here)]
        if later:
            table.move_cursor(row=later[0] if forward else later[-1])

    def action_next_difference(self) -> None:
        self._go(forward=True)

    def action_previous_difference(self) -> None:
        self._go(forward=False)
