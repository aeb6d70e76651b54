"""Errors the engine raises on purpose (never a bare traceback for bad input)."""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: The bidirectional controls: they reorder what a terminal or browser shows (a file
#: name that reads ``exe.txt`` but is ``txt.exe``).
BIDI_CONTROLS = frozenset(
    chr(c) for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)
# The characters escape() writes as escapes: C0 and C1 controls and DEL (category Cc),
# surrogates (Cs: they cannot be written as UTF-8), the line and paragraph separators
# (Zl, Zp) and the bidi controls.  A character class, so that clean text costs one scan in C.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff" + "".join(sorted(BIDI_CONTROLS)) + "]"
)


#: The same characters less the three that JSON text holds raw only as its whitespace
#: (inside a string json writes them as \n, \r, \t): what :func:`json_safe` escapes.
_UNSAFE_IN_JSON = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"
    + "".join(sorted(BIDI_CONTROLS))
    + "]"
)


def unsafe(ch: str) -> bool:
    """Whether *ch* must not reach a terminal, a browser or a document raw."""
    return _UNSAFE.fullmatch(ch) is not None


def unsafe_characters(text: str) -> set[str]:
    """The characters of *text* that :func:`escape` would write as escapes (one C scan)."""
    return set(_UNSAFE.findall(text))


def _escaped(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str, limit: int | None = None, keep: str = "") -> str:
    """*text* safe to print on one terminal line: control characters as ``\\x1b``/``\\n``.

    The one escaping function for text that came from a scenario file or the emulated
    program (names, descriptions, file names, code, ``write()`` output, notes quoting
    them), used by every output.  C0 and C1 controls, DEL, surrogates, line/paragraph
    separators and the bidi controls are written as escapes, so a scenario can neither
    clear the terminal nor set its title nor break a one-line error in two; any other
    text, Japanese included, is unchanged.  The characters in *keep* (``"\\n"`` for a
    block of lines) stay as they are.  With *limit*, longer text is cut with ``…``.
    """
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    if keep:
        return _UNSAFE.sub(
            lambda m: m.group(0) if m.group(0) in keep else _escaped(m.group(0)), text
        )
    return _UNSAFE.sub(lambda m: _escaped(m.group(0)), text)


def json_safe(document: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with the characters
    :func:`escape` escapes written as ``\\u`` escapes: the same data, nothing raw.

    json escapes C0 controls itself but writes DEL, C1 (U+009B is a CSI), the
    separators and the bidi controls raw; outside strings JSON is ASCII (and its
    whitespace is kept), so every other match is inside a string, where ``\\uXXXX``
    means the same character.
    """
    # the newlines of indented JSON are not matched: a match is a Python call
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group(0)):04x}", document)


class EngineError(Exception):
    """Base class of the engine's own errors."""


class ScenarioError(EngineError):
    """A scenario file that cannot be used: names the file, the key and what was expected.

    The text is one line with every user-supplied part escaped (:func:`escape`).
    """

    def __init__(self, path: str, key: str | None, message: str, line: int | None = None):
        self.path = path
        self.key = key
        self.message = message
        self.line = line
        where = escape(path)
        if line is not None:
            where += f":{line}"
        what = f"{escape(key, 80)}: " if key else ""
        super().__init__(f"{where}: {what}{escape(message)}")


class EmulatorMemoryError(EngineError):
    """The address space for a Unicorn machine cannot be had (a low ``ulimit -v``)."""


class AssemblyError(EngineError):
    """Keystone produced bytes that Capstone does not read back as the intended instruction."""


class HookError(EngineError):
    """A Python exception raised inside a Unicorn hook, re-raised after the run stopped."""
