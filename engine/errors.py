"""Errors the engine raises on purpose (never a bare traceback for bad input)."""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str, limit: int | None = None) -> str:
    """*text* safe to print on one terminal line: control characters as ``\\x1b``/``\\n``.

    C0 and C1 controls, DEL, line/paragraph separators and format characters (bidi
    overrides) are written as escapes, so a scenario can neither clear the terminal
    nor break a one-line error in two.  With *limit*, longer text is cut with ``…``.
    """
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


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
