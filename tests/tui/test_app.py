"""The entry point and the scenario picker's file listing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tui.helpers import SCENARIOS
from tui.app import default_scenario_dirs
from tui.launch import run_app
from tui.screens.picker import Entry, match_score, scenario_files


def test_run_app_reports_a_broken_scenario_without_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[user]\ncode = 42\n", encoding="utf-8")
    assert run_app(str(broken)) == 2
    err = capsys.readouterr().err
    assert err.startswith("syscall-tui: ")
    assert "broken.toml" in err and len(err.strip().splitlines()) == 1


def test_the_debugger_loads_no_emulator_before_it_needs_one() -> None:
    # A start from a cached trace needs neither the emulator nor the assembler: the app's
    # modules must not pull them in (through the compare view's types, say).
    import subprocess
    import sys

    heavy = ["unicorn", "capstone", "keystone", "engine.scenario.parse", "engine.run.session"]
    heavy.append("zipfile")
    code = f"import sys, tui.app; print([m for m in {heavy!r} if m in sys.modules])"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("cache", [False, True])
def test_run_app_opens_the_trace_the_engine_records(
    cache: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the cache the run happens in a forked child; with it (filled by the first
    # start) it is read back.  Either way the app gets the engine's own trace.
    from engine.run.cached import run_file
    from tui.app import SyscallTuiApp

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if cache:
        monkeypatch.delenv("SYSCALL_TUI_NO_CACHE", raising=False)
    else:
        monkeypatch.setenv("SYSCALL_TUI_NO_CACHE", "1")
    path = str(SCENARIOS / "getpid.toml")
    opened: list[SyscallTuiApp] = []
    monkeypatch.setattr(SyscallTuiApp, "run", lambda self: opened.append(self))
    for _ in range(2):
        assert run_app(path) == 0
    expected, data = run_file(path)
    assert [app.trace for app in opened] == [expected, expected]
    assert all(app.source == data for app in opened)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every child was reaped


def test_run_app_reports_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app("does/not/exist.toml") == 2
    assert "no such file" in capsys.readouterr().err


def test_picker_lists_each_directory_once_with_its_toml_files(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text("", encoding="utf-8")
    (tmp_path / "a.toml").write_text("", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text("[project]\n", encoding="utf-8")
    found = scenario_files((tmp_path, tmp_path / ".", tmp_path / "missing"))
    assert [(directory, [p.name for p in files]) for directory, files in found] == [
        (tmp_path, ["a.toml", "b.toml"])
    ]


def test_default_dirs_put_the_working_directory_before_the_shipped_scenarios() -> None:
    from engine import bundled_scenarios_dir

    dirs = default_scenario_dirs()
    assert dirs[:2] == (Path.cwd() / "scenarios", Path.cwd())
    assert dirs[2:] == (bundled_scenarios_dir(), bundled_scenarios_dir() / "selftests")


def test_the_picker_lists_the_selftest_scenarios() -> None:
    found = dict(scenario_files(default_scenario_dirs()))
    selftests = next(files for d, files in found.items() if d.name == "selftests")
    assert "sysret_rip-sigreturn-to-2-47-v5.8-intel.toml" in [p.name for p in selftests]


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("cve intel", "cve-2012-0217-intel.toml"),
        ("non-canonical amd", "sigreturn-noncanonical-amd.toml"),
        ("getpid", "getpid.toml"),
        ("5-level", "la57-rip-2-47.toml"),
    ],
)
def test_picker_search_ranks_the_scenario_a_person_means_first(query: str, wanted: str) -> None:
    entries = [Entry.read(path) for path in sorted(SCENARIOS.glob("*.toml"))]
    scored = [(match_score(query, e.haystack), e.path.name) for e in entries]
    ranked = sorted((s, name) for s, name in scored if s is not None)
    best = max(s for s, _ in ranked)
    assert wanted in [name for s, name in ranked if s == best]


def test_picker_reads_titles_without_trusting_the_file(tmp_path: Path) -> None:
    (tmp_path / "markup.toml").write_text('name = "[bold red]x"\ndescription = """a\n\nb"""\n')
    (tmp_path / "broken.toml").write_bytes(b"\xff\xfe")
    entries = {p.name: Entry.read(p) for p in tmp_path.iterdir()}
    assert entries["markup.toml"].title == "[bold red]x"
    assert entries["markup.toml"].description == "a"
    broken = entries["broken.toml"]
    assert broken.title == "" and broken.note == "(cannot be used)"
    assert broken.description == "not UTF-8 text (byte 0)"


def test_the_app_process_freezes_its_start_up_after_the_first_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`syscall-tui` hands the app tui.launch.freeze_start_up for its first frame (a full
    collection walked all of start-up again and took 80 ms of a step); in a process of
    its own that leaves start-up in the permanent generation."""
    import gc
    import os

    from tui import launch
    from tui.app import SyscallTuiApp

    given: list[object] = []
    monkeypatch.setattr(SyscallTuiApp, "run", lambda self: given.append(self.first_frame))
    assert launch.run_app(None) == 0
    assert given == [launch.freeze_start_up]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        launch.freeze_start_up()
        os.write(w, str(gc.get_freeze_count()).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        assert int(f.read()) > 1000
