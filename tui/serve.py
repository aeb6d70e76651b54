"""``syscall-tui serve``: the debugger in a web browser, through textual-serve.

Every websocket that connects gets its own process of the app, so each browser tab has
its own debugger (its own machine, trace and position) and tabs cannot step each other.
The page is xterm.js drawing what the app writes.

textual-serve would start each of those processes from nothing (``python -m tui``: the
interpreter, Textual and the engine again, about a second of CPU), so a room of students
opening the page at once queued behind each other's start-up.  Here a warm parent
(tui.warm) that has loaded everything once forks each session instead.  Should it fail to
start, the server says so and falls back to textual-serve's way.

The page is the project's own (tui/web/app_index.html): it loads nothing from outside the
machine and gives the terminal the keyboard as soon as the session is connected.

Anyone who can reach the address can run the app (and the scenario files it can
open from the server's working directory), so the default is the loopback address;
another address is an explicit ``--host``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

log = logging.getLogger("textual-serve")

#: The page template (and nothing else) replaces textual-serve's; its statics stay.
TEMPLATES = Path(__file__).resolve().parent / "web"
#: Seconds the warm parent may take to load and draw the app once.
WARM_START_TIMEOUT = 120.0
#: Seconds a session has to end after it is told to quit, before it is killed.
STOP_GRACE = 5.0

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to *host*:*port* (0: any free port) and already listening.

    Bound before the server starts, so that a taken port or a foreign address is one
    clear error, and so that a browser (or a test) that connects as soon as the address
    is printed waits in the backlog instead of being refused.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def app_command(scenario: str | None) -> str:
    """The shell command textual-serve runs for each tab: this Python, this package."""
    argv = [sys.executable, "-m", "tui"]
    if scenario is not None:
        argv.append(str(Path(scenario).resolve()))
    return shlex.join(argv)


class WarmParent:
    """The tui.warm process, and the socket over which it is asked for sessions."""

    def __init__(self, scenario: str | None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [sys.executable, "-m", "tui.warm", str(theirs.fileno())]
        if scenario is not None:
            argv.append(str(Path(scenario).resolve()))
        # Its own process group: a ^C in the server's terminal reaches the server, which
        # then closes the socket; the warm parent and its sessions end from that.
        self.process = subprocess.Popen(
            argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True
        )
        theirs.close()
        self.control = ours
        self.lock = threading.Lock()
        ready, _, _ = select.select([ours], [], [], WARM_START_TIMEOUT)
        line = ours.recv(16) if ready else b""
        if line != b"ready\n":
            self.close()
            raise OSError("the warm parent did not start")

    def spawn(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Fork a session: the server's ends of its stdin, stdout and stderr, and its pidfd."""
        pipes = [os.pipe() for _ in range(3)]
        child_ends = [pipes[0][0], pipes[1][1], pipes[2][1]]
        ours = [pipes[0][1], pipes[1][0], pipes[2][0]]
        try:
            with self.lock:
                request = f'{{"width": {int(width)}, "height": {int(height)}}}\n'.encode()
                socket.send_fds(self.control, [request], child_ends)
                answer, fds, _flags, _addr = socket.recv_fds(self.control, 1, 1)
        except OSError:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in child_ends:
                os.close(fd)
        if answer != b"\1" or len(fds) != 1:
            for fd in (*ours, *fds):
                os.close(fd)
            raise OSError("the warm parent could not start a session")
        return ours[0], ours[1], ours[2], fds[0]

    def close(self) -> None:
        self.control.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _ForkedProcess:
    """What AppService uses of an asyncio Process: its three streams."""

    def __init__(
        self,
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader


async def _writer(fd: int) -> asyncio.StreamWriter:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", buffering=0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


class WarmAppService(AppService):
    """textual-serve's AppService, with the app process forked by the warm parent."""

    def __init__(self, warm: WarmParent, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warm = warm
        self.pidfd: int | None = None

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        stdin, stdout, stderr, self.pidfd = await asyncio.to_thread(self.warm.spawn, width, height)
        process = _ForkedProcess(await _writer(stdin), await _reader(stdout), await _reader(stderr))
        self._process = process  # type: ignore[assignment]
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        """Tell the session to quit; if it has not ended within STOP_GRACE, kill it."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(super().stop(), STOP_GRACE)
        pidfd, self.pidfd = self.pidfd, None
        if pidfd is None:
            return
        try:
            ended, _, _ = await asyncio.to_thread(select.select, [pidfd], [], [], STOP_GRACE)
            if not ended:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        finally:
            os.close(pidfd)


class DebuggerServer(Server):
    """textual-serve's server, with the page's websocket address taken from the request.

    textual-serve writes ``public_url`` (built from --host and --port) into the page as
    the websocket address.  Bound to 0.0.0.0 that would send every student's browser to
    ws://0.0.0.0:..., so unless a public URL is given, the page points back at the
    address the browser itself used (its Host header).
    """

    def __init__(
        self,
        command: str,
        host: str,
        port: int,
        public_url: str | None,
        warm: WarmParent | None = None,
    ) -> None:
        super().__init__(
            command,
            host=host,
            port=port,
            title="syscall-tui",
            public_url=public_url,
            templates_path=TEMPLATES,
        )
        self.fixed_public_url = public_url is not None
        self.warm = warm

    async def handle_index(self, request: web.Request) -> Any:
        if not self.fixed_public_url:
            # Set and used without an await in between: no other request sees it.
            self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's handler, with the session forked by the warm parent."""
        if self.warm is None:
            return await super().handle_websocket(request)
        websocket = web.WebSocketResponse(heartbeat=15)
        width = _to_int(request.query.get("width", "80"), 80)
        height = _to_int(request.query.get("height", "24"), 24)
        app_service: WarmAppService | None = None
        try:
            await websocket.prepare(request)
            app_service = WarmAppService(
                self.warm,
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
                debug=self.debug,
            )
            await app_service.start(width, height)
            await self._process_messages(websocket, app_service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # one session's failure is logged, the server goes on
            log.error("session failed: %s", error)
        finally:
            if app_service is not None:
                await app_service.stop()
        return websocket

    def serve_on(self, sock: socket.socket) -> None:
        """textual-serve's ``serve``, on a socket bound beforehand."""
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
        web.run_app(
            self._make_app(), sock=sock, handle_signals=False, loop=loop, print=lambda *a: None
        )

    async def on_startup(self, app: web.Application) -> None:
        url = f"http://{self.host}:{self.port}" if ":" not in self.host else (
            f"http://[{self.host}]:{self.port}"
        )  # fmt: skip
        print(f"syscall-tui: serving the debugger on {url}/", flush=True)
        if self.host in ("0.0.0.0", "::", ""):
            print(
                f"  on every address of this machine: browsers open "
                f"http://{socket.gethostname()}:{self.port}/ or this machine's IP address",
                flush=True,
            )
        print("  each browser tab gets its own instance; Ctrl+C stops the server", flush=True)


def _to_int(value: str, default: int) -> int:
    try:
        return int(value)
    except ValueError:
        return default


def serve(scenario: str | None, host: str, port: int, public_url: str | None = None) -> int:
    """Serve the debugger on *host*:*port* until interrupted (port 0: any free port)."""
    if not is_loopback(host):
        print(
            f"syscall-tui: warning: listening on {host}: anyone who can reach this address "
            "runs the debugger on this machine",
            file=sys.stderr,
            flush=True,
        )
    sock = listening_socket(host, port)
    port = int(sock.getsockname()[1])
    try:
        warm: WarmParent | None = WarmParent(scenario)
    except OSError as error:
        print(
            f"syscall-tui: warning: {error}; each tab starts the app from nothing",
            file=sys.stderr,
            flush=True,
        )
        warm = None
    try:
        DebuggerServer(app_command(scenario), host, port, public_url, warm).serve_on(sock)
    finally:
        if warm is not None:
            warm.close()
    return 0
