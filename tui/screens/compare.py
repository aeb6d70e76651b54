"""The compare screen: two runs side by side, stepping together row by row.

The engine aligned the runs (engine.compare); the screen holds the position in the aligned
rows and pushes, at every move, each run's state as of its last step at that row down to
the panels: one register panel and one checklist per run, the aligned steps, and the values
that differ.  A run with a gap at a row stands still while the other steps.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.reactive import var
from textual.screen import Screen

from engine.compare.diff import PATH_ASPECTS, Comparison
from engine.i18n import N_, _, msg, tr
from engine.kernel import spec
from engine.trace import CheckState, Regs, Step, Trace
from tui.screens.commands import Command, CommandsProvider, binding_commands
from tui.screens.help import HelpScreen
from tui.screens.timeline import STOP_KINDS, line_key
from tui.text import localized_bindings
from tui.widgets.checks import ChecksPanel
from tui.widgets.compare import (
    LEGEND,
    AlignedSteps,
    AlignedView,
    CompareStatus,
    DifferenceBanner,
    RunsBar,
    SideBySide,
    ValuesView,
    pt_regs_of,
)
from tui.widgets.keybar import Key, KeyBar, keys_of
from tui.widgets.registers import RegistersPanel, RegistersView

#: Below either size the per-run panels are hidden: the aligned steps and the differing
#: values are what a comparison needs first.  The per-run panels take 26 rows and two
#: columns of 49: at 120x36 that left one aligned row and cut the values beside them to
#: 9 of 16 digits, at 140x40 five rows; from 140x45 ten rows and whole values fit.
WIDE_MIN_WIDTH = 140
WIDE_MIN_HEIGHT = 45


class CompareScreen(Screen[None]):
    """Step two recorded runs together, aligned by what they do."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "s,f7,down", "step", N_("step"), tooltip=N_("Both runs one aligned row on"), id="step"
        ),
        Binding(
            "b,up", "step_back", N_("back"), tooltip=N_("Both runs one aligned row back"), id="back"
        ),
        Binding(
            "n",
            "next_line",
            N_("next line"),
            tooltip=N_("On to another source line"),
            id="next-line",
        ),
        Binding(
            "c",
            "continue_run",
            N_("continue"),
            tooltip=N_("On to the next event in either run: CR3 switch, swapgs, a check, the exit"),
            id="continue",
        ),
        Binding(
            "d",
            "next_difference",
            N_("next diff"),
            tooltip=N_("On to the next row where what differs changes"),
            id="next-difference",
        ),
        Binding(
            "D",
            "previous_difference",
            N_("prev diff"),
            key_display="D",
            tooltip=N_("Back to the previous row where what differs changes"),
            id="previous-difference",
        ),
        Binding(
            "f",
            "landmark('first')",
            N_("first diff"),
            tooltip=N_("Jump to the first difference between the runs"),
            id="first-difference",
        ),
        Binding(
            "p",
            "landmark('paths')",
            N_("paths part"),
            tooltip=N_("Jump to where the paths part: another step, event or check verdict"),
            id="paths-part",
        ),
        Binding(
            "v",
            "landmark('decision')",
            N_("verdicts"),
            tooltip=N_("Jump to where the runs decide differently: a check verdict, the exit"),
            id="decision",
        ),
        Binding("g", "go_to", N_("go to"), tooltip=N_("Jump to aligned row N"), id="go-to"),
        Binding(
            "r", "restart", N_("restart"), tooltip=N_("Back to before the first step"), id="restart"
        ),
        Binding(
            "question_mark",
            "help",
            N_("help"),
            key_display="?",
            tooltip=N_("Keys and legend"),
            id="help",
        ),
    ]

    position: var[int] = var(0, init=False)
    """Aligned rows passed: 0 is before the first, len(rows) after the last."""

    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        self.comparison = comparison
        self._stops, self._changes = _landmarks(comparison)

    def compose(self) -> ComposeResult:
        yield RunsBar(id="runs")
        yield DifferenceBanner(id="banner")
        yield AlignedSteps(id="aligned")
        with Horizontal(id="state"):
            with Vertical(id="run-a", classes="run"):
                yield RegistersPanel(id="registers-a")
                yield ChecksPanel(id="checks-a")
            with Vertical(id="run-b", classes="run"):
                yield RegistersPanel(id="registers-b")
                yield ChecksPanel(id="checks-b")
            yield SideBySide(id="values")
        yield CompareStatus(id="compare-status")
        # The debugger's key bar: it keeps every key in view at any width, shortening the
        # descriptions first (Textual's Footer overlapped its palette hint at 80 columns).
        app_bindings = [b for b in self.app.BINDINGS if isinstance(b, Binding)]
        own = [b for b in self.BINDINGS if isinstance(b, Binding)]
        yield KeyBar(
            [*keys_of([*own, *app_bindings]), Key("ctrl+p", "^p", N_("palette"))], id="keys"
        )

    def on_mount(self) -> None:
        c = self.comparison
        self._aligned = self.query_one(AlignedSteps)
        self._values = self.query_one(SideBySide)
        self._registers = (
            self.query_one("#registers-a", RegistersPanel),
            self.query_one("#registers-b", RegistersPanel),
        )
        self._checks = (
            self.query_one("#checks-a", ChecksPanel),
            self.query_one("#checks-b", ChecksPanel),
        )
        self._status = self.query_one(CompareStatus)
        self.query_one(RunsBar).comparison = c
        self.query_one(DifferenceBanner).comparison = c
        self._aligned.set_comparison(c)
        localized_bindings(self)
        localized_bindings(self.app)
        self.refresh_bindings()
        self._aligned.border_title = _("aligned steps · A left, B right")
        self._aligned.border_subtitle = _(LEGEND)
        self._registers[0].border_title = _("registers · A (≠ B lit)")
        self._registers[1].border_title = _("registers · B (≠ A lit)")
        self._checks[0].border_title = _("SYSRET checks · A")
        self._checks[1].border_title = _("SYSRET checks · B")
        self._values.border_title = _("A beside B at this row")
        for panel, trace in zip(self._checks, (c.left, c.right), strict=True):
            # 6.12 makes the checks in C: shown as C conditions, as the debugger shows them
            panel.in_c = spec(trace.kernel).checks_in_c or trace.door.fast32
            # no SYSRET decision under FRED, nor after int $0x80: the panel says so
            panel.fred = trace.fred
            panel.door = trace.door
        self._show()

    def on_resize(self, event: Resize) -> None:
        narrow = event.size.width < WIDE_MIN_WIDTH or event.size.height < WIDE_MIN_HEIGHT
        self.set_class(narrow, "-narrow")

    # -- navigation ---------------------------------------------------------------------

    @property
    def end(self) -> int:
        return len(self.comparison.rows)

    def validate_position(self, position: int) -> int:
        return max(0, min(position, self.end))

    def watch_position(self) -> None:
        if self.is_mounted:
            self._show()

    def _forward(self, target: int) -> None:
        if self.position >= self.end:
            self.notify(_("End of both runs"), title=_("end"), timeout=3)
        self.position = target

    def action_step(self) -> None:
        """Both runs one aligned row on."""
        self._forward(self.position + 1)

    def action_step_back(self) -> None:
        """Both runs one aligned row back."""
        if self.position == 0:
            self.app.bell()
        self.position -= 1

    def action_next_line(self) -> None:
        """On to the first row where either run is on another source line."""
        p = self.position
        if p >= self.end:
            self._forward(p)
            return
        key = self._line_key(p)
        while p < self.end and self._line_key(p) == key:
            p += 1
        self._forward(p)

    def _line_key(self, row: int) -> tuple[object, object]:
        """Each run's current line after *row*; a run with a gap there stays on its line."""
        c = self.comparison
        left, right = c.steps_at(row + 1)
        return (
            line_key(c.left.steps[left]) if left is not None else None,
            line_key(c.right.steps[right]) if right is not None else None,
        )

    def action_continue_run(self) -> None:
        """On to the next row where either run raises an event worth stopping at."""
        self._forward(next((s for s in self._stops if s > self.position), self.end))

    def action_next_difference(self) -> None:
        """On to the next row where what differs changes."""
        target = next((s for s in self._changes if s > self.position), None)
        if target is None:
            self.notify(_("No further difference"), timeout=3)
            return
        self.position = target

    def action_previous_difference(self) -> None:
        """Back to the previous row where what differs changes."""
        target = next((s for s in reversed(self._changes) if s < self.position), None)
        if target is None:
            self.app.bell()
            return
        self.position = target

    def action_landmark(self, name: str) -> None:
        """Jump to the first difference ("first"), where the paths part ("paths") or
        where the runs decide differently ("decision")."""
        c = self.comparison
        target = {"first": c.first_difference, "paths": c.paths_part, "decision": c.decision}
        found = target.get(name)
        if found is None:
            text = _("The runs do not differ") if c.identical else _("Not in these runs")
            self.notify(text, timeout=3)
            return
        self.position = found.position

    def action_restart(self) -> None:
        """Back to before the first step of both runs."""
        self.position = 0

    def action_go_to(self) -> None:
        """Ask for an aligned row number and jump there."""
        from tui.screens.goto import GotoDialog

        def jump(position: int | None) -> None:
            if position is not None:
                self.position = position

        self.app.push_screen(GotoDialog(self.position, self.end), jump)

    def action_help(self) -> None:
        """Show the keys and what the marks mean."""
        self.app.push_screen(HelpScreen(self.BINDINGS, HELP_EXTRA, compare_legend))

    # -- pushing the state down -----------------------------------------------------------

    def _show(self) -> None:
        c = self.comparison
        position = self.position
        left, right = c.steps_at(position)
        sides = ((c.left, left), (c.right, right))
        regs = tuple(_regs(trace, index) for trace, index in sides)
        row = c.rows[position - 1] if position > 0 else None
        differing = row.registers if row is not None else c.start
        names = frozenset(p.name for p in differing)
        for registers, (trace, index), own in zip(self._registers, sides, regs, strict=True):
            before = _regs(trace, index - 1) if index is not None else None
            # Lit: what differs from the other run (not what the step changed).
            registers.view = RegistersView(own, before, names)
        for checks, (trace, index) in zip(self._checks, sides, strict=True):
            checks.checks = _checks(trace, index)
        self._values.view = ValuesView(
            differing,
            pt_regs_of(_step(c.left, left)),
            pt_regs_of(_step(c.right, right)),
        )
        self._aligned.view = AlignedView(position)
        what = ", ".join(row.aspects) if row is not None and row.aspects else _("nothing differs")
        if row is None and c.start:
            what = _("registers differ at the start")
        self._status.text = tr(
            msg(
                "row {position}/{end} · A step {a}/{a_total} · B step {b}/{b_total} · {what}",
                position=position,
                end=self.end,
                a=_count(left),
                a_total=len(c.left.steps),
                b=_count(right),
                b_total=len(c.right.steps),
                what=what,
            )
        )


def _step(trace: Trace, index: int | None) -> Step | None:
    return trace.steps[index] if index is not None and index >= 0 else None


def _regs(trace: Trace, index: int | None) -> Regs:
    step = _step(trace, index)
    return step.regs if step is not None else trace.initial


def _checks(trace: Trace, index: int | None) -> tuple[CheckState, ...]:
    step = _step(trace, index)
    if step is not None:
        return step.checks
    return trace.steps[0].checks if trace.steps else trace.checks


def _count(index: int | None) -> int:
    """Steps run so far on a side whose last step is *index*."""
    return 0 if index is None else index + 1  # a count: steps 0..index have run


def _landmarks(c: Comparison) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Positions `continue` stops at (an event in either run), and positions where what
    differs changes (a path or event difference, or another set of differing values)."""
    stops: list[int] = []
    changes: list[int] = []
    before: tuple[object, ...] = (frozenset(p.name for p in c.start), frozenset())
    for k, row in enumerate(c.rows, start=1):
        kinds: set[str] = set()
        for trace, index in ((c.left, row.left), (c.right, row.right)):
            if index is not None:
                kinds.update(e.kind for e in trace.steps[index].events)
        if kinds & STOP_KINDS:
            stops.append(k)
        now = (frozenset(p.name for p in row.registers), frozenset(p.name for p in row.pt_regs))
        if PATH_ASPECTS.intersection(row.aspects) or now != before:
            changes.append(k)
        before = now
    return tuple(stops), tuple(changes)


LEGEND_MARKDOWN = N_("""\
## Reading the compare view

- Each row holds a step of run **A** (left) and the step of run **B** (right) that does
  the same thing: the same source line and instruction. The steps were aligned by what
  they do, not by number, so a row may hold a step of one run only.
- Middle column: **=** the same step; **~** the same source line, another instruction;
  **−** only A has this step; **+** only B has it; **≠** the same step, but registers,
  pt_regs slots, check verdicts or events differ.
- **◆** the first difference; **◇** the row where the paths part (another step, another
  event, or another check verdict); **◈** where the runs decide differently (a check
  both made with another verdict, or another exit or fault). The banner on top
  summarises them; `f`, `p` and `v` jump there.
- **●** the row just run, **▶** the next. A run with a gap on a row stands still.
- The register panels light the values that differ from the other run (not what the
  step changed). Beside them, A and B side by side: the registers that differ and every
  pt_regs slot written so far.
- A kernel RIP is not compared (two builds place code differently); a user RIP is.
""")


#: Help rows for keys that are not the compare screen's own bindings.
HELP_EXTRA = (("ctrl+p", N_("command palette: every action")), ("q", N_("quit")))


def compare_legend() -> str:
    return _(LEGEND_MARKDOWN)


class CompareCommands(CommandsProvider):
    """The compare screen's keys in the command palette."""

    def _commands(self) -> list[Command]:
        screen = self.screen
        if not isinstance(screen, CompareScreen):
            return []
        return binding_commands(screen, CompareScreen.BINDINGS)
