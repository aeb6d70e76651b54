"""Choose a scenario file: the bundled ones and the *.toml of the working directory."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from engine.errors import escape

#: TOML files that are certainly not scenarios: a project's own configuration, typically in
#: the working directory the debugger is started from.
NOT_SCENARIOS = frozenset({"pyproject.toml", "Cargo.toml", "ruff.toml", ".ruff.toml"})


def scenario_files(directories: tuple[Path, ...]) -> list[tuple[Path, list[Path]]]:
    """Each existing directory with its *.toml files, sorted; duplicates listed once.

    Broken files are listed too: opening one shows what is wrong with it.
    """
    seen: set[Path] = set()
    found: list[tuple[Path, list[Path]]] = []
    for directory in directories:
        try:
            resolved = directory.resolve()
        except OSError:
            continue
        if resolved in seen or not resolved.is_dir():
            continue
        seen.add(resolved)
        files = sorted(
            p for p in resolved.glob("*.toml") if p.is_file() and p.name not in NOT_SCENARIOS
        )
        found.append((directory, files))
    return found


class ScenarioPicker(ModalScreen[Path | None]):
    """Returns the chosen file, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel", tooltip="Keep the current scenario", id="cancel")
    ]

    def __init__(self, directories: tuple[Path, ...]) -> None:
        super().__init__()
        self.directories = directories
        self._paths: dict[str, Path] = {}

    def compose(self) -> ComposeResult:
        options: list[Option | None] = []
        # File names are shown as text (Content), never read as markup: a file named
        # "[red]x.toml" is listed as just that.
        for directory, files in scenario_files(self.directories):
            options.append(Option(Content(f"{escape(str(directory))}/"), disabled=True))
            for path in files:
                option_id = f"scenario-{len(self._paths)}"
                self._paths[option_id] = path
                options.append(Option(Content(f"  {escape(path.name)}"), id=option_id))
            if not files:
                options.append(Option("  (no *.toml here)", disabled=True))
        with Vertical(id="picker"):
            yield OptionList(*options, id="scenarios")
            yield Label("or type a path:")
            yield Input(placeholder="path/to/scenario.toml", id="path")

    def on_mount(self) -> None:
        self.query_one("#picker").border_title = "open scenario"
        option_list = self.query_one(OptionList)
        option_list.focus()
        if self._paths:
            first = next(iter(self._paths))
            option_list.highlighted = option_list.get_option_index(first)

    def path_of(self, option_id: str) -> Path:
        return self._paths[option_id]

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None and event.option.id in self._paths:
            self.dismiss(self._paths[event.option.id])

    @on(Input.Submitted)
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)
