"""The entry_64.S listing: every source line, the one just executed highlighted.

Built on the Line API (``render_line``) so that a step repaints only the two rows whose
marker changed, however long the listing is.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.cells import cell_len
from textual.cache import LRUCache
from textual.content import Content
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.style import Style

from engine.i18n import N_, msg, tr
from engine.trace import Trace
from engine.views.header import Paragraph, line_of, paragraph

RowKind = Literal["heading", "user", "source"]

_COMMENT_GAP = re.compile(r"\s{3,}/\*")


def compact_source(text: str) -> str:
    """Narrow a source line for the panel: a 4-column indent instead of a tab, and the
    alignment run before a trailing comment shortened, so the instruction itself fits."""
    text = text.expandtabs(8)
    if text.startswith("        "):
        text = text[4:]
    if not text.lstrip().startswith("/*"):
        text = _COMMENT_GAP.sub("  /*", text)
    return text.rstrip()


@dataclass(frozen=True, slots=True)
class ListingRow:
    """One row of the listing: a section heading, a user instruction or a source line."""

    kind: RowKind
    text: str
    number: int | None = None  # line number in the entry_64.S rendition
    is_label: bool = False
    prose: Paragraph | None = None  # the line is in the project's opening paragraph


@dataclass(frozen=True, slots=True)
class Listing:
    rows: tuple[ListingRow, ...]
    row_of_step: tuple[int, ...]  # listing row of each step's instruction

    @classmethod
    def from_trace(cls, trace: Trace) -> Listing:
        """Lay out the rows every step can point at.

        The user program (the scenario's code as written, then anything else the run
        executed at CPL 3, by address) comes first, then entry_64.S, then kernel code
        outside it (the modelled C handler), grouped by symbol, so that every step has a
        row to highlight.
        """
        user: dict[int, str] = {}
        other: dict[str, dict[int, str]] = {}
        for step in trace.steps:
            if step.source_line is None:
                if step.cpl == 3:
                    user.setdefault(step.rip, step.text or step.source)
                else:
                    other.setdefault(step.label, {}).setdefault(step.rip, step.text)
        rows: list[ListingRow] = [ListingRow("heading", N_("user program · CPL 3"))]
        row_of_rip: dict[int, int] = {}
        # The scenario's own lines, as written (labels, `jmp start`, data as its bytes), so a
        # step at CPL 3 lights the line the user wrote, not Capstone's rewrite of it.
        spans: list[tuple[int, int, int]] = []  # (first address, end, row) of code and data
        for user_line in trace.user_code:
            if user_line.kind == "label":
                rows.append(
                    ListingRow("user", f"{user_line.address:016x}  {user_line.text}", is_label=True)
                )
                continue
            spans.append(
                (user_line.address, user_line.address + max(len(user_line.code), 1), len(rows))
            )
            text = user_line.text
            if user_line.kind == "data":
                shown = user_line.code[:8].hex(" ") + (" …" if len(user_line.code) > 8 else "")
                text = f"{text}   /* {shown} */"
            rows.append(ListingRow("user", f"{user_line.address:016x}      {text}"))
        spans.sort()
        starts = [span[0] for span in spans]
        outside: dict[int, str] = {}
        for address, text in user.items():
            k = bisect.bisect_right(starts, address) - 1
            if k >= 0 and address < spans[k][1]:
                row_of_rip[address] = spans[k][2]
            else:  # past the program (or a trace without its user code): what ran there
                outside[address] = text
        for address in sorted(outside):
            row_of_rip[address] = len(rows)
            rows.append(ListingRow("user", f"{address:016x}  {outside[address]}"))
        rows.append(ListingRow("heading", f"arch/x86/entry/entry_64.S · {trace.kernel}"))
        first_source = len(rows)
        opening = paragraph(trace.source)
        for line in trace.source:
            rows.append(
                ListingRow(
                    "source",
                    compact_source(line.text),
                    number=line.number,
                    is_label=bool(line.label),
                    prose=opening
                    if opening is not None
                    and opening.first <= line.number < opening.first + opening.count
                    else None,
                )
            )
        for label, instructions in other.items():
            rows.append(ListingRow("heading", msg("{label} · outside entry_64.S", label=label)))
            for address in sorted(instructions):
                row_of_rip[address] = len(rows)
                rows.append(ListingRow("user", f"{address:016x}  {instructions[address]}"))
        row_of_step = tuple(
            row_of_rip[step.rip]
            if step.source_line is None
            else first_source + step.source_line - 1
            for step in trace.steps
        )
        return cls(tuple(rows), row_of_step)


class SourceListing(ScrollView, can_focus=True):
    """Source rows with a gutter: ``●`` the line just executed, ``▶`` the next one."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "source--heading",
        "source--lineno",
        "source--label",
        "source--comment",
        "source--ran",
        "source--ran-marker",
        "source--next-marker",
    }

    ran_row: reactive[int | None] = reactive(None, repaint=False)
    """Row of the instruction executed by the last step (None before the first step)."""
    next_row: reactive[int | None] = reactive(None, repaint=False)
    """Row of the instruction the next step will execute (None at the end)."""

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._rows: tuple[ListingRow, ...] = ()
        self._cache: LRUCache[tuple[int, bool, bool, int, int], Strip] = LRUCache(512)

    @property
    def rows(self) -> tuple[ListingRow, ...]:
        return self._rows

    def set_rows(self, rows: tuple[ListingRow, ...]) -> None:
        """Replace the listing (a new scenario was loaded)."""
        self._rows = rows
        self._cache.clear()
        width = max((cell_len(self._row_text(row)) for row in rows), default=0) + 8
        self.virtual_size = Size(width, len(rows))
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def _watch_ran_row(self, old: int | None, new: int | None) -> None:
        self._refresh_rows(old, new)
        if new is not None:
            self._reveal(new)

    def _watch_next_row(self, old: int | None, new: int | None) -> None:
        self._refresh_rows(old, new)
        if self.ran_row is None and new is not None:
            self._reveal(new)

    def on_resize(self) -> None:
        # A new size moves the window: bring the current line back into it (centred), or
        # after 160x50 → 60x20 → 80x24 it would sit outside until the next step.
        self._cache.clear()
        row = self.ran_row if self.ran_row is not None else self.next_row
        if row is not None:
            self.call_after_refresh(self._reveal, row)

    def _refresh_rows(self, *rows: int | None) -> None:
        for row in rows:
            if row is not None:
                self.refresh_line(row)

    def _reveal(self, row: int) -> None:
        """Scroll only when the row left the window, and then centre it, so that stepping
        through a macro does not scroll the listing on every key press."""
        top = round(self.scroll_y)
        height = self.scrollable_content_region.height
        if height and top + 1 <= row < top + height - 1:
            return
        self.scroll_to_region(
            Region(0, row, 1, 1), animate=False, center=True, immediate=True, x_axis=False
        )

    @staticmethod
    def _row_text(row: ListingRow) -> str:
        if row.prose is not None and row.number is not None:
            # the project's words, in the UI's language (the kernel's stay as written)
            return (line_of(row.prose, row.number) or row.text).expandtabs(8)
        return row.text.expandtabs(8)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if index >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        ran = index == self.ran_row
        upcoming = index == self.next_row
        key = (index, ran, upcoming, scroll_x, width)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._render_row(self._rows[index], ran, upcoming, scroll_x, width)
            self._cache[key] = strip
        return strip

    def _render_row(
        self, row: ListingRow, ran: bool, upcoming: bool, scroll_x: int, width: int
    ) -> Strip:
        base = self.get_visual_style("source--ran") if ran else self.get_visual_style()
        if row.kind == "heading":
            content = Content.assemble(
                ("── " + tr(row.text) + " ", self.get_visual_style("source--heading"))
            )
            content = content.extend_right(max(0, width + scroll_x - content.cell_length), "─")
        else:
            if upcoming:
                marker: tuple[str, Style] = ("▶ ", self.get_visual_style("source--next-marker"))
            elif ran:
                marker = ("● ", self.get_visual_style("source--ran-marker"))
            else:
                marker = ("  ", base)
            number = f"{row.number:>4} " if row.number is not None else "     "
            text = self._row_text(row)
            code, sep, comment = text.partition("/*")
            text_style = (
                self.get_visual_style("source--ran", "source--label")
                if ran and row.is_label
                else self.get_visual_style("source--label")
                if row.is_label
                else base
            )
            comment_style = (
                self.get_visual_style("source--ran", "source--comment")
                if ran
                else self.get_visual_style("source--comment")
            )
            lineno_style = (
                self.get_visual_style("source--ran", "source--lineno")
                if ran
                else self.get_visual_style("source--lineno")
            )
            content = Content.assemble(
                marker,
                (number, lineno_style),
                (code, text_style),
                (sep + comment, comment_style),
            )
            pad = max(0, width + scroll_x - content.cell_length)
            content = Content.assemble(content, (" " * pad, base))
        if row.kind != "heading" and len(content.plain.rstrip()) > scroll_x + width and width > 1:
            # Cut rows end in "…", so a cut is never mistaken for the end of the line; the
            # whole line is in the expansion panel, and ← → scroll the listing.
            content = content[: scroll_x + width - 1] + Content.assemble(
                ("…", self.get_visual_style("source--comment"))
            )
        segments = list(content.render_segments(self.get_visual_style()))
        strip = Strip(segments, content.cell_length)
        return strip.crop(scroll_x, scroll_x + width).simplify()
