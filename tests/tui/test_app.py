"""The entry point and the scenario picker's file listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.helpers import SCENARIOS
from tui.app import default_scenario_dirs, run_app
from tui.screens.picker import scenario_files


def test_run_app_reports_a_broken_scenario_without_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[user]\ncode = 42\n", encoding="utf-8")
    assert run_app(str(broken)) == 2
    err = capsys.readouterr().err
    assert err.startswith("syscall-tui: ")
    assert "broken.toml" in err and len(err.strip().splitlines()) == 1


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


def test_default_dirs_start_with_the_bundled_scenarios() -> None:
    dirs = default_scenario_dirs()
    assert dirs[0].resolve() == SCENARIOS.resolve()
    assert Path.cwd() in dirs


def test_the_picker_lists_the_selftest_scenarios() -> None:
    found = dict(scenario_files(default_scenario_dirs()))
    selftests = next(files for d, files in found.items() if d.name == "selftests")
    assert "sysret_rip-sigreturn-to-2-47-v5.8-intel.toml" in [p.name for p in selftests]
