"""``syscall-tui serve``: a real server process, fetched over HTTP and websocket (no browser)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.tui.helpers import SCENARIOS
from tui.cli import main
from tui.serve import app_command, is_loopback
from tui.warm import StartSlots, parse_request, share_parsed_css

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def _start(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m tui serve --port 0 ARGS`` and read the URL it says it serves on."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "serve", "--port", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            found = re.search(rb"serving the debugger on (http://\S+)", line)
            if found:
                return proc, found.group(1).decode().rstrip("/")
    _stop(proc)
    pytest.fail(f"the server did not start: {seen.decode(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


#: The server process of the module's fixture, for the tests that look at its children.
RUNNING: dict[str, subprocess.Popen[bytes]] = {}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc, url = _start(str(SCENARIOS / "check-rcx-eq-rip.toml"))
    RUNNING[url] = proc
    try:
        yield url
    finally:
        _stop(proc)


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode("utf-8", "replace")


def test_serves_the_app_page_on_the_loopback_address(server: str) -> None:
    assert server.startswith("http://127.0.0.1:")
    status, page = _get(server + "/")
    assert status == 200
    assert "<div>syscall-tui</div>" in page  # textual-serve's intro names the app
    port = server.rsplit(":", 1)[1]
    # the page's websocket points back where the browser came from
    assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in page
    status, script = _get(server + "/static/js/textual.js")
    assert status == 200 and "xterm" in script.lower()


def test_the_page_points_at_the_address_the_browser_used(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    request = urllib.request.Request(server + "/", headers={"Host": f"lab.example:{port}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    assert f'data-session-websocket-url="ws://lab.example:{port}/ws"' in page


async def _screen_text(url: str, limit: float = 60.0) -> bytes:
    """What one browser tab's app instance writes, until the checks panel is drawn."""
    ws_url = url.replace("http://", "ws://") + "/ws?width=160&height=50"
    out = b""
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and b"rcx_eq_rip" not in out:
            message = await ws.receive(timeout=limit)
            if message.type != aiohttp.WSMsgType.BINARY:
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
                continue
            out += message.data
    return out


def test_each_connection_runs_its_own_instance_of_the_debugger(server: str) -> None:
    async def two_tabs() -> list[bytes]:
        return list(await asyncio.gather(_screen_text(server), _screen_text(server)))

    for screen in asyncio.run(two_tabs()):
        assert b"entry_SYSCALL_64" in screen
        assert b"rcx_eq_rip" in screen  # the checks panel of the scenario it was given


def test_a_broken_scenario_is_refused_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[user]\ncode = 42\n", encoding="utf-8")
    assert main(["serve", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("syscall-tui: ") and "broken.toml" in err


def test_another_address_is_loud() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.7")
    assert not is_loopback("lab.example")


def test_app_command_runs_this_python_on_the_absolute_scenario_path() -> None:
    command = app_command("scenarios/getpid.toml")
    assert command.startswith(sys.executable)
    assert str((Path.cwd() / "scenarios/getpid.toml").resolve()) in command
    assert app_command(None).endswith("-m tui")


def test_a_taken_port_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"syscall-tui: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_another_address_warns_before_it_listens(capsys: pytest.CaptureFixture[str]) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the bind fails, after the warning
    assert main(["serve", "--host", "192.0.2.1", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("syscall-tui: warning: listening on 192.0.2.1: anyone who can")
    assert err[1].startswith("syscall-tui: cannot listen on 192.0.2.1:0: ")


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", port]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("syscall-tui serve: argument --port: ")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out.extend(int(p) for p in f.read().split())
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_the_page_loads_nothing_from_another_machine(server: str) -> None:
    """Every stylesheet, script, font and image the page names is on this server, and is
    there: an outside web-font request stalled every first screen on a network that drops
    such packets."""
    _, page = _get(server + "/")
    references = re.findall(r'(?:href|src)="([^"]+)"|url\("?([^")]+)"?\)', page)
    urls = [a or b for a, b in references]
    assert any(u.endswith("textual.js") for u in urls)
    assert any("fonts/RobotoMono" in u for u in urls)  # the font is the server's own copy
    for url in urls:
        assert url.startswith(server + "/"), url
        status, _ = _get(url)
        assert status == 200, url
    assert "googleapis" not in page and "https://" not in page


def test_the_page_gives_the_terminal_the_keyboard_once_connected(server: str) -> None:
    """xterm.js reads keys through its hidden textarea: the page focuses it when the
    websocket opens (body.-loaded), so the first key is not lost waiting for a click."""
    _, page = _get(server + "/")
    script = page.split("function focusTerminal()", 1)[1]
    assert ".xterm-helper-textarea" in script.split("}", 1)[0]
    assert "input.focus()" in script
    assert 'classList.contains("-loaded")' in script


def test_sessions_are_forked_by_one_warm_parent(server: str) -> None:
    """The server starts no interpreter per tab: its one warm parent forks each session."""
    proc = RUNNING[server]

    async def two_tabs_and_look() -> tuple[list[int], dict[int, list[int]]]:
        ws_url = server.replace("http://", "ws://") + "/ws?width=160&height=50"
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(ws_url) as a,
            session.ws_connect(ws_url) as b,
        ):
            for ws in (a, b):
                out = b""
                while b"rcx_eq_rip" not in out:
                    message = await ws.receive(timeout=START_TIMEOUT)
                    assert message.type == aiohttp.WSMsgType.BINARY
                    out += message.data
            top = _children(proc.pid)
            return top, {pid: _children(pid) for pid in top}

    top, below = asyncio.run(two_tabs_and_look())
    assert len(top) == 1 and "-m tui.warm" in _cmdline(top[0])
    sessions = below[top[0]]
    assert len(sessions) >= 2
    # After the tabs closed, their sessions end (they are told to quit, else killed).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in sessions):
        time.sleep(0.2)
    assert not [pid for pid in sessions if os.path.exists(f"/proc/{pid}")]


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (b'{"width": 160, "height": 50}', (160, 50)),
        (b'{"width": 99999999, "height": -3}', (1000, 10)),
        (b'{"width": "160", "height": true}', (80, 24)),
        (b"[1, 2]", (80, 24)),
        (b"\xff not json", (80, 24)),
    ],
)
def test_a_session_request_gives_the_warm_parent_two_clamped_integers(
    line: bytes, size: tuple[int, int]
) -> None:
    assert parse_request(line) == size


# -- start slots: at most one starting session per slot ----------------------------------


def _hold_slot(path: str, hold: float, report: int) -> None:  # pragma: no cover - child
    """In a forked child: take the slot, say when, hold it, then exit (dropping it)."""
    try:
        release = StartSlots.take(path, wait=10.0)
        os.write(report, f"{time.monotonic()}\n".encode())
        time.sleep(hold)
        release()
    finally:
        os._exit(0)


def _fork_holder(path: str, hold: float) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _hold_slot(path, hold, w)
    os.close(w)
    return pid, r


def _taken_at(r: int) -> float:
    with os.fdopen(r) as f:
        return float(f.readline())


def test_a_start_slot_is_held_by_one_session_at_a_time() -> None:
    slots = StartSlots(1)
    try:
        path = slots.next_slot()
        assert slots.next_slot() == path  # one slot: every session queues on it
        first, r1 = _fork_holder(path, 0.5)
        time.sleep(0.1)
        second, r2 = _fork_holder(path, 0.0)
        a, b = _taken_at(r1), _taken_at(r2)
        for pid in (first, second):
            os.waitpid(pid, 0)
        assert b - a >= 0.45  # the second started when the first gave the slot up
    finally:
        slots.remove()


@pytest.fixture
def held_slot() -> Iterator[tuple[StartSlots, str, int]]:
    """A one-slot StartSlots whose slot a forked session holds (for a minute); the
    holder is killed and the slots removed after the test."""
    slots = StartSlots(1)
    path = slots.next_slot()
    holder, r = _fork_holder(path, 60.0)
    try:
        _taken_at(r)
        yield slots, path, holder
    finally:
        with contextlib.suppress(OSError):
            os.kill(holder, 9)
            os.waitpid(holder, 0)
        slots.remove()


def test_a_session_killed_while_it_starts_gives_its_slot_back(
    held_slot: tuple[StartSlots, str, int],
) -> None:
    _, path, holder = held_slot
    os.kill(holder, 9)
    os.waitpid(holder, 0)
    began = time.monotonic()
    release = StartSlots.take(path, wait=5.0)
    assert time.monotonic() - began < 1.0  # not the wait: the lock went with the process
    release()
    release()  # giving it up twice is harmless


def test_a_session_waits_for_a_slot_no_longer_than_start_wait(
    held_slot: tuple[StartSlots, str, int],
) -> None:
    slots, path, _ = held_slot
    began = time.monotonic()
    StartSlots.take(path, wait=0.3)()  # starts anyway, holding nothing
    assert 0.25 <= time.monotonic() - began < 2.0
    slots.remove()
    assert not Path(slots.folder).exists()


def test_sessions_share_the_stylesheets_the_warm_up_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shared parse gives each new stylesheet the rule sets parsed before, and a
    change of the CSS variables parses again."""
    from textual.css.stylesheet import Stylesheet

    monkeypatch.setattr(Stylesheet, "_parse_rules", Stylesheet._parse_rules)  # put back after
    assert share_parsed_css() and share_parsed_css()  # once, however often it is asked
    css = "Label { color: $accent; }"
    one = Stylesheet(variables={"accent": "red"})
    one.add_source(css, ("test", ""))
    one.parse()
    two = Stylesheet(variables={"accent": "red"})
    two.add_source(css, ("test", ""))
    two.parse()
    assert one.rules[0] is two.rules[0]
    other = Stylesheet(variables={"accent": "blue"})
    other.add_source(css, ("test", ""))
    other.parse()
    assert other.rules[0] is not one.rules[0]
    assert "blue" in other.css or other.rules[0].styles.color != one.rules[0].styles.color
