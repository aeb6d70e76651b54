"""The project's own paragraph at the top of each rendition, in the UI's language.

Each entry_64.S rendition opens with a comment: the file and the kernel it renders, what
the rendition is, what its ``///`` lines are and how its macros are expanded.  That
paragraph is the project's words, not the kernel's (whose comments stay as the kernel
wrote them), so under another language it is shown translated.  It keeps its lines: a
line number is an address here (``break entry_64.S:N``, a step's ``source_line``), so
the translation is wrapped over the same lines, to the width of the English, as the
panels wrap text (engine.views.wrap), and a translation longer than that runs on in its
last line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from engine.i18n import catalogue, get_language
from engine.trace import SourceLine
from engine.views.wrap import wrap

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
    wrapped = wrap(text, p.width - len(PREFIX))
    if len(wrapped) > p.count:
        wrapped[p.count - 1 :] = ["".join(wrapped[p.count - 1 :])]
    wrapped += [""] * (p.count - len(wrapped))
    return tuple((PREFIX + line).rstrip() for line in wrapped)
