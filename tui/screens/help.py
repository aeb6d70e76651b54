"""Keys and the meaning of the markers."""

from __future__ import annotations

import re
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

LEGEND = """\
## Reading the screen

- **●** the instruction the last step executed; its effects are highlighted.
- **▶** the instruction the next step executes.
- A highlighted register or MSR value was changed by the last step.
- **→** on a stack marks where RSP points; `w` and `r` mark the word the last step wrote or
  read; dimmed words lie below RSP (popped).
- **● live** marks the page-table root CR3 selects; both roots light up on a CR3 write.
- SYSRET checks: **✓** pass, **✗** FAIL, **·** not reached yet. The first failure sends the
  exit through IRET (`swapgs_restore_regs_and_return_to_usermode`).
- **modelled**: Unicorn does not implement this part of the CPU (or the C handler); the
  engine computed its effect instead of executing it.

`continue` stops at: entering the kernel, the CR3 switch, swapgs, the call to
do_syscall_64, each check verdict, the exit instruction and a fault.

When the three columns do not fit, the code stays beside one panel picked by the tabs
(keys 3–7); in a narrow terminal every panel is a tab (keys 1–7). A number key also gives
its panel the keyboard: the arrow and page keys then scroll it, as the mouse wheel does.
"""


#: f1 .. f24: written F1 in the help; a plain "f" stays lower case (F would mean shift+f).
_FUNCTION_KEY = re.compile(r"f(?:[1-9]|1[0-9]|2[0-4])")


def key_names(binding: Binding) -> str:
    """How a binding's keys are written in the help: "s / F7"."""
    if binding.key_display:
        return binding.key_display
    return " / ".join(
        key.upper() if _FUNCTION_KEY.fullmatch(key) else key for key in binding.key.split(",")
    )


def keys_markdown() -> str:
    """The key table, built from the bindings so that it cannot drift from them."""
    from tui.screens.debugger import DebuggerScreen

    rows = ["## Keys", "", "| key | action |", "| --- | --- |"]
    for binding in DebuggerScreen.BINDINGS:
        if isinstance(binding, Binding) and binding.show:
            rows.append(f"| `{key_names(binding)}` | {binding.tooltip or binding.description} |")
    rows.append("| `1`–`7` | pick a panel when the panels are tabs |")
    rows.append("| `ctrl+p` | command palette: every action, and each scenario to open |")
    rows.append("| `q` | quit |")
    return "\n".join(rows)


class HelpScreen(ModalScreen[None]):
    """What every key does and what the marks on screen mean."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "close", tooltip="Close the help", id="close")
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(keys_markdown() + "\n\n" + LEGEND)

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "help"

    def action_close(self) -> None:
        self.dismiss(None)
