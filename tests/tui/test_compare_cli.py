"""``syscall-tui compare`` on the command line: summary, JSON, exit status, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tui.app
from engine.compare.diff import Comparison
from tests.tui.helpers import SCENARIOS
from tui.cli import main

GETPID = str(SCENARIOS / "getpid.toml")
PTRACE = str(SCENARIOS / "check-rcx-eq-rip.toml")


def test_two_files_as_a_summary_exit_1_when_they_differ(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["compare", GETPID, PTRACE, "--summary"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("A  getpid")
    assert "paths part and decisions differ at row" in out
    assert "checks: rcx_eq_rip pass ≠ fail" in out


def test_without_a_terminal_the_summary_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", GETPID, PTRACE]) == 1  # stdout is captured: not a terminal
    assert "first difference at row" in capsys.readouterr().out


def test_cpu_pair_on_one_scenario_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", GETPID, "--cpu", "intel,amd", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["left"]["cpu"], data["right"]["cpu"]) == ("intel", "amd")
    assert data["identical"] is True and data["first_difference"] is None


def test_kernel_pair_uses_the_engine_kernels(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", GETPID, "--kernel", "v5.8.13,v5.8.13", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["left"]["kernel"] == data["right"]["kernel"] == "v5.8.13"


def test_one_scenario_on_two_kernels(capsys: pytest.CaptureFixture[str]) -> None:
    last_page = str(SCENARIOS / "v6.12-fallthrough-to-task-size-max.toml")
    assert main(["compare", last_page, "--kernel", "v5.8.13,v6.12", "--summary"]) == 1
    out = capsys.readouterr().out
    assert "v5.8.13" in out.splitlines()[0] and "v6.12" in out.splitlines()[1]
    assert "the checks decided: A sysret ≠ B iret" in out
    assert "B iret (rip_below_task_size_max failed)" in out


def test_json_of_two_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", GETPID, PTRACE, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["left"]["exit"], data["right"]["exit"]) == ("sysret", "iret")
    assert data["paths_part"]["left"]["text"].startswith("jne")


def test_on_a_terminal_the_compare_view_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Comparison] = []

    def fake_app(comparison: Comparison) -> int:
        opened.append(comparison)
        return 0

    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.setattr(tui.app, "run_compare_app", fake_app)
    assert main(["compare", GETPID, PTRACE]) == 0
    assert len(opened) == 1 and opened[0].right.failed_check == "rcx_eq_rip"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([GETPID], "needs two kernels, two CPUs, two CPU models or FRED off and on"),
        (
            [GETPID, "--kernel", "v9.9"],
            "--kernel: unknown 'v9.9'; expected one of v5.8.13, v6.1, v6.12",
        ),
        ([GETPID, "--cpu", "intel,arm"], "--cpu: unknown 'arm'; expected one of intel, amd"),
        ([GETPID, "--cpu", "intel,amd,intel"], "--cpu: expected one or two names"),
        ([GETPID, PTRACE, GETPID], "expected one or two scenario files, got 3"),
        ([GETPID, PTRACE, "--json", "--summary"], "not allowed with"),
        ([], "required: SCENARIO"),
        ([GETPID, "nowhere.toml"], "nowhere.toml: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert lines[0].startswith("syscall-tui")


def test_a_broken_scenario_is_one_line_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "b"\n[machine]\ncpu = "sparc"\n', encoding="utf-8")
    assert main(["compare", GETPID, str(broken)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "broken.toml:3: machine.cpu" in lines[0]


def test_fred_off_on_says_what_fred_removes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", GETPID, "--fred", "off,on", "--summary"]) == 1
    out = capsys.readouterr().out
    assert out.count("· v6.12 ·") == 2  # both sides on 6.12, whatever the file's kernel
    # counted from the IDT run: both swapgs, the six checks, the trampoline stack, SYSRET
    assert "FRED (B) has none of A's: 2 swapgs, 0 CR3 switches" in out
    assert "6 SYSRET checks, the trampoline (entry) stack, the sysret exit" in out
    assert "exit: A sysret to 0x401007 ≠ B eretu to 0x401007" in out


def test_fred_takes_no_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", GETPID, "--fred", "off,on", "--kernel", "v6.1"]) == 2
    assert "--fred" in capsys.readouterr().err


def test_cpu_model_pair_shows_the_mitigations_cost(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["compare", GETPID, "--kernel", "v6.1", "--cpu-model", "qemu-max,skylake-client"]
    assert main([*args, "--summary"]) == 1
    out = capsys.readouterr().out
    assert "mitigations: A 26 instructions, B 27 (CLEAR_CPU_BUFFERS 1· → 2" in out


@pytest.mark.parametrize(("extra", "said"), [
    (["--cpu-model", "skylake-client,qemu-max"], "side A runs v5.8.13 (add --kernel)"),
    (["--cpu-model", "zen9"], "--cpu-model: unknown 'zen9'"),
    (["--cpu-model", "qemu-max,epyc-rome", "--cpu", "intel"], "it takes no --cpu"),
])  # fmt: skip
def test_bad_cpu_models_are_one_line(
    extra: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", GETPID, *extra, "--summary"]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1
