"""What a first-time user could not read on the debugger's screen (issue: ready for a
classroom): the failing check's values below the fold, toasts over the verdict, a status
line that named the code that had run rather than where the CPU is."""

from __future__ import annotations

import pytest
from textual.widgets._toast import Toast

from tests.tui.helpers import make_app, position_after, run_async, scenario_trace
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
