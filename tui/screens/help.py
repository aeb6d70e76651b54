"""Keys and the meaning of the markers."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import ClassVar

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownParagraph, MarkdownTableCellContents

from engine.i18n import N_, _
from tui.text import localized_bindings, wrap

#: The legend, one msgid per heading, item and paragraph (Markdown inside).
LEGEND: tuple[str, ...] = (
    N_("## Reading the screen"),
    N_("- **●** the instruction the last step executed; its effects are highlighted."),
    N_("- **▶** the instruction the next step executes."),
    N_("- A highlighted register or MSR value was changed by the last step."),
    N_(
        "- **→** on a stack marks where RSP points; `w` and `r` mark the word the last step "
        "wrote or read; dimmed words lie below RSP (popped)."
    ),
    N_("- **● live** marks the page-table root CR3 selects; both roots light up on a CR3 write."),
    N_(
        "- **h** on a stack word: do_syscall_64 (modelled) rewrote it (the return value, or "
        "what ptrace or rt_sigreturn set); the why panel shows old → new."
    ),
    # The words are the checks panel's and the trace table's, one per state.
    N_(
        "- SYSRET checks: **✓** pass, **✗** FAIL, **·** pending (not made yet) or skipped "
        "(never made: an earlier check failed), **⊘** REMOVED (a what-if scenario took the "
        "check out of the kernel). The first failure sends the exit through IRET "
        "(`swapgs_restore_regs_and_return_to_usermode`)."
    ),
    N_(
        "- **modelled**: Unicorn does not implement this part of the CPU (or the C handler); "
        "the engine computed its effect instead of executing it."
    ),
    N_(
        "`continue` stops at: entering the kernel, the CR3 switch, swapgs, the call to "
        "do_syscall_64, each check verdict, the exit instruction and a fault."
    ),
    N_(
        "When the three columns do not fit, the code stays beside one panel picked by the "
        "tabs (keys 3–7); in a narrow terminal every panel is a tab (keys 1–7). A number key "
        "also gives its panel the keyboard: the arrow and page keys then scroll it, as the "
        "mouse wheel does."
    ),
)


def legend_markdown() -> str:
    """The legend in the current language; items of a list stay one block."""
    out: list[str] = []
    for part in LEGEND:
        text = _(part)
        if out and not (text.startswith("- ") and out[-1].startswith("- ")):
            out.append("")
        out.append(text)
    return "\n".join(out)


#: f1 .. f24: written F1 in the help; a plain "f" stays lower case (F would mean shift+f).
_FUNCTION_KEY = re.compile(r"f(?:[1-9]|1[0-9]|2[0-4])")


def key_names(binding: Binding) -> str:
    """How a binding's keys are written in the help: "s / F7"."""
    if binding.key_display:
        return binding.key_display
    return " / ".join(
        key.upper() if _FUNCTION_KEY.fullmatch(key) else key for key in binding.key.split(",")
    )


def keys_markdown(bindings: Sequence[BindingType], extra: Sequence[tuple[str, str]]) -> str:
    """The key table, built from a screen's bindings so that it cannot drift from them.

    *extra* adds rows for keys that are not the screen's bindings: (keys, English msgid).
    """
    key, action = _("key"), _("action")
    rows = ["## " + _("Keys"), "", f"| {key} | {action} |", "| --- | --- |"]
    for binding in bindings:
        if isinstance(binding, Binding) and binding.show:
            text = _(binding.tooltip or binding.description)
            rows.append(f"| `{key_names(binding)}` | {text} |")
    rows.extend(f"| `{keys}` | {_(text)} |" for keys, text in extra)
    return "\n".join(rows)


def rewrapped(content: Content, width: int) -> Content:
    """*content* broken into lines where the panels would break it (tui.text.wrap), its
    styles kept.

    Textual's Markdown wraps at spaces only, which in Japanese are the spaces around a
    name or a number: 「CR3 / に書き込むと」 with the particle starting a line.  Text
    without wide characters is left to Textual (the same as textwrap for English).
    """
    plain = content.plain
    if not width or "\n" in plain or all(cell_len(c) < 2 for c in plain):
        return content
    pieces = []
    at = 0
    for line in wrap(plain, width):
        while at < len(plain) and plain[at] == " ":
            at += 1
        if not plain.startswith(line, at):
            return content  # not a plain cut of the text (never, for Markdown's one-space text)
        pieces.append(content[at : at + len(line)])
        at += len(line)
    return Content("\n").join(pieces)


class HelpScreen(ModalScreen[None]):
    """What every key does and what the marks on screen mean."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,question_mark,q", "close", N_("close"), tooltip=N_("Close the help"), id="close"
        )
    ]

    def __init__(
        self,
        bindings: Sequence[BindingType],
        extra: Sequence[tuple[str, str]],
        legend: Callable[[], str] = legend_markdown,
    ) -> None:
        # The screen that opens the help hands its keys down: the help knows no screen.
        super().__init__()
        self._screen_bindings = bindings
        self._extra = extra
        self._legend = legend
        self._cells: dict[MarkdownTableCellContents, object] = {}

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(
                keys_markdown(self._screen_bindings, self._extra) + "\n\n" + self._legend()
            )

    def on_mount(self) -> None:
        localized_bindings(self)
        self.query_one("#help").border_title = _("help")

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self._rewrap)

    def _rewrap(self) -> None:
        """Each paragraph, list item and table cell broken as the panels break text, at
        its width."""
        for paragraph in self.query(MarkdownParagraph):
            # _content keeps what the Markdown parser built; update() shows the lines
            original = getattr(paragraph, "_content", None)
            if isinstance(original, Content):
                paragraph.update(rewrapped(original, paragraph.content_region.width))
        for cell in self.query(MarkdownTableCellContents):
            # A cell keeps no copy of its own: the first one seen is the parser's.
            original = self._cells.setdefault(cell, cell.content)
            if isinstance(original, Content):
                cell.update(rewrapped(original, cell.content_region.width))

    def action_close(self) -> None:
        self.dismiss(None)
