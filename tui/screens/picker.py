"""Choose a scenario file: ./scenarios and the working directory first, the shipped ones after.

Each file is listed with its title (``name``) and description; typing filters the list,
matching every word of the query against the title and the file name (``cve intel`` finds
cve-2012-0217-intel.toml), and Enter opens the highlighted file or a typed path.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from engine.errors import ScenarioError, escape
from engine.i18n import N_, _
from engine.scenario.prescan import prescan
from engine.scenario.reader import read_scenario_bytes
from tui.text import localized_bindings

#: TOML files that are certainly not scenarios: a project's own configuration, typically in
#: the working directory the debugger is started from.
NOT_SCENARIOS = frozenset({"pyproject.toml", "Cargo.toml", "ruff.toml", ".ruff.toml"})


#: How deep below a listed directory the picker looks (./scenarios/selftests is one level).
MAX_DEPTH = 3
#: At most this many files are listed from one tree: a directory may be anything.
MAX_FILES = 2000


def _subdirectories(directory: Path, depth: int) -> list[Path]:
    """*directory* and the directories below it, depth first in name order; hidden ones
    (.git, .venv) and symbolic links are not entered."""
    out = [directory]
    if depth >= MAX_DEPTH:
        return out
    try:
        children = sorted(
            p
            for p in directory.iterdir()
            if p.is_dir() and not p.is_symlink() and not p.name.startswith((".", "__"))
        )
    except OSError:
        return out
    for child in children:
        out.extend(_subdirectories(child, depth + 1))
    return out


def scenario_files(
    directories: tuple[Path, ...], flat: tuple[Path, ...] = ()
) -> list[tuple[Path, list[Path]]]:
    """Each existing directory with its *.toml files, sorted; duplicates listed once.

    A directory's subdirectories follow it (./scenarios/selftests after ./scenarios),
    except for those in *flat* (the working directory: it may be a home directory).
    Broken files are listed too: opening one shows what is wrong with it.
    """
    seen: set[Path] = set()
    found: list[tuple[Path, list[Path]]] = []
    flat_resolved = {d.resolve() for d in flat}
    count = 0
    for top in directories:
        try:
            resolved_top = top.resolve()
        except OSError:
            continue
        if not resolved_top.is_dir():
            continue
        tree = [resolved_top] if resolved_top in flat_resolved else _subdirectories(resolved_top, 0)
        for resolved in tree:
            if resolved in seen:
                continue
            seen.add(resolved)
            try:
                files = sorted(
                    p
                    for p in resolved.glob("*.toml")
                    if p.is_file() and p.name not in NOT_SCENARIOS
                )
            except OSError:
                continue
            if not files and resolved != resolved_top:
                continue
            files = files[: max(MAX_FILES - count, 0)]
            count += len(files)
            # Shown as given (./scenarios), a subdirectory below it as such.
            shown = top if resolved == resolved_top else top / resolved.relative_to(resolved_top)
            found.append((shown, files))
    return found


@dataclass(frozen=True, slots=True)
class Entry:
    """One listed scenario file; every text in it is escaped (engine.errors.escape)."""

    path: Path
    title: str  # the scenario's name, or "" when it has none (or does not parse)
    description: str  # its first paragraph, on one line; or why the file cannot be used
    digest: bytes  # of the file's bytes, to list a shipped copy of a file already listed once
    note: str = ""  # the picker's own words about the file (a message to translate)

    @classmethod
    def read(cls, path: Path) -> Entry:
        """The file's title, read as loading reads it: any file gives an entry, never an
        exception (a broken one is listed with its one-line reason, to open and see)."""
        try:
            return cls._read(path)
        except Exception as exc:  # a listed file must not end the app, whatever it holds
            return cls(path, "", escape(f"{type(exc).__name__}: {exc}", 200), b"",
                       N_("(not a valid scenario: open it to see why)"))  # fmt: skip

    @classmethod
    def _read(cls, path: Path) -> Entry:
        try:
            raw = read_scenario_bytes(path)  # a regular file of at most 1 MiB, UTF-8
            text = raw.decode("utf-8")
            prescan(text, path.name)  # the parser's bounds on keys and nesting, first
            data = tomllib.loads(text)
        except ScenarioError as exc:
            return cls(path, "", _reason(exc.message, exc.line), b"", N_("(cannot be used)"))
        except RecursionError:
            return cls(path, "", _reason("not valid TOML: nested too deep"), b"",
                       N_("(cannot be used)"))  # fmt: skip
        except ValueError as exc:  # TOMLDecodeError, or an integer of 5,000 digits
            return cls(path, "", _reason(f"not valid TOML: {exc}"), b"", N_("(cannot be used)"))
        title = description = ""
        if isinstance(data.get("name"), str):
            title = escape(" ".join(data["name"].split()), 200)
        if isinstance(data.get("description"), str):
            description = escape(" ".join(data["description"].split("\n\n")[0].split()), 300)
        return cls(path, title, description, hashlib.sha256(raw).digest())

    @property
    def haystack(self) -> str:
        return f"{self.title} {self.path.name}".lower()


def _reason(message: str, line: int | None = None) -> str:
    """Why a file cannot be used, on one escaped line (the file's name is beside it)."""
    return escape(f"line {line}: {message}" if line else message, 200)


def match_score(query: str, haystack: str) -> int | None:
    """How well every word of ``query`` matches ``haystack``: None if one does not match at
    all; a word found as written scores more than one whose letters only appear in order."""
    score = 0
    for word in query.lower().split():
        if word in haystack:
            score += 3 if f" {word}" in f" {haystack}" else 2
            continue
        position = 0
        for char in word:
            position = haystack.find(char, position) + 1
            if not position:
                return None
        score += 1
    return score


def display_dir(directory: Path) -> str:
    """A directory as a person would type it: relative to the working directory if inside."""
    try:
        relative = directory.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return escape(f"{directory}/")
    return "./" if str(relative) == "." else escape(f"./{relative}/")


def looks_like_path(text: str) -> bool:
    return "/" in text or text.startswith("~") or text.endswith(".toml")


class ScenarioPicker(ModalScreen[Path | None]):
    """Returns the chosen file, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "cancel", N_("cancel"), tooltip=N_("Keep the current scenario"), id="cancel"
        ),
        Binding("down", "move(1)", N_("next"), show=False, tooltip=N_("Highlight the next file")),
        Binding(
            "up", "move(-1)", N_("previous"), show=False, tooltip=N_("Highlight the previous file")
        ),
    ]

    def __init__(self, directories: tuple[Path, ...], shipped: Path | None = None) -> None:
        super().__init__()
        self.directories = directories
        self.shipped = shipped
        """The directory of the shipped scenarios, headed as such."""
        self._groups: list[tuple[Path, list[Entry]]] = []
        self._paths: dict[str, Path] = {}

    def compose(self) -> ComposeResult:
        listed: set[str] = set()
        for directory, files in scenario_files(self.directories, flat=(Path.cwd(),)):
            shipped = self.shipped is not None and _is_under(directory, self.shipped)
            entries = []
            for path in files:
                # A shipped file the checkout (./scenarios) has too: the user's copy is the
                # one to open, even edited (its installed twin would ignore the edit).
                if shipped and path.name in listed:
                    continue
                if not shipped:
                    listed.add(path.name)
                entries.append(Entry.read(path))
            if entries or not shipped:
                self._groups.append((directory, entries))
        with Vertical(id="picker"):
            yield Input(placeholder=_("search titles and file names, or type a path"), id="path")
            yield OptionList(*self._options(""), id="scenarios")
            yield Label(_("type to filter · ↑↓ choose · enter open · esc cancel"), id="picker-help")

    def _heading(self, directory: Path) -> str:
        shown = display_dir(directory)
        if shown.startswith("./") or self.shipped is None or not _is_under(directory, self.shipped):
            return shown
        return _("shipped with syscall-tui · {directory}/").format(directory=escape(str(directory)))

    def _options(self, query: str) -> list[Option | None]:
        self._paths = {}
        options: list[Option | None] = []
        for directory, entries in self._groups:
            if query.strip():
                scored = [(match_score(query, e.haystack), i, e) for i, e in enumerate(entries)]
                entries = [e for s, _, e in sorted(
                    ((s, i, e) for s, i, e in scored if s is not None),
                    key=lambda item: (-item[0], item[1]),
                )]  # fmt: skip
                if not entries:
                    continue
            options.append(Option(Content(self._heading(directory)), disabled=True))
            if not entries:
                options.append(Option(Content("  " + _("(no scenario files here)")), disabled=True))
            for entry in entries:
                option_id = f"scenario-{len(self._paths)}"
                self._paths[option_id] = entry.path
                options.append(Option(self._prompt(entry), id=option_id))
        typed = query.strip()
        if typed and looks_like_path(typed) and _is_file(Path(typed).expanduser()):
            # A path typed in full is a match: Enter opens it.
            option_id = f"scenario-{len(self._paths)}"
            self._paths[option_id] = Path(typed).expanduser()
            # Cut at the start when long: the file name is what the reader checks.
            shown = typed if cell_len(typed) <= PROMPT_WIDTH - 2 else _fit_left(typed)
            options.insert(0, Option(Content("  " + shown), id=option_id))
        elif typed and not self._paths:
            none = _("no scenario matches {query}").format(query=escape(repr(typed)))
            options.append(Option(Content(none), disabled=True))
        return options

    @staticmethod
    def _prompt(entry: Entry) -> Content:
        # Content, not markup: titles and descriptions come from untrusted files.
        name = escape(entry.path.name, 120)  # a file name may hold controls too
        title = _fit(entry.title or name, PROMPT_WIDTH - 2)
        detail = name if entry.title else ""
        # the picker's own words are messages; what the file says is never translated
        about = " ".join(t for t in (_(entry.note) if entry.note else "", entry.description) if t)
        if about:
            detail = f"{detail} · {about}" if detail else about
        # One row each: a wrapped description would read as another entry.
        detail = _fit(detail, PROMPT_WIDTH - 4)
        return Content.assemble(
            ("  " + title, "bold"), *(("\n    " + detail, "dim"),) if detail else ()
        )

    def on_mount(self) -> None:
        localized_bindings(self)
        self.query_one("#picker").border_title = _("open scenario")
        self.query_one(Input).focus()
        self._highlight_first()

    def _highlight_first(self) -> None:
        option_list = self.query_one(OptionList)
        if self._paths:
            option_list.highlighted = option_list.get_option_index(next(iter(self._paths)))

    def path_of(self, option_id: str) -> Path:
        return self._paths[option_id]

    @on(Input.Changed)
    def _filter(self, event: Input.Changed) -> None:
        option_list = self.query_one(OptionList)
        option_list.clear_options()
        option_list.add_options(self._options(event.value))
        self._highlight_first()

    def action_move(self, delta: int) -> None:
        """Move the highlight while typing goes on in the search field."""
        option_list = self.query_one(OptionList)
        if delta > 0:
            option_list.action_cursor_down()
        else:
            option_list.action_cursor_up()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None and event.option.id in self._paths:
            self.dismiss(self._paths[event.option.id])

    @on(Input.Submitted)
    def _typed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        listed = {path.name: path for path in self._paths.values()}
        if text in listed:
            self.dismiss(listed[text])
        elif text and looks_like_path(text):
            self.dismiss(Path(text).expanduser())
        else:
            option_list = self.query_one(OptionList)
            highlighted = option_list.highlighted
            if highlighted is not None:
                option = option_list.get_option_at_index(highlighted)
                if option.id in self._paths:
                    self.dismiss(self._paths[option.id])
                    return
            self.app.bell()

    def action_cancel(self) -> None:
        self.dismiss(None)


#: Room for a prompt in the dialog: 72 columns less its border and padding (64 for the
#: list) and the list's scrollbar (2).  A line one cell wider wraps, and the wrapped part
#: read as a one-word title ("through…"); tests/tui/test_classroom_screen.py measures it.
PROMPT_WIDTH = 62


def _fit(text: str, width: int) -> str:
    """*text* in at most *width* terminal cells (a wide character counts two)."""
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, width - 1).rstrip() + "…"


def _fit_left(text: str, width: int = PROMPT_WIDTH - 2) -> str:
    """*text* in at most *width* cells, its start replaced by "…"."""
    while text and cell_len(text) > width - 1:
        text = text[1:]
    return "…" + text


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_under(directory: Path, top: Path) -> bool:
    try:
        return directory.resolve().is_relative_to(top.resolve())
    except OSError:
        return False
