"""Errors the engine raises on purpose (never a bare traceback for bad input)."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of the engine's own errors."""


class ScenarioError(EngineError):
    """A scenario file that cannot be used: names the file, the key and what was expected."""

    def __init__(self, path: str, key: str | None, message: str, line: int | None = None):
        self.path = path
        self.key = key
        self.message = message
        self.line = line
        where = path
        if line is not None:
            where += f":{line}"
        what = f"{key}: " if key else ""
        super().__init__(f"{where}: {what}{message}")


class AssemblyError(EngineError):
    """Keystone produced bytes that Capstone does not read back as the intended instruction."""


class HookError(EngineError):
    """A Python exception raised inside a Unicorn hook, re-raised after the run stopped."""
