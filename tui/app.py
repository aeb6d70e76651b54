"""The Textual application: loads the first scenario and hands it to the debugger screen."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, CSSPathType
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.screen import Screen

from engine.compare import Comparison
from engine.trace import Trace
from tui.screens.commands import DebuggerCommands
from tui.screens.debugger import DebuggerScreen

HERE = Path(__file__).resolve().parent


def default_scenario_dirs() -> tuple[Path, ...]:
    """Where the picker looks for *.toml: the bundled scenarios (those taken from the
    kernel's x86 selftests in their own folder), then the working directory."""
    from engine import bundled_scenarios_dir

    bundled = bundled_scenarios_dir()
    return (bundled, bundled / "selftests", Path.cwd())


class SyscallTuiApp(App[int]):
    """Single-step the Linux SYSCALL entry (v5.8.13, 6.1 or 6.12) on an emulated CPU."""

    TITLE = "syscall-tui"
    # Absolute, so that subclasses defined elsewhere (tests, benchmarks) find the files too.
    CSS_PATH: ClassVar[CSSPathType | None] = [HERE / "debugger.tcss", HERE / "dialogs.tcss"]
    COMMANDS = App.COMMANDS | {DebuggerCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit", tooltip="Leave syscall-tui", id="quit")
    ]

    def __init__(self, trace: Trace, scenario_dirs: Iterable[Path] | None = None) -> None:
        super().__init__()
        self.trace = trace
        self.scenario_dirs = (
            tuple(scenario_dirs) if scenario_dirs is not None else default_scenario_dirs()
        )

    def get_default_screen(self) -> Screen[None]:
        return DebuggerScreen(self.trace, self.scenario_dirs)


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
        self.comparison = comparison

    def get_default_screen(self) -> Screen[None]:
        from tui.screens.compare import CompareScreen

        return CompareScreen(self.comparison)


def run_app(path: str | None) -> int:
    """Run the scenario at ``path`` (None: the built-in default) and open the debugger on it.

    A scenario that cannot be loaded is reported on stderr before any screen is drawn.
    """
    from engine import ScenarioError, default_scenario_path, load_scenario, run_scenario

    target = path if path is not None else str(default_scenario_path())
    try:
        trace = run_scenario(load_scenario(target))
    except ScenarioError as error:  # its text names the file and is escaped
        print(f"syscall-tui: {error}", file=sys.stderr)
        return 2
    app = SyscallTuiApp(trace)
    app.run()
    return app.return_code or 0


def run_compare_app(comparison: Comparison) -> int:
    """Open the compare view on two recorded runs."""
    app = CompareApp(comparison)
    app.run()
    return app.return_code or 0
