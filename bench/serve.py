"""Measure ``syscall-tui serve`` for a room: many sessions opening at the same moment.

    python bench/serve.py [--clients 20,40] [--steps 30] [--think 0.25] [--scenario FILE]

Starts one server on the loopback address (never another: this is a load test), then for
each client count opens that many websockets at the same moment, as that many students'
browsers would, each asking for a 160x50 terminal.  Every client, as soon as its first
screen is drawn, presses ``s`` --steps times, each time waiting until the status line
shows the new step, then --think seconds (a student reading the step: 0.25 s is four
keys a second, faster than anyone reads).  With --think 0 every client presses its next
key the moment the last one is drawn, which keeps both cores busy with 20 clients: then a
key waits for the other sessions' keys, not for their start-up.  Printed as
``name: value`` lines:

first_screen_s_median / _max   from opening the websocket to the first full screen (the
                               status line and the SYSRET checks drawn)
key_ms_median / _p95 / _max    from sending a key to the frame showing its step, over all
                               keys of all clients, most of them pressed while other
                               sessions were still starting
pss_mb_median / _max           proportional set size of each session process (pages
                               shared with the warm parent are divided among the sharers),
                               read from /proc/PID/smaps_rollup with all sessions open
warm_parent_pss_mb             the same for the warm parent
failed                         clients that did not see their first screen or a step
processes_left                 session processes still alive 15 s after all clients closed

single_first_screen_s          one client alone, before the others, for scale
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SIZE = (160, 50)
#: An escape sequence (CSI, OSC, or a two-byte one): stripped before looking for text.
_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b.")
TIMEOUT = 120.0


def start_server(scenario: str | None) -> tuple[subprocess.Popen[bytes], str]:
    argv = [sys.executable, "-m", "tui", "serve", "--host", HOST, "--port", "0"]
    if scenario is not None:
        argv.append(scenario)
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            found = re.search(rb"serving the debugger on (http://\S+)", line)
            if found:
                url = found.group(1).decode().rstrip("/")
                assert url.startswith(f"http://{HOST}:"), url  # loopback only
                return proc, url
    proc.kill()
    raise SystemExit("the server did not start")


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children(child))
    return out


def pss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Client:
    first_screen: float | None = None
    keys: list[float] = field(default_factory=list)
    error: str | None = None


class Room:
    """The clients' shared moments: all open at once; all stay open until memory is read."""

    def __init__(self, clients: int) -> None:
        self.start = asyncio.Event()
        self.hold = asyncio.Event()
        self.stepped = asyncio.Event()
        self.waiting = clients

    def done_stepping(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.stepped.set()


async def run_client(
    session: aiohttp.ClientSession, url: str, steps: int, think: float, room: Room
) -> Client:
    result = Client()
    width, height = SIZE
    ws_url = url.replace("http://", "ws://") + f"/ws?width={width}&height={height}"
    await room.start.wait()
    began = time.monotonic()
    stepping = True
    try:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            screen = b""

            async def until(pattern: bytes) -> None:
                # Only the new text (and a tail of the old, for a match split between two
                # messages) is searched: the clients share the machine with the server.
                nonlocal screen
                found = re.compile(pattern)
                start = 0
                while not found.search(screen, start):
                    message = await ws.receive(timeout=TIMEOUT)
                    if message.type == aiohttp.WSMsgType.BINARY:
                        start = max(0, len(screen) - 64)
                        screen += _ESCAPES.sub(b"", message.data)
                        if len(screen) > 65536:
                            start -= len(screen) - 65536
                            screen = screen[-65536:]
                            start = max(0, start)
                    elif message.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        raise ConnectionError("closed")

            # The first full screen: the status line is drawn last of the panels.
            await until(rb"SYSRET checks")
            await until(rb"step 0/\d+")
            result.first_screen = time.monotonic() - began
            for k in range(1, steps + 1):
                screen = b""
                sent = time.monotonic()
                await ws.send_json(["stdin", "s"])
                await until(rb"step %d/\d+" % k)
                result.keys.append(time.monotonic() - sent)
                if think:
                    await asyncio.sleep(think)
            stepping = False
            room.done_stepping()
            await room.hold.wait()  # every session stays open until memory is read
    except (TimeoutError, ConnectionError, aiohttp.ClientError) as error:
        result.error = f"{type(error).__name__}: {error}"
    finally:
        if stepping:
            room.done_stepping()
    return result


async def open_room(
    url: str, clients: int, steps: int, think: float, on_all_open: Callable[[], None]
) -> list[Client]:
    room = Room(clients)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [
            asyncio.create_task(run_client(session, url, steps, think, room))
            for _ in range(clients)
        ]
        await asyncio.sleep(0.2)
        room.start.set()  # every client opens its websocket at the same moment
        await room.stepped.wait()
        on_all_open()
        room.hold.set()
        return list(await asyncio.gather(*tasks))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(url: str, server_pid: int, clients: int, steps: int, think: float) -> dict[str, float]:
    memory: dict[str, list[float]] = {"sessions": [], "warm": []}

    def read_memory() -> None:
        for pid in descendants(server_pid):
            line = cmdline(pid)
            value = pss_mb(pid)
            if value is None:
                continue
            if "tui.warm" in line:
                (memory["warm"] if _is_warm_parent(pid, server_pid) else memory["sessions"]).append(
                    value
                )
            elif "-m tui" in line:
                memory["sessions"].append(value)

    results = asyncio.run(open_room(url, clients, steps, think, read_memory))
    ok = [r for r in results if r.error is None and r.first_screen is not None]
    firsts = [r.first_screen for r in ok if r.first_screen is not None]
    keys = [k for r in ok for k in r.keys]
    out: dict[str, float] = {
        "failed": len(results) - len(ok),
        "first_screen_s_median": statistics.median(firsts) if firsts else float("nan"),
        "first_screen_s_max": max(firsts) if firsts else float("nan"),
        "key_ms_median": statistics.median(keys) * 1000 if keys else float("nan"),
        "key_ms_p95": percentile(keys, 0.95) * 1000 if keys else float("nan"),
        "key_ms_max": max(keys) * 1000 if keys else float("nan"),
        "sessions_measured": len(memory["sessions"]),
        "pss_mb_median": statistics.median(memory["sessions"]) if memory["sessions"] else 0.0,
        "pss_mb_max": max(memory["sessions"]) if memory["sessions"] else 0.0,
        "warm_parent_pss_mb": sum(memory["warm"]),
    }
    for r in results:
        if r.error is not None:
            print(f"  client failed: {r.error}", file=sys.stderr)
    time.sleep(15)
    left = [
        pid
        for pid in descendants(server_pid)
        if not _is_warm_parent(pid, server_pid) and pss_mb(pid) is not None
    ]
    out["processes_left"] = len(left)
    return out


def _is_warm_parent(pid: int, server_pid: int) -> bool:
    return pid in children(server_pid) and "tui.warm" in cmdline(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="20,40")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--think", type=float, default=0.25, help="seconds between keys")
    parser.add_argument("--scenario", default=None)
    args = parser.parse_args()
    proc, url = start_server(args.scenario)
    try:
        single = measure(url, proc.pid, 1, 1, 0.0)
        print(f"single_first_screen_s: {single['first_screen_s_median']:.3f}", flush=True)
        for clients in (int(c) for c in args.clients.split(",")):
            for name, value in measure(url, proc.pid, clients, args.steps, args.think).items():
                shown = f"{value:.3f}" if isinstance(value, float) else value
                print(f"clients_{clients}_{name}: {shown}", flush=True)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
