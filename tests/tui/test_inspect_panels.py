"""The ``:`` prompt's breakpoints and watchpoints, continue both ways, the memory and
page-walk panels, and a scenario's [debug] set-up, driven as a person would."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static

from tests.tui.helpers import (
    SCENARIOS,
    make_app,
    position_after,
    run_async,
    scenario_trace,
)
from tui.app import SyscallTuiApp
from tui.screens.command import CommandDialog
from tui.screens.commands import DebuggerCommands
from tui.screens.debugger import DebuggerScreen
from tui.widgets.inspect import MemoryPanel, WalkPanel

WIDE = (160, 50)
NARROW = (80, 24)
MEDIUM = (120, 36)
IRET = "sigreturn-noncanonical.toml"


def debugger(app: SyscallTuiApp) -> DebuggerScreen:
    screen = app.screen
    assert isinstance(screen, DebuggerScreen)
    return screen


async def type_commands(app: SyscallTuiApp, pilot: object, *lines: str) -> list[str]:
    """Open the prompt, run each line, close it; the answers, one text per line."""
    await pilot.press("colon")  # type: ignore[attr-defined]
    assert isinstance(app.screen, CommandDialog)
    answers = []
    box = app.screen.query_one(Input)
    for line in lines:
        box.value = line
        await pilot.press("enter")  # type: ignore[attr-defined]
        answers.append(str(app.screen.query_one("#answer", Static).render()))
    await pilot.press("escape")  # type: ignore[attr-defined]
    return answers


@run_async
async def test_break_then_continue_stops_at_the_iret_path_and_back() -> None:
    app = make_app(IRET)
    trace = scenario_trace(IRET)
    label = "swapgs_restore_regs_and_return_to_usermode"
    there = next(i for i, s in enumerate(trace.steps) if s.rip == trace.symbols[label])
    async with app.run_test(size=WIDE) as pilot:
        answers = await type_commands(app, pilot, f"break {label}")
        assert answers[0].startswith("Breakpoint 1:") and f"at step {there}" in answers[0]
        screen = debugger(app)
        while screen.position < there:
            before = screen.position
            await pilot.press("c")
            assert screen.position > before
        assert screen.position == there
        assert trace.steps[there].label == label  # stopped before its first instruction
        await pilot.pause()
        assert any("Breakpoint 1" in str(n.message) for n in app._notifications)
        await pilot.press("C")
        assert 0 <= screen.position < there


@run_async
async def test_watch_regs_ip_stops_at_the_push_and_at_the_rewrite_then_back() -> None:
    app = make_app(IRET)
    trace = scenario_trace(IRET)
    async with app.run_test(size=WIDE) as pilot:
        await type_commands(app, pilot, "watch regs->ip")
        screen = debugger(app)
        points = screen.points.points
        assert len(points) == 1
        push, rewrite = points[0].positions
        assert trace.steps[push - 1].text == "pushq %rcx"
        assert trace.steps[rewrite - 1].modelled
        seen = []
        while screen.position < screen.timeline.end:
            await pilot.press("c")
            seen.append(screen.position)
        assert push in seen and rewrite in seen
        screen.position = rewrite + 1
        await pilot.press("C")
        assert screen.position <= rewrite
        while screen.position > push:
            await pilot.press("C")
        assert screen.position == push
        await pilot.pause()
        assert any("0x0 → 0x401007" in str(n.message) for n in app._notifications)


@run_async
async def test_delete_and_info_break_from_the_prompt() -> None:
    app = make_app(IRET)
    async with app.run_test(size=WIDE) as pilot:
        answers = await type_commands(
            app, pilot, "b entry_SYSCALL_64", "watch regs->sp", "info break", "d 1", "i b"
        )
        assert "1   breakpoint entry_SYSCALL_64" in answers[2]
        assert "2   watchpoint regs->sp" in answers[2]
        assert answers[3] == "deleted 1"
        assert "entry_SYSCALL_64" not in answers[4] and "regs->sp" in answers[4]
        assert [p.number for p in debugger(app).points.points] == [2]


@run_async
async def test_walk_and_x_pin_their_panels_which_follow_the_step() -> None:
    app = make_app("getpid.toml")
    trace = scenario_trace("getpid.toml")
    # after the first push RSP is inside the task stack (before it, at its top, RSP points
    # at the guard page above it)
    on_task_stack = position_after(trace, lambda s: s.text.startswith("push") and s.cpl == 0)
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        assert not screen.has_class("-inspect")
        assert app.screen.query_one("#inspect-column").display is False
        screen.position = on_task_stack
        await type_commands(app, pilot, "walk $rsp", "x/4g $rsp")
        await pilot.pause()
        assert screen.has_class("-inspect")
        walk = app.screen.query_one(WalkPanel)
        memory = app.screen.query_one(MemoryPanel)
        assert walk.display and memory.display
        text = walk.plain
        # side by side: one row holds both roots' level-4 entries
        assert "user CR3" in text.splitlines()[0] and "kernel CR3" in text.splitlines()[0]
        assert "not present at level 4" in text  # KPTI: the user root stops at the PGD
        assert "mapped" in text.split("not present")[1]
        assert f"{trace.steps[on_task_stack - 1].regs.rsp:016x}" in memory.plain
        # the next push changes a quadword of the window: highlighted
        push = on_task_stack + 1
        assert trace.steps[push - 1].text.startswith("push")
        screen.position = push
        await pilot.pause()
        view = memory.view
        assert view is not None and view.changed
        assert view.examination is not None and view.examination.step == push
        assert walk.view is not None and walk.view.report is not None
        assert walk.view.report.step == push


@run_async
async def test_the_panels_are_tabs_in_the_narrow_layout() -> None:
    app = make_app("getpid.toml")
    async with app.run_test(size=NARROW) as pilot:
        await type_commands(app, pilot, "walk $rsp")
        await pilot.press("9")
        await pilot.pause()
        walk = app.screen.query_one(WalkPanel)
        assert walk.display and walk.region.width > 0
        assert "user CR3" in walk.plain and "kernel CR3" in walk.plain
        await pilot.press("8")
        await pilot.pause()
        memory = app.screen.query_one(MemoryPanel)
        assert memory.region.width > 0 and "x/8g" in memory.plain


@run_async
async def test_a_bad_command_keeps_the_panels_and_says_one_line() -> None:
    app = make_app("getpid.toml")
    async with app.run_test(size=WIDE) as pilot:
        answers = await type_commands(app, pilot, "break nosuch", "watch 0x8", "walk (")
        assert answers[0] == "no kernel label 'nosuch'"
        assert "not mapped" in answers[1]
        assert all("\n" not in a for a in answers)
        assert not debugger(app).points.points and not debugger(app).has_class("-inspect")


def lesson(tmp_path: Path, debug: str) -> Path:
    path = tmp_path / "lesson.toml"
    path.write_text((SCENARIOS / IRET).read_text() + "\n[debug]\n" + debug)
    return path


def app_for(path: Path) -> SyscallTuiApp:
    from engine import load_scenario, run_scenario

    return SyscallTuiApp(run_scenario(load_scenario(path)), scenario_dirs=(path.parent,))


@run_async
async def test_a_scenario_debug_table_sets_points_and_pins_panels(tmp_path: Path) -> None:
    path = lesson(
        tmp_path,
        'break = ["swapgs_restore_regs_and_return_to_usermode"]\n'
        'watch = ["regs->ip"]\nshow = ["walk $rsp", "x/4g regs->ip"]\n',
    )
    app = app_for(path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        screen = debugger(app)
        kinds = [str(p.kind) for p in screen.points.points]
        assert kinds == ["breakpoint", "watchpoint"]
        assert screen.has_class("-inspect")
        assert "walk $rsp" in str(app.screen.query_one(WalkPanel).border_title)
        await pilot.press("c")
        assert screen.position in screen.points.stops or screen.position in screen.timeline.stops


@run_async
async def test_a_debug_entry_that_names_nothing_is_a_notice_naming_its_key(
    tmp_path: Path,
) -> None:
    path = lesson(tmp_path, 'break = ["entry_SYSCALL_64", "no_such_label"]\n')
    app = app_for(path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        messages = [str(n.message) for n in app._notifications]
        assert any("debug.break[1]: no kernel label 'no_such_label'" in m for m in messages)
        assert [p.spec for p in debugger(app).points.points] == ["entry_SYSCALL_64"]


@run_async
async def test_restart_keeps_the_points() -> None:
    app = make_app(IRET)
    async with app.run_test(size=WIDE) as pilot:
        await type_commands(app, pilot, "break entry_SYSCALL_64", "walk $rsp")
        screen = debugger(app)
        screen.set_trace(scenario_trace(IRET))  # the same file run again
        await pilot.pause()
        assert [p.spec for p in screen.points.points] == ["entry_SYSCALL_64"]
        assert screen.has_class("-inspect")


@run_async
async def test_the_prompt_and_continue_back_are_in_the_palette() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        titles = {title for title, _h, _r in DebuggerCommands(app.screen)._commands()}
        assert {"Command", "Continue back"} <= titles
        assert "Delete all breakpoints" not in titles  # nothing to delete yet
        screen = debugger(app)
        await type_commands(app, pilot, "break entry_SYSCALL_64", "walk $rsp")
        entries = {t: run for t, _h, run in DebuggerCommands(app.screen)._commands()}
        entries["Delete all breakpoints"]()
        entries["Hide the memory and walk panels"]()
        assert not screen.points.points and not screen.has_class("-inspect")


@run_async
async def test_hide_unpins_the_panels() -> None:
    app = make_app("getpid.toml")
    async with app.run_test(size=WIDE) as pilot:
        answers = await type_commands(app, pilot, "walk $rsp", "x/2g $rsp", "hide walk")
        screen = debugger(app)
        assert answers[2] == "hidden: walk"
        assert screen.has_class("-inspect") and app.screen.query_one(WalkPanel).view is None
        assert app.screen.query_one(MemoryPanel).view is not None
        await type_commands(app, pilot, "hide")
        assert not screen.has_class("-inspect")
        assert (await type_commands(app, pilot, "hide stack"))[0].startswith("hide takes")


@run_async
async def test_the_why_panel_says_the_handlers_result_once_and_c_steps_have_no_bytes_row() -> None:
    from tests.tui.helpers import has_event
    from tui.widgets.expansion import MacroExpansion
    from tui.widgets.note import NotePanel

    app = make_app("getpid.toml")
    async with app.run_test(size=WIDE) as pilot:
        debugger(app).position = position_after(scenario_trace("getpid.toml"), has_event("handler"))
        await pilot.pause()
        note = app.screen.query_one(NotePanel).plain
        assert note.count("getpid() = 1234") == 1 and note.count("0x4d2") == 1
    name = "v6.12-fallthrough-to-task-size-max.toml"
    app = make_app(name)
    async with app.run_test(size=WIDE) as pilot:
        debugger(app).position = position_after(scenario_trace(name), lambda s: s.is_c)
        await pilot.pause()
        assert "bytes" not in app.screen.query_one(MacroExpansion).plain


@run_async
async def test_at_120x36_the_stack_fills_the_column_under_the_registers() -> None:
    from tui.widgets.registers import RegistersPanel
    from tui.widgets.stack import StackPanel

    app = make_app("getpid.toml")
    async with app.run_test(size=MEDIUM) as pilot:
        screen = debugger(app)
        assert screen.has_class("-medium") and screen.side == "registers"
        await pilot.pause()
        registers = app.screen.query_one(RegistersPanel)
        stack = app.screen.query_one(StackPanel)
        assert registers.region.height < 20 and stack.region.height >= 10
        assert stack.region.y > registers.region.y
        await pilot.press("4")  # the stack's own tab shows it alone
        await pilot.pause()
        assert registers.region.height == 0 and stack.region.height > 20
