"""WCAG contrast of what a Textual app has drawn: every run of text against the cell behind it.

The ratios are computed from the segments the compositor renders (so from the theme, the
.tcss rules and the widgets' own styles together, alpha blending done), twice: in truecolour,
as the SVG screenshots and the browser (xterm.js) show them, and after Rich's downgrade to
the 256-colour palette, as a terminal without truecolour (tmux's default) shows them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.color import Color, ColorSystem
from rich.color_triplet import ColorTriplet
from rich.console import Console
from rich.segment import Segment
from textual.app import App

AA = 4.5
"""WCAG 2 level AA for normal text (a terminal cell is never "large text")."""

#: Text that must be read: letters and digits, and the markers the legend explains.
_READ = re.compile(r"[^\W_]|[✓✗●▶→·⊘⋮…]")


def luminance(color: ColorTriplet) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = color
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def ratio(a: ColorTriplet, b: ColorTriplet) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _blend(fg: ColorTriplet, bg: ColorTriplet, amount: float) -> ColorTriplet:
    return ColorTriplet(*(round(b + (f - b) * amount) for f, b in zip(fg, bg, strict=True)))


@dataclass(frozen=True)
class Run:
    text: str
    fg: ColorTriplet
    bg: ColorTriplet
    ratio: float
    system: str

    def __str__(self) -> str:
        return f"{self.ratio:.2f}:1 {self.fg.hex} on {self.bg.hex} ({self.system}) {self.text!r}"


def _truecolor(color: Color | None, system: ColorSystem) -> ColorTriplet | None:
    if color is None or color.is_default:
        return None
    if system is ColorSystem.EIGHT_BIT:
        color = color.downgrade(ColorSystem.EIGHT_BIT)
    return color.get_truecolor()


def segments(app: App[Any]) -> list[Segment]:
    """The segments of the whole screen as the compositor renders it (dialogs on top)."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True,
        color_system="truecolor", legacy_windows=False, safe_box=False,
    )  # fmt: skip
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    assert update is not None
    return list(console.render(update))


def _placed(app: App[Any]) -> Iterator[tuple[int, int, Segment]]:
    width, _ = app.size
    for y, line in enumerate(Segment.split_and_crop_lines(segments(app), width)):
        x = 0
        for segment in line:
            yield x, y, segment
            x += segment.cell_length


def runs(app: App[Any]) -> Iterator[Run]:
    """Every run of readable text on screen, in both colour systems.

    On a dialog (a modal screen) only the dialog itself is measured: the screen faded
    behind it is not meant to be read.
    """
    regions = [child.region for child in app.screen.children] if app.screen.is_modal else []
    for x, y, segment in _placed(app):
        if regions and not any(region.contains(x, y) for region in regions):
            continue
        style = segment.style
        if style is None or segment.control or not _READ.search(segment.text):
            continue
        for system, name in ((ColorSystem.TRUECOLOR, "truecolor"), (ColorSystem.EIGHT_BIT, "256")):
            fg = _truecolor(style.color, system)
            bg = _truecolor(style.bgcolor, system)
            # A colour left to the terminal cannot be measured: the app must set both.
            assert fg is not None and bg is not None, f"default colour for {segment.text!r}"
            if style.reverse:
                fg, bg = bg, fg
            if style.dim:
                # Terminals draw dim text at about half intensity.
                fg = _blend(fg, bg, 0.5)
            yield Run(segment.text.strip(), fg, bg, ratio(fg, bg), name)


def below(app: App[Any], minimum: float = AA) -> list[Run]:
    """The runs under ``minimum``, each (colours, system) pair once, lowest first."""
    seen: dict[tuple[str, str, str], Run] = {}
    for run in runs(app):
        if run.ratio < minimum:
            seen.setdefault((run.fg.hex, run.bg.hex, run.system), run)
    return sorted(seen.values(), key=lambda run: run.ratio)
