"""The memory and page-walk panels: the last ``x`` and the last ``walk`` of the ``:`` prompt
(or of the scenario's ``[debug] show``), answered again at every step.

The screen runs the command at each position and hands the typed answer down
(engine.inspect: an Examination, a PageWalkReport), with the addresses whose value the
step changed; the panels only lay it out.  The walk puts the two roots side by side when
the panel is wide enough, one under the other when not.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, ClassVar

from textual.content import Content

from engine.i18n import N_, _
from tui.text import wrap
from tui.widgets.panel import ViewPanel

if TYPE_CHECKING:
    from engine.inspect.examine import Examination
    from engine.inspect.pagewalk import PageWalkReport, RootWalk

#: Cells of one root's column in the side-by-side walk: "L4 [255] " + a 16-digit entry
#: + its bits (``P RW US A D NX``, more with PWT PCD G PS).
WALK_COLUMN = 50
W_EMPTY_MEMORY = N_("Type :x/8g ADDR to examine memory here; it follows every step.")
W_EMPTY_WALK = N_("Type :walk ADDR to walk its page tables here under both roots.")


@dataclass(frozen=True, slots=True)
class MemoryView:
    command: str  # the x command as typed
    examination: Examination | None
    error: str = ""  # the command's one-line error at this step (escaped)
    changed: frozenset[int] = frozenset()  # addresses whose value the last step changed


@dataclass(frozen=True, slots=True)
class WalkView:
    command: str
    report: PageWalkReport | None
    error: str = ""


class MemoryPanel(ViewPanel[MemoryView]):
    """Memory at the current step, each quadword named, the step's writes highlighted."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "memory--address", "memory--changed", "memory--note", "memory--empty",
    }  # fmt: skip

    def view_changed(self, view: MemoryView | None) -> None:
        if view is None or view.examination is None:
            self.set_title(_("memory"))
            return
        e = view.examination
        self.set_title(
            _("memory · {command} = {address} · {root} root").format(
                command=view.command, address=f"{e.address:#x}", root=_(e.root)
            )
        )

    def build(self, width: int) -> list[Content]:
        view = self.view
        if view is None:
            style = self.style("memory--empty")
            return [Content.styled(t, style) for t in wrap(_(W_EMPTY_MEMORY), width)]
        if view.examination is None:
            return [Content(t) for t in wrap(view.error, width)]
        from engine.inspect.examine import Unit
        from engine.views.inspect import x_lines

        e = view.examination
        if e.unit in (Unit.INSN, Unit.STRING):
            return [Content(line.strip()) for line in x_lines(e)[1:]]
        digits = 2 * e.units[0].size if e.units else 16
        out = []
        for u in e.units:
            value = "?" * digits if u.value is None else f"{u.value:0{digits}x}"
            changed = u.address in view.changed
            note = u.annotation
            if u.value is None:
                # "unreadable under the live root: not present at level 1 (...)": the
                # title names the root already
                note = "✗ " + note.split(": ", 1)[-1]
            out.append(
                Content.assemble(
                    (f"{u.address:016x} ", self.style("memory--address")),
                    (value, self.style("memory--changed")) if changed else value,
                    ("  " + note, self.style("memory--note")) if note else "",
                )
            )
        return out


class Row(Enum):
    """What a row of one root's walk is, for its style."""

    ROOT = "root"
    LEVEL = "level"
    RESULT = "result"  # the verdict's first part
    MORE = "more"  # its further parts


def _root_rows(w: RootWalk) -> list[tuple[Row, str]]:
    from engine.inspect.pagewalk import stop_text

    d = w.decode
    head = f"{_(str(w.root))} CR3 {d.cr3:#x}"
    if d.pcid is not None:
        head += f" PCID {d.pcid:#x}"
    if d.pti_user_table:
        head += " bit12"
    rows = [(Row.ROOT, head)]
    for s in w.levels:
        rows.append(
            (Row.LEVEL, f"L{s.level} [{s.index:3}] {s.entry:016x} {' '.join(s.bits) or '-'}")
        )
    # One part a row (mapped; US=0 at ...; NX at ...): each fits the column.
    first, *more = stop_text(w.result, w.levels_total).split("; ")
    rows.append((Row.RESULT, "→ " + first))
    rows.extend((Row.MORE, "  " + part) for part in more)
    return rows


class WalkPanel(ViewPanel[WalkView]):
    """The walk of one address under the user and the kernel root, level by level."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "walk--root", "walk--mapped", "walk--unmapped", "walk--empty",
    }  # fmt: skip

    def view_changed(self, view: WalkView | None) -> None:
        if view is None or view.report is None:
            self.set_title(_("page walk"))
            return
        self.set_title(
            _("page walk · {command} = {address}").format(
                command=view.command, address=f"{view.report.vaddr:#x}"
            )
        )

    def _styled(self, row: Row, text: str, mapped: bool) -> Content:
        if row is Row.ROOT:
            return Content.styled(text, self.style("walk--root"))
        if row is Row.RESULT:
            return Content.styled(text, self.style("walk--mapped" if mapped else "walk--unmapped"))
        return Content(text)

    def build(self, width: int) -> list[Content]:
        view = self.view
        if view is None:
            style = self.style("walk--empty")
            return [Content.styled(t, style) for t in wrap(_(W_EMPTY_WALK), width)]
        if view.report is None:
            return [Content(t) for t in wrap(view.error, width)]
        columns = [
            [self._styled(row, text, w.result.mapped) for row, text in _root_rows(w)]
            for w in view.report.walks
        ]
        if width >= 2 * WALK_COLUMN + 2 and len(columns) == 2:
            left, right = columns
            out = []
            for i in range(max(len(left), len(right))):
                a = left[i] if i < len(left) else Content("")
                b = right[i] if i < len(right) else Content("")
                pad = Content(" " * max(1, WALK_COLUMN + 2 - a.cell_length))
                out.append(Content.assemble(a, pad, b))
            return out
        return [line for column in columns for line in column]


__all__ = ["MemoryPanel", "MemoryView", "WalkPanel", "WalkView"]
