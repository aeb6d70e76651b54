"""What a person does and expects: resizing, scrolling, searching, editing and restarting,
and one step number in every output."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from textual import events
from textual.message import Message
from textual.widgets import OptionList, Tabs

from engine.run.cached import run_file
from engine.views.table import table_text, write_table
from tests.tui.helpers import (
    SCENARIOS,
    has_event,
    make_app,
    position_after,
    run_async,
    scenario_trace,
)
from tests.tui.test_keys import debugger, status_text, toasts
from tui.app import SyscallTuiApp
from tui.cli import TRACE_FORMATS
from tui.screens.debugger import DebuggerScreen, layout_for
from tui.screens.picker import ScenarioPicker
from tui.widgets.checks import VerdictBar
from tui.widgets.expansion import MacroExpansion
from tui.widgets.keybar import KeyBar
from tui.widgets.note import NotePanel
from tui.widgets.source import SourceListing
from tui.widgets.status import FaultBanner, StatusLine


def current_row_in_view(listing: SourceListing) -> bool:
    row = listing.ran_row if listing.ran_row is not None else listing.next_row
    assert row is not None
    top = round(listing.scroll_y)
    return top <= row < top + listing.scrollable_content_region.height


@pytest.mark.parametrize(
    ("size", "layout"),
    [
        ((250, 80), "-wide"),
        ((160, 50), "-wide"),
        ((153, 50), "-medium"),
        ((160, 40), "-medium"),
        ((120, 36), "-medium"),
        ((104, 36), "-narrow"),
        ((120, 29), "-narrow"),
        ((80, 24), "-narrow"),
        ((60, 20), "-narrow"),
    ],
)
def test_the_layout_is_chosen_from_what_fits(size: tuple[int, int], layout: str) -> None:
    assert layout_for(*size) == layout


@run_async
async def test_resizing_keeps_the_current_line_in_view_and_leaves_nothing_behind() -> None:
    trace = scenario_trace("sigreturn-noncanonical.toml")
    app = make_app("sigreturn-noncanonical.toml")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = debugger(app)
        listing = app.query_one(SourceListing)
        screen.position = len(trace.steps)  # the IRETQ that faults, far down the listing
        await pilot.pause()
        assert screen.has_class("-wide") and current_row_in_view(listing)

        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        await pilot.pause()
        assert screen.has_class("-narrow")
        assert current_row_in_view(listing)
        # The fault banner is one row, so the listing keeps rows of its own.
        assert app.query_one(FaultBanner).region.height == 1
        assert listing.scrollable_content_region.height >= 3
        # Every tab label is on screen.
        tabs = app.query_one(Tabs)
        assert all(tab.region.right <= 60 and tab.region.width for tab in tabs.query("Tab"))
        # The key bar fits its width: no key cut, no palette hint left from the wide layout.
        keys = app.query_one(KeyBar).render().plain
        assert len(keys) <= 58 and "palette" not in keys and keys.endswith("q")

        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        assert current_row_in_view(listing)
        # The whole current line is in the expansion panel, however narrow the listing.
        line = trace.source[trace.steps[-1].source_line - 1]  # type: ignore[operator]
        shown = " ".join(app.query_one(MacroExpansion).plain.split())
        assert " ".join(line.text.split()) in shown

        await pilot.resize_terminal(120, 36)
        await pilot.pause()
        await pilot.pause()
        assert screen.has_class("-medium") and current_row_in_view(listing)


@run_async
async def test_the_longest_source_line_is_shown_whole_at_every_width() -> None:
    trace = scenario_trace("getpid.toml")
    longest = max(
        (step for step in trace.steps if step.source_line is not None),
        key=lambda step: len(" ".join(trace.source[step.source_line - 1].text.split())),  # type: ignore[operator]
    )
    position = trace.steps.index(longest) + 1
    text = " ".join(trace.source[longest.source_line - 1].text.split())  # type: ignore[operator]
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        debugger(app).position = position
        for size in ((160, 50), (120, 36), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            shown = " ".join(app.query_one(MacroExpansion).plain.split())
            assert text in shown, size


@run_async
async def test_the_note_scrolls_by_keyboard_when_it_overflows() -> None:
    trace = scenario_trace("sigreturn-noncanonical.toml")
    position = position_after(trace, has_event("handler"))  # rt_sigreturn's long note
    app = make_app("sigreturn-noncanonical.toml")
    async with app.run_test(size=(160, 50)) as pilot:
        debugger(app).position = position
        await pilot.pause()
        note = app.query_one(NotePanel)
        assert len(note.lines) > note.scrollable_content_region.height
        await pilot.press("2")  # the why panel's number gives it the keyboard
        await pilot.pause()
        assert app.focused is note
        await pilot.press("end")
        await pilot.pause()
        assert note.scroll_y > 0
        assert note.scroll_y == note.max_scroll_y
        await pilot.press("home")
        await pilot.pause()
        assert note.scroll_y == 0


@run_async
async def test_the_note_scrolls_with_the_mouse_wheel() -> None:
    trace = scenario_trace("sigreturn-noncanonical.toml")
    position = position_after(trace, has_event("handler"))  # rt_sigreturn's long note
    app = make_app("sigreturn-noncanonical.toml")
    async with app.run_test(size=(160, 50)) as pilot:
        debugger(app).position = position
        await pilot.pause()
        note = app.query_one(NotePanel)
        x, y = note.region.center
        for _ in range(3):
            app.post_message(
                events.MouseScrollDown(
                    note, x, y, 0, 0, 0, False, False, False, screen_x=x, screen_y=y
                )
            )
            await pilot.pause()
        assert note.scroll_y > 0


@run_async
async def test_the_picker_finds_a_scenario_by_words_of_its_title() -> None:
    loaded: list[Message] = []
    app = make_app()
    async with app.run_test(
        size=(160, 50),
        message_hook=lambda m: loaded.append(m) if isinstance(m, DebuggerScreen.Loaded) else None,
    ) as pilot:
        screen = debugger(app)
        await pilot.press("o")
        picker = app.screen
        assert isinstance(picker, ScenarioPicker)
        await pilot.press(*"cve intel")
        await pilot.pause()
        options = picker.query_one(OptionList)
        assert options.highlighted is not None
        highlighted = options.get_option_at_index(options.highlighted)
        assert highlighted.id is not None
        assert picker.path_of(highlighted.id).name == "cve-2012-0217-intel.toml"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(loaded) == 1
        assert screen.timeline.trace.scenario == scenario_trace("cve-2012-0217-intel.toml").scenario


def edited_copy(tmp_path: Path) -> tuple[Path, SyscallTuiApp]:
    path = tmp_path / "mine.toml"
    shutil.copy(SCENARIOS / "getpid.toml", path)
    trace, data = run_file(str(path))
    return path, SyscallTuiApp(trace, scenario_dirs=(), source=data)


@run_async
async def test_restart_reads_the_edited_file_again(tmp_path: Path) -> None:
    path, app = edited_copy(tmp_path)
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        screen = debugger(app)
        await pilot.press("s", "s", "s")
        path.write_text(path.read_text().replace("[user]", "[user]\nrflags = 0x10246"))
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.position == 0
        assert screen.timeline.trace.initial.rflags == 0x10246  # RF, as the file now says
        await pilot.pause()
        assert any("changed" in text for text in toasts(app)), toasts(app)


@run_async
async def test_restart_without_an_edit_keeps_the_trace(tmp_path: Path) -> None:
    _, app = edited_copy(tmp_path)
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        screen = debugger(app)
        before = screen.timeline
        await pilot.press("s", "s", "r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.position == 0 and screen.timeline is before
        assert not toasts(app)


@run_async
async def test_restart_after_a_broken_edit_shows_the_error_and_keeps_the_trace(
    tmp_path: Path,
) -> None:
    path, app = edited_copy(tmp_path)
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        screen = debugger(app)
        before = screen.timeline
        path.write_text(path.read_text().replace("$39", "$39, %eaxx"))
        await pilot.press("s", "r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.timeline is before
        shown = " ".join(toasts(app))
        assert "mine.toml" in shown and "$39, %eaxx" in shown and "previous run" in shown
        # A fixed file (now getppid) is picked up by the next restart.
        path.write_text(path.read_text().replace("$39, %eaxx", "$110"))
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.timeline is not before


@run_async
async def test_g_and_the_trace_table_use_the_same_step_numbers() -> None:
    trace = scenario_trace("getpid.toml")
    out = io.StringIO()
    write_table(trace, out)
    # do_syscall_64's first C statement, modelled
    row = next(line for line in out.getvalue().splitlines() if "do_syscall_64 [" in line)
    number = int(row.split()[0])
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("g", *str(number), "enter")
        await pilot.pause()
        screen = debugger(app)
        ran = screen.timeline.ran(screen.position)
        assert ran is not None and ran.c is not None and ran.label == "do_syscall_64"
        assert f"step {number}/" in status_text(app)


def test_the_table_never_wraps_a_value() -> None:
    trace = scenario_trace("sigreturn-noncanonical.toml")
    out = io.StringIO()
    write_table(trace, out)
    lines = out.getvalue().splitlines()
    rows = [line for line in lines if line[:6].strip().isdigit()]
    assert len(rows) == len(trace.steps)
    for step, row in zip(trace.steps, rows, strict=True):
        assert f"{step.rip:016x}" in row and table_text(step) in row


def test_the_json_trace_is_the_report_with_one_step_a_line() -> None:
    import json

    from engine.views.json import trace_json

    trace = scenario_trace("sigreturn-noncanonical.toml")
    out = io.StringIO()
    TRACE_FORMATS["json"](trace, out)
    text = out.getvalue()
    assert json.loads(text) == json.loads(json.dumps(trace_json(trace)))
    step_lines = [line for line in text.splitlines() if line.startswith('  {"step": ')]
    assert len(step_lines) == len(trace.steps)
    assert json.loads(step_lines[0].rstrip(","))["step"] == 1


def test_adding_a_trace_format_is_one_registration() -> None:
    assert set(TRACE_FORMATS) >= {"table", "json"}


@run_async
async def test_the_verdict_bar_counts_a_removed_check_and_names_the_fault() -> None:
    trace = scenario_trace("cve-2012-0217-intel.toml")
    app = make_app("cve-2012-0217-intel.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        debugger(app).position = len(trace.steps)
        await pilot.pause()
        text = app.query_one(VerdictBar).render().plain
        assert "all passed" not in text
        assert "1 removed" in text and "#GP" in text


@run_async
async def test_a_long_title_is_cut_with_an_ellipsis_not_to_a_prefix() -> None:
    app = make_app("cve-2012-0217-intel.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = app.query_one(StatusLine).render().plain
        assert text.startswith("what-if: no canonical") and "…" in text
        assert len(text) <= 78


@run_async
async def test_a_step_cap_trace_opens() -> None:
    trace = run_file(str(SCENARIOS / "getpid.toml"))[0]
    # The step-cap case: a user loop that never reaches its syscall.
    from engine.run.cached import run_bytes

    looping = run_bytes(b'name = "spin"\n[user]\ncode = "1: jmp 1b; syscall"\n', "spin.toml")
    assert len(looping.steps) > 1000 and len(trace.steps) < 1000
    app = SyscallTuiApp(looping, scenario_dirs=())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g", *str(len(looping.steps)), "enter")
        await pilot.pause()
        assert f"step {len(looping.steps)}/{len(looping.steps)}" in status_text(app)
