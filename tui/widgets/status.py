"""One-line summaries: the status line, the current line for narrow terminals, the fault."""

from __future__ import annotations

from typing import ClassVar

from textual.content import Content
from textual.reactive import reactive
from textual.style import Style
from textual.widget import Widget

from engine.trace import Fault


class StatusLine(Widget):
    """Scenario, step N / total, CPL, label and the exit path once known."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"status--scenario", "status--dim", "status--modelled"}

    scenario: reactive[str] = reactive("")
    """Title of the loaded scenario; cut with an ellipsis when space is short."""
    position: reactive[int] = reactive(0)
    """Steps executed so far."""
    total: reactive[int] = reactive(0)
    """Steps in the trace."""
    cpl: reactive[int] = reactive(3)
    """Privilege level after the last step."""
    label: reactive[str] = reactive("")
    """Nearest symbol of the last instruction."""
    exit_path: reactive[str] = reactive("—")
    """How the run returns to user mode, once decided."""
    modelled: reactive[bool] = reactive(False)
    """The last step was (partly) modelled rather than executed."""

    def render(self) -> Content:
        """The values always fit; the scenario title, then the words around them, give way.

        A title that does not fit is cut at the end with an ellipsis, never to a prefix that
        reads like another scenario's name ("what-if" of two what-if scenarios).
        """
        width = self.content_size.width
        content = self._line(self.scenario, self.exit_path)
        if content.cell_length <= width:
            return content
        rest = self._line("", self.exit_path).cell_length + len(" · ")
        room = width - rest
        if room >= 12:
            return self._line(self.scenario[: room - 1].rstrip() + "…", self.exit_path)
        for title, exit_path in (("", self.exit_path), ("", self.exit_path.split(" (", 1)[0])):
            content = self._line(title, exit_path)
            if content.cell_length <= width:
                return content
        return content

    def _line(self, title: str, exit_path: str) -> Content:
        dim = self.get_visual_style("status--dim")
        sep = (" · ", dim)
        parts: list[str | Content | tuple[str, str | Style]] = []
        if title:
            parts.extend(((title, self.get_visual_style("status--scenario")), sep))
        parts.extend(
            (
                f"step {self.position}/{self.total}",
                sep,
                f"CPL {self.cpl}",
                sep,
                self.label or "—",
                sep,
                ("exit ", dim),
                exit_path,
            )
        )
        if self.modelled:
            parts.extend((sep, ("modelled", self.get_visual_style("status--modelled"))))
        return Content.assemble(*parts)


class NowBar(Widget):
    """The focus source line and the instruction just run, for layouts without the listing."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"now--lineno", "now--instruction"}

    line_number: reactive[int | None] = reactive(None)
    """Number of the focus source line, None for user code."""
    line_text: reactive[str] = reactive("")
    """Text of the focus source line (or the user instruction)."""
    instruction: reactive[str] = reactive("")
    """The instruction just executed (or next, before the first step)."""

    def render(self) -> Content:
        number = f"{self.line_number:>4} " if self.line_number is not None else "user "
        return Content.assemble(
            (number, self.get_visual_style("now--lineno")),
            self.line_text.strip(),
            "\n",
            ("     " + self.instruction, self.get_visual_style("now--instruction")),
        )


class FaultBanner(Widget):
    """The CPU exception that ended the run, shown once the position reaches it."""

    fault: reactive[Fault | None] = reactive(None)
    """The fault, or None while it has not happened (yet)."""

    def watch_fault(self, fault: Fault | None) -> None:
        self.display = fault is not None

    def render(self) -> Content:
        if self.fault is None:
            return Content("")
        return Content("fault: " + self.fault.describe())
