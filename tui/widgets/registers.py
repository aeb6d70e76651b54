"""General-purpose registers, RIP, RFLAGS decoded, CS/SS and the CPL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.content import Content
from textual.style import Style

from engine.i18n import _
from engine.trace import Regs
from engine.views.decode import IOPL_MASK, RFLAGS_BITS, hex64, selector_name
from tui.widgets.panel import ViewPanel

LEFT = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp")
RIGHT = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
#: The flags shown on the decoded row; VM and ID never change on this path.
SHOWN_FLAGS = tuple((name, bit) for name, bit in RFLAGS_BITS if name not in ("VM", "ID"))


@dataclass(frozen=True, slots=True)
class RegistersView:
    regs: Regs  # after the last step (or the initial state)
    before: Regs | None  # before the last step, to mark the RFLAGS bits it flipped
    changed: frozenset[str]  # registers the last step changed


class RegistersPanel(ViewPanel[RegistersView]):
    """Register values; those the last step changed are highlighted."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "registers--name",
        "registers--changed",
        "registers--flag-set",
        "registers--flag-clear",
        "registers--flag-changed",
        "registers--note",
    }

    def build(self, width: int) -> list[Content]:
        view = self.view
        if view is None:
            return []
        regs = view.regs
        changed = view.changed
        changed_style = self.style("registers--changed")
        plain = self.style()

        def value(name: str, text: str) -> tuple[str, Style]:
            return text, changed_style if name in changed else plain

        name_style = self.style("registers--name")
        note_style = self.style("registers--note")
        lines = [
            Content.assemble(
                (f"{left:<4}", name_style),
                value(left, hex64(getattr(regs, left))),
                "   ",
                (f"{right:<4}", name_style),
                value(right, hex64(getattr(regs, right))),
            )
            for left, right in zip(LEFT, RIGHT, strict=True)
        ]
        mode = _("kernel") if regs.cpl == 0 else _("user")
        cpl_text = f"CPL {regs.cpl} ({mode})"
        lines.append(
            Content.assemble(
                ("rip ", name_style),
                value("rip", hex64(regs.rip)),
                "   ",
                (cpl_text, note_style),
            )
        )
        lines.append(Content.assemble(("rflags ", name_style), value("rflags", hex64(regs.rflags))))
        lines.append(self._flags(regs.rflags, view.before))
        lines.append(
            Content.assemble(
                ("cs ", name_style),
                value("cs", f"{regs.cs:04x}"),
                (f" {selector_name(regs.cs):<13}", note_style),
                ("ss ", name_style),
                value("ss", f"{regs.ss:04x}"),
                (f" {selector_name(regs.ss)}", note_style),
            )
        )
        return lines

    def _flags(self, rflags: int, before_regs: Regs | None) -> Content:
        """One row naming every flag: set ones bright, clear ones dim, flipped ones marked."""
        before = before_regs.rflags if before_regs is not None else rflags
        parts: list[str | Content | tuple[str, str | Style]] = []
        for name, bit in SHOWN_FLAGS:
            if (rflags ^ before) & bit:
                style = self.style("registers--flag-changed")
            elif rflags & bit:
                style = self.style("registers--flag-set")
            else:
                style = self.style("registers--flag-clear")
            parts.extend(((name, style), " "))
        iopl = (rflags & IOPL_MASK) >> 12
        if (rflags ^ before) & IOPL_MASK:
            iopl_style = self.style("registers--flag-changed")
        else:
            iopl_style = self.style("registers--flag-set" if iopl else "registers--flag-clear")
        parts.append((f"IOPL{iopl}", iopl_style))
        return Content.assemble(*parts)
