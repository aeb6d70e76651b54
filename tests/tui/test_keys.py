"""Every key of the debugger, driven through Pilot on real recorded runs."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets._toast import Toast

from tests.tui.helpers import (
    SCENARIOS,
    has_event,
    make_app,
    position_after,
    run_async,
    scenario_trace,
)
from tui.app import SyscallTuiApp
from tui.screens.debugger import HELP_EXTRA, DebuggerScreen
from tui.screens.goto import GotoDialog
from tui.screens.help import HelpScreen
from tui.screens.picker import ScenarioPicker
from tui.screens.timeline import Timeline
from tui.widgets.registers import RegistersPanel, RegistersView
from tui.widgets.status import StatusLine

WIDE = (160, 50)


def debugger(app: SyscallTuiApp) -> DebuggerScreen:
    screen = app.screen
    assert isinstance(screen, DebuggerScreen)
    return screen


def shown_regs(app: SyscallTuiApp) -> RegistersView:
    view = app.query_one(RegistersPanel).view
    assert view is not None
    return view


def status_text(app: SyscallTuiApp) -> str:
    return app.query_one(StatusLine).render().plain


def toasts(app: SyscallTuiApp) -> list[str]:
    return [str(toast.render()) for toast in app.screen.query(Toast)]


@run_async
async def test_s_and_f7_execute_one_instruction() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        assert screen.position == 0
        assert shown_regs(app).regs == trace.initial
        await pilot.press("s")
        assert screen.position == 1
        await pilot.press("f7")
        assert screen.position == 2
        # The panels show the state after steps[1], the SYSCALL instruction.
        assert shown_regs(app).regs == trace.steps[1].regs
        assert shown_regs(app).regs.cpl == 0
        assert f"step 2/{len(trace.steps)}" in status_text(app)


@run_async
async def test_b_steps_back_and_stops_at_zero() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        await pilot.press("s", "s", "s", "b")
        assert screen.position == 2
        assert shown_regs(app).regs == trace.steps[1].regs
        await pilot.press("b", "b", "b")
        assert screen.position == 0
        assert shown_regs(app).regs == trace.initial


@run_async
async def test_s_at_the_end_stays_and_says_so() -> None:
    app = make_app()
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        screen = debugger(app)
        screen.position = screen.timeline.end
        await pilot.press("s")
        await pilot.pause()
        assert screen.position == screen.timeline.end
        assert any("End of the trace" in text for text in toasts(app))


@run_async
async def test_n_runs_the_whole_macro() -> None:
    trace = scenario_trace("getpid.toml")
    first = next(i for i, s in enumerate(trace.steps) if s.macro == "PUSH_AND_CLEAR_REGS")
    last = max(i for i, s in enumerate(trace.steps) if s.macro == "PUSH_AND_CLEAR_REGS")
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        screen.position = first  # PUSH_AND_CLEAR_REGS runs next
        await pilot.press("n")
        assert screen.position == last + 1
        # From the middle of the macro, `n` finishes it.
        screen.position = first + 5
        await pilot.press("n")
        assert screen.position == last + 1


@run_async
async def test_c_stops_at_each_event_in_turn() -> None:
    trace = scenario_trace("getpid.toml")
    expected = [
        position_after(trace, has_event("syscall")),
        position_after(trace, has_event("swapgs")),
        position_after(trace, has_event("cr3_switch")),
        position_after(trace, has_event("handler")),
        position_after(trace, has_event("check")),
    ]
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        seen = []
        for _ in expected:
            await pilot.press("c")
            seen.append(screen.position)
        assert seen == expected


@run_async
async def test_c_runs_to_the_end_after_the_last_stop() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        for _ in range(len(screen.timeline.stops) + 1):
            await pilot.press("c")
        assert screen.position == screen.timeline.end
        assert "exit SYSRET (fast path)" in status_text(app)


@run_async
async def test_g_jumps_to_the_typed_step() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        await pilot.press("g")
        assert isinstance(app.screen, GotoDialog)
        await pilot.press("4", "2", "enter")
        assert app.screen is screen
        assert screen.position == 42


@run_async
async def test_g_refuses_a_step_out_of_range_and_escape_cancels() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        await pilot.press("s", "g", "9", "9", "9", "enter")
        dialog = app.screen
        assert isinstance(dialog, GotoDialog)
        steps = len(scenario_trace("getpid.toml").steps)
        assert f"from 0 to {steps}" in str(dialog.query_one("#error").render())
        await pilot.press("escape")
        assert app.screen is screen
        assert screen.position == 1


@run_async
async def test_r_restarts() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        await pilot.press("c", "c", "c", "r")
        assert screen.position == 0
        assert shown_regs(app).regs == trace.initial
        assert shown_regs(app).changed == frozenset()


@run_async
async def test_o_loads_the_chosen_scenario() -> None:
    loaded: list[Message] = []
    app = make_app()
    async with app.run_test(
        size=WIDE,
        message_hook=lambda m: loaded.append(m) if isinstance(m, DebuggerScreen.Loaded) else None,
    ) as pilot:
        screen = debugger(app)
        await pilot.press("s", "s", "o")
        picker = app.screen
        assert isinstance(picker, ScenarioPicker)
        options = picker.query_one(OptionList)
        wanted = next(
            option_id
            for option_id, path in picker._paths.items()
            if path.name == "sigreturn-noncanonical.toml"
        )
        options.highlighted = options.get_option_index(wanted)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(loaded) == 1
        assert (
            screen.timeline.trace.scenario == scenario_trace("sigreturn-noncanonical.toml").scenario
        )
        assert screen.position == 0
        steps = len(scenario_trace("sigreturn-noncanonical.toml").steps)
        assert f"step 0/{steps}" in status_text(app)


@run_async
async def test_o_with_a_broken_file_keeps_the_current_scenario(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\n[user\ncode = "syscall"\n', encoding="utf-8")
    failures: list[DebuggerScreen.LoadFailed] = []

    def hook(message: Message) -> None:
        if isinstance(message, DebuggerScreen.LoadFailed):
            failures.append(message)

    app = make_app(scenario_dirs=(tmp_path,))
    async with app.run_test(size=WIDE, message_hook=hook, notifications=True) as pilot:
        screen = debugger(app)
        before = screen.timeline
        await pilot.press("s", "s", "s", "o")
        assert isinstance(app.screen, ScenarioPicker)
        await pilot.press("enter")  # the only file listed: broken.toml
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [f.path for f in failures] == [str(broken)]
        assert screen.timeline is before
        assert screen.position == 3
        assert any("broken.toml" in text for text in toasts(app))


@run_async
async def test_o_with_a_typed_missing_path_reports_it() -> None:
    app = make_app()
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        screen = debugger(app)
        before = screen.timeline
        await pilot.press("o")
        app.screen.query_one(Input).focus()
        await pilot.press(*"nowhere.toml", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.timeline is before
        assert any("nowhere.toml" in text for text in toasts(app))


@run_async
async def test_escape_closes_the_picker_without_loading() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        before = screen.timeline
        await pilot.press("o", "escape")
        assert app.screen is screen
        assert screen.timeline is before


@run_async
async def test_question_mark_shows_the_help_built_from_the_bindings() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        from tui.screens.help import keys_markdown

        table = keys_markdown(DebuggerScreen.BINDINGS, HELP_EXTRA)
        for binding in DebuggerScreen.BINDINGS:
            if binding.show:  # type: ignore[union-attr]
                assert binding.tooltip in table  # type: ignore[union-attr]
        assert "s / F7" in table
        await pilot.press("escape")
        assert isinstance(app.screen, DebuggerScreen)


@run_async
async def test_q_quits() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


@run_async
async def test_number_keys_pick_a_panel_in_the_narrow_layout() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = debugger(app)
        assert screen.has_class("-narrow")
        registers = app.query_one("#registers")
        listing = app.query_one("#listing")
        assert listing.display and listing.region.height > 0
        assert registers.region.height == 0
        await pilot.press("3")
        await pilot.pause()
        assert screen.panel == "registers"
        assert registers.region.height > 0
        assert listing.region.height == 0
        await pilot.press("7")
        await pilot.pause()
        assert app.query_one("#checks").region.height > 0


@run_async
async def test_command_palette_offers_the_debugger_actions() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        await pilot.press("ctrl+p")
        await pilot.press(*"continue")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert screen.position == Timeline(trace).stops[0]


@run_async
async def test_command_palette_opens_a_scenario_by_name() -> None:
    app = make_app(scenario_dirs=(SCENARIOS,))
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        await pilot.press("ctrl+p")
        await pilot.press(*"open scenario pti-off")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.timeline.trace.scenario == scenario_trace("pti-off.toml").scenario


def test_help_writes_function_keys_upper_case_and_the_f_key_as_is() -> None:
    from textual.binding import Binding

    from tui.screens.help import key_names

    assert key_names(Binding("f", "x", "x")) == "f"
    assert key_names(Binding("s,f7", "x", "x")) == "s / F7"
    assert key_names(Binding("f24,fx", "x", "x")) == "F24 / fx"


@run_async
async def test_c_again_and_again_at_the_end_shows_one_end_notice() -> None:
    app = make_app()
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        screen = debugger(app)
        screen.position = screen.timeline.end
        await pilot.press("c", "c", "c", "s")
        await pilot.pause()
        assert sum("End of the trace" in text for text in toasts(app)) == 1


@run_async
async def test_colon_opens_the_command_line_which_answers_at_the_step_on_screen() -> None:
    from textual.widgets import Static

    from tui.screens.command import HISTORY, CommandDialog

    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        trace = scenario_trace("getpid.toml")
        first_kernel = position_after(trace, lambda s: s.cpl == 0)
        debugger(app).position = first_kernel
        await pilot.press("colon")
        assert isinstance(app.screen, CommandDialog)
        box = app.screen.query_one(Input)
        box.value = "walk regs->sp"
        await pilot.press("enter")
        answer = str(app.screen.query_one("#answer", Static).render())
        assert f"at step {first_kernel}" in answer
        assert "user root" in answer and "not present at level 4" in answer
        assert "mapped: 4 KiB page" in answer  # under the kernel root
        box.value = "x/1g nosuch"
        await pilot.press("enter")
        assert "no kernel label 'nosuch'" in str(app.screen.query_one("#answer", Static).render())
        box.value = ""
        await pilot.press("up")
        assert box.value == "x/1g nosuch" and HISTORY[-2:] == ["walk regs->sp", "x/1g nosuch"]
        box.value = "info ts"
        await pilot.press("tab")
        assert box.value == "info tss"
        await pilot.press("escape")
        assert isinstance(app.screen, DebuggerScreen)
