"""Text wrapped by terminal cells, with the Japanese line-breaking rules.

`textwrap` counts code points and breaks only at spaces.  Japanese has no spaces between
words and each kana or kanji takes two cells, so the panels (tui.text), the help and the
renditions' translated header (engine.views.header) wrap with this instead: a line may
break between two wide characters, and the line-breaking rules (kinsoku) keep closing
punctuation off the start of a line and opening brackets off its end.  How wide a
string is comes from the caller (the UI measures with Rich's tables, which the engine
does not import).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

#: How many terminal cells a string takes.
Cells = Callable[[str], int]


def cell_width(text: str) -> int:
    """Cells by East Asian width: two for a wide or full-width character, else one."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


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


def _units(text: str, cells: Cells) -> list[tuple[str, bool]]:
    """Unbreakable pieces of *text* and whether a space preceded each one."""
    units: list[tuple[str, bool]] = []
    space = False
    glue = False  # the previous piece ended in an opening bracket: the next one joins it
    # Japanese text keeps a number with its unit word; English wraps as textwrap does.
    japanese = any(cells(c) > 1 for c in text)
    for match in _TOKEN.finditer(text):
        piece = match.group()
        if piece.isspace():
            space = True
            glue = False
            continue
        wide = cells(piece) > 1
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
            prev_wide = cells(prev[-1]) > 1
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


def _chop(piece: str, width: int, cells: Cells) -> list[str]:
    """Cut *piece* into pieces at most *width* cells wide, never inside a character."""
    out: list[str] = []
    current = ""
    for char in piece:
        if current and cells(current + char) > width:
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
            if cells(moved) <= width:
                out[i - 1], out[i] = out[i - 1][:-1], moved
    return out


def wrap(
    text: str,
    width: int,
    initial_indent: str = "",
    subsequent_indent: str = "",
    break_long_words: bool = True,
    cells: Cells = cell_width,
) -> list[str]:
    """*text* as lines at most *width* cells wide (like `textwrap.wrap`, measured in cells
    by *cells*: East Asian width here, Rich's cell tables in the UI).

    A piece wider than a whole line is cut at the width when *break_long_words*, else it
    overflows on a line of its own (for values that must not be split).
    """
    lines: list[str] = []
    line = initial_indent
    empty = True  # nothing but the indent on the current line yet
    units = _units(text, cells)
    if not units:
        return []  # as textwrap does
    for piece, space in units:
        indent = initial_indent if not lines else subsequent_indent
        joiner = " " if space and not empty else ""
        if cells(line) + cells(joiner) + cells(piece) <= width:
            line += joiner + piece
            empty = False
            continue
        if not empty:
            lines.append(line)
            indent = subsequent_indent
            line = indent
            empty = True
        room = max(width - cells(indent), 1)
        if cells(piece) > room and break_long_words:
            chunks = _chop(piece, room, cells)
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
