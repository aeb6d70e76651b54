"""Hostile files through the real CLI and the app: one line, text not markup, q always quits."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets._toast import Toast

from tests.tui.helpers import ROOT, SCENARIOS, make_app, run_async
from tui import cli
from tui.screens.commands import DebuggerCommands
from tui.screens.debugger import DebuggerScreen
from tui.screens.picker import ScenarioPicker

WIDE = (160, 50)
MARKUP_NAME = 'name = "[/foo] [bold]x[/bold] \\u001b[2J"\n'
WRITE_MARKUP = (
    'name = "[/x]"\n[user]\ncode = """\nmovabs $0x0a5d782f5b, %rax\npush %rax\n'
    'mov %rsp, %rsi\nmov $5, %edx\nmov $1, %edi\nmov $1, %eax\nsyscall\n"""\n'
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the CLI -----------------------------------------------------------------------------


def test_trace_prints_markup_as_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["trace", str(write(tmp_path, "w.toml", WRITE_MARKUP))]) == 0
    out = capsys.readouterr().out
    assert "[/x]" in out  # the title and write()'s bytes, shown as they are
    assert 'wrote "[/x]\\n"' in out  # a C string, as strace shows a buffer


def test_trace_escapes_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["trace", str(write(tmp_path, "m.toml", MARKUP_NAME))]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_error_is_one_escaped_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "k.toml", 'name = "x"\n"a\\nb\\u001b[2J" = 1\n')
    assert cli.main(["trace", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err
    assert err.startswith(f"syscall-tui: {path}:2: a\\nb\\x1b[2J: unknown key")


def test_check_reports_every_file_and_exits_2_when_one_is_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "a-ok.toml", (SCENARIOS / "getpid.toml").read_text())
    write(tmp_path, "b-fail.toml", 'name = "f"\n[expect]\nexit = "iret"\n')
    write(tmp_path, "c-broken.toml", 'name = "b"\n[user]\ncode = "-1"\n')
    write(tmp_path, "d-skip.toml", 'name = "s"\n')
    os.mkfifo(tmp_path / "e-fifo.toml")
    write(tmp_path, "f-ok.toml", (SCENARIOS / "pti-off.toml").read_text())
    assert cli.main(["check", str(tmp_path)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [
        "ok",
        "FAIL",
        "ERROR",
        "SKIP",
        "ERROR",
        "ok",
    ]
    assert lines[-1] == "2 passed, 1 failed, 1 skipped, 2 broken"


def test_check_exits_1_on_a_failed_expectation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "fail.toml", 'name = "f"\n[expect]\nexit = "iret"\n')
    write(tmp_path, "skip.toml", 'name = "s"\n')
    assert cli.main(["check", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "0 passed, 1 failed, 1 skipped"


def test_check_goes_on_after_an_engine_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a.toml", 'name = "boom"\n')
    write(tmp_path, "b.toml", (SCENARIOS / "getpid.toml").read_text())
    import engine

    real = engine.run_scenario

    def flaky(sc):
        if sc.name == "boom":
            raise RuntimeError("engine bug")
        return real(sc)

    monkeypatch.setattr(engine, "run_scenario", flaky)  # cli imports it when it runs
    assert cli.main(["check", str(tmp_path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ERROR") and "RuntimeError: engine bug" in out[0]
    assert out[1].startswith("ok")


@pytest.mark.parametrize("args", [["trace", "--json"], ["trace"], ["check"]])
def test_a_closed_pipe_ends_quietly(tmp_path: Path, args: list[str]) -> None:
    # Enough output to outlast the pipe's buffer (a plain table row is about 60 bytes).
    loop = write(tmp_path, "loop.toml", 'name = "l"\nstep_cap = 3000\n[user]\ncode = "1: jmp 1b"\n')
    target = str(tmp_path) if args == ["check"] else str(loop)
    if args == ["check"]:
        for i in range(400):
            write(tmp_path, f"s{i:03}.toml", 'name = "s"\n[user]\ncode = "-1"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", *args, target],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # the reader goes away, as `| head -c 10` does
    err = proc.stderr.read()
    assert proc.wait(60) == cli.EXIT_BROKEN_PIPE
    assert err == b""


# -- the app -----------------------------------------------------------------------------


def _children() -> set[int]:
    found: set[int] = set()
    for name in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(name) as f:
            found.update(int(pid) for pid in f.read().split())
    return found


async def _open(app, pilot, name: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("o")
    picker = app.screen
    assert isinstance(picker, ScenarioPicker)
    options = picker.query_one(OptionList)
    wanted = next(i for i, path in picker._paths.items() if path.name == name)
    options.highlighted = options.get_option_index(wanted)
    await pilot.press("enter")


@run_async
async def test_hostile_files_load_in_app_without_harm(tmp_path: Path) -> None:
    write(tmp_path, "[red]markup.toml", MARKUP_NAME)
    write(tmp_path, "hang.toml", 'name = "h"\n[user]\ncode = "-1"\n')
    write(tmp_path, "crash.toml", 'name = "c"\n[user]\ncode = ".text"\n')
    write(tmp_path, "w.toml", WRITE_MARKUP)
    write(tmp_path, "ks-hang.toml", 'name = "k"\n[user]\ncode = ".quad )"\n')
    os.mkfifo(tmp_path / "fifo.toml")
    messages: list[Message] = []

    def hook(message: Message) -> None:
        if isinstance(message, DebuggerScreen.Loaded | DebuggerScreen.LoadFailed):
            messages.append(message)

    app = make_app(scenario_dirs=(tmp_path,))
    async with app.run_test(size=WIDE, message_hook=hook, notifications=True) as pilot:
        for name in ("[red]markup.toml", "hang.toml", "crash.toml", "fifo.toml", "w.toml",
                     "ks-hang.toml"):  # fmt: skip
            if name == "fifo.toml":  # not listed by the picker (not a file); typed or given
                screen = app.screen
                assert isinstance(screen, DebuggerScreen)
                screen.load(tmp_path / name)
            else:
                await _open(app, pilot, name)
            await app.workers.wait_for_complete()
            await pilot.pause()
        kinds = [type(m).__name__ for m in messages]
        assert kinds == ["Loaded", "LoadFailed", "LoadFailed", "LoadFailed", "Loaded", "LoadFailed"]
        failed = [m.error for m in messages if isinstance(m, DebuggerScreen.LoadFailed)]
        assert "expected an instruction" in failed[0]
        assert "directive '.text' is not allowed" in failed[1]
        assert "FIFO" in failed[2]
        assert "user.code: the assembler did not finish" in failed[3]
        assert app.is_running
        shown = " ".join(str(toast.render()) for toast in app.screen.query(Toast))
        assert "[/x]: " in shown  # the name as text: as markup it would not even parse
        assert "could not load hang.toml" in shown


@run_async
async def test_q_quits_while_a_long_load_runs(tmp_path: Path) -> None:
    write(tmp_path, "long.toml", 'name = "l"\nstep_cap = 100000\n[user]\ncode = "1: jmp 1b"\n')
    app = make_app(scenario_dirs=(tmp_path,))
    before = _children()
    async with app.run_test(size=WIDE) as pilot:
        await _open(app, pilot, "long.toml")
        # a loaded machine may take a while to fork: wait for the child, not a fixed time
        for _ in range(100):
            if _children() - before:
                break
            await pilot.pause(0.05)
        assert _children() - before  # the child is at work
        await pilot.press("q")
        await app.workers.wait_for_complete()
    assert not app.is_running
    for _ in range(100):
        if not _children() - before:
            break
        time.sleep(0.05)
    assert not _children() - before  # killed and reaped, not left spinning


@run_async
async def test_keys_work_while_keystone_hangs_in_the_child(tmp_path: Path) -> None:
    # A label of this test's own: the assembler caches answers by text, and another test in
    # this process may have asked about `.quad %rax` already (the answer would be instant).
    label = f"hang_{abs(hash(tmp_path)) % 10**9}"
    write(tmp_path, "ks-hang2.toml", f'name = "k"\n[user]\ncode = "{label}: .quad %rax"\n')
    app = make_app(scenario_dirs=(tmp_path,))
    async with app.run_test(size=WIDE) as pilot:
        await _open(app, pilot, "ks-hang2.toml")
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        assert app.workers._workers  # the load is still waiting for the assembler
        await pilot.press("s", "s")
        assert screen.position == 2
        await app.workers.wait_for_complete()


@run_async
async def test_command_palette_lists_a_markup_file_name_as_text(tmp_path: Path) -> None:
    write(tmp_path, "[@click=app.quit]x[red.toml", MARKUP_NAME)
    app = make_app(scenario_dirs=(tmp_path,))
    async with app.run_test(size=WIDE) as pilot:
        shown = [
            Content.from_markup(title).plain
            for title, _, _ in DebuggerCommands(app.screen)._commands()
        ]
        assert "Open scenario [@click=app.quit]x[red.toml" in shown
        await pilot.press("ctrl+p")
        await pilot.press(*"open scenario")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        assert screen.timeline.trace.scenario.startswith("[/foo]")
