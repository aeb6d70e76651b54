"""Load and run a scenario for the app in a forked child process.

A scenario file is untrusted, and the app must stay what the learner is using:
so the parse, the assembly and the recorded run happen in a child process.  The
UI thread never waits for it and never competes with it for the GIL; ``q`` kills
it (the worker that waits is cancelled when the screen goes, and checks that
every 50 ms); a crash in native code (Unicorn, Keystone) ends the child, not the
app.  The trace comes back in batches of steps, in the checked JSON layout of the
on-disk cache (engine.codec: data, never a pickle, since the child ran native code on
untrusted input), so the worker thread releases the GIL between batches and a
100,000-step trace does not freeze the UI while it is read back.

Forking a process that has threads is safe here because the child touches no
lock another thread could hold: it only runs engine code (which does no logging
and no printing; imports are safe, CPython holds its import lock across fork),
its stdout and stderr point at /dev/null (never at the app's terminal), the
signal handlers Textual installed are reset, and it ends with ``os._exit``
(no atexit handlers, no flushing of the parent's buffers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import json
import os
import resource
import select
import signal
import struct
from collections.abc import Callable
from typing import Any

from engine.trace import Step, Trace

#: Steps per batch: a few milliseconds of reading back each.
BATCH = 500
#: The largest message an honest child sends (a batch of steps, or the trace's head with
#: the scenario's bytes): anything larger ends the load instead of filling memory.
MAX_MESSAGE = 64 << 20
#: Address space the child may add to what it inherits (a machine reserves 256 MiB).
CHILD_MEMORY = 3 << 30
#: Seconds between checks whether the wait was cancelled.
POLL = 0.05

_HEADER = struct.Struct("<Q")


class LoadError(Exception):
    """The scenario could not be loaded or run; the text is one escaped line."""


def load_with_source(
    path: str, cancelled: Callable[[], bool], kernel: str | None = None
) -> tuple[Trace, bytes]:
    """Parse and run the scenario at *path* (on *kernel*, when given) in a child: its
    trace and the file's bytes it was made from (restart compares them with the file's),
    or :class:`LoadError`.

    *cancelled* is polled while waiting; when it returns True the child is killed and
    :class:`LoadError` is raised.
    """
    return start_load(path, kernel).result(cancelled)


class Loading:
    """A child process running one scenario; :meth:`result` waits for its answer."""

    def __init__(self, path: str, pid: int, read_end: int) -> None:
        self.path = path
        self.pid = pid
        self.read_end = read_end

    def result(self, cancelled: Callable[[], bool] = lambda: False) -> tuple[Trace, bytes]:
        """The trace and the file's bytes, as :func:`load_with_source` gives them."""
        return _receive(self.path, self.pid, self.read_end, cancelled)


def start_load(path: str, kernel: str | None = None) -> Loading:
    """Fork the child that runs the scenario at *path*; it works while the caller goes on.

    Called before the app's own modules are imported (the start-up), the engine and
    Textual load on two cores at once rather than taking turns on the GIL.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(read_end)
        _child(path, write_end, kernel)
    os.close(write_end)
    return Loading(path, pid, read_end)


def _receive(
    path: str, pid: int, read_end: int, cancelled: Callable[[], bool]
) -> tuple[Trace, bytes]:
    from engine.codec import decode_steps, decode_trace
    from engine.scenario.model import MAX_STEP_CAP

    reader = _Reader(read_end, cancelled)
    try:
        try:
            message = reader.message()
            if message.get("kind") == "error" and type(message.get("text")) is str:
                raise LoadError(str(message["text"]))
            head: Trace = decode_trace(message["head"])
            count, source = message["count"], bytes.fromhex(message["source"])
            if message.get("kind") != "trace" or type(count) is not int:
                raise ValueError("not a trace")
            if not 0 <= count <= 2 * MAX_STEP_CAP:
                raise ValueError("too many steps")
            steps: list[Step] = []
            while len(steps) < count:
                batch = reader.message()
                steps.extend(decode_steps(batch.get("steps"), len(steps)))
            if len(steps) != count:
                raise ValueError("too many steps")
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            _reap(pid, kill=True)
            pid = 0
            raise LoadError(f"{path}: the engine's answer was malformed") from exc
        return dataclasses.replace(head, steps=tuple(steps)), source
    except _Ended as end:
        status = _reap(pid, kill=end.kill)
        pid = 0
        if end.kill:
            raise LoadError("loading was cancelled") from None
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            raise LoadError(f"{path}: the engine crashed on this file ({name})") from None
        raise LoadError(f"{path}: the engine ended without an answer") from None
    finally:
        os.close(read_end)
        if pid:
            _reap(pid, kill=True)


class _Ended(Exception):
    def __init__(self, kill: bool) -> None:
        self.kill = kill


class _Reader:
    """Length-prefixed JSON objects from the child, waiting in slices so that a cancel is
    seen."""

    def __init__(self, fd: int, cancelled: Callable[[], bool]) -> None:
        self.fd = fd
        self.cancelled = cancelled
        self.buffer = bytearray()

    def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            if self.cancelled():
                raise _Ended(kill=True)
            ready, _, _ = select.select([self.fd], [], [], POLL)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                raise _Ended(kill=False)
            self.buffer += chunk

    def message(self) -> dict[str, Any]:
        self._fill(_HEADER.size)
        (size,) = _HEADER.unpack_from(self.buffer)
        if size > MAX_MESSAGE:
            raise ValueError("a message larger than any answer")
        self._fill(_HEADER.size + size)
        data = bytes(self.buffer[_HEADER.size : _HEADER.size + size])
        del self.buffer[: _HEADER.size + size]
        message = json.loads(data)
        if type(message) is not dict:
            raise ValueError("not a message")
        return message


def _reap(pid: int, kill: bool) -> int:
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


def _send(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _child(path: str, out: int, kernel: str | None) -> None:  # pragma: no cover - child
    code = 1
    try:
        for sig in (signal.SIGWINCH, signal.SIGINT, signal.SIGTERM, signal.SIGTSTP, signal.SIGCONT):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, signal.SIG_DFL)
        faulthandler.disable()  # its file is a copy of the parent's stderr
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with open("/proc/self/statm", "rb") as f:
            vsz = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vsz + CHILD_MEMORY, vsz + CHILD_MEMORY))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        from engine import ScenarioError, load_scenario, run_scenario
        from engine.errors import escape
        from engine.run.cached import run_bytes
        from engine.scenario.parse import with_kernel
        from engine.scenario.reader import read_scenario_bytes

        try:
            source = read_scenario_bytes(path)
            if kernel is None:
                # The same cached run as the app's start: a file opened before is a lookup.
                trace = run_bytes(source, path)
            else:
                trace = run_scenario(with_kernel(load_scenario(path), kernel))
        except ScenarioError as exc:
            _send(out, {"kind": "error", "text": str(exc)})
        except Exception as exc:  # an engine bug on one file must not end the session
            text = escape(f"{path}: {type(exc).__name__}: {exc}", 300)
            _send(out, {"kind": "error", "text": text})
        else:
            from engine.codec import encode_steps, encode_trace

            steps = trace.steps
            head = encode_trace(dataclasses.replace(trace, steps=()))
            _send(out, {"kind": "trace", "head": head, "count": len(steps), "source": source.hex()})
            for i in range(0, len(steps), BATCH):
                _send(out, {"kind": "steps", "steps": encode_steps(steps[i : i + BATCH])})
        code = 0
    finally:
        os._exit(code)
