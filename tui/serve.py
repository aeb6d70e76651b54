"""``syscall-tui serve``: the debugger in a web browser, through textual-serve.

textual-serve starts one process of the app for every websocket that connects, so
each browser tab has its own debugger (its own machine, trace and position) and tabs
cannot step each other.  The page is xterm.js drawing what the app writes.

Anyone who can reach the address can run the app (and the scenario files it can
open from the server's working directory), so the default is the loopback address;
another address is an explicit ``--host``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import socket
import sys
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from aiohttp import web
from textual_serve.server import Server

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


class DebuggerServer(Server):
    """textual-serve's server, with the page's websocket address taken from the request.

    textual-serve writes ``public_url`` (built from --host and --port) into the page as
    the websocket address.  Bound to 0.0.0.0 that would send every student's browser to
    ws://0.0.0.0:..., so unless a public URL is given, the page points back at the
    address the browser itself used (its Host header).
    """

    def __init__(self, command: str, host: str, port: int, public_url: str | None) -> None:
        super().__init__(command, host=host, port=port, title="syscall-tui", public_url=public_url)
        self.fixed_public_url = public_url is not None

    async def handle_index(self, request: web.Request) -> Any:
        if not self.fixed_public_url:
            # Set and used without an await in between: no other request sees it.
            self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

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
    DebuggerServer(app_command(scenario), host, port, public_url).serve_on(sock)
    return 0
