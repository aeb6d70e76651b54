"""The compare screen driven through Pilot on real runs: stepping together, the jumps to
differences, what each run's panels show, and the kernel switch of the debugger."""

from __future__ import annotations

import functools

import pytest
from textual.widgets import Input

from engine.compare.diff import Comparison, compare_traces
from engine.trace import Door
from tests.tui.helpers import make_app, run_async, scenario_trace
from tui.app import CompareApp
from tui.screens.compare import CompareCommands, CompareScreen
from tui.screens.debugger import DebuggerScreen
from tui.screens.goto import GotoDialog
from tui.widgets.checks import ChecksPanel
from tui.widgets.compare import AlignedSteps, CompareStatus, SideBySide, difference_lines
from tui.widgets.registers import RegistersPanel

WIDE = (160, 50)


@functools.cache
def ptrace_comparison() -> Comparison:
    """getpid (SYSRET) against the same call with RIP moved by ptrace (IRET)."""
    return compare_traces(scenario_trace("getpid.toml"), scenario_trace("check-rcx-eq-rip.toml"))


def compare_screen(app: CompareApp) -> CompareScreen:
    screen = app.screen
    assert isinstance(screen, CompareScreen)
    return screen


def registers(app: CompareApp, side: str) -> RegistersPanel:
    return app.screen.query_one(f"#registers-{side}", RegistersPanel)


def checks(app: CompareApp, side: str) -> dict[str, str]:
    panel = app.screen.query_one(f"#checks-{side}", ChecksPanel)
    return {c.name: c.result for c in panel.checks}


@run_async
async def test_s_and_b_move_both_runs_one_aligned_row() -> None:
    c = ptrace_comparison()
    app = CompareApp(c)
    async with app.run_test(size=WIDE) as pilot:
        screen = compare_screen(app)
        assert screen.position == 0
        view = registers(app, "a").view
        assert view is not None and view.regs == c.left.initial
        await pilot.press("s", "s", "f7")
        assert screen.position == 3
        for side, trace in (("a", c.left), ("b", c.right)):
            view = registers(app, side).view
            assert view is not None and view.regs == trace.steps[2].regs
        await pilot.press("b")
        assert screen.position == 2
        await pilot.press("b", "b", "b")
        assert screen.position == 0


@run_async
async def test_f_jumps_to_the_first_difference_and_d_walks_the_changes() -> None:
    c = ptrace_comparison()
    first, parts = c.first_difference, c.paths_part
    assert first is not None and parts is not None
    app = CompareApp(c)
    async with app.run_test(size=WIDE) as pilot:
        screen = compare_screen(app)
        await pilot.press("f")
        assert screen.position == first.position
        values = app.screen.query_one(SideBySide).view
        assert values is not None
        assert (values.left_pt_regs["ip"], values.right_pt_regs["ip"]) == (0x401007, 0x401020)
        assert "pt_regs" in app.screen.query_one(CompareStatus).text
        await pilot.press("r", "d")
        assert screen.position == first.position  # nothing differs before it
        while screen.position < parts.position:
            before = screen.position
            await pilot.press("d")
            assert screen.position > before
        assert screen.position == parts.position
        assert checks(app, "a")["rcx_eq_rip"] == "pass"
        assert checks(app, "b")["rcx_eq_rip"] == "fail"
        # the panels light what differs from the other run
        view = registers(app, "b").view
        assert view is not None and {"r11", "rflags"} <= view.changed
        await pilot.press("D")
        assert screen.position < parts.position
        await pilot.press("p")
        assert screen.position == parts.position
        await pilot.press("r", "v")
        assert c.decision is not None and screen.position == c.decision.position


@run_async
async def test_a_run_with_a_gap_stands_still_while_the_other_steps() -> None:
    c = ptrace_comparison()
    gap = next(k for k, row in enumerate(c.rows) if row.left is None)
    app = CompareApp(c)
    async with app.run_test(size=WIDE) as pilot:
        screen = compare_screen(app)
        screen.position = gap
        await pilot.pause()
        held = registers(app, "a").view
        await pilot.press("s")
        assert screen.position == gap + 1
        right_row = c.rows[gap].right
        assert right_row is not None
        now = registers(app, "a").view
        assert held is not None and now is not None
        assert (now.regs, now.before) == (held.regs, held.before)
        view = registers(app, "b").view
        assert view is not None and view.regs == c.right.steps[right_row].regs


@run_async
async def test_c_stops_at_events_and_n_at_the_next_line() -> None:
    c = ptrace_comparison()
    app = CompareApp(c)
    async with app.run_test(size=WIDE) as pilot:
        screen = compare_screen(app)
        await pilot.press("c")
        row = c.rows[screen.position - 1]
        assert row.left is not None
        assert "syscall" in {e.kind for e in c.left.steps[row.left].events}
        await pilot.press("n", "n")  # swapgs, then the save of the user RSP
        assert screen.position == 4
        await pilot.press("n")
        # line 16 (SWITCH_TO_KERNEL_CR3) is several instructions, passed in one press
        row = c.rows[screen.position - 1]
        assert row.left is not None and c.left.steps[row.left].macro == "SWITCH_TO_KERNEL_CR3"
        assert c.rows[screen.position].left is not None
        assert c.left.steps[c.rows[screen.position].left or 0].macro != "SWITCH_TO_KERNEL_CR3"


@run_async
async def test_g_goes_to_a_row_and_the_end_is_announced() -> None:
    c = ptrace_comparison()
    app = CompareApp(c)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        screen = compare_screen(app)
        await pilot.press("g")
        assert isinstance(app.screen, GotoDialog)
        app.screen.query_one(Input).value = str(len(c.rows))
        await pilot.press("enter")
        assert screen.position == len(c.rows)
        await pilot.press("s")
        assert screen.position == len(c.rows)
        await pilot.pause()
        assert app.screen is screen


@run_async
async def test_the_aligned_listing_marks_the_rows() -> None:
    c = ptrace_comparison()
    parts = c.paths_part
    assert parts is not None
    app = CompareApp(c)
    async with app.run_test(size=WIDE) as pilot:
        screen = compare_screen(app)
        screen.position = parts.position
        await pilot.pause()
        lines = [line.plain for line in app.screen.query_one(AlignedSteps).lines]
        assert len(lines) == len(c.rows)
        assert lines[parts.position - 1].startswith("●◇")
        first = c.first_difference
        assert first is not None and lines[first.position - 1][1] == "◆"
        gap = next(k for k, row in enumerate(c.rows) if row.left is None)
        assert "    ·" in lines[gap] and " + " in lines[gap]


def test_the_banner_names_both_differences() -> None:
    text = "\n".join(difference_lines(ptrace_comparison()))
    assert "first difference at row" in text and "ip 0x401007 ≠ 0x401020" in text
    assert "paths part and decisions differ at row" in text
    assert "rcx_eq_rip pass ≠ fail" in text
    same = compare_traces(scenario_trace("getpid.toml"), scenario_trace("getpid.toml"))
    assert difference_lines(same)[0].startswith("identical")


@run_async
async def test_every_compare_key_is_in_the_palette() -> None:
    app = CompareApp(ptrace_comparison())
    async with app.run_test(size=WIDE):
        screen = compare_screen(app)
        provider = CompareCommands(screen)
        titles = {title for title, _help, _run in provider._commands()}
        for binding in CompareScreen.BINDINGS:
            assert not isinstance(binding, tuple)
            if binding.show:
                assert binding.description.capitalize() in titles
                assert binding.tooltip
        assert {"First diff", "Next diff", "Paths part", "Verdicts"} <= titles


@run_async
async def test_k_in_the_debugger_reruns_on_each_kernel_in_turn() -> None:
    from engine.kernel import KERNELS

    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        seen = [screen.timeline.trace.kernel]
        for _ in KERNELS:
            await pilot.press("s", "s", "k")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert screen.position == 0
            seen.append(screen.timeline.trace.kernel)
        assert seen == [*KERNELS, KERNELS[0]]
        assert screen.timeline.trace.scenario == scenario_trace("getpid.toml").scenario


@run_async
async def test_k_with_one_kernel_says_there_is_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets._toast import Toast

    import engine.kernel

    monkeypatch.setattr(engine.kernel, "KERNELS", ("v5.8.13",))
    app = make_app()
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        before = screen.timeline
        await pilot.press("k")
        await pilot.pause()
        assert screen.timeline is before
        assert any("No other kernel" in str(t.render()) for t in app.screen.query(Toast))


@run_async
async def test_question_mark_shows_the_compare_keys_and_marks() -> None:
    from textual.widgets import Markdown

    from tui.screens.help import HelpScreen

    app = CompareApp(ptrace_comparison())
    async with app.run_test(size=WIDE) as pilot:
        screen = compare_screen(app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.query_one(Markdown).source
        assert "Jump to the first difference" in text and "only A has this step" in text
        await pilot.press("escape")
        assert app.screen is screen


@run_async
async def test_a_run_on_6_12_shows_its_checks_as_c_conditions() -> None:
    """6.12 decides in C: its checklist says so and gives the long check name room, as the
    debugger's does, while the v5.8.13 run beside it keeps the assembly checklist."""
    c = compare_traces(
        scenario_trace("getpid.toml"), scenario_trace("v6.12-fallthrough-to-task-size-max.toml")
    )
    app = CompareApp(c)
    async with app.run_test(size=WIDE):
        a = app.screen.query_one("#checks-a", ChecksPanel)
        b = app.screen.query_one("#checks-b", ChecksPanel)
        assert (a.in_c, b.in_c) == (False, True)


@run_async
async def test_the_first_differing_pt_regs_slot_is_scrolled_into_view() -> None:
    """At 80x24 the values panel has room for a few slots: at the first difference (RIP
    moved by ptrace) the slot that differs, pt_regs->ip, is on screen, not below r15..bp."""
    app = CompareApp(ptrace_comparison())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f")
        await pilot.pause()
        values = app.screen.query_one(SideBySide)
        row = next(k for k, line in enumerate(values.lines) if line.plain.startswith("ip "))
        top = round(values.scroll_y)
        assert top <= row < top + values.scrollable_content_region.height


@run_async
async def test_compare_numbers_steps_from_1_as_the_trace_and_debugger_do() -> None:
    """The ptrace run's system call (the C step where [handler.set] moves regs->ip) is its
    step 55 in `trace` and the debugger (index 54): the banner, the summary and the
    aligned listing call it 55 too."""
    from engine.compare.render import summary_lines

    c = ptrace_comparison()
    first = c.first_difference
    assert first is not None and first.left == 54
    assert c.left.steps[54].text == "(C) __x64_sys_getpid(regs)"
    assert "A step 55 (C) __x64_sys_getpid(regs)" in "\n".join(difference_lines(c))
    assert "A step 55 (C) __x64_sys_getpid(regs) (__x64_sys_getpid:" in "\n".join(summary_lines(c))
    app = CompareApp(c)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        lines = [line.plain for line in app.screen.query_one(AlignedSteps).lines]
        assert lines[0][2:].split()[:2] == ["1", "movl"]
        assert lines[first.position - 1][2:].split()[:2] == ["55", "(C)"]


@run_async
async def test_the_differing_slot_is_in_view_even_when_registers_differ_too() -> None:
    """Where the paths part, r11 and rflags differ as well as pt_regs->ip: the registers
    at the top of the panel do not keep the differing slot out of a short panel's view."""
    app = CompareApp(ptrace_comparison())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p")
        await pilot.pause()
        values = app.screen.query_one(SideBySide)
        assert values.view is not None and values.view.registers  # registers differ here
        row = next(k for k, line in enumerate(values.lines) if line.plain.startswith("ip "))
        top = round(values.scroll_y)
        assert top <= row < top + values.scrollable_content_region.height


@run_async
async def test_k_says_when_the_what_if_is_not_in_force_on_the_other_kernel() -> None:
    """v6.12 has no canonical_rip check: the title stops claiming its removal, and a
    notification says so."""
    from textual.widgets._toast import Toast

    from tui.widgets.status import StatusLine

    app = make_app("cve-2012-0217-intel.toml")
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        await pilot.press("k")  # v6.1: has canonical_rip, the what-if holds
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.timeline.trace.kernel == "v6.1"
        assert not screen.timeline.trace.not_removed
        await pilot.press("k")
        await app.workers.wait_for_complete()
        await pilot.pause()
        trace = screen.timeline.trace
        assert trace.kernel == "v6.12" and trace.not_removed == ("canonical_rip",)
        toasts = [str(t.render()) for t in app.screen.query(Toast)]
        assert any("canonical_rip" in t and "not applied" in t for t in toasts)
        assert "what-if" not in str(app.screen.query_one(StatusLine).render())


@run_async
async def test_the_key_bar_fits_after_a_resize_to_80x24() -> None:
    from tui.widgets.keybar import KeyBar

    app = CompareApp(ptrace_comparison())
    async with app.run_test(size=WIDE) as pilot:
        bar = app.screen.query_one(KeyBar)
        assert "^p palette" in bar.render().plain
        for size in ((80, 24), (120, 36), WIDE):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            drawn = bar.render()
            # every key in view, nothing drawn past the bar (Textual's Footer overlapped
            # its palette hint at 80 columns)
            assert drawn.cell_length <= bar.content_size.width, size
            assert drawn.plain.split()[:2] == ["s", "step"] or drawn.plain.startswith("s b")
            assert " q" in drawn.plain


@run_async
async def test_syscall_beside_int80_each_checks_panel_says_its_own_decision() -> None:
    """getpid through SYSCALL (six checks) beside getpid through int $0x80 (no SYSRET
    decision: the panel says so, not "verdict pending"); the paths part at the int."""
    c = compare_traces(scenario_trace("getpid.toml"), scenario_trace("int80-getpid.toml"))
    assert c.paths_part is not None
    app = CompareApp(c)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("p")
        b = app.screen.query_one("#checks-b", ChecksPanel)
        a = app.screen.query_one("#checks-a", ChecksPanel)
        assert b.door is Door.INT80 and a.door is Door.SYSCALL
        text = "\n".join(line.plain for line in b.build(60))
        assert text.startswith("After int $0x80 there is no SYSRET decision")
        assert "verdict pending" not in text
        assert len(a.checks) == 6 and not b.checks
