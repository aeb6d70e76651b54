"""Model-specific registers: what SYSCALL and SYSRET read, decoded, and the three bases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from textual.content import Content
from textual.style import Style

from engine.i18n import _
from engine.views.decode import (
    EFER_BITS,
    decode_fred_config,
    decode_star,
    fmask_names,
    hex64,
    symbol_at,
)
from tui.text import wrap
from tui.widgets.panel import ViewPanel

LABEL = 15


@dataclass(frozen=True, slots=True)
class MsrView:
    msrs: Mapping[str, int]  # EFER, STAR, LSTAR, SYSCALL_MASK as read from the machine
    symbols: Mapping[str, int] = field(compare=False)  # to name LSTAR's target
    fs_base: int
    gs_base: int
    kernel_gs_base: int
    swapped: bool  # the last step was a SWAPGS
    changed: frozenset[str]  # which of the three bases the last step changed


class MsrPanel(ViewPanel[MsrView]):
    """EFER, STAR, LSTAR, SYSCALL_MASK (fixed for a run) and FS/GS/KERNEL_GS bases (per step).

    A SWAPGS step highlights both GS bases, since it exchanges them.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "msrs--name",
        "msrs--decoded",
        "msrs--bit-set",
        "msrs--bit-clear",
        "msrs--symbol",
        "msrs--swapped",
        "msrs--changed",
    }

    def _label(self, name: str) -> tuple[str, Style]:
        return f"{name:<{LABEL}}", self.style("msrs--name")

    def build(self, width: int) -> list[Content]:
        view = self.view
        if view is None:
            return []
        decoded = self.style("msrs--decoded")
        lines: list[Content] = []
        msrs = view.msrs
        if "EFER" in msrs:
            efer = msrs["EFER"]
            bits: list[str | Content | tuple[str, str | Style]] = []
            for name, bit in EFER_BITS:
                style = "msrs--bit-set" if efer & bit else "msrs--bit-clear"
                bits.extend((" ", (name, self.style(style))))
            lines.append(Content.assemble(self._label("EFER"), hex64(efer)))
            lines.append(Content.assemble(" ", *bits))
        if "STAR" in msrs:
            star = decode_star(msrs["STAR"])
            lines.append(Content.assemble(self._label("STAR"), hex64(msrs["STAR"])))
            lines.append(
                Content.assemble(
                    (
                        f"  SYSCALL cs {star.syscall_cs:04x} ss {star.syscall_ss:04x}  [47:32], +8",
                        decoded,
                    )
                )
            )
            lines.append(
                Content.assemble(
                    (
                        f"  SYSRET  cs {star.sysret_cs:04x} ss {star.sysret_ss:04x}"
                        "  [63:48]+16|3, +8|3",
                        decoded,
                    )
                )
            )
        if "LSTAR" in msrs:
            target = symbol_at(msrs["LSTAR"], view.symbols)
            lines.append(Content.assemble(self._label("LSTAR"), hex64(msrs["LSTAR"])))
            if target:
                lines.append(
                    Content.assemble(
                        ("  " + _("SYSCALL jumps to") + " ", decoded),
                        (target, self.style("msrs--symbol")),
                    )
                )
        # the 32-bit fast doors' entry MSRs, in a run that took one
        for name, said in (
            ("CSTAR", _("32-bit SYSCALL jumps to")),
            ("SYSENTER_EIP", _("SYSENTER jumps to")),
        ):
            if name in msrs:
                lines.append(Content.assemble(self._label(name), hex64(msrs[name])))
                target = symbol_at(msrs[name], view.symbols)
                if target:
                    lines.append(
                        Content.assemble(
                            ("  " + said + " ", decoded), (target, self.style("msrs--symbol"))
                        )
                    )
        if "SYSCALL_MASK" in msrs:
            mask = msrs["SYSCALL_MASK"]
            lines.append(Content.assemble(self._label("SYSCALL_MASK"), hex64(mask)))
            # 6.x masks nearly every flag: the list wraps under itself.
            cleared = _("SYSCALL clears") + " " + " ".join(fmask_names(mask))
            # (Before the first layout the width is 0: no wrapping then, or the panel's
            # automatic height would keep the rows that narrow guess needed.)
            for text in wrap(cleared, max(width, 20) if width else 1000, "  ", "    "):
                lines.append(Content.assemble((text, decoded)))
        lines += self._fred(msrs, view, decoded)
        lines.append(self._base(view, "FS_BASE", "fs_base", view.fs_base))
        lines.append(self._base(view, "GS_BASE", "gs_base", view.gs_base))
        lines.append(self._base(view, "KERNEL_GS_BASE", "kernel_gs_base", view.kernel_gs_base))
        return lines

    def _fred(self, msrs: Mapping[str, int], view: MsrView, decoded: Style) -> list[Content]:
        """The FRED MSRs of a FRED machine (held by the model), FRED_CONFIG decoded."""
        lines: list[Content] = []
        if "FRED_CONFIG" in msrs:
            cfg = decode_fred_config(msrs["FRED_CONFIG"])
            lines.append(Content.assemble(self._label("FRED_CONFIG"), hex64(msrs["FRED_CONFIG"])))
            target = symbol_at(cfg.entrypoint, view.symbols) or f"{cfg.entrypoint:#x}"
            lines.append(
                Content.assemble(
                    ("  " + _("ring-3 events enter at") + " ", decoded),
                    (target, self.style("msrs--symbol")),
                )
            )
            lines.append(
                Content.assemble(
                    (
                        "  "
                        + _("redzone {bytes} bytes, interrupt stack level {level}").format(
                            bytes=cfg.redzone, level=cfg.int_stack_level
                        ),
                        decoded,
                    )
                )
            )
        for name, value in msrs.items():
            if name.startswith("FRED_") and name != "FRED_CONFIG":
                lines.append(Content.assemble(self._label(name), hex64(value)))
                if name == "FRED_RSP0":
                    text = _("ring-3 events: RSP ← this & ~0x3f, then the 64-byte frame")
                    lines.append(Content.assemble(("  " + text, decoded)))
        return lines

    def _base(self, view: MsrView, label: str, name: str, value: int) -> Content:
        swapped = view.swapped and name in ("gs_base", "kernel_gs_base")
        if swapped:
            style = self.style("msrs--swapped")
        elif name in view.changed:
            style = self.style("msrs--changed")
        else:
            style = self.style()
        tail = ("  ⇄ swapgs", self.style("msrs--swapped")) if swapped else ""
        return Content.assemble(self._label(label), (hex64(value), style), tail)
