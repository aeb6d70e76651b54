"""The warm parent of ``syscall-tui serve``: one process that has loaded everything once and
forks a debugger for each browser tab.

Started as ``python -m tui.warm FD [SCENARIO]`` by the server, with FD one end of a Unix
socket pair.  It imports Textual, the app and the engine, records the scenario's trace,
draws the app once off screen (so the stylesheet is parsed and the caches Textual fills on
a first frame are full) and then waits.  For each request on FD (a JSON line with the
terminal's width and height, and the child's stdin, stdout and stderr as file descriptors)
it forks: the child runs the app on those pipes with textual-serve's web driver, exactly as
``python -m tui SCENARIO`` would under textual-serve, and the parent answers with a pidfd of
the child, which the server uses to end it.  A child shares the parent's pages until it
writes them, so a session neither pays the start-up (about 1 s of CPU: the interpreter,
Textual, the engine) nor holds a copy of it.

A room of students opens the page at the same moment.  Were every session to start at once,
they would share the CPU evenly and all draw their first screen at the end, and the keys of
those already open would queue behind them.  So at most one session per CPU starts at a
time (a lock file each, see `StartSlots`); the others wait their turn, which takes a
fraction of a second, and the CPU left over goes to the sessions already in use.

The parent exits when the server's end of FD closes; each child gets SIGTERM when the
parent goes (PR_SET_PDEATHSIG), so no session outlives the server.  Nothing read from the
socket reaches the app but two integers (clamped) and three descriptors.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from tui.launch import freeze_start_up

#: What textual-serve sets for every app process (textual_serve.app_service): read by
#: Textual at import time, so set before the first import of it.
WEB_ENVIRONMENT = {
    "TEXTUAL_DRIVER": "textual.drivers.web_driver:WebDriver",
    "TEXTUAL_FPS": "60",
    "TEXTUAL_COLOR_SYSTEM": "truecolor",
    "TERM_PROGRAM": "textual",
}

#: Bytes of one request line (two small integers in JSON).
REQUEST_MAX = 256
#: The terminal sizes a request may ask for; outside them the size is clamped.
MIN_SIZE, MAX_SIZE = 10, 1000

_PR_SET_PDEATHSIG = 1

#: Seconds a session waits for a start slot before it starts anyway (a slot is held for
#: a fraction of a second; this only bounds the wait should the machine be overloaded).
START_WAIT = 5.0
#: Seconds a session may hold its slot at most, in case its first frame never comes.
START_HOLD = 2.0


class _Waited(Exception):
    """START_WAIT ran out while waiting for a slot."""


def _out_of_time(_signum: int, _frame: object) -> None:
    raise _Waited


class StartSlots:
    """At most one starting session per CPU: one lock file per slot.

    flock, not a counter: a session killed while it starts (its tab closed at once) drops
    its lock with its last descriptor, so no slot is ever lost.  The n-th session queues
    on slot n mod count, in the kernel (no polling), until the one before it there has
    drawn its first frame.
    """

    def __init__(self, count: int | None = None) -> None:
        self.count = count if count is not None else len(os.sched_getaffinity(0))
        self.folder = tempfile.mkdtemp(prefix="syscall-tui-starts-")
        self.paths = [os.path.join(self.folder, str(n)) for n in range(self.count)]
        for path in self.paths:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.issued = 0

    def next_slot(self) -> str:
        """The slot the next session queues on (called in the parent, before the fork)."""
        path = self.paths[self.issued % self.count]
        self.issued += 1
        return path

    @staticmethod
    def take(path: str, wait: float = START_WAIT) -> Callable[[], None]:
        """Hold the slot at *path* (or none, after *wait* seconds); call the result to give
        it up.  Main thread only: the wait is bounded by SIGALRM."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return _nothing  # the folder is gone: the parent is ending
        previous = signal.signal(signal.SIGALRM, _out_of_time)
        signal.setitimer(signal.ITIMER_REAL, wait)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except (_Waited, OSError):
            os.close(fd)
            return _nothing
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return _release(fd)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _nothing() -> None:
    pass


def _release(fd: int) -> Callable[[], None]:
    lock = threading.Lock()
    held = [True]

    def release() -> None:
        with lock:
            if held[0]:
                held[0] = False
                os.close(fd)  # the last descriptor of the open file: the lock goes with it

    return release


def _size(value: object, default: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        return default
    return max(MIN_SIZE, min(MAX_SIZE, value))


def parse_request(line: bytes) -> tuple[int, int]:
    """The width and height a request line asks for (80x24 for anything malformed)."""
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        request = None
    if not isinstance(request, dict):
        return 80, 24
    return _size(request.get("width"), 80), _size(request.get("height"), 24)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent went before the call above
        os._exit(0)


def _child(  # pragma: no cover - runs in the forked child
    control: socket.socket,
    fds: list[int],
    width: int,
    height: int,
    make_app: object,
    slot: str | None,
) -> None:
    """In the forked child: become one session's app on the given pipes, then exit."""
    code = 1
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the app's own children are waited for
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        _die_with_parent()
        os.setsid()
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.environ["COLUMNS"] = str(width)
        os.environ["ROWS"] = str(height)
        # The parent's objects stay frozen (tui.warm froze them): a collection that walked
        # them would write to every page the child shares with the parent.
        release = StartSlots.take(slot) if slot is not None else _nothing
        # Given up after the first frame, or after START_HOLD whatever happens.
        timer = threading.Timer(START_HOLD, release)
        timer.daemon = True
        timer.start()
        app = make_app()  # type: ignore[operator]

        def first_frame() -> None:
            release()
            freeze_start_up()  # the session's own start-up, as tui.launch does

        app.first_frame = first_frame
        app.run()
        code = app.return_code or 0
    except BaseException:  # never back into the parent's loop
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(code)


def serve_forever(
    control: socket.socket, make_app: object, slots: StartSlots | None = None
) -> None:
    """Fork a session for each request until the server closes its end."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    while True:
        try:
            line, fds, _flags, _addr = socket.recv_fds(control, REQUEST_MAX, 3)
        except OSError:
            return
        if not line:
            return  # the server is gone
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            control.sendall(b"\0")
            continue
        width, height = parse_request(line)
        sys.stdout.flush()
        sys.stderr.flush()
        slot = slots.next_slot() if slots is not None else None
        pid = os.fork()
        if pid == 0:
            _child(control, fds, width, height, make_app, slot)
        for fd in fds:
            os.close(fd)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # it has already ended
            control.sendall(b"\0")
            continue
        try:
            socket.send_fds(control, [b"\1"], [pidfd])
        finally:
            os.close(pidfd)


def share_parsed_css() -> bool:
    """Let every session reuse the stylesheets the warm-up parsed.

    Textual keeps its parse cache per Stylesheet, and each App makes new ones, so each
    session would parse the same CSS again (about a tenth of its first frame).  Here one
    cache serves them all, keyed as Textual keys its own plus the CSS variables (its own
    is cleared when they change).  It wraps Stylesheet._parse_rules, a private method:
    should Textual rename it, nothing is shared and sessions parse as before (False).
    """
    from textual.css.stylesheet import Stylesheet

    parse = getattr(Stylesheet, "_parse_rules", None)
    if parse is None or getattr(parse, "shared", False):
        return parse is not None
    parsed: dict[tuple[object, ...], Any] = {}

    def shared(
        self: Stylesheet,
        css: str,
        read_from: Any,
        is_default_rules: bool = False,
        tie_breaker: int = 0,
        scope: str = "",
    ) -> Any:
        variables = tuple(sorted(self._variables.items()))
        key = (css, read_from, is_default_rules, tie_breaker, scope, variables)
        rules = parsed.get(key)
        if rules is None:
            rules = parsed[key] = parse(self, css, read_from, is_default_rules, tie_breaker, scope)
        return rules

    shared.shared = True  # type: ignore[attr-defined]
    Stylesheet._parse_rules = shared  # type: ignore[method-assign]
    return True


def _warm_up(make_app: object) -> None:
    """Draw the app once off screen: the stylesheet parse and Textual's caches are then
    filled in the parent, which every child shares."""
    import asyncio

    async def draw() -> None:
        app = make_app()  # type: ignore[operator]
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()

    with contextlib.suppress(Exception):
        asyncio.run(draw())


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tui.warm FD [SCENARIO]", file=sys.stderr)
        return 2
    control = socket.socket(fileno=int(argv[0]))
    scenario = argv[1] if len(argv) > 1 else None
    os.environ.update(WEB_ENVIRONMENT)

    from engine.i18n import language_from_env, set_language

    set_language(language_from_env())  # as python -m tui does without --lang

    from engine.paths import default_scenario_path
    from engine.run.cached import cached_trace
    from engine.scenario.reader import read_scenario_bytes

    target = scenario if scenario is not None else default_scenario_path()
    data = read_scenario_bytes(target)  # the server checked the file before starting us
    trace = cached_trace(data, target)
    if trace is None:
        from engine import load_scenario, run_scenario

        trace = run_scenario(load_scenario(target))

    import textual.drivers.web_driver  # noqa: F401  (what each child runs on)

    from tui.app import SyscallTuiApp

    def make_app() -> SyscallTuiApp:
        return SyscallTuiApp(trace, source=data)

    share_parsed_css()
    _warm_up(make_app)
    gc.collect()
    gc.freeze()  # objects made so far are never touched by the collector: pages stay shared
    slots = StartSlots()
    try:
        control.sendall(b"ready\n")
        serve_forever(control, make_app, slots)
    finally:
        slots.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
