"""The on-disk store of what the engine computes the same way every time: the assembled kernel
image for a set of features (engine.kernel.image), and the recorded trace of a scenario file
(engine.run.cached).

A run is deterministic: its trace depends only on the scenario's bytes (and the path it is
named by in the trace), the engine's own source (this package's .py files and the kernel
source entry_64.S) and the package version.  All of these go into the key, so editing the
engine, the kernel rendition or the scenario is a miss, never a stale answer.  Each entry
carries the SHA-256 of its payload and is rejected, and recomputed, unless it matches.

The cache is only ever written by this module from a real run; nothing is shipped in it.
It lives under ``$XDG_CACHE_HOME/syscall-tui`` (``~/.cache/syscall-tui``); an unwritable or
corrupt cache costs a recomputation, never an error.  ``SYSCALL_TUI_NO_CACHE=1`` turns it off.

This module imports nothing heavy: a hit is served before Unicorn, Capstone or Keystone load.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.version import __version__

T = TypeVar("T")

#: Bumped when the layout of an entry changes.
FORMAT = b"syscall-tui cache 1\n"
ENGINE_DIR = Path(__file__).resolve().parent
#: Entries larger than this are not written (a step-cap trace is a few MB at most).
MAX_ENTRY_BYTES = 64 * 1024 * 1024
#: Each edit of a scenario adds an entry; beyond this many per kind the oldest go.
MAX_ENTRIES = 200


def cache_dir() -> Path | None:
    """Where entries go; None when caching is turned off."""
    if os.environ.get("SYSCALL_TUI_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "syscall-tui"


@functools.cache
def engine_fingerprint() -> str:
    """SHA-256 of the engine's own source files and the package version."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(ENGINE_DIR.rglob("*")):
        if path.suffix in (".py", ".S") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ENGINE_DIR)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def entry_key(kind: str, *parts: bytes | str) -> str:
    digest = hashlib.sha256(kind.encode() + b"\0" + engine_fingerprint().encode())
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def load(kind: str, key: str) -> Any | None:
    """The cached object under *key*, or None on a miss or a damaged entry."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        raw = (directory / kind / key).read_bytes()
    except OSError:
        return None
    header = len(FORMAT) + 32
    if len(raw) < header or not raw.startswith(FORMAT):
        return None
    payload = raw[header:]
    if hashlib.sha256(payload).digest() != raw[len(FORMAT) : header]:
        return None
    try:
        return pickle.loads(payload)
    except Exception:  # written by another version of a class: recompute
        return None


def store(kind: str, key: str, value: object) -> None:
    """Write an entry atomically; any failure leaves the cache as it was."""
    directory = cache_dir()
    if directory is None:
        return
    try:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if len(payload) > MAX_ENTRY_BYTES:
            return
        import tempfile  # only a miss pays for it

        folder = directory / kind
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(FORMAT + hashlib.sha256(payload).digest() + payload)
            os.replace(temporary, folder / key)
            _prune(folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except Exception:
        return


def _prune(folder: Path) -> None:
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda p: p.stat().st_mtime)
    for old in entries[: len(entries) - MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            old.unlink()


def cached(kind: str, parts: tuple[bytes | str, ...], compute: Callable[[], T]) -> T:
    """``compute()``, or the result it gave last time for the same *parts* and engine."""
    try:
        key = entry_key(kind, *parts)
    except OSError:  # the engine's source cannot be read: no key, no cache
        return compute()
    hit: T | None = load(kind, key)
    if hit is not None:
        return hit
    value = compute()
    store(kind, key, value)
    return value
