"""The on-disk store of what the engine computes the same way every time: the assembled kernel
image for a set of features (engine.kernel.image), and the recorded trace of a scenario file
(engine.run.cached).

A run is deterministic: its trace depends only on the scenario's bytes (and the path it is
named by in the trace), the engine's own source (this package's .py files and the kernel
source entry_64.S) and the package version.  All of these go into the key, so editing the
engine, the kernel rendition or the scenario is a miss, never a stale answer.

An entry is data, not code: JSON in the layout engine.codec fixes per kind (nothing read
names a class or runs anything), after one header line ``syscall-tui cache 2 KIND KEY
SHA256`` that binds it to the name it was stored under and to its body.  An entry that is
not a regular file, is larger than :data:`MAX_ENTRY_BYTES`, has another header (another
format version, another key: a file copied or renamed), a wrong digest (truncated, damaged)
or a body that does not follow the layout (types, ranges, lengths) is ignored with one line
on stderr, and recomputed.

Trust: the folder is as trusted as the user's own files, and no more.  Everything in it is
public (the key is a hash of the scenario and the engine's source, which anyone can compute),
so the checks above catch damage, not forgery: someone who can write the folder could store
a well-formed entry saying anything.  So a folder that someone else can write is not used,
as ssh treats ``~/.ssh``: ``$XDG_CACHE_HOME/syscall-tui`` (``~/.cache/syscall-tui``) and its
subfolders are created 0700, and one that is a symlink, is not owned by this user, or is
writable by its group or by others is refused (one line on stderr; the run is recomputed).
Inside it, entries are opened without following symlinks and without blocking (a FIFO does
not hang, a device is not read), and pruning deletes only the names this module writes,
by name in the folder it opened (never through a symlink, never outside it).  Even a forged
entry is read within the same bounds as any untrusted file: it can at worst show a wrong
trace, never run code, hang or take unbounded memory.

The cache is only ever written by this module from a real run; nothing is shipped in it.
An unwritable or refused cache costs a recomputation, never an error.
``SYSCALL_TUI_NO_CACHE=1`` turns it off.

This module imports nothing heavy: a hit is served before Unicorn, Capstone or Keystone load.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from engine.version import __version__

T = TypeVar("T")

#: The first words of an entry's header; bumped when the layout of an entry changes.
FORMAT = "syscall-tui cache 2"
ENGINE_DIR = Path(__file__).resolve().parent
#: Entries larger than this are neither written nor read (a step-cap trace is a few hundred
#: KB at most).
MAX_ENTRY_BYTES = 64 * 1024 * 1024
#: Each edit of a scenario adds an entry; beyond this many per kind the oldest go.
MAX_ENTRIES = 200
#: The names this module writes in a kind's folder: entries, and its temporary files.
ENTRY_NAME = re.compile(r"[0-9a-f]{64}")
TEMP_PREFIX = ".tmp-"
TEMP_NAME = re.compile(r"\.tmp-[0-9a-f]{16}")
KIND_NAME = re.compile(r"[a-z]{1,16}")

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_ENTRY = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_TEMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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


# --- saying why, once -------------------------------------------------------------------

_said: set[str] = set()


def _warn(text: str) -> None:
    """One line on stderr (once per text): the cache was not used, and why."""
    if text in _said:
        return
    _said.add(text)
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    with contextlib.suppress(Exception):  # a closed stderr must not turn a miss into an error
        sys.stderr.write(f"syscall-tui: {shown}; recomputing\n")


# --- the folder ---------------------------------------------------------------------------


def _refusal(st: os.stat_result) -> str | None:
    """Why a folder with this status may not hold the cache, or None if it may."""
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by this user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by others, mode {stat.S_IMODE(st.st_mode):04o}"
    return None


def _open_folder(name: str | Path, create: bool, shown: Path, dir_fd: int | None = None) -> int:
    """A descriptor of folder *name* (in *dir_fd*), made 0700 when missing and *create*.

    Raises OSError when it is missing, a symlink (ELOOP), or refused (PermissionError,
    after saying why)."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=dir_fd)
    fd = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
    try:
        why = _refusal(os.fstat(fd))
    except OSError:
        os.close(fd)
        raise
    if why is not None:
        os.close(fd)
        _warn(f"not using the cache folder {shown} (it {why}: delete it, or chmod 700 it)")
        raise PermissionError(why)
    return fd


@contextlib.contextmanager
def _kind_folder(kind: str, create: bool) -> Iterator[int | None]:
    """A descriptor of the checked folder of *kind*'s entries, or None (off, missing,
    refused)."""
    directory = cache_dir()
    if directory is None or not KIND_NAME.fullmatch(kind):
        yield None
        return
    top: int | None = None
    fd: int | None = None
    try:
        if create:
            directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        top = _open_folder(directory, create, directory)
        fd = _open_folder(kind, create, directory / kind, dir_fd=top)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            where = directory if top is None else directory / kind
            _warn(f"not using the cache folder {where} (it is a symlink)")
        if top is not None:
            os.close(top)
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)
        os.close(top)


# --- entries ------------------------------------------------------------------------------


def _read_entry(folder: int, key: str) -> bytes | None:
    """The bytes of entry *key*, if it is a regular file of a bounded size; else None."""
    try:
        fd = os.open(key, _OPEN_ENTRY, dir_fd=folder)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "a symlink" if exc.errno == errno.ELOOP else os.strerror(exc.errno or 0).lower()
        _warn(f"ignoring the cache entry {key[:16]} ({why})")
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            _warn(f"ignoring the cache entry {key[:16]} (not a regular file)")
            return None
        if st.st_size > MAX_ENTRY_BYTES:
            _warn(f"ignoring the cache entry {key[:16]} (larger than {MAX_ENTRY_BYTES} bytes)")
            return None
        chunks: list[bytes] = []
        left = MAX_ENTRY_BYTES + 1  # a file that grows while it is read stops here
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            return None
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _header(kind: str, key: str, body: bytes) -> bytes:
    return f"{FORMAT} {kind} {key} {hashlib.sha256(body).hexdigest()}\n".encode()


def load(kind: str, key: str, decode: Callable[[Any], T]) -> T | None:
    """The value stored under *key*, read back by *decode* (which checks the layout and
    raises ValueError on any mismatch), or None on a miss or a refused entry."""
    if not ENTRY_NAME.fullmatch(key):
        return None
    with _kind_folder(kind, create=False) as folder:
        if folder is None:
            return None
        raw = _read_entry(folder, key)
    if raw is None:
        return None
    head, newline, body = raw.partition(b"\n")
    if not newline or head + newline != _header(kind, key, body):
        if raw.startswith(f"{FORMAT} {kind} {key} ".encode()):
            why = "damaged: its digest does not match"
        elif raw.startswith(b"syscall-tui cache "):
            why = "another format version, or stored under another name"
        else:
            why = "not a cache entry"
        _warn(f"ignoring the cache entry {key[:16]} ({why})")
        return None
    try:
        return decode(json.loads(body))
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        _warn(f"ignoring the cache entry {key[:16]} (not in the layout: {str(exc)[:80]})")
        return None
    except Exception as exc:  # a reader's own bug must not make a damaged entry an error
        _warn(f"ignoring the cache entry {key[:16]} (unreadable: {type(exc).__name__})")
        return None


def store(kind: str, key: str, value: T, encode: Callable[[T], Any]) -> None:
    """Write an entry atomically (a temporary file renamed over the name, in the same
    folder); any failure leaves the cache as it was."""
    if not ENTRY_NAME.fullmatch(key):
        return
    try:
        body = json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, TypeError, RecursionError):  # a value outside the layout: no entry
        return
    if len(body) > MAX_ENTRY_BYTES:
        return
    with _kind_folder(kind, create=True) as folder:
        if folder is None:
            return
        temporary = TEMP_PREFIX + os.urandom(8).hex()
        try:
            fd = os.open(temporary, _OPEN_TEMP, 0o600, dir_fd=folder)
            try:
                data = memoryview(_header(kind, key, body) + body)
                while data:
                    data = data[os.write(fd, data) :]
            finally:
                os.close(fd)
            os.replace(temporary, key, src_dir_fd=folder, dst_dir_fd=folder)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            return
        with contextlib.suppress(OSError):
            _prune(folder)


def _prune(folder: int) -> None:
    """Keep the newest :data:`MAX_ENTRIES` entries of the folder open as *folder*.

    Only regular files named as entries are counted and deleted, by name in that folder
    (unlink never follows a symlink; a subfolder or a symlinked one is never entered)."""
    entries: list[tuple[float, str]] = []
    stale: list[str] = []  # temporary files a killed process left, an hour or more ago
    now = time.time()
    with os.scandir(folder) as it:
        for item in it:
            entry = ENTRY_NAME.fullmatch(item.name)
            if not (entry or TEMP_NAME.fullmatch(item.name)):
                continue
            if not item.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                mtime = item.stat(follow_symlinks=False).st_mtime
                if entry:
                    entries.append((mtime, item.name))
                elif now - mtime > 3600:
                    stale.append(item.name)
    entries.sort()
    for name in stale + [name for _, name in entries[: max(0, len(entries) - MAX_ENTRIES)]]:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=folder)


def cached(
    kind: str,
    parts: tuple[bytes | str, ...],
    compute: Callable[[], T],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
) -> T:
    """``compute()``, or the result it gave last time for the same *parts* and engine.

    *encode* turns the value into JSON-able data and *decode* reads it back, checking it
    (see engine.codec)."""
    try:
        key = entry_key(kind, *parts)
    except OSError:  # the engine's source cannot be read: no key, no cache
        return compute()
    hit = load(kind, key, decode)
    if hit is not None:
        return hit
    value = compute()
    store(kind, key, value, encode)
    return value
