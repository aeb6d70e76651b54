"""The app's own colour theme: every text colour readable on every background it is drawn on.

Textual's default theme draws labels in ``$secondary`` (#004578, 1.9:1 on the panel
background), errors in #ba3c5b (3.4:1) and line numbers in a 38% grey (3.6:1); a class reading
pt_regs slot names off a projector cannot use that.  This theme keeps textual-dark's look but
picks each colour for a WCAG AA contrast of at least 4.5:1, in truecolour (SVG screenshots,
the browser) and after the 256-colour downgrade a terminal without truecolour sees.
tests/tui/test_contrast.py renders the screens in every theme the app offers and holds that.
"""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.theme import Theme

#: The highlight backgrounds (the line just run, a changed value, a failed check, a word read).
#: Each is a dark, barely saturated tint: in 256 colours Rich maps a colour of HLS saturation
#: under 0.15 to the grey ramp, where the text on it keeps its contrast; a stronger tint
#: becomes olive #5f5f00 or maroon #5f0000 there, under which no muted text reaches 4.5:1.
HIGHLIGHTS = {
    "ran-background": "#3a342b",
    "changed-background": "#3a342b",
    "failed-background": "#3e3033",
    "read-background": "#2c333b",
}

THEME = Theme(
    name="syscall-tui",
    # Backgrounds: selected tabs, the command palette's highlight, the stack's "read" word.
    primary="#005a9e",
    # Foreground only: source labels, pt_regs slot names, event bullets, the MSR symbol.
    secondary="#7cc4ff",
    warning="#ffa62b",
    error="#ff7a8c",
    success="#5fd488",
    accent="#ffa62b",
    foreground="#e0e0e0",
    dark=True,
    variables={
        # textual-dark's 60% and 38% greys are 4.3:1 and 3.6:1 on the panels.
        "text-muted": "#b4b4b4",
        "text-disabled": "#a2a2a2",
        # $primary is a background here; Textual draws headings and "primary" text in it.
        "text-primary": "#7cc4ff",
        "markdown-h1-color": "#7cc4ff",
        "markdown-h2-color": "#7cc4ff",
        "markdown-h3-color": "#7cc4ff",
        **HIGHLIGHTS,
    },
)

THEMES: tuple[Theme, ...] = (THEME,)


def install(app: App[Any]) -> None:
    """Offer only the app's themes (Textual's others are not checked for contrast)."""
    for name in list(app.available_themes):
        app.unregister_theme(name)
    for theme in THEMES:
        app.register_theme(theme)
    app.theme = THEME.name
