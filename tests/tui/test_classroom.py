"""What a first-time user read wrong in the command-line output (issue: ready for a classroom).

`check` reads as English and names the fault a what-if scenario is about; `trace`'s table
fits a 160-column terminal, ends with a newline and does not show the modelled
do_syscall_64 as a ``retq``.
"""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from tests.tui.helpers import SCENARIOS
from tui import cli


def _check_line(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["check", str(SCENARIOS / name)]) == 0
    return capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("getpid.toml", "exit SYSRET, all checks passed"),
        ("cve-2012-0217-intel.toml", "exit SYSRET, all checks passed, then #GP at CPL 0"),
        ("cve-2012-0217-amd.toml", "exit SYSRET, all checks passed, then #GP at CPL 3"),
        ("sigreturn-noncanonical.toml", "exit IRET, canonical_rip failed, then #GP at CPL 0"),
        ("privileged-at-cpl3.toml", "no exit: #GP at CPL 3 before the checks"),
        ("exit.toml", "no exit: the run ended before the checks"),
        ("fred-getpid.toml", "exit ERETU, no SYSRET checks under FRED"),
        ("fred-tf.toml", "exit ERETU, no SYSRET checks under FRED, then #DB at CPL 3"),
    ],
)
def test_check_says_what_happened_in_english(
    name: str, verdict: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _check_line(name, capsys)
    assert line.endswith(f"{name}: {verdict}"), line
    assert "failed check" not in line and "no check ran" not in line


@pytest.mark.parametrize(
    "name",
    [
        "getpid.toml",
        "sigreturn-noncanonical.toml",
        "cve-2012-0217-intel.toml",
        "v6.12-fallthrough-to-task-size-max.toml",
    ],
)
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_trace_table_fits_160_columns_and_ends_with_a_newline(
    name: str, lang: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["trace", str(SCENARIOS / name), "--lang", lang]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") and not out.endswith("\n\n")
    widest = max(out.splitlines(), key=cell_len)
    assert cell_len(widest) <= 160, widest


def test_trace_table_puts_each_event_on_its_own_line_under_its_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["trace", str(SCENARIOS / "getpid.toml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    swapgs = next(k for k, line in enumerate(lines) if line.startswith("   3 "))
    assert lines[swapgs + 1] == "        • swapgs: GS_BASE ⇄ KERNEL_GS_BASE"


def test_trace_table_shows_do_syscall_64_as_modelled_not_as_a_retq(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["trace", str(SCENARIOS / "getpid.toml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    handler = next(line for line in lines if line.split()[2:3] == ["ffffffff810025f0"])
    assert "do_syscall_64 [modelled]" in handler
    assert "retq" not in handler


def test_trace_table_gives_each_check_state_the_panels_word(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["trace", str(SCENARIOS / "sigreturn-noncanonical.toml")]) == 0
    out = capsys.readouterr().out
    assert "not_reached" not in out
    assert "  FAIL        canonical_rip " in out and "  skipped     cs_user" in out


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_markdown_listing_says_each_thing_once(
    lang: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No "**SYSCALL**: SYSCALL: …", no "Check 2 (canonical_rip):" beside the # and check
    columns, and the r11 note the entry code split over two comments read as one."""
    assert (
        cli.main(["trace", str(SCENARIOS / "getpid.toml"), "--format", "markdown", "--lang", lang])
        == 0
    )
    out = capsys.readouterr().out
    assert "**SYSCALL**: SYSCALL:" not in out and "**swapgs**: swapgs:" not in out
    rows = [line for line in out.splitlines() if line.startswith("| 4 | `r11_eq_rflags`")]
    assert len(rows) == 1
    assert "r11_eq_rflags)" not in rows[0] and "r11_eq_rflags）" not in rows[0]
    assert "..." not in rows[0] and "…" not in rows[0]
    check_rows = [line for line in out.splitlines() if line.startswith("| 2 | `canonical_rip`")]
    assert "(canonical_rip)" not in check_rows[0] and "（canonical_rip）" not in check_rows[0]
    if lang == "en":
        assert "load pt_regs->r11 and it must equal pt_regs->flags." in rows[0]
