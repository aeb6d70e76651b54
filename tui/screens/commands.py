"""Command-palette entries: every debugger key, one "open" entry per scenario file, and the
UI languages (each named in its own language, so that it can be found from the other)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape as markup_escape
from textual.screen import Screen

from engine.errors import escape
from engine.i18n import LANGUAGES, _, get_language

#: "Language" in each language, for the palette entry that switches to it.
LANGUAGE_WORD = {"en": "Language", "ja": "言語 (language)"}

#: A palette entry: title, help text, what it runs.
Command = tuple[str, str, Callable[[], object]]


#: Keys the footer has no room for that the palette offers all the same.
PALETTE_TOO = frozenset({"command-line", "continue-back"})


def binding_commands(screen: Screen[Any], bindings: list[BindingType]) -> list[Command]:
    """One entry per shown key of *screen*: the palette offers what the footer does."""
    commands: list[Command] = []
    for binding in bindings:
        if isinstance(binding, Binding) and (binding.show or binding.id in PALETTE_TOO):
            # English msgids in the class: shown in the current language
            title = _(binding.description).capitalize()
            commands.append((title, _(binding.tooltip), partial(screen.run_action, binding.action)))
    return commands


class CommandsProvider(Provider):
    """A provider over a fixed list of entries; subclasses say which, for the active screen."""

    def _commands(self) -> list[Command]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        for title, help_text, command in self._commands():
            yield DiscoveryHit(title, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, text=title, help=help_text)


class DebuggerCommands(CommandsProvider):
    """Offers the debugger's actions while the debugger screen is active."""

    def _commands(self) -> list[Command]:
        from tui.screens.debugger import DebuggerScreen
        from tui.screens.picker import scenario_files

        screen = self.screen
        if not isinstance(screen, DebuggerScreen):
            return []
        commands = binding_commands(screen, DebuggerScreen.BINDINGS)
        if screen.points.points:
            commands.append(
                (
                    _("Delete all breakpoints"),
                    _("Breakpoints and watchpoints"),
                    screen.delete_points,
                )
            )
        if screen.inspect_pinned:
            commands.append(
                (_("Hide the memory and walk panels"), _("As :hide does"), screen.hide_inspect)
            )
        for _directory, files in scenario_files(screen.scenario_dirs):
            for path in files:
                # The palette reads titles and help as markup: a file name is text.
                title = markup_escape(_("Open scenario {name}").format(name=escape(path.name)))
                help_text = markup_escape(escape(str(path)))
                commands.append((title, help_text, partial(self._open, screen, path)))
        for lang, name in LANGUAGES.items():
            if lang != get_language():
                title = f"{LANGUAGE_WORD[lang]}: {name}"
                commands.append((title, f"--lang {lang}", partial(screen.set_language, lang)))
        return commands

    @staticmethod
    def _open(screen: object, path: Path) -> None:
        from tui.screens.debugger import DebuggerScreen

        assert isinstance(screen, DebuggerScreen)
        screen.load(path)
