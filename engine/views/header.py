"""The project's own paragraph at the top of each rendition, in the UI's language.

Each entry_64.S rendition opens with a comment: the file and the kernel it renders, what
the rendition is, what its ``///`` lines are and how its macros are expanded.  That
paragraph is the project's words, not the kernel's (whose comments stay as the kernel
wrote them), so under another language it is shown translated.  It keeps its lines: a
line number is an address here (``break entry_64.S:N``, a step's ``source_line``), so
the translation is wrapped over the same lines, to the width of the English, and a
translation longer than that runs on in its last line.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache

from engine.i18n import catalogue, get_language
from engine.trace import SourceLine

#: How a line of the paragraph starts (C's block-comment continuation).
PREFIX = " * "


@dataclass(frozen=True, slots=True)
class Paragraph:
    """The paragraph: its English text (a msgid), where it is and how wide."""

    text: str
    first: int  # line number of its first line
    count: int  # how many lines it spans
    width: int  # cells of its widest line, prefix included


def paragraph(source: tuple[SourceLine, ...]) -> Paragraph | None:
    """The paragraph that opens the rendition's second comment (after the SPDX line):
    its lines from the one after ``/*`` to the first blank ``*`` line or the ``*/``."""
    if len(source) < 3 or source[1].text.strip() != "/*":
        return None
    words: list[str] = []
    width = 0
    for line in source[2:]:
        stripped = line.text.strip()
        if stripped in ("*", "*/") or not stripped.startswith("* "):
            break
        words.append(stripped[2:].strip())
        width = max(width, len(line.text.expandtabs(8)))
    if not words:
        return None
    return Paragraph(" ".join(words), source[2].number, len(words), width)


def line_of(p: Paragraph, number: int, lang: str | None = None) -> str | None:
    """Line *number* of the paragraph in *lang* (default: the UI's), or None when that
    line is not in the paragraph or there is no translation (the English line stands)."""
    if not p.first <= number < p.first + p.count:
        return None
    lines = _translated(p, get_language() if lang is None else lang)
    return None if lines is None else lines[number - p.first]


@cache
def _translated(p: Paragraph, lang: str) -> tuple[str, ...] | None:
    if lang == "en":
        return None
    text = catalogue(lang).gettext(p.text)
    if text == p.text:
        return None
    wrapped = _wrap(text, p.width - len(PREFIX))
    if len(wrapped) > p.count:
        wrapped[p.count - 1 :] = ["".join(wrapped[p.count - 1 :])]
    wrapped += [""] * (p.count - len(wrapped))
    return tuple((PREFIX + line).rstrip() for line in wrapped)


def _cells(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


#: Characters a Japanese line may not start with (closing punctuation, small kana) and
#: may not end with (opening brackets): the line-breaking rules (kinsoku) the panels use.
_NO_START = set("、。，．）」』】〕・ー：；！？ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮ)]},.:;")
_NO_END = set("（「『【〔([{")


def _hiragana(ch: str) -> bool:
    return "\u3041" <= ch <= "\u309f"


def _units(text: str) -> list[str]:
    """Unbreakable pieces: a run of narrow characters, or one wide character, glued to
    its neighbours where the rules say; a space before hiragana (a particle after a
    name: 「CR3 に」) is kept inside the piece, not a break."""
    units: list[str] = []
    glue = False
    k = 0
    while k < len(text):
        ch = text[k]
        if ch == " ":
            if k + 1 < len(text) and _hiragana(text[k + 1]) and units:
                units[-1] += " "
                glue = True
            else:
                units.append(" ")
                glue = False
            k += 1
            continue
        j = k + 1
        if _cells(ch) == 1:
            while j < len(text) and text[j] != " " and _cells(text[j]) == 1:
                j += 1
        piece = text[k:j]
        if units and units[-1] != " " and (glue or piece[0] in _NO_START):
            units[-1] += piece
        else:
            units.append(piece)
        glue = piece[-1] in _NO_END
        k = j
    return units


def _wrap(text: str, width: int) -> list[str]:
    """Greedy wrap by terminal cells at the breaks :func:`_units` allows."""
    lines: list[str] = []
    line = ""
    for piece in _units(text):
        if piece == " ":
            if line:
                line += " "
            continue
        if line.strip() and sum(map(_cells, line + piece)) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    if line.strip():
        lines.append(line.rstrip())
    return lines
