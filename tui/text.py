"""Text measured in terminal cells: wrapping and padding that work for Japanese too.

`textwrap` and `str.ljust` count code points and break only at spaces.  Japanese has no
spaces between words and each kana or kanji takes two cells, so the panels use these
instead: widths come from Rich's cell tables, a line may break between two wide
characters, and the Japanese line-breaking rules (kinsoku) keep closing punctuation off
the start of a line and opening brackets off its end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.cells import cell_len, set_cell_size
from textual.binding import Binding
from textual.dom import DOMNode

from engine.i18n import _

#: Characters that must not start a line (they close or continue what precedes them).
NO_LINE_START = set(
    "、。，．）」』】〕〉》・ー…‥：；！？ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ"
)
NO_LINE_START |= set(")]}.,:;!?%")
#: Characters that must not end a line (they open what follows).
NO_LINE_END = set("（「『【〔〈《([{")

# A run of narrow non-space characters, a single wide character, or a run of spaces.
_TOKEN = re.compile(r"\s+|[^\s]")
#: Words a number after them belongs to: in Japanese text the space in "CPL 3", "ring 0",
#: "ビット 63" is not a break point.
UNIT_WORDS = ("CPL", "ring", "ビット", "bit")


def _units(text: str) -> list[tuple[str, bool]]:
    """Unbreakable pieces of *text* and whether a space preceded each one."""
    units: list[tuple[str, bool]] = []
    space = False
    glue = False  # the previous piece ended in an opening bracket: the next one joins it
    # Japanese text keeps a number with its unit word; English wraps as textwrap does.
    japanese = any(cell_len(c) > 1 for c in text)
    for match in _TOKEN.finditer(text):
        piece = match.group()
        if piece.isspace():
            space = True
            glue = False
            continue
        wide = cell_len(piece) > 1
        if (
            units
            and japanese
            and space
            and piece[0].isdigit()
            and text[: match.start()].rstrip().endswith(UNIT_WORDS)
        ):
            # "ビット" is three wide pieces: its last one takes the number
            prev, prev_space = units[-1]
            units[-1] = (prev + " " + piece, prev_space)
            space = False
            glue = False
            continue
        if units and not space:
            prev, prev_space = units[-1]
            prev_wide = cell_len(prev[-1]) > 1
            # Narrow characters stick together (a word, a number, an identifier); a wide
            # character is a piece of its own unless the line-breaking rules glue it.
            if glue or piece in NO_LINE_START or (not wide and not prev_wide):
                units[-1] = (prev + piece, prev_space)
                glue = piece in NO_LINE_END
                continue
        units.append((piece, space))
        space = False
        glue = piece in NO_LINE_END
    return units


def _chop(piece: str, width: int) -> list[str]:
    """Cut *piece* into pieces at most *width* cells wide, never inside a character."""
    out: list[str] = []
    current = ""
    for char in piece:
        if current and cell_len(current + char) > width:
            out.append(current)
            current = ""
        current += char
    if current:
        out.append(current)
    # Kinsoku again: a piece must not begin with a closing character; lend it the last
    # character of the piece before when that still fits.
    for i in range(1, len(out)):
        if out[i][0] in NO_LINE_START and len(out[i - 1]) > 1:
            moved = out[i - 1][-1] + out[i]
            if cell_len(moved) <= width:
                out[i - 1], out[i] = out[i - 1][:-1], moved
    return out


def wrap(
    text: str,
    width: int,
    initial_indent: str = "",
    subsequent_indent: str = "",
    break_long_words: bool = True,
) -> list[str]:
    """*text* as lines at most *width* cells wide (like `textwrap.wrap`, measured in cells).

    A piece wider than a whole line is cut at the width when *break_long_words*, else it
    overflows on a line of its own (for values that must not be split).
    """
    lines: list[str] = []
    line = initial_indent
    empty = True  # nothing but the indent on the current line yet
    units = _units(text)
    if not units:
        return []  # as textwrap does
    for piece, space in units:
        indent = initial_indent if not lines else subsequent_indent
        joiner = " " if space and not empty else ""
        if cell_len(line) + cell_len(joiner) + cell_len(piece) <= width:
            line += joiner + piece
            empty = False
            continue
        if not empty:
            lines.append(line)
            indent = subsequent_indent
            line = indent
            empty = True
        room = max(width - cell_len(indent), 1)
        if cell_len(piece) > room and break_long_words:
            chunks = _chop(piece, room)
            for chunk in chunks[:-1]:
                lines.append(indent + chunk)
                indent = subsequent_indent
            line = indent + chunks[-1]
        else:
            line = indent + piece
        empty = False
    if not empty:
        lines.append(line)
    return lines


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
