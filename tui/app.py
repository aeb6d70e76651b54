"""The Textual application: loads the first scenario and hands it to the debugger screen."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, CSSPathType
from textual.binding import Binding, BindingType
from textual.screen import Screen

from engine.trace import Trace
from tui.screens.commands import DebuggerCommands
from tui.screens.debugger import DebuggerScreen

HERE = Path(__file__).resolve().parent


def default_scenario_dirs() -> tuple[Path, ...]:
    """Where the picker looks for *.toml: what the user is working on first (./scenarios,
    then the working directory), the scenarios shipped with the package after."""
    from engine.scenario import bundled_scenarios_dir

    cwd = Path.cwd()
    return (cwd / "scenarios", cwd, bundled_scenarios_dir())


class SyscallTuiApp(App[int]):
    """Single-step the Linux v5.8.13 SYSCALL entry on an emulated CPU."""

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


def run_app(path: str | None) -> int:
    """Run the scenario at ``path`` (None: the built-in default) and open the debugger on it.

    A scenario that cannot be loaded is reported on stderr before any screen is drawn.
    """
    from engine import ScenarioError, default_scenario_path, load_scenario, run_scenario

    target = path if path is not None else str(default_scenario_path())
    try:
        trace = run_scenario(load_scenario(target))
    except ScenarioError as error:
        print(f"syscall-tui: {target}: {error}", file=sys.stderr)
        return 2
    app = SyscallTuiApp(trace)
    app.run()
    return app.return_code or 0
