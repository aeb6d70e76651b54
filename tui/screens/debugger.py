"""The debugger screen: owns the loaded trace and the position in it, and pushes both down.

Widgets never look at each other or at the trace: every step, `_show` hands each panel the
few values it renders, as one immutable view.  A reactive only fires when its view differs
from the last one, and a panel then repaints only the rows that changed, so a step costs
what that step changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual._context import active_app
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Tab, Tabs

from engine.errors import escape
from engine.i18n import N_, _, msg, set_language, tr
from engine.kernel import spec
from engine.trace import Door, ExitPath, StackName, Trace
from tui.screens.timeline import Timeline
from tui.text import localized_bindings
from tui.widgets.checks import ChecksPanel, VerdictBar, exit_path
from tui.widgets.expansion import ExpansionView, MacroExpansion
from tui.widgets.inspect import MemoryPanel, MemoryView, WalkPanel, WalkView
from tui.widgets.keybar import Key, KeyBar, keys_of
from tui.widgets.msrs import MsrPanel, MsrView
from tui.widgets.note import (
    NotePanel,
    NoteView,
    c_step_note,
    kernel_note,
    user_note,
    vdso_note,
)
from tui.widgets.panel import LinePanel
from tui.widgets.registers import RegistersPanel, RegistersView
from tui.widgets.roots import RootsPanel, RootsView
from tui.widgets.source import Listing, SourceListing
from tui.widgets.stack import StackPanel, StackView, rows_needed, stack_title
from tui.widgets.status import FaultBanner, NowBar, StatusLine

if TYPE_CHECKING:
    from engine.inspect.breakpoints import Points
    from engine.inspect.command import Answer
    from engine.inspect.machine_at import MachineAt

#: The layouts, chosen from what fits rather than from one size.
#:
#: wide: three columns.  The state and machine columns are 49 cells (two 16-digit values and
#: their names side by side, or two CR3 roots); the code column needs 56 for an instruction
#: with its operands.  The machine column stacks the MSRs (14 rows), the CR3 roots (15) and
#: the checks, which need 10 rows for the verdict and six check rows; status and footer take 2.
CODE_MIN_WIDTH = 56
SIDE_WIDTH = 49
WIDE_MIN_WIDTH = CODE_MIN_WIDTH + 2 * SIDE_WIDTH
WIDE_MIN_HEIGHT = 14 + 15 + 10 + 2
#: medium: the code column beside one other panel chosen by tabs (registers, stack, MSRs,
#: CR3 roots, checks), with the verdict pinned.  The code column stacks the listing (at
#: least 6 rows), the expansion (12) and the note (8); tabs, verdict, status, footer: 4.
MEDIUM_MIN_WIDTH = CODE_MIN_WIDTH + SIDE_WIDTH
MEDIUM_MIN_HEIGHT = 6 + 12 + 8 + 4
#: Anything smaller: one panel at a time, with the current line and the verdict pinned.

#: The panels the medium layout shows beside the code.
SIDE_PANELS = ("registers", "stack", "msrs", "roots", "checks", "memory", "walk")


def layout_for(width: int, height: int) -> str:
    """The layout class for a terminal of this size: "-wide", "-medium" or "-narrow"."""
    if width >= WIDE_MIN_WIDTH and height >= WIDE_MIN_HEIGHT:
        return "-wide"
    if width >= MEDIUM_MIN_WIDTH and height >= MEDIUM_MIN_HEIGHT:
        return "-medium"
    return "-narrow"


#: The tabs of the narrow layout: (panel name, tab label).
PANELS: tuple[tuple[str, str], ...] = (
    ("code", N_("code")),
    ("why", N_("why")),
    ("registers", N_("regs")),
    ("stack", N_("stack")),
    ("msrs", N_("MSRs")),
    ("roots", N_("CR3")),
    ("checks", N_("checks")),
    ("memory", N_("memory")),
    ("walk", N_("walk")),
)


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except (OSError, ValueError):
        return None


def scenario_name(trace: Trace) -> str:
    """The name to show: the scenario's own text, so control characters are escaped."""
    return escape(trace.scenario or (Path(trace.path).stem if trace.path else "scenario"), 200)


#: How long the "End of the trace" notice stays.
END_NOTICE_SECONDS = 4


#: Help rows for keys that are not the debugger screen's own bindings.
HELP_EXTRA = (
    ("1`–`9", N_("pick a panel when the panels are tabs")),
    ("ctrl+p", N_("command palette: every action, and each scenario to open")),
    ("q", N_("quit")),
)


class DebuggerScreen(Screen[None]):
    """Step through one recorded SYSCALL round trip in both directions."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Descriptions and tooltips are English msgids; tui.text.localized_bindings gives
        # the screen translated copies.
        Binding("s,f7", "step", N_("step"), tooltip=N_("Execute one instruction"), id="step"),
        Binding(
            "b", "step_back", N_("back"), tooltip=N_("Undo the last instruction"), id="step-back"
        ),
        Binding(
            "n",
            "next_line",
            N_("next line"),
            tooltip=N_("Run to the next source line"),
            id="next-line",
        ),
        Binding(
            "c",
            "continue_run",
            N_("continue"),
            tooltip=N_(
                "Run to the next breakpoint, watchpoint or event: CR3 switch, swapgs, a check "
                "verdict, the exit"
            ),
            id="continue",
        ),
        Binding(
            "C",
            "continue_back",
            N_("continue back"),
            tooltip=N_("Run backwards to the previous breakpoint, watchpoint or event"),
            show=False,
            id="continue-back",
        ),
        Binding("g", "go_to", N_("go to"), tooltip=N_("Jump to step N"), id="go-to"),
        Binding(
            "r",
            "restart",
            N_("restart"),
            tooltip=N_("Back to before the first step, re-reading the scenario file"),
            id="restart",
        ),
        Binding("o", "open_scenario", N_("open"), tooltip=N_("Load another scenario"), id="open"),
        Binding(
            "k",
            "switch_kernel",
            N_("kernel"),
            tooltip=N_("Run this scenario again on the next kernel"),
            id="switch-kernel",
        ),
        Binding(
            "question_mark",
            "help",
            N_("help"),
            key_display="?",
            tooltip=N_("Keys and legend"),
            id="help",
        ),
        Binding(
            "colon",
            "command_line",
            N_("command"),
            tooltip=N_("x, walk, info, break, watch, delete at the step on screen"),
            show=False,
            id="command-line",
        ),
        *(
            Binding(str(n), f"show_panel('{panel}')", label, show=False, id=f"panel-{panel}")
            for n, (panel, label) in enumerate(PANELS, start=1)
        ),
    ]

    position: var[int] = var(0, init=False)
    """Steps executed: 0 is before the first, len(steps) after the last."""
    panel: var[str] = var("code", init=False)
    """The panel shown when the layout is narrow enough to need tabs."""
    side: var[str] = var("registers", init=False)
    """The panel shown beside the code in the medium layout."""

    @dataclass
    class Loaded(Message, bubble=False):
        """A scenario ran to completion and its trace is ready."""

        trace: Trace
        source: bytes | None = None  # the file's bytes the trace was made from
        reloaded: bool = False  # the loaded file itself, changed on disk (restart)

    @dataclass
    class LoadFailed(Message, bubble=False):
        """A scenario could not be loaded or run; the current one stays."""

        path: str
        error: str
        reloaded: bool = False

    def __init__(
        self, trace: Trace, scenario_dirs: tuple[Path, ...] = (), source: bytes | None = None
    ) -> None:
        # The panel and layout classes are set from the start: changing classes after mount
        # restyles the whole screen, which is a good part of the start-up time.
        try:
            size = active_app.get().size
            layout = layout_for(size.width, size.height)
        except LookupError:
            layout = "-wide"
        super().__init__(classes=f"show-code side-registers {layout}")
        self.scenario_dirs = scenario_dirs
        if source is None and trace.path is not None:
            source = _read(trace.path)
        self._source = source
        """The bytes of the loaded file the trace was made from: restart compares with them."""
        self.timeline = Timeline(trace)
        """The loaded trace with its stops precomputed."""
        self._listing = Listing.from_trace(trace)
        self._end_notice_until = 0.0
        """Until when (monotonic) the "End of the trace" notice is on screen."""
        self._at: MachineAt | None = None
        """The trace's run again with its memory log, built the first time a command needs it."""
        self._points: Points | None = None
        """Breakpoints and watchpoints (engine.inspect.breakpoints), None until the first."""
        self._inspect: dict[str, str] = {}
        """The command each inspection panel answers again at every step: memory, walk."""
        self._debug_path: str | None = None
        """The file whose [debug] set-up was applied: a reload of it keeps the points."""

    def compose(self) -> ComposeResult:
        yield FaultBanner(id="fault")
        yield NowBar(id="now")
        if not self.has_class("-wide"):
            yield self._make_tabs()
        with Horizontal(id="panels"):
            with Vertical(id="code-column", classes="column"):
                yield SourceListing(id="listing")
                yield MacroExpansion(id="expansion")
                yield NotePanel(id="note")
            with Vertical(id="state-column", classes="column"):
                yield RegistersPanel(id="registers")
                yield StackPanel(id="stack")
            with Vertical(id="machine-column", classes="column"):
                yield MsrPanel(id="msrs")
                yield RootsPanel(id="roots")
                yield ChecksPanel(id="checks")
            with Vertical(id="inspect-column", classes="column"):
                yield MemoryPanel(id="memory")
                yield WalkPanel(id="walk")
        yield VerdictBar(id="verdict")
        yield StatusLine(id="status")
        app_bindings = [b for b in self.app.BINDINGS if isinstance(b, Binding)]
        keys = keys_of([*self._bindings_shown(), *app_bindings])
        yield KeyBar([*keys, Key("ctrl+p", "^p", N_("palette"))], id="keys")

    def on_mount(self) -> None:
        # The step path touches every panel: look them up once.
        self._listing_view = self.query_one(SourceListing)
        self._expansion = self.query_one(MacroExpansion)
        self._note = self.query_one(NotePanel)
        self._registers = self.query_one(RegistersPanel)
        self._stack = self.query_one(StackPanel)
        self._msrs = self.query_one(MsrPanel)
        self._roots = self.query_one(RootsPanel)
        self._checks = self.query_one(ChecksPanel)
        self._verdict = self.query_one(VerdictBar)
        self._fault = self.query_one(FaultBanner)
        self._status = self.query_one(StatusLine)
        self._now = self.query_one(NowBar)
        self._memory = self.query_one(MemoryPanel)
        self._walk = self.query_one(WalkPanel)
        self._apply_language()
        self._reapply_points()

    # -- language -----------------------------------------------------------------------

    def _apply_language(self) -> None:
        """Put every fixed word on screen in the current language (engine.i18n)."""
        localized_bindings(self)
        localized_bindings(self.app)
        self.refresh_bindings()
        labels = dict(PANELS)
        for tab in self.query(Tab):  # no tabs while the three columns fit
            if tab.id is not None and tab.id.removeprefix("tab-") in labels:
                tab.label = _(labels[tab.id.removeprefix("tab-")])
        self._listing_view.border_subtitle = _("● ran  ▶ next")
        self._note.border_title = _("why")
        self._registers.border_title = _("registers")
        self._msrs.border_title = _("MSRs")
        self._roots.border_title = _(RootsPanel.TITLE)
        self._checks.border_title = _("SYSRET checks")
        self._memory.view_changed(self._memory.view)
        self._walk.view_changed(self._walk.view)
        self._apply_timeline()

    def set_language(self, lang: str) -> None:
        """Switch the UI language and redraw every panel in it."""
        set_language(lang)
        self._apply_language()
        self._listing_view.set_rows(self._listing.rows)
        for panel in self.query(LinePanel):
            panel.rebuild()
            panel.refresh()
        for widget in self.query("StatusLine, NowBar, VerdictBar, FaultBanner, KeyBar"):
            widget.refresh()

    # -- layout -----------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        layout = layout_for(event.size.width, event.size.height)
        for name in ("-wide", "-medium", "-narrow"):
            self.set_class(name == layout, name)
        if layout != "-wide" and not self.query(Tabs):
            # Tabs are a dozen widgets the three-column layout never shows: made when needed.
            self.mount(self._make_tabs(), before="#panels")

    def _make_tabs(self) -> Tabs:
        tabs = (Tab(_(label), id=f"tab-{panel}") for panel, label in PANELS)
        return Tabs(*tabs, active=f"tab-{self.panel}", id="panel-tabs")

    def _bindings_shown(self) -> list[Binding]:
        return [b for b in self.BINDINGS if isinstance(b, Binding)]

    def watch_panel(self, old: str, new: str) -> None:
        self.remove_class(f"show-{old}")
        self.add_class(f"show-{new}")
        if new in SIDE_PANELS:
            self.side = new
        for tabs in self.query(Tabs):
            if tabs.active != f"tab-{new}":
                tabs.active = f"tab-{new}"

    def watch_side(self, old: str, new: str) -> None:
        self.remove_class(f"side-{old}")
        self.add_class(f"side-{new}")

    @on(Tabs.TabActivated, "#panel-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab.id is not None:
            self.panel = event.tab.id.removeprefix("tab-")

    def action_show_panel(self, panel: str) -> None:
        """Show one panel (narrow and medium layouts) and give it the keyboard for scrolling."""
        self.panel = panel
        target = {"code": "#listing", "why": "#note"}.get(panel, f"#{panel}")
        # After the refresh: a panel that was hidden cannot take focus yet.
        self.call_after_refresh(self._focus_panel, target)

    def _focus_panel(self, selector: str) -> None:
        widget = self.query_one(selector)
        if widget.focusable:
            widget.focus()

    # -- navigation ---------------------------------------------------------------------

    def validate_position(self, position: int) -> int:
        return self.timeline.clamp(position)

    def watch_position(self) -> None:
        # Before mount there is nothing to push into; on_mount shows the position then.
        if self.is_mounted:
            self._show()

    def action_step(self) -> None:
        """Execute one instruction."""
        if self.position >= self.timeline.end:
            self._at_end()
        self.position += 1

    def action_step_back(self) -> None:
        """Undo the last instruction."""
        if self.position == 0:
            self.app.bell()
        self.position -= 1

    def action_next_line(self) -> None:
        """Run to the first instruction of another source line."""
        if self.position >= self.timeline.end:
            self._at_end()
        self.position = self.timeline.next_line(self.position)

    def _stops(self) -> tuple[int, ...]:
        """Where continue stops: the trace's events and the session's points, ascending."""
        if self._points is None or not self._points.points:
            return self.timeline.stops
        return tuple(sorted({*self.timeline.stops, *self._points.stops}))

    def action_continue_run(self) -> None:
        """Run to the next stop (a breakpoint, a watchpoint, an event) or the end."""
        from engine.inspect.breakpoints import next_stop

        if self.position >= self.timeline.end:
            self._at_end()
        self.position = next_stop(self._stops(), self.position, self.timeline.end)
        self._announce_hits()

    def action_continue_back(self) -> None:
        """Run backwards to the previous stop, or to the start."""
        from engine.inspect.breakpoints import previous_stop

        if self.position == 0:
            self.app.bell()
        self.position = previous_stop(self._stops(), self.position)
        self._announce_hits()

    def _announce_hits(self) -> None:
        """Say which breakpoints and watchpoints stopped here (a watch with its values)."""
        if self._points is None or self._at is None:
            return
        from engine.inspect.breakpoints import hits
        from engine.views.inspect import hit_line

        found = hits(self._at, self._points, self.position)
        if found:
            text = "\n".join(hit_line(h) for h in found)
            self.notify(text, title=_("stopped"), timeout=6, markup=False)

    def action_restart(self) -> None:
        """Go back to before the first instruction; re-run the file if it changed."""
        self.position = 0
        path = self.timeline.trace.path
        if path is not None:
            self.reload(path, self._source)

    @work(thread=True, exclusive=True, group="load")
    def reload(self, path: str, before: bytes | None) -> None:
        """Re-read the loaded file; run it again (in a child, as ``o`` does) only if its
        bytes changed."""
        from textual.worker import get_current_worker

        from engine.errors import ScenarioError
        from engine.scenario.reader import read_scenario_bytes
        from tui.loader import LoadError, load_with_source

        try:
            data = read_scenario_bytes(path)
        except ScenarioError as error:
            self.post_message(self.LoadFailed(path, str(error), True))
            return
        if data == before:
            return
        worker = get_current_worker()
        try:
            trace, data = load_with_source(path, lambda: worker.is_cancelled)
        except LoadError as error:
            if not worker.is_cancelled:
                self.post_message(self.LoadFailed(path, str(error), True))
        else:
            self.post_message(self.Loaded(trace, data, reloaded=True))

    def action_go_to(self) -> None:
        """Ask for a step number and jump there."""
        from tui.screens.goto import GotoDialog

        def jump(position: int | None) -> None:
            if position is not None:
                self.position = position

        self.app.push_screen(GotoDialog(self.position, self.timeline.end), jump)

    def action_command_line(self) -> None:
        """The ``:`` prompt: x, walk, info, break, watch and delete at the step on screen."""
        from tui.screens.command import CommandDialog

        self.app.push_screen(
            CommandDialog(self.position, self.machine, lambda: self.points, self.answered)
        )

    # -- inspection -------------------------------------------------------------------

    def machine(self) -> MachineAt:
        """The loaded trace's machine at any step: the scenario run again, in this process,
        with its memory log (runs are deterministic; the steps are checked to be the same)."""
        if self._at is None:
            from engine.errors import ScenarioError
            from engine.inspect.machine_at import InspectError, MachineAt
            from engine.scenario.parse import parse_scenario

            trace = self.timeline.trace
            if self._source is None or trace.path is None:
                raise InspectError("this trace has no scenario file to run again")
            try:
                text = self._source.decode("utf-8")
            except UnicodeDecodeError:
                raise ScenarioError(trace.path, None, "not UTF-8 text") from None
            at = MachineAt.run(parse_scenario(text, trace.path))
            if at.trace.steps != trace.steps:
                raise InspectError("running the scenario again gave another run")
            self._at = at
        return self._at

    @property
    def points(self) -> Points:
        from engine.inspect.breakpoints import Points

        return self._points if self._points is not None else Points()

    def answered(self, line: str, answer: Answer) -> None:
        """A command the prompt ran: x and walk pin their panel, break/watch/delete change
        the points (the prompt tells the screen; the screen owns the state)."""
        from engine.inspect.command import HideAnswer, PointsAnswer
        from engine.inspect.examine import Examination
        from engine.inspect.pagewalk import PageWalkReport

        if isinstance(answer, PointsAnswer):
            self._points = answer.points
        elif isinstance(answer, HideAnswer):
            for panel in answer.panels:
                self.show_inspect(panel, None)
        elif isinstance(answer, Examination):
            self.show_inspect("memory", line)
        elif isinstance(answer, PageWalkReport):
            self.show_inspect("walk", line)

    def _reapply_points(self) -> None:
        """On a new run: a newly opened file's [debug] set-up (its breakpoints, watchpoints
        and pinned x/walk), or, for the same file run again, the points it had, resolved
        on the new run.  What no longer resolves is said in one notice, by its key."""
        from engine.errors import EngineError

        trace = self.timeline.trace
        todo: list[tuple[str, str, str]] = []  # (key, command, argument)
        if trace.path != self._debug_path:
            self._debug_path = trace.path
            self._points = None
            self._inspect.clear()
            try:
                todo = self._debug_commands()
            except EngineError as exc:
                self.notify(escape(str(exc)), title=_("[debug] not applied"),
                            severity="warning", markup=False)  # fmt: skip
        elif self._points is not None:
            from engine.inspect.breakpoints import PointKind

            for p in self._points.points:
                arg = p.spec + (f" if {p.condition}" if p.condition is not None else "")
                command = "watch" if p.kind is PointKind.WATCH else "break"
                todo.append((f"{p.kind} {p.number}", command, arg))
            self._points = None
        if not todo and not self._inspect:
            self.set_class(False, "-inspect")
            return
        problems: list[str] = []
        try:
            at = self.machine()
        except EngineError as exc:
            problems.append(str(exc))
            todo = []
        from engine.inspect.breakpoints import make_break, make_watch

        for key, command, argument in todo:
            try:
                if command == "show":
                    self.show_inspect("walk" if argument.startswith("walk") else "memory", argument)
                    continue
                make = make_break if command == "break" else make_watch
                point = make(at, 0, argument, self.points.next_number)
                self._points = self.points.with_point(point)
            except EngineError as exc:
                problems.append(f"{key}: {exc}")
        self.set_class(bool(self._inspect), "-inspect")
        self._show_inspect()
        if problems:
            self.notify(escape("\n".join(problems[:6])), title=_("not set"),
                        severity="warning", timeout=10, markup=False)  # fmt: skip

    def _debug_commands(self) -> list[tuple[str, str, str]]:
        """The loaded file's [debug] entries as (key, command, argument)."""
        source, path = self._source, self.timeline.trace.path
        if source is None or path is None or b"debug" not in source:
            return []  # no [debug]: the parser is not even imported
        from engine.scenario.parse import read_debug

        d = read_debug(source.decode("utf-8", "replace"), path)
        return [
            *((f"debug.break[{i}]", "break", t) for i, t in enumerate(d.breaks)),
            *((f"debug.watch[{i}]", "watch", t) for i, t in enumerate(d.watches)),
            *((f"debug.show[{i}]", "show", t) for i, t in enumerate(d.shows)),
        ]

    @property
    def inspect_pinned(self) -> bool:
        """Whether a command is pinned to the memory or walk panel."""
        return bool(self._inspect)

    def delete_points(self) -> None:
        """Delete every breakpoint and watchpoint (``:delete``)."""
        if self._points is not None:
            self._points = self._points.without(())

    def hide_inspect(self) -> None:
        """Unpin both inspection panels (``:hide``)."""
        for panel in ("memory", "walk"):
            self.show_inspect(panel, None)

    def show_inspect(self, panel: str, line: str | None) -> None:
        """Pin *line* (an x or walk command) to the memory or walk panel; None unpins."""
        if line is None:
            self._inspect.pop(panel, None)
        else:
            self._inspect[panel] = line
        self.set_class(bool(self._inspect), "-inspect")
        self._show_inspect()

    def _show_inspect(self) -> None:
        """Answer the pinned commands again at the current position."""
        if not self._inspect or self._at is None:
            self._memory.view = None
            self._walk.view = None
            return
        from engine.errors import EngineError
        from engine.inspect.command import run_command
        from engine.inspect.examine import Examination
        from engine.inspect.pagewalk import PageWalkReport

        at, position = self._at, self.position
        line = self._inspect.get("memory")
        if line is None:
            self._memory.view = None
        else:
            try:
                e = run_command(at, position, line)
                assert isinstance(e, Examination)
            except EngineError as exc:
                self._memory.view = MemoryView(escape(line), None, escape(str(exc)))
            else:
                changed: set[int] = set()
                if position > 0:
                    for u in e.units:
                        before = at.read_virt(position - 1, e.cr3, u.address, u.size)
                        now = at.read_virt(position, e.cr3, u.address, u.size)
                        if before != now:
                            changed.add(u.address)
                self._memory.view = MemoryView(escape(line), e, "", frozenset(changed))
        line = self._inspect.get("walk")
        if line is None:
            self._walk.view = None
        else:
            try:
                w = run_command(at, position, line)
                assert isinstance(w, PageWalkReport)
            except EngineError as exc:
                self._walk.view = WalkView(escape(line), None, escape(str(exc)))
            else:
                self._walk.view = WalkView(escape(line), w)

    def action_help(self) -> None:
        """Show the keys and the legend."""
        # Imported here: Markdown is the heaviest widget and is not needed to start.
        from tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self.BINDINGS, HELP_EXTRA))

    def _at_end(self) -> None:
        # One notice at a time: pressing c or s again at the end must not stack copies.
        if time.monotonic() < self._end_notice_until:
            return
        self._end_notice_until = time.monotonic() + END_NOTICE_SECONDS
        stopped = tr(self.timeline.trace.stopped) or _("the run ended")
        self.notify(
            _("End of the trace: {stopped}").format(stopped=escape(stopped)),
            title=_("end"),
            timeout=END_NOTICE_SECONDS,
            markup=False,
        )

    # -- loading --------------------------------------------------------------------

    def action_open_scenario(self) -> None:
        """Pick a scenario file and load it."""
        from tui.screens.picker import ScenarioPicker

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.load(path)

        from engine.paths import bundled_scenarios_dir

        self.app.push_screen(ScenarioPicker(self.scenario_dirs, bundled_scenarios_dir()), chosen)

    def action_switch_kernel(self) -> None:
        """Run the loaded scenario again on the next kernel."""
        from engine.kernel import KERNELS

        trace = self.timeline.trace
        if trace.path is None or len(KERNELS) < 2:
            text = _("No other kernel to switch to: only {kernel}").format(kernel=trace.kernel)
            self.notify(text, timeout=4)
            return
        after = KERNELS[(KERNELS.index(trace.kernel) + 1) % len(KERNELS)]
        self.load(Path(trace.path), kernel=after)

    @work(thread=True, exclusive=True, group="load")
    def load(self, path: Path, kernel: str | None = None) -> None:
        """Parse and run a scenario (on *kernel*, when given) in a child process; the result
        comes back as a message.

        The child (tui.loader) keeps a hostile file's hangs, crashes and long runs away
        from the UI; this worker thread only waits for it, and kills it when the worker
        is cancelled (a newer load, or the app quitting).
        """
        from textual.worker import get_current_worker

        from tui.loader import LoadError, load_with_source

        worker = get_current_worker()
        try:
            trace, data = load_with_source(str(path), lambda: worker.is_cancelled, kernel=kernel)
        except LoadError as error:
            if not worker.is_cancelled:
                self.post_message(self.LoadFailed(str(path), str(error)))
        else:
            self.post_message(self.Loaded(trace, data))

    def on_debugger_screen_loaded(self, message: Loaded) -> None:
        self._source = message.source
        self.set_trace(message.trace)
        name = scenario_name(message.trace)
        steps = tr(msg("{count} steps", count=len(message.trace.steps)))
        # markup=False: the names are the scenario's own text
        if message.reloaded:
            file = escape(Path(message.trace.path or "").name, 80)
            text = _("{file} changed: re-read and run again, {steps}").format(
                file=file, steps=steps
            )
            self.notify(text, title=_("reloaded"), markup=False)
        else:
            self.notify(f"{name}: {steps}", title=_("loaded"), markup=False)
        if message.trace.not_removed:
            # the scenario's what-if removes a check this kernel does not have: say so
            names = ", ".join(message.trace.not_removed)
            text = _("{names}: no such check in {kernel}; remove_checks not applied").format(
                names=names, kernel=message.trace.kernel
            )
            self.notify(
                text,
                title=_("what-if not in force"),
                severity="warning",
                timeout=8,
                markup=False,
            )

    def on_debugger_screen_load_failed(self, message: LoadFailed) -> None:
        name = escape(Path(message.path).name, 80)
        if message.reloaded:
            title = _("{name} changed but does not load; still showing the previous run").format(
                name=name
            )
        else:
            title = _("could not load {name}").format(name=name)
        self.notify(escape(message.error), title=title, severity="error", timeout=10, markup=False)

    def set_trace(self, trace: Trace) -> None:
        """Replace the session with a new trace, at position 0."""
        self.timeline = Timeline(trace)
        self._listing = Listing.from_trace(trace)
        self._end_notice_until = 0.0  # a new trace's end gets its own notice
        # Another run: its machine is built again when a command needs it; points set on
        # the old run are resolved again on the new one (as gdb keeps them across a run).
        self._at = None
        self.set_reactive(DebuggerScreen.position, 0)
        self._apply_timeline()
        self._reapply_points()

    def _apply_timeline(self) -> None:
        """Hand the per-trace data to the panels, then show the current position."""
        trace = self.timeline.trace
        self._listing_view.set_rows(self._listing.rows)
        source = "entry_64_fred.S" if trace.fred else "entry_64.S"
        if {"entry_INT80_compat", "int80_emulation"} & trace.symbols.keys():
            source += " + entry_64_compat.S"  # the int $0x80 entry, listed after it
        self._listing_view.border_title = f"{source} · {trace.kernel}"
        # do_fast_syscall_32 decides in C on every kernel
        self._checks.in_c = spec(trace.kernel).checks_in_c or trace.door.fast32
        self._checks.fred = trace.fred
        self._verdict.fred = trace.fred
        self._checks.door = self._verdict.door = trace.door
        # a 32-bit SYSCALL or SYSENTER returns with SYSRETL, if its conditions hold
        self._checks.border_title = (
            _("SYSRETL checks") if trace.door.fast32 and trace.checks else _("SYSRET checks")
        )
        self._stack.min_lines = rows_needed(trace.steps)
        self._msr_data = dict(trace.msrs)
        self._symbols = dict(trace.symbols)
        self._status.scenario = scenario_name(trace)
        self._status.total = self.timeline.end
        self._show()

    # -- pushing the state down -----------------------------------------------------------

    def _show(self) -> None:
        """Give every panel its values for the current position."""
        timeline = self.timeline
        trace = timeline.trace
        position = self.position
        ran = timeline.ran(position)
        upcoming = timeline.upcoming(position)
        focus = ran or upcoming
        regs = timeline.regs(position)
        changed = timeline.changed(position)
        events = ran.events if ran is not None else ()
        kinds = {event.kind for event in events}
        line = timeline.source_line(focus)

        rows = self._listing.row_of_step
        self._listing_view.ran_row = rows[position - 1] if ran is not None else None
        self._listing_view.next_row = rows[position] if upcoming is not None else None

        self._expansion.view = ExpansionView(line, ran, upcoming)
        # 6.12's SYSRET decision: modelled C steps inside do_syscall_64, not instructions
        c_step = focus if focus is not None and focus.is_c else None
        if c_step is not None:
            self._expansion.set_title(_("{function} · C, modelled").format(function=c_step.label))
        elif line is not None:
            macro = focus.macro if focus is not None else None
            self._expansion.set_title(
                _("expansion · {macro}").format(macro=macro) if macro else _("instruction")
            )
        elif focus is not None and focus.cpl == 0:
            self._expansion.set_title(_("{label} · outside entry_64.S").format(label=focus.label))
        else:
            self._expansion.set_title(_("user instruction"))

        if c_step is not None:
            key = c_step.c.key if c_step.c is not None else None
            note = c_step_note(c_step.kind, c_step.source, c_step.label, key)
        elif line is not None:
            note = line.note
        elif focus is not None and focus.cpl == 3:
            note = vdso_note(focus.rip, trace.initial.cs) or user_note(focus.text)
        elif focus is not None:
            note = kernel_note(focus.label)
        else:
            note = ""
        handler = timeline.handler_lines(ran) if "handler" in kinds and ran is not None else ()
        rewritten = ran.rewritten if ran is not None else ()
        self._note.view = NoteView(note, events, handler, rewritten)

        self._registers.view = RegistersView(regs, timeline.before(position), changed)

        stack_name = ran.stack_name if ran is not None else StackName.USER
        self._stack.view = StackView(
            stack=ran.stack if ran is not None else (),
            entry_stack=ran.entry_stack if ran is not None else (),
            rsp=regs.rsp,
            stack_name=stack_name,
            writes=ran.stack_writes if ran is not None else (),
            reads=ran.stack_reads if ran is not None else (),
            rewritten=ran.rewritten if ran is not None else (),
        )
        self._stack.set_title(stack_title(stack_name))

        self._msrs.view = MsrView(
            msrs=self._msr_data,
            symbols=self._symbols,
            fs_base=regs.fs_base,
            gs_base=regs.gs_base,
            kernel_gs_base=regs.kernel_gs_base,
            swapped="swapgs" in kinds,
            # Only the bases matter to this panel; RIP changes every step.
            changed=changed & {"fs_base", "gs_base", "kernel_gs_base"},
        )
        self._roots.view = RootsView(
            trace.roots,
            regs.cr3,
            "cr3_switch" in kinds or "cr3" in changed,
            ran.cr3_written if ran is not None else None,
        )

        checks = timeline.checks(position)
        self._checks.checks = checks
        self._verdict.checks = checks

        fault = timeline.fault_at(position)
        self._fault.fault = fault
        self._verdict.fault = fault.name if fault is not None else ""

        status = self._status
        status.position = position
        status.cpl = regs.cpl
        # Where the CPU is now, beside the CPL it is at: the code the next step runs (after
        # SYSCALL that is entry_SYSCALL_64, not the user code that ran), or at the end, user
        # mode once back at CPL 3.  A kernel symbol, or "user" for the scenario's own code.
        if upcoming is not None:
            here = upcoming.label
        elif regs.cpl == 3:
            here = "user"
        else:
            here = focus.label if focus is not None else ""
        status.label = _(here) if here else ""
        path = exit_path(checks)
        if fault is not None:
            status.exit_path = _("fault {name}").format(name=fault.name)
        elif self.timeline.trace.fred:
            status.exit_path = _("ERETU (FRED: no SYSRET decision)")
        elif self.timeline.trace.door is Door.INT80:
            status.exit_path = _("IRET (int $0x80: no SYSRET decision)")
        elif self.timeline.trace.door is Door.SYSCALL32 and not checks:
            status.exit_path = _("SYSRETL (entry_SYSCALL32_ignore: no SYSRET decision)")
        elif path is ExitPath.SYSRET and self.timeline.trace.door.fast32:
            status.exit_path = _("SYSRETL (fast path)")
        elif path is not None:
            status.exit_path = (
                _("SYSRET (fast path)") if path is ExitPath.SYSRET else _("IRET (slow path)")
            )
        else:
            status.exit_path = "—"
        status.modelled = ran.modelled if ran is not None else False

        now = self._now
        now.line_number = line.number if line is not None else None
        now.line_text = line.text if line is not None else (focus.text if focus else "")
        if ran is not None:
            now.instruction = f"● {ran.rip:016x}  {ran.text}"
        elif upcoming is not None:
            now.instruction = f"▶ {upcoming.rip:016x}  {upcoming.text}"
        else:
            now.instruction = ""
        self._show_inspect()
