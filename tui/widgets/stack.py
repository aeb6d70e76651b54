"""The kernel stacks: pt_regs on the task stack and the trampoline words on the entry stack.

Words appear as they are pushed, top of stack first.  RSP is drawn as an arrow; the word the
last step wrote or read is highlighted, and so are the pt_regs words the modelled
do_syscall_64 step rewrote (old → new is in the note); words below RSP (already popped) are
dimmed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from textual.content import Content
from textual.style import Style

from engine.i18n import N_, _
from engine.trace import SLOT_RETURN_ADDRESS, SLOT_SAVED_AX, StackName, StackSlot, Step
from tui.text import fit
from tui.widgets.panel import ViewPanel

STACK_TITLES: dict[StackName, str] = {
    StackName.USER: N_("stack · rsp on the user stack"),
    StackName.TASK: N_("stack · rsp on the task stack"),
    StackName.ENTRY: N_("stack · rsp on the entry stack"),
    StackName.OTHER: N_("stack · rsp is scratch, on no stack"),
}


def stack_title(stack_name: StackName) -> str:
    return _(STACK_TITLES[stack_name])


SLOT_WIDTH = 8
#: Shorter names for the engine's longer slot names, so a word stays on one row.
SLOT_SHORT = {SLOT_RETURN_ADDRESS: N_("ret addr"), SLOT_SAVED_AX: N_("saved ax")}


def slot_label(slot: str) -> str:
    """The slot's name in exactly SLOT_WIDTH cells (pt_regs field names stay as they are)."""
    short = SLOT_SHORT.get(slot)
    return fit(_(short) if short else slot, SLOT_WIDTH)


def rows_needed(steps: Sequence[Step]) -> int:
    """An upper bound of the panel's rows over a whole trace: two headings, every word, the
    RSP arrow and the user-stack lines."""
    words = max((len(step.stack) + len(step.entry_stack) for step in steps), default=0)
    return words + 6


@dataclass(frozen=True, slots=True)
class StackView:
    stack: tuple[StackSlot, ...]  # pt_regs words written so far on the task stack
    entry_stack: tuple[StackSlot, ...]  # words written so far on the entry stack
    rsp: int
    stack_name: StackName  # which stack RSP is on
    writes: tuple[int, ...]  # addresses the last step wrote
    reads: tuple[int, ...]  # addresses the last step read
    rewritten: tuple[tuple[str, int, int], ...] = ()  # pt_regs fields the step rewrote

    @property
    def task_addresses(self) -> frozenset[int]:
        return frozenset(slot.address for slot in self.stack)


class StackPanel(ViewPanel[StackView]):
    """pt_regs and trampoline words with slot names."""

    _rsp_row = 0  # the row of RSP's arrow in the last build

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "stack--heading",
        "stack--heading-live",
        "stack--address",
        "stack--slot",
        "stack--written",
        "stack--read",
        "stack--rewritten",
        "stack--popped",
        "stack--rsp",
        "stack--empty",
    }

    def watch_view(self, view: StackView | None) -> None:
        rewritten = view.rewritten if view is not None else ()
        # old → new for the words marked "h", on hover
        self.tooltip = (
            "\n".join(f"{name}: {old:#x} → {new:#x}" for name, old, new in rewritten)
            if rewritten
            else None
        )
        super().watch_view(view)
        self.keep_in_view(self._rsp_row)

    def build(self, width: int) -> list[Content]:
        view = self.view
        if view is None:
            return []
        # The row RSP's arrow is on, kept in view; found while building, never read back.
        self._rsp_row = 0
        lines: list[Content] = []
        self._section(lines, view, StackName.TASK, _("task stack · pt_regs"), view.stack)
        if view.entry_stack or view.stack_name is StackName.ENTRY:
            title = _("entry stack · trampoline")
            self._section(lines, view, StackName.ENTRY, title, view.entry_stack)
        if view.stack_name in (StackName.USER, StackName.OTHER):
            where = (
                _("rsp points into the user stack")
                if view.stack_name is StackName.USER
                else _("rsp is scratch here, not a stack pointer")
            )
            rsp_style = self.style("stack--rsp")
            lines.append(Content.assemble((where, self.style("stack--heading-live"))))
            self._rsp_row = len(lines)
            lines.append(Content.assemble(("→  ", rsp_style), (f"{view.rsp:016x}", rsp_style)))
        return lines

    def _section(
        self,
        lines: list[Content],
        view: StackView,
        name: StackName,
        title: str,
        slots: tuple[StackSlot, ...],
    ) -> None:
        """Append one stack's heading and words to *lines*."""
        live = view.stack_name is name
        heading = self.style("stack--heading-live" if live else "stack--heading")
        lines.append(Content.assemble((title + ("  ◀ rsp" if live else ""), heading)))
        if not slots and not live:
            empty = self.style("stack--empty")
            lines.append(Content.assemble(("  " + _("(nothing pushed yet)"), empty)))
            return
        ordered = sorted(slots, key=lambda s: s.address, reverse=True)
        rsp = view.rsp
        arrow_done = not live
        for slot in ordered:
            if not arrow_done and rsp > slot.address:
                # RSP sits between words (e.g. the top of an emptied stack): draw it on its own.
                self._rsp_row = len(lines)
                lines.append(self._rsp_line(rsp, "top" if slot is ordered[0] else ""))
                arrow_done = True
            at_rsp = live and slot.address == rsp
            if at_rsp:
                self._rsp_row = len(lines)
            arrow_done = arrow_done or at_rsp
            lines.append(self._slot_line(view, slot, at_rsp, popped=live and slot.address < rsp))
        if not arrow_done:
            self._rsp_row = len(lines)
            lines.append(self._rsp_line(rsp, "empty" if not ordered else ""))

    def _rsp_line(self, rsp: int, why: str) -> Content:
        style = self.style("stack--rsp")
        text = {"top": "  " + _("top of stack"), "empty": "  " + _("empty")}.get(why, "")
        return Content.assemble(
            ("→  ", style), (f"{rsp:016x}", style), (text, self.style("stack--empty"))
        )

    def _slot_line(self, view: StackView, slot: StackSlot, at_rsp: bool, popped: bool) -> Content:
        rewritten = {name for name, _, _ in view.rewritten}
        if slot.slot in rewritten and slot.address in view.task_addresses:
            # The handler wrote this pt_regs word directly, not through a push.
            value_style = self.style("stack--rewritten")
            mark = "h"
        elif slot.address in view.writes:
            value_style = self.style("stack--written")
            mark = "w"
        elif slot.address in view.reads:
            value_style = self.style("stack--read")
            mark = "r"
        elif popped:
            value_style = self.style("stack--popped")
            mark = ""
        else:
            value_style = self.style()
            mark = ""
        address_style: Style = self.style("stack--popped" if popped else "stack--address")
        # Three columns of marks: RSP's arrow, then w or r for the word the step touched.
        arrow = ("→", self.style("stack--rsp")) if at_rsp else " "
        return Content.assemble(
            arrow,
            (f"{mark or ' '} ", value_style if mark else self.style()),
            (f"{slot.address:016x} ", address_style),
            (
                slot_label(slot.slot) + " ",
                self.style("stack--popped" if popped else "stack--slot"),
            ),
            (f"{slot.value:016x}", value_style),
        )
