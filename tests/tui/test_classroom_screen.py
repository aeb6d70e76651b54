"""What a first-time user could not read on the debugger's screen (issue: ready for a
classroom): the failing check's values below the fold, toasts over the verdict, a status
line that named the code that had run rather than where the CPU is."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input
from textual.widgets._toast import Toast

from tests.tui.helpers import SCENARIOS, make_app, position_after, run_async, scenario_trace
from tui.screens.debugger import DebuggerScreen
from tui.widgets.checks import ChecksPanel, VerdictBar, first_failure
from tui.widgets.status import StatusLine


def _screen(app: object) -> DebuggerScreen:
    screen = app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, DebuggerScreen)
    return screen


@pytest.mark.parametrize("size", [(160, 50), (120, 36)])
@run_async
async def test_the_failing_checks_values_are_in_view(size: tuple[int, int]) -> None:
    """check-ss-user fails the sixth check: its compared values were below the fold."""
    trace = scenario_trace("check-ss-user.toml")
    at = position_after(trace, lambda s: any(c.result == "fail" for c in s.checks))
    app = make_app("check-ss-user.toml")
    async with app.run_test(size=size) as pilot:
        screen = _screen(app)
        screen.position = at
        if size[0] < 160:
            screen.panel = "checks"
        await pilot.pause()
        await pilot.pause()
        panel = app.query_one(ChecksPanel)
        top = round(panel.scroll_y)
        shown = [
            line.plain for line in panel.lines[top : top + panel.scrollable_content_region.height]
        ]
        assert first_failure(panel.checks) is not None
        assert any("ss_user" in line and "FAIL" in line for line in shown), shown
        assert any("SS 0x23 ≠ __USER_DS 0x2b" in line for line in shown), shown


@pytest.mark.parametrize("size", [(160, 50), (120, 36), (80, 24)])
@run_async
async def test_toasts_never_cover_the_checks_or_the_status_line(size: tuple[int, int]) -> None:
    app = make_app("sigreturn-noncanonical.toml")
    async with app.run_test(size=size, notifications=True) as pilot:
        screen = _screen(app)
        screen.position = len(app.trace.steps)
        await pilot.press("c")  # at the end: the "end" notice
        app.notify("getpid: 100 steps", title="loaded")
        await pilot.pause()
        await pilot.pause()
        await pilot.pause(0.3)
        toasts = list(app.screen.query(Toast))
        assert len(toasts) == 2
        guarded = [app.query_one(StatusLine).region]
        checks = app.query_one(ChecksPanel)
        if checks.display and checks.region.area:
            guarded.append(checks.region)
        verdict = app.query_one(VerdictBar)
        if verdict.display and verdict.region.area:
            guarded.append(verdict.region)
        for toast in toasts:
            for region in guarded:
                assert not toast.region.overlaps(region), (toast.region, region)


@run_async
async def test_the_status_line_says_where_the_cpu_is_now() -> None:
    """After SYSCALL (step 2) the CPU is at CPL 0 in entry_SYSCALL_64, not in "user"; after
    SYSRET it is back in user code, not in syscall_return_via_sysret."""
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = _screen(app)
        screen.position = 2
        await pilot.pause()
        text = app.query_one(StatusLine).render().plain
        assert "CPL 0 · entry_SYSCALL_64 ·" in text, text
        screen.position = len(app.trace.steps)
        await pilot.pause()
        text = app.query_one(StatusLine).render().plain
        assert "CPL 3 · user ·" in text, text


def test_the_help_legend_explains_every_mark_with_the_panels_words() -> None:
    from engine.i18n import set_language
    from tui.screens.help import legend_markdown

    set_language("en")
    legend = legend_markdown()
    assert "**h** on a stack word: do_syscall_64 (modelled) rewrote it" in legend
    assert "**⊘** REMOVED" in legend
    # one word per state: the panel's pending / skipped, never "not reached"
    assert "pending (not made yet) or skipped" in legend and "not reached" not in legend
    set_language("ja")
    try:
        assert "未実施" in legend_markdown() and "**h**" in legend_markdown()
    finally:
        set_language("en")


@run_async
async def test_verdict_pending_is_not_shown_once_checks_have_passed() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = _screen(app)
        panel = app.query_one(ChecksPanel)
        # before any check: pending
        screen.position = position_after(trace, lambda s: s.text.startswith("call"))
        await pilot.pause()
        assert panel.lines[0].plain.startswith("verdict pending")
        # after the fourth check has passed
        passed4 = position_after(trace, lambda s: sum(c.result == "pass" for c in s.checks) == 4)
        screen.position = passed4
        await pilot.pause()
        head = panel.lines[0].plain
        assert "verdict pending" not in head
        assert head.startswith("4 of 6 checks passed so far"), head


def _picker_texts(app: object) -> list[str]:
    from textual.widgets import OptionList

    option_list = app.screen.query_one(OptionList)  # type: ignore[attr-defined]
    return [
        option_list.get_option_at_index(i).prompt.plain for i in range(option_list.option_count)
    ]


@run_async
async def test_the_picker_prefers_the_checkouts_scenarios_below_dot_scenarios(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited selftest in ./scenarios/selftests is listed; its installed twin is not."""
    from tui.app import default_scenario_dirs

    shipped = tmp_path / "site" / "engine" / "scenarios"
    for root, title in ((tmp_path / "scenarios", "EDITED in the checkout"), (shipped, "ORIG")):
        (root / "selftests").mkdir(parents=True)
        (root / "selftests" / "sysret_rip-x.toml").write_text(
            f'name = "{title}"\n[user]\ncode = "syscall"\n', encoding="utf-8"
        )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("engine.paths.bundled_scenarios_dir", lambda: shipped)
    monkeypatch.setattr("engine.paths.bundled_scenarios_dir", lambda: shipped)
    app = make_app(scenario_dirs=default_scenario_dirs())
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("o")
        await pilot.pause()
        texts = _picker_texts(app)
        assert "./scenarios/selftests/" in texts
        assert any("EDITED in the checkout" in t for t in texts), texts
        assert not any("ORIG" in t for t in texts), texts


@pytest.mark.parametrize("size", [(160, 50), (80, 24)])
@run_async
async def test_picker_titles_never_wrap(size: tuple[int, int]) -> None:
    from rich.cells import cell_len
    from textual.widgets import OptionList

    app = make_app(scenario_dirs=(SCENARIOS, SCENARIOS / "selftests"))
    async with app.run_test(size=size) as pilot:
        await pilot.press("o")
        await pilot.pause()
        option_list = app.screen.query_one(OptionList)
        width = option_list.scrollable_content_region.width
        for text in _picker_texts(app):
            for line in text.split("\n"):
                assert cell_len(line) <= width, (line, width)


@run_async
async def test_an_absolute_path_that_exists_is_a_match() -> None:
    app = make_app(scenario_dirs=(SCENARIOS,))
    target = str(SCENARIOS / "selftests" / "entry-ss-must-match-sysret.toml")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("o")
        await pilot.pause()
        app.screen.query_one("#path", Input).value = target
        await pilot.pause()
        texts = _picker_texts(app)
        assert not any("no scenario matches" in t for t in texts), texts
        assert any(t.endswith("/selftests/entry-ss-must-match-sysret.toml") for t in texts), texts


@run_async
async def test_the_fast_32_bit_doors_say_sysretl_and_their_own_conditions() -> None:
    """A 32-bit SYSENTER through the vDSO, continued to the end with `c`: the status line
    says SYSRETL, the checks row holds do_fast_syscall_32's four conditions from the first
    step on, and the checks panel names that function."""
    app = make_app("compat-sysenter-intel.toml")
    async with app.run_test(size=(160, 50)) as pilot:
        bar = app.query_one(VerdictBar)
        assert [c.name for c in bar.checks] == [
            "cs_user32", "ss_user", "ip_landing_pad", "no_rf_tf",
        ]  # fmt: skip
        screen = _screen(app)
        for _ in range(40):  # `c` stops at each event on the way (entry, checks, exit)
            await pilot.press("c")
            await pilot.pause()
            if screen.position == len(app.trace.steps):
                break
        assert screen.position == len(app.trace.steps)
        status = app.query_one(StatusLine).render().plain
        assert "SYSRETL (fast path)" in status, status
        assert app.query_one(ChecksPanel).border_title == "SYSRETL checks"
        panel = "\n".join(line.plain for line in app.query_one(ChecksPanel).build(60))
        assert "all 4 passed → true, SYSRETL via sysret32_from_system_call" in panel
