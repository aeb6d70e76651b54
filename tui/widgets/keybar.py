"""The key bar: the debugger's keys on one line, fitted to the width, clickable.

Textual's Footer mounts a widget per key and recomposes them whenever the focus moves, which
at start-up alone costs several restyles of a dozen widgets, and a recompose can leave cells
of the old keys behind on a resize.  The debugger's keys do not change with the focus, so
one line drawn from the bindings does the same work for a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import events
from textual.binding import Binding
from textual.content import Content
from textual.widget import Widget


@dataclass(frozen=True, slots=True)
class Key:
    key: str  # what to press ("s"), sent as a key press when the label is clicked
    display: str  # how to show it ("s", "?", "^p")
    description: str


def keys_of(bindings: list[Binding]) -> list[Key]:
    """The shown bindings, each once, as the footer would list them."""
    seen: set[str] = set()
    keys = []
    for binding in bindings:
        if not binding.show or binding.action in seen:
            continue
        seen.add(binding.action)
        key = binding.key.split(",")[0].strip()
        display = binding.key_display or key
        keys.append(Key(key, display, binding.description))
    return keys


class KeyBar(Widget):
    """``s step  b back …  ^p palette``; shorter forms as the width shrinks."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"keybar--key", "keybar--description"}

    def __init__(self, keys: list[Key], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.keys = keys
        self._spans: list[tuple[int, int, str]] = []

    def _layout(self, width: int) -> list[tuple[str, str, str]]:
        """(key, shown key, shown description) for the widest form that fits."""
        # ctrl+p opens the palette whether or not its hint fits; it gives way first.
        essential = [k for k in self.keys if k.key != "ctrl+p"]
        forms: list[tuple[int, list[tuple[str, str, str]]]] = [
            (2, [(k.key, k.display, k.description) for k in self.keys]),
            (1, [(k.key, k.display, k.description) for k in self.keys]),
            (1, [(k.key, k.display, k.description) for k in essential]),
            (1, [(k.key, k.display, k.description.split()[0]) for k in essential]),
            (1, [(k.key, k.display, "") for k in essential]),
        ]
        for gap, form in forms:
            if self._width(form, gap) <= width:
                self._gap = gap
                return form
        self._gap, form = forms[-1]
        return form

    @staticmethod
    def _width(form: list[tuple[str, str, str]], gap: int) -> int:
        return sum(len(d) + (len(t) + 1 if t else 0) for _, d, t in form) + gap * (len(form) - 1)

    def render(self) -> Content:
        width = self.content_size.width
        form = self._layout(width)
        key_style = self.get_visual_style("keybar--key")
        text_style = self.get_visual_style("keybar--description")
        parts: list[tuple[str, object]] = []
        spans: list[tuple[int, int, str]] = []
        x = 0
        for index, (key, display, text) in enumerate(form):
            if index:
                parts.append((" " * self._gap, text_style))
                x += self._gap
            start = x
            parts.append((display, key_style))
            x += len(display)
            if text:
                parts.append((" " + text, text_style))
                x += len(text) + 1
            spans.append((start, x, key))
        self._spans = spans
        return Content.assemble(*parts)  # type: ignore[arg-type]

    def on_click(self, event: events.Click) -> None:
        x = event.x - self.styles.padding.left
        for start, end, key in self._spans:
            if start <= x < end:
                self.app.simulate_key(key)
                return
