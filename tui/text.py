"""Text measured in terminal cells: wrapping and padding that work for Japanese too.

`str.ljust` counts code points; these pad and cut by Rich's cell tables.  The wrapping
itself is engine.views.wrap's, measured here with the same tables.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.cells import cell_len, set_cell_size
from textual.binding import Binding
from textual.dom import DOMNode

from engine.i18n import _
from engine.views import wrap as _wrapping


def wrap(
    text: str,
    width: int,
    initial_indent: str = "",
    subsequent_indent: str = "",
    break_long_words: bool = True,
) -> list[str]:
    """engine.views.wrap.wrap, measured in Rich's cells as the panels draw them."""
    return _wrapping.wrap(
        text, width, initial_indent, subsequent_indent, break_long_words, cells=cell_len
    )


def pad(text: str, cells: int) -> str:
    """*text* padded with spaces to *cells* cells (left-aligned); never shortened."""
    return text + " " * max(cells - cell_len(text), 0)


def fit(text: str, cells: int) -> str:
    """*text* in exactly *cells* cells: padded, or cut with an ellipsis (not mid-character)."""
    if cell_len(text) <= cells:
        return pad(text, cells)
    return set_cell_size(set_cell_size(text, cells - 1).rstrip() + "…", cells)


def localized_bindings(node: DOMNode) -> None:
    """Give *node*'s bindings descriptions and tooltips in the current language.

    The classes keep the English ones (they are the msgids).  The footer, the help and the
    palette read the node's own binding map, so the English originals are remembered on
    the node the first time and translated again on every switch.  The map is changed in
    place: Textual adds bindings of its own at run time (the palette's ctrl+p on the app).
    """
    english: dict[str, list[Binding]] | None = getattr(node, "_english_bindings", None)
    if english is None:
        english = {key: list(b) for key, b in node._bindings.key_to_bindings.items()}
        node._english_bindings = english  # type: ignore[attr-defined]
    for key, bindings in english.items():
        node._bindings.key_to_bindings[key] = [_translated(b) for b in bindings]


def _translated(binding: Binding) -> Binding:
    from dataclasses import replace

    return replace(
        binding,
        description=_(binding.description),
        tooltip=_(binding.tooltip) if binding.tooltip else binding.tooltip,
    )


def cells(texts: Iterable[str]) -> int:
    """The widest of *texts*, in cells."""
    return max((cell_len(t) for t in texts), default=0)
