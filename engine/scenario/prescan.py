"""A cheap look at scenario text before the TOML parser: bound key parts and nesting.

tomllib's work grows with the square of a dotted key's parts (``a.a.a…`` with 20,000
parts: seconds and gigabytes from a 40 KB file), and deep arrays or inline tables end
in RecursionError.  Scenario files need neither: their deepest key is
``handler.set.rax`` and their deepest value a list of check names.  So the text is
scanned once, linearly, with strings and comments blanked out, and a key of more than
:data:`MAX_KEY_PARTS` parts, brackets nested more than :data:`MAX_NESTING` deep or more
than :data:`MAX_ITEMS` items in all is a one-line error before tomllib sees the file.
"""

from __future__ import annotations

import re

from engine.errors import ScenarioError

#: Parts of one dotted key or table header (real files use at most 3).
MAX_KEY_PARTS = 16
#: Arrays and inline tables inside each other, table headers' brackets included.
MAX_NESTING = 32
#: Keys, tables, array items and comments in one file (real files have a few dozen):
#: tomllib takes a few microseconds each, so a 1 MiB file of them takes seconds.
MAX_ITEMS = 20000

# Strings and comments, in the order TOML reads them: multi-line first.  An unterminated
# string is left to tomllib (its opening quote is then an ordinary character here).
_SKIP = re.compile(
    r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""+'
    r"|'''[\s\S]*?'''+"
    r'|"(?:[^"\\\n]|\\.)*"'
    r"|'[^'\n]*'"
    r"|#[^\n]*"
)
# MAX_KEY_PARTS + 1 parts: a string was blanked to `s`, so quoted parts count too.
# Tried only where a part starts, and possessive: linear in a long run of letters too.
_PART = "[A-Za-z0-9_+-]"
_TOO_MANY_PARTS = re.compile(
    rf"(?<!{_PART})(?:{_PART}++[ \t]*+\.[ \t]*+){{{MAX_KEY_PARTS}}}{_PART}"
)
_BRACKET = re.compile(r"[\[\]{}]")


def _blank(m: re.Match[str]) -> str:
    """A string becomes one key part ``s``; a comment nothing; newlines are kept."""
    text = m.group(0)
    return ("#" if text.startswith("#") else "s") + "\n" * text.count("\n")


def prescan(text: str, path: str) -> None:
    """Raise a :class:`ScenarioError` if *text* has a key or nesting beyond the bounds."""
    bare = _SKIP.sub(_blank, text)
    if m := _TOO_MANY_PARTS.search(bare):
        raise ScenarioError(
            path, None, f"a dotted key or table header of more than {MAX_KEY_PARTS} parts",
            bare.count("\n", 0, m.start()) + 1,
        )  # fmt: skip
    items = sum(bare.count(c) for c in "=,[{#")
    if items > MAX_ITEMS:
        raise ScenarioError(
            path, None, f"{items} keys, tables, values and comments; at most {MAX_ITEMS}"
        )
    depth = 0
    for m in _BRACKET.finditer(bare):
        if m.group(0) in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise ScenarioError(
                    path, None,
                    f"not valid TOML: arrays or tables nested too deep (more than {MAX_NESTING})",
                    bare.count("\n", 0, m.start()) + 1,
                )  # fmt: skip
        elif depth:
            depth -= 1
