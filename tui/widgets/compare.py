"""Panels of the compare view: the two runs' steps aligned row by row, the values that
differ at the current row, the runs and where they part.

They render what the screen pushes down (a :class:`~engine.compare.Comparison` and a
position in its rows); the engine did the aligning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.content import Content
from textual.reactive import reactive
from textual.style import Style
from textual.widget import Widget

from engine.compare.diff import AlignedRow, Comparison, Difference, Outcome, ValuePair
from engine.compare.render import LANDMARK_TITLES, landmarks, printable
from engine.constants import PT_REGS_FIELDS
from engine.i18n import N_, _, pgettext
from engine.trace import Step, Trace
from engine.views.decode import hex64
from tui.text import pad
from tui.widgets.panel import LinePanel

#: The middle column of a row: how its two sides relate.
ROW_GLYPHS = {"same": "=", "similar": "~", "left": "−", "right": "+"}
VALUES_DIFFER = "≠"
FIRST_MARK = "◆"
PARTS_MARK = "◇"
DECISION_MARK = "◈"
LANDMARK_MARKS = {"first": FIRST_MARK, "paths": PARTS_MARK, "decision": DECISION_MARK}
LEGEND = N_(
    "● ran ▶ next ◆ first difference ◇ paths part ◈ decisions differ · "
    "= same ~ similar − only A + only B ≠ values"
)


def row_glyph(row: AlignedRow) -> str:
    if row.kind == "same" and row.aspects:
        return VALUES_DIFFER
    return ROW_GLYPHS[row.kind]


@dataclass(frozen=True, slots=True)
class AlignedView:
    """Where the reader is in the aligned rows."""

    position: int  # 0: before the first row; k: right after row k - 1


class AlignedSteps(LinePanel):
    """Both runs' steps side by side, corresponding steps on one row, gaps where one run
    has steps the other lacks."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "aligned--ran",
        "aligned--next-marker",
        "aligned--ran-marker",
        "aligned--number",
        "aligned--source",
        "aligned--gap",
        "aligned--path",
        "aligned--values",
        "aligned--mark",
    }

    view: reactive[AlignedView | None] = reactive(None, repaint=False)
    """The position in the rows."""

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.comparison: Comparison | None = None
        self._marks: dict[int, str] = {}
        self._cache: dict[tuple[int, int, str], Content] = {}
        self._sources: tuple[tuple[bool, bool], ...] = ()
        self._built_width = -1

    def set_comparison(self, comparison: Comparison) -> None:
        """New runs to show (before a view is set)."""
        self.comparison = comparison
        self._cache.clear()
        self._built_width = -1
        self._marks = {d.position: LANDMARK_MARKS[names[0]] for names, d in landmarks(comparison)}
        # Show a step's source text only where its line starts, as a listing does.
        shown: list[tuple[bool, bool]] = []
        last: list[tuple[int | None, str] | None] = [None, None]
        for row in comparison.rows:
            flags = []
            for side, (trace, index) in enumerate(
                ((comparison.left, row.left), (comparison.right, row.right))
            ):
                if index is None:
                    flags.append(False)
                    continue
                step = trace.steps[index]
                key = (step.source_line, step.source) if step.source_line is not None else None
                flags.append(key is not None and key != last[side])
                last[side] = key
            shown.append((flags[0], flags[1]))
        self._sources = tuple(shown)
        self.min_lines = len(comparison.rows)

    def watch_view(self, old: AlignedView | None, new: AlignedView | None) -> None:
        width = self.scrollable_content_region.width or self.size.width
        if old is not None and new is not None and self._built_width == width and self._lines:
            # A move changes the marks of at most four rows: redo those, not thousands.
            for k in {old.position - 1, old.position, new.position - 1, new.position}:
                if 0 <= k < len(self._lines):
                    self._lines[k] = self._line(k, width)
                    self._strips.pop(k, None)
                    self.refresh_line(k)
        else:
            self.rebuild()
        if new is not None:
            self.keep_in_view(max(0, new.position - 1))

    def on_resize(self, event: object) -> None:
        self._cache.clear()
        super().on_resize(event)  # type: ignore[arg-type]

    def build(self, width: int) -> list[Content]:
        self._built_width = width
        if self.comparison is None or self.view is None:
            return []
        return [self._line(k, width) for k in range(len(self.comparison.rows))]

    def _line(self, k: int, width: int) -> Content:
        c = self.comparison
        assert c is not None and self.view is not None
        position = self.view.position
        state = "ran" if k == position - 1 else "next" if k == position else ""
        mark = self._marks.get(k + 1, " ")
        key = (k, width, state + mark)
        line = self._cache.get(key)
        if line is None:
            line = self._cache[key] = self._row(c, k, c.rows[k], state, mark, width)
        return line

    def _row(
        self, c: Comparison, k: int, row: AlignedRow, state: str, mark: str, width: int
    ) -> Content:
        half = max(16, (width - 6) // 2)
        ran = state == "ran"
        base = self.style("aligned--ran") if ran else self.style()
        if state == "next":
            marker: tuple[str, Style] = ("▶", self.style("aligned--next-marker"))
        elif ran:
            marker = ("●", self.style("aligned--ran-marker"))
        else:
            marker = (" ", base)
        if row.kind != "same":
            glyph_style = self.style("aligned--path")
        elif row.aspects:
            glyph_style = self.style("aligned--values")
        else:
            glyph_style = self.style("aligned--number")
        show_a, show_b = self._sources[k] if k < len(self._sources) else (True, True)
        own_a, own_b = c.deciding
        return Content.assemble(
            marker,
            (mark, self.style("aligned--mark")),
            self._side(c.left, row.left, half, show_a, ran, own_a),
            (f" {row_glyph(row)} ", glyph_style),
            self._side(c.right, row.right, half, show_b, ran, own_b),
        )

    def _side(
        self,
        trace: Trace,
        index: int | None,
        width: int,
        source: bool,
        ran: bool,
        deciding: int | None = None,
    ) -> Content:
        if index is None:
            gap = "    ·".ljust(width)
            return Content.assemble((gap, self.style("aligned--gap")))
        step = trace.steps[index]
        # The run's own deciding step carries the decision mark after its number.
        number = f"{step.number:>4}" + (DECISION_MARK if index == deciding else " ")
        text = step.text
        insn_width = min(30, max(12, width - len(number) - 8))
        insn = text if len(text) <= insn_width else text[: insn_width - 1] + "…"
        rest = width - len(number) - insn_width - 1
        src = " ".join(step.source.split()) if source and step.source_line is not None else ""
        if len(src) > rest:
            src = src[: max(0, rest - 1)] + "…" if rest > 1 else ""
        base = self.style("aligned--ran") if ran else self.style()
        return Content.assemble(
            (number, self.style("aligned--mark" if index == deciding else "aligned--number")),
            (insn.ljust(insn_width) + " ", base),
            (src.ljust(max(0, rest)), self.style("aligned--source")),
        )


@dataclass(frozen=True, slots=True)
class ValuesView:
    """The values to put side by side at the current position."""

    registers: tuple[ValuePair, ...]  # registers that differ
    left_pt_regs: dict[str, int]
    right_pt_regs: dict[str, int]


class SideBySide(LinePanel):
    """Registers that differ, then every pt_regs slot written so far, A beside B."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "values--heading",
        "values--name",
        "values--differs",
        "values--missing",
    }

    view: reactive[ValuesView | None] = reactive(None, repaint=False)
    """The values of both runs at the current row."""

    _first_differing_slot: int | None = None
    """The row of the first pt_regs slot whose values differ, as the last build laid out."""

    def watch_view(self) -> None:
        self.rebuild()
        # The differing registers come first; a differing pt_regs slot can sit below the
        # equal ones, out of a short panel's view: bring the first one in (only a pt_regs
        # slot: a register that differs all run long would pull the view back up each step).
        if self._first_differing_slot is not None:
            self.keep_in_view(self._first_differing_slot)

    def build(self, width: int) -> list[Content]:
        view = self.view
        if view is None:
            return []
        self._first_differing_slot = None
        heading = self.style("values--heading")
        name_style = self.style("values--name")
        differs = self.style("values--differs")
        missing = self.style("values--missing")
        lines = [Content.assemble((pad(_("at row"), 8) + f" {'A':<16}   {'B':<16}", heading))]
        if view.registers:
            lines.append(Content.assemble((_("registers that differ"), heading)))
            for pair in view.registers:
                lines.append(
                    self._pair(pair.name, pair.left, pair.right, name_style, differs, missing)
                )
        else:
            lines.append(Content.assemble((_("registers: all equal"), heading)))
        a, b = view.left_pt_regs, view.right_pt_regs
        if a or b:
            lines.append(Content.assemble(("pt_regs", heading)))
            for field in PT_REGS_FIELDS:
                if field in a or field in b:
                    x, y = a.get(field), b.get(field)
                    if x != y and self._first_differing_slot is None:
                        self._first_differing_slot = len(lines)
                    style = differs if x != y else self.style()
                    lines.append(self._pair(field, x, y, name_style, style, missing))
        else:
            lines.append(Content.assemble((_("pt_regs: nothing pushed yet"), heading)))
        return lines

    @staticmethod
    def _pair(
        name: str, x: int | None, y: int | None, name_style: Style, style: Style, missing: Style
    ) -> Content:
        def value(v: int | None) -> tuple[str, Style]:
            return ("—".ljust(16), missing) if v is None else (hex64(v), style)

        return Content.assemble(
            (f"{name:<8} ", name_style), value(x), (" ≠ " if x != y else "   ", style), value(y)
        )


def pt_regs_of(step: Step | None) -> dict[str, int]:
    if step is None:
        return {}
    return {s.slot: s.value for s in step.stack if s.slot in PT_REGS_FIELDS}


def outcome_words(o: Outcome) -> str:
    words = o.exit.upper() if o.exit else _("no exit")
    if o.failed_check:
        words += " " + _("({check} failed)").format(check=o.failed_check)
    if o.fault:
        words += " · " + _("{fault} at CPL {cpl}").format(fault=o.fault, cpl=o.fault_cpl)
    return words


class RunsBar(Widget):
    """Which run is A and which is B, and how each ended."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"runs--side", "runs--outcome", "runs--differs"}

    comparison: reactive[Comparison | None] = reactive(None)
    """The two runs."""

    def render(self) -> Content:
        c = self.comparison
        if c is None:
            return Content("")
        outcome_style = self.get_visual_style(
            "runs--differs" if c.outcome_differs else "runs--outcome"
        )
        lines = []
        for side, trace, o in (("A", c.left, c.left_outcome), ("B", c.right, c.right_outcome)):
            # The kernel and CPU, then the exit, come before the (long) scenario name, so
            # they survive a narrow terminal.
            exit_word = pgettext("exit path", "exit")
            lines.append(
                Content.assemble(
                    (f"{side} ", self.get_visual_style("runs--side")),
                    f"{trace.kernel} · {trace.cpu} · {exit_word} ",
                    (outcome_words(o), outcome_style),
                    " · " + _("{count} steps").format(count=o.steps) + " · ",
                    Content(printable(trace.scenario)),
                )
            )
        return Content("\n").join(lines)


def _side_words(trace: Trace, index: int | None) -> str:
    if index is None:
        return _("no step yet")
    step = trace.steps[index]
    events = f" [{', '.join(e.kind for e in step.events)}]" if step.events else ""
    return _("step {index} {text}").format(index=step.number, text=step.text) + events


def _values(pairs: tuple[ValuePair, ...], limit: int = 3) -> str:
    shown = ", ".join(
        f"{p.name} {'—' if p.left is None else hex(p.left)} ≠ "
        f"{'—' if p.right is None else hex(p.right)}"
        for p in pairs[:limit]
    )
    more = " " + _("(+{count} more)").format(count=len(pairs) - limit)
    return shown + (more if len(pairs) > limit else "")


def difference_lines(c: Comparison) -> list[str]:
    """The divergence summary the banner shows, from the comparison's values."""
    if c.identical:
        return [_("identical: the same steps, the same values, the same exit")]
    out = []
    for names, d in landmarks(c):
        title = _(" and ").join(_(LANDMARK_TITLES[n]) for n in names)
        what = _what(c, d, "decision" in names)
        out.append(f"{LANDMARK_MARKS[names[0]]} {title} {_where(d)}: {what}")
    if c.paths_part is None:
        out.append(f"{PARTS_MARK} " + _("the paths do not part: every step corresponds"))
    return out


def _own_decisions(c: Comparison, d: Difference) -> str:
    """Where each run decided, when the row is not that step for both (◈ marks them)."""
    own = c.deciding
    if own == (d.left, d.right) or own == (None, None):
        return ""

    def number(index: int | None) -> str:
        return "—" if index is None else str(index + 1)

    return _("own decisions: A {a} · B {b} ({mark})").format(
        a=number(own[0]), b=number(own[1]), mark=DECISION_MARK
    )


def _where(d: Difference) -> str:
    return _("at the start") if d.position == 0 else _("at row {row}").format(row=d.position)


def _what(c: Comparison, d: Difference, decision: bool = False) -> str:
    parts = []
    if d.position:
        parts.append(f"A {_side_words(c.left, d.left)} | B {_side_words(c.right, d.right)}")
    if decision and (own := _own_decisions(c, d)):
        parts.append(own)  # before the values: the banner's line is cut at the right
    if d.verdicts:
        parts.append(
            _("checks decided {a} ≠ {b}").format(a=d.verdicts[0].upper(), b=d.verdicts[1].upper())
        )
    if d.checks:
        parts.append(", ".join(f"{c.name} {c.left} ≠ {c.right}" for c in d.checks))
    if d.registers:
        parts.append(_values(d.registers))
    if d.pt_regs:
        parts.append("pt_regs " + _values(d.pt_regs))
    return " · ".join(parts) or ", ".join(d.aspects)


class DifferenceBanner(Widget):
    """Where the runs first differ and where their paths part, always in view."""

    comparison: reactive[Comparison | None] = reactive(None)
    """The two runs."""

    def render(self) -> Content:
        c = self.comparison
        if c is None:
            return Content("")
        return Content("\n".join(difference_lines(c)))


class CompareStatus(Widget):
    """Row N / total and each run's step at this row."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"status--dim"}

    text: reactive[str] = reactive("")
    """The status text."""

    def render(self) -> Content:
        return Content(self.text)
