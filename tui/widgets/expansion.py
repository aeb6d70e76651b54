"""What the current source line assembled to: each instruction with address, bytes and
Capstone's disassembly, the one just executed and the next one marked."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from textual.content import Content
from textual.style import Style

from engine.i18n import N_, _
from engine.trace import SourceLine, Step
from tui.widgets.panel import ViewPanel

#: Long macros (PUSH_AND_CLEAR_REGS is 27 instructions) are shown as a window around the
#: current instruction so the panel keeps a bounded height.
WINDOW = 7

#: The bytes row's label (inside an f-string, so marked here).
W_BYTES = N_("bytes")


@dataclass(frozen=True, slots=True)
class ExpansionRow:
    address: int
    code: bytes
    text: str
    ran: bool
    upcoming: bool
    modelled: bool


def expansion_rows(
    line: SourceLine | None, ran: Step | None, upcoming: Step | None
) -> list[ExpansionRow]:
    """Rows for the focus line; for user code (no source line) the user instructions."""
    ran_rip = ran.rip if ran is not None else None
    next_rip = upcoming.rip if upcoming is not None else None
    if line is None:
        steps = [s for s in (ran, upcoming) if s is not None and s.source_line is None]
        seen: set[int] = set()
        rows = []
        for s in steps:
            if s.rip in seen:
                continue
            seen.add(s.rip)
            rows.append(
                ExpansionRow(s.rip, s.code, s.text, s.rip == ran_rip, s.rip == next_rip, s.modelled)
            )
        return rows
    modelled = ran.modelled if ran is not None else False
    rows = [
        ExpansionRow(
            ins.address,
            ins.code,
            ins.text,
            ins.address == ran_rip,
            ins.address == next_rip,
            modelled and ins.address == ran_rip,
        )
        for ins in line.instructions
    ]
    # A step credited to this line that is not one of its instructions is the function the
    # line calls (do_syscall_64, modelled): show it right under the call.
    addresses = {ins.address for ins in line.instructions}
    for step in (ran, upcoming):
        if step is None or step.source_line != line.number or step.rip in addresses:
            continue
        addresses.add(step.rip)
        row = ExpansionRow(
            step.rip, step.code, step.text, step is ran, step is upcoming, step.modelled
        )
        call = next((i for i, r in enumerate(rows) if r.text.startswith("call")), len(rows) - 1)
        rows.insert(call + 1, row)
    return rows


def window(rows: list[ExpansionRow], size: int = WINDOW) -> tuple[int, int]:
    """The slice of ``rows`` to show: all of them, or ``size`` rows around the marked ones."""
    if len(rows) <= size:
        return 0, len(rows)
    marked = [i for i, row in enumerate(rows) if row.ran or row.upcoming] or [0]
    start = max(0, min(marked[0] - size // 2, len(rows) - size))
    return start, start + size


#: At most this many rows of the source line above the instructions; a longer one ends in "…"
#: (the longest line of the rendition, an ALTERNATIVE, takes three rows at 56 columns).
SOURCE_ROWS = 3


def source_rows(line: SourceLine, width: int, style: Style) -> list[Content]:
    """The source line as written (tabs and alignment runs squeezed), wrapped at spaces."""
    text = " ".join(line.text.split())
    rows = textwrap.wrap(
        text,
        width=max(width, 16),
        initial_indent=f"{line.number:>4}  ",
        subsequent_indent="      ",
        break_on_hyphens=False,
    )
    if len(rows) > SOURCE_ROWS:
        rows = rows[:SOURCE_ROWS]
        rows[-1] = rows[-1][: max(width - 2, 1)] + "…"
    return [Content.assemble((row, style)) for row in rows]


def c_focus(ran: Step | None, upcoming: Step | None) -> Step | None:
    """The C statement the panel shows: the one just run, or the next one when the step
    just run was C too (at the call of do_syscall_64 the panel shows the call line)."""
    if ran is not None and ran.c is not None:
        return ran
    if upcoming is not None and upcoming.c is not None and ran is not None and ran.is_c:
        return upcoming
    return None


def call_stack_rows(stack: tuple[str, ...], width: int) -> list[str]:
    """The calls a C statement is inside, outermost first, joined by › and wrapped at the
    joins (a name longer than the width stays whole)."""
    rows: list[str] = []
    line = ""
    for name in stack:
        part = name if not line else f" › {name}"
        if line and cell_len(line + part) > width:
            rows.append(line + " ›")
            line = "  " + name
        else:
            line += part
    rows.append(line)
    return rows


@dataclass(frozen=True, slots=True)
class ExpansionView:
    line: SourceLine | None  # the source line in focus, None outside entry_64.S
    ran: Step | None  # the step just executed (None before the first)
    upcoming: Step | None  # the step that runs next (None at the end)


class MacroExpansion(ViewPanel[ExpansionView]):
    """The instructions of the focus line.  ``●`` ran in the last step, ``▶`` runs next."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "expansion--address",
        "expansion--bytes",
        "expansion--ran",
        "expansion--next",
        "expansion--more",
        "expansion--modelled",
        "expansion--source",
    }

    def build(self, width: int) -> list[Content]:
        view = self.view
        if view is None:
            return []
        statement = c_focus(view.ran, view.upcoming)
        if statement is not None:
            return self._c_statement(statement, view.ran, view.upcoming, width)
        rows = expansion_rows(view.line, view.ran, view.upcoming)
        if not rows:
            return []
        lines: list[Content] = []
        if view.line is not None:
            # The whole source line, wrapped: the listing may have to cut it.
            lines.extend(source_rows(view.line, width, self.style("expansion--source")))
        start, end = window(rows)
        code_width = max(len(row.code) for row in rows) * 3 - 1
        tag = cell_len("  " + _("modelled"))
        longest = max(len(row.text) + (tag if row.modelled else 0) for row in rows)
        fits_bytes = width >= 2 + 16 + 2 + code_width + 2 + longest
        base = self.style()
        more = self.style("expansion--more")
        if start:
            lines.append(Content.assemble((f"  ⋮ {start} before", more)))
        for row in rows[start:end]:
            if row.ran:
                style = self.style("expansion--ran")
            elif row.upcoming:
                style = self.style("expansion--next")
            else:
                style = base
            marker = "▶ " if row.upcoming else "● " if row.ran else "  "
            parts: list[str | Content | tuple[str, str | Style]] = [
                (marker, style),
                (f"{row.address:016x}  ", self.style("expansion--address")),
            ]
            if fits_bytes:
                parts.append(
                    (
                        f"{row.code.hex(' '):<{code_width}}  ",
                        self.style("expansion--bytes"),
                    )
                )
            parts.append((row.text, style))
            if row.modelled:
                parts.append(("  " + _("modelled"), self.style("expansion--modelled")))
            lines.append(Content.assemble(*parts))
        if end < len(rows):
            rest = _("{count} more").format(count=len(rows) - end)
            lines.append(Content.assemble((f"  ⋮ {rest}", more)))
        if not fits_bytes:
            # One bytes row per marked instruction, with its marker: the bytes shown are
            # always those of the instruction they sit next to.
            for row in rows[start:end]:
                if (row.ran or row.upcoming) and row.code:  # a modelled C step has none
                    marker = "▶" if row.upcoming else "●"
                    lines.append(
                        Content.assemble(
                            (f"  {marker} {_(W_BYTES)} ", more),
                            (row.code.hex(" "), self.style("expansion--bytes")),
                        )
                    )
        return lines

    def _c_statement(
        self, step: Step, ran: Step | None, upcoming: Step | None, width: int
    ) -> list[Content]:
        """A statement of the C side: where it is (file:line), the calls it is inside, the
        statement marked as run or next, and the values it read and wrote."""
        st = step.c
        assert st is not None
        more = self.style("expansion--more")
        source = self.style("expansion--source")
        lines = [Content.assemble((st.where or _("the system call's own C"), more))]
        lines += [Content.assemble((row, source)) for row in call_stack_rows(st.stack, width)]
        for s in (ran, upcoming):
            if s is None or s.c is None:
                continue
            marker, style = (
                ("● ", self.style("expansion--ran")) if s is ran else
                ("▶ ", self.style("expansion--next"))
            )  # fmt: skip
            text = " ".join(s.text.removeprefix("(C) ").split())
            # wrapped as the source rows are: a statement is never cut by the panel
            rows = textwrap.wrap(
                text, width=max(width - 2, 16), break_on_hyphens=False, break_long_words=True
            ) or [""]
            tag = "  " + _("modelled")
            for k, row in enumerate(rows):
                head = marker if k == 0 else "  "
                parts: list[str | Content | tuple[str, str | Style]] = [(head, style), (row, style)]
                if k == len(rows) - 1 and cell_len(head + row + tag) <= width:
                    parts.append((tag, self.style("expansion--modelled")))
                lines.append(Content.assemble(*parts))
            if s is step:
                for name, value in st.values:
                    lines.append(Content.assemble((f"    {name} = {value:#x}", more)))
        return lines
