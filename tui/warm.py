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

The parent exits when the server's end of FD closes; each child gets SIGTERM when the
parent goes (PR_SET_PDEATHSIG), so no session outlives the server.  Nothing read from the
socket reaches the app but two integers (clamped) and three descriptors.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import signal
import socket
import sys

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
    control: socket.socket, fds: list[int], width: int, height: int, make_app: object
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
        gc.unfreeze()
        app = make_app()  # type: ignore[operator]
        app.run()
        code = app.return_code or 0
    except BaseException:  # never back into the parent's loop
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(code)


def serve_forever(control: socket.socket, make_app: object) -> None:
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
        pid = os.fork()
        if pid == 0:
            _child(control, fds, width, height, make_app)
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

    _warm_up(make_app)
    gc.collect()
    gc.freeze()  # objects made so far are never touched by the collector: pages stay shared
    control.sendall(b"ready\n")
    serve_forever(control, make_app)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
