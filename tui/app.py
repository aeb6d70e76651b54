"""The Textual application: loads the first scenario and hands it to the debugger screen."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, CSSPathType
from textual.binding import Binding, BindingType
from textual.command import CommandPalette, Provider
from textual.screen import Screen

from engine.i18n import N_, _, set_language
from engine.trace import Trace
from tui.screens.commands import DebuggerCommands
from tui.screens.debugger import DebuggerScreen
from tui.theme import HIGHLIGHTS
from tui.theme import install as install_theme

if TYPE_CHECKING:
    # engine.compare loads the scenario parser and with it the whole machine (Unicorn,
    # Capstone, Keystone): the debugger's start from a cached trace must not pay for it.
    from engine.compare.diff import Comparison
    from engine.compare.real import Against

HERE = Path(__file__).resolve().parent


def default_scenario_dirs() -> tuple[Path, ...]:
    """Where the picker looks for *.toml: what the user is working on first (./scenarios,
    then the working directory), the scenarios shipped with the package after (those taken
    from the kernel's x86 selftests in their own folder)."""
    from engine.paths import bundled_scenarios_dir

    cwd = Path.cwd()
    bundled = bundled_scenarios_dir()
    return (cwd / "scenarios", cwd, bundled, bundled / "selftests")


#: Textual's own palette placeholder is English; this is its msgid.
PALETTE_PLACEHOLDER = N_("Search for commands…")


def open_palette(app: App[Any]) -> None:
    """The command palette with its placeholder in the UI's language."""
    if app.use_command_palette and not CommandPalette.is_open(app):
        app.push_screen(CommandPalette(placeholder=_(PALETTE_PLACEHOLDER), id="--command-palette"))


class SyscallTuiApp(App[int]):
    """Single-step the Linux SYSCALL entry (v5.8.13, 6.1 or 6.12) on an emulated CPU."""

    TITLE = "syscall-tui"
    # Absolute, so that subclasses defined elsewhere (tests, benchmarks) find the files too.
    CSS_PATH: ClassVar[CSSPathType | None] = [HERE / "debugger.tcss", HERE / "dialogs.tcss"]
    COMMANDS = App.COMMANDS | {DebuggerCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", N_("quit"), tooltip=N_("Leave syscall-tui"), id="quit")
    ]

    def __init__(
        self,
        trace: Trace,
        scenario_dirs: Iterable[Path] | None = None,
        source: bytes | None = None,
        lang: str | None = None,
    ) -> None:
        super().__init__()
        install_theme(self)
        if lang is not None:
            set_language(lang)  # else whatever engine.i18n has (the CLI sets it from --lang)
        self.trace = trace
        self.source = source
        """The bytes of the scenario file the trace was made from, if known (for restart)."""
        self.scenario_dirs = (
            tuple(scenario_dirs) if scenario_dirs is not None else default_scenario_dirs()
        )
        self.first_frame: Callable[[], None] | None = None
        """Called once the debugger's first frame is drawn: the process that runs the app
        freezes what start-up built (see tui.launch), ``serve`` gives up its start slot."""

    def on_mount(self) -> None:
        if self.first_frame is not None:
            # The default screen is composed before the app's Mount: its next refresh is
            # the first full frame.
            self.screen.call_after_refresh(self.first_frame)

    def action_command_palette(self) -> None:
        open_palette(self)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return HIGHLIGHTS

    def get_default_screen(self) -> Screen[None]:
        return DebuggerScreen(self.trace, self.scenario_dirs, self.source)


def _compare_commands() -> type[Provider]:
    # Imported when the palette opens: the debugger's start-up does not pay for it.
    from tui.screens.compare import CompareCommands

    return CompareCommands


class CompareApp(App[int]):
    """Two recorded runs side by side (``syscall-tui compare``)."""

    TITLE = "syscall-tui compare"
    # The panels the compare screen shares with the debugger are styled in debugger.tcss.
    CSS_PATH: ClassVar[CSSPathType | None] = [
        HERE / "debugger.tcss",
        HERE / "dialogs.tcss",
        HERE / "compare.tcss",
    ]
    BINDINGS: ClassVar[list[BindingType]] = SyscallTuiApp.BINDINGS
    COMMANDS = App.COMMANDS | {_compare_commands}

    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        install_theme(self)
        self.comparison = comparison

    def action_command_palette(self) -> None:
        open_palette(self)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return HIGHLIGHTS

    def get_default_screen(self) -> Screen[None]:
        from tui.screens.compare import CompareScreen

        return CompareScreen(self.comparison)


class AgainstApp(App[int]):
    """A scenario's run beside a real kernel's trace of it (``compare --against``)."""

    TITLE = "syscall-tui compare --against"
    CSS_PATH: ClassVar[CSSPathType | None] = [HERE / "against.tcss"]

    def __init__(self, report: Against) -> None:
        super().__init__()
        install_theme(self)
        self.report = report

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return HIGHLIGHTS

    def get_default_screen(self) -> Screen[None]:
        from tui.screens.against import AgainstScreen

        return AgainstScreen(self.report)


def run_against_app(report: Against) -> int:
    """Open the view of a run beside a real trace; the exit status is diff's."""
    AgainstApp(report).run()
    return 0 if report.equal else 1


def run_compare_app(comparison: Comparison) -> int:
    """Open the compare view on two recorded runs."""
    app = CompareApp(comparison)
    app.run()
    return app.return_code or 0
