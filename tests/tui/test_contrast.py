"""Every text colour on its background reaches WCAG AA (4.5:1), in every theme the app offers.

The screens are rendered for real (wide, medium and narrow debugger layouts, the compare
view, the help, the picker, the palette and a toast of each severity) and every run of text
is measured against the cell behind it, in truecolour and in 256 colours (tests/tui/contrast.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot

from engine import load_scenario, run_scenario
from engine.compare.diff import compare_traces, variant
from tests.tui.contrast import below, ratio
from tests.tui.helpers import SCENARIOS, make_app, run_async
from tui.app import CompareApp
from tui.screens.compare import CompareScreen
from tui.screens.debugger import DebuggerScreen
from tui.screenshots import end, event, failed_check, full_pt_regs
from tui.theme import THEMES

THEME_NAMES = [theme.name for theme in THEMES]


async def _collect(app: App[Any], pilot: Pilot[Any], where: str, bad: list[str]) -> None:
    await pilot.pause()
    bad.extend(f"{where}: {run}" for run in below(app))


def test_the_app_offers_only_the_checked_themes() -> None:
    """The palette's theme list is what this file measures, nothing else."""
    app = make_app()
    assert set(app.available_themes) == set(THEME_NAMES)
    assert app.theme in THEME_NAMES


def test_the_ratio_is_wcag() -> None:
    """The formula itself: black on white is 21:1, textual-dark's old label blue 1.9:1."""
    from rich.color_triplet import ColorTriplet

    assert ratio(ColorTriplet(0, 0, 0), ColorTriplet(255, 255, 255)) == pytest.approx(21)
    assert ratio(ColorTriplet(0x00, 0x45, 0x78), ColorTriplet(0x12, 0x12, 0x12)) < 2


@pytest.mark.parametrize("theme", THEME_NAMES)
@pytest.mark.parametrize(
    ("scenario", "where", "size", "panels"),
    [
        ("getpid.toml", lambda t: 0, (160, 50), [None]),
        ("getpid.toml", event("swapgs"), (160, 50), [None]),
        ("check-ss-user.toml", event("handler"), (160, 50), [None]),
        ("sigreturn-noncanonical.toml", failed_check, (160, 50), [None]),
        ("cve-2012-0217-intel.toml", end, (160, 50), [None]),
        ("sigreturn-noncanonical.toml", failed_check, (120, 36), ["checks", "stack", "msrs"]),
        (
            "getpid.toml",
            full_pt_regs,
            (80, 24),
            ["code", "why", "registers", "stack", "msrs", "roots", "checks"],
        ),
    ],
    ids=["start", "swapgs", "rewritten", "failed-check", "fault", "medium", "narrow"],
)
@run_async
async def test_debugger_text_is_readable(
    theme: str, scenario: str, where: Any, size: tuple[int, int], panels: list[str | None]
) -> None:
    app = make_app(scenario)
    bad: list[str] = []
    async with app.run_test(size=size) as pilot:
        app.theme = theme
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        screen.position = where(app.trace)
        for panel in panels:
            if panel is not None:
                screen.panel = panel
            await _collect(app, pilot, f"{scenario}@{screen.position} {panel}", bad)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("theme", THEME_NAMES)
@run_async
async def test_dialogs_and_toasts_are_readable(theme: str) -> None:
    app = make_app("sigreturn-noncanonical.toml")
    bad: list[str] = []
    async with app.run_test(size=(160, 50)) as pilot:
        app.theme = theme
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        screen.position = failed_check(app.trace)
        for severity in ("information", "warning", "error"):
            app.notify("toast text 0x401007", title=severity, severity=severity)
        await _collect(app, pilot, "toasts", bad)
        app.clear_notifications()
        for key, where in (("question_mark", "help"), ("o", "picker"), ("ctrl+p", "palette")):
            await pilot.press(key)
            await pilot.pause()
            if key == "o":
                await pilot.press("g", "e", "t")
            await _collect(app, pilot, where, bad)
            await pilot.press("escape")
            await pilot.pause()
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("theme", THEME_NAMES)
@pytest.mark.parametrize("size", [(160, 50), (80, 24)], ids=["wide", "narrow"])
@run_async
async def test_compare_text_is_readable(theme: str, size: tuple[int, int]) -> None:
    name = "v6.12-fallthrough-to-task-size-max.toml"
    left, right = (
        run_scenario(variant(load_scenario(SCENARIOS / name), kernel=kernel, cpu=None))
        for kernel in ("v5.8.13", "v6.12")
    )
    comparison = compare_traces(left, right)
    app = CompareApp(comparison)
    bad: list[str] = []
    async with app.run_test(size=size) as pilot:
        app.theme = theme
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        for mark in (comparison.decision, comparison.paths_part, comparison.first_difference):
            if mark is not None:
                screen.position = mark.position
                await _collect(app, pilot, f"compare@{mark.position}", bad)
    assert not bad, "\n".join(bad)
