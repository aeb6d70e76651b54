"""The one safe reader of scenario files: every command, the picker and the cache use it.

A scenario file is untrusted.  Only a regular file (after resolving symlinks) of at most
:data:`MAX_FILE_SIZE` bytes is read: a FIFO would block forever, a device (``/dev/zero``)
never ends, and the size is checked on the open file before reading it.  Light on purpose:
the debugger reads a file (to look its trace up in the cache) before the parser loads.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.errors import ScenarioError

#: Scenario files larger than this are refused before reading (real ones are < 4 KiB).
MAX_FILE_SIZE = 1 << 20


def read_scenario_bytes(path: str | Path) -> bytes:
    """The bytes of the scenario file at *path*, UTF-8 checked; problems are ScenarioErrors."""
    p = str(path)
    try:
        real = os.path.realpath(p)
        info = os.stat(real)
        if stat.S_ISDIR(info.st_mode):
            raise ScenarioError(p, None, "is a directory, expected a .toml file")
        if not stat.S_ISREG(info.st_mode):
            kind = _file_kind(info.st_mode)
            raise ScenarioError(p, None, f"is {kind}, not a regular file")
        # O_NONBLOCK: should the path have been swapped for a FIFO since the stat, open
        # does not wait for a writer; the fstat below then refuses it.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ScenarioError(p, None, f"is {_file_kind(info.st_mode)}, not a regular file")
            if info.st_size > MAX_FILE_SIZE:
                raise ScenarioError(
                    p, None, f"is {info.st_size} bytes; scenario files are at most 1 MiB"
                )
            raw = f.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise ScenarioError(p, None, "no such file") from None
    except PermissionError:
        raise ScenarioError(p, None, "cannot read: permission denied") from None
    except OSError as exc:
        raise ScenarioError(p, None, f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # a path with a NUL byte
        raise ScenarioError(p, None, f"not a usable path: {exc}") from None
    if len(raw) > MAX_FILE_SIZE:  # it grew while being read
        raise ScenarioError(p, None, "is larger than 1 MiB; scenario files are at most 1 MiB")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(p, None, f"not UTF-8 text (byte {exc.start})") from None
    return raw


def read_scenario_text(path: str | Path) -> str:
    """The text of the scenario file at *path*, read as :func:`read_scenario_bytes` reads it."""
    return read_scenario_bytes(path).decode("utf-8")


def _file_kind(mode: int) -> str:
    for test, word in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
    ):  # fmt: skip
        if test(mode):
            return word
    return "a special file"
