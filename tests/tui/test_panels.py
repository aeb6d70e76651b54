"""What each panel shows at meaningful points of real runs."""

from __future__ import annotations

from textual.widget import Widget

from engine.trace import Step
from tests.tui.helpers import has_event, make_app, position_after, run_async, scenario_trace
from tui.screens.debugger import DebuggerScreen
from tui.widgets.checks import ChecksPanel, VerdictBar
from tui.widgets.expansion import MacroExpansion
from tui.widgets.msrs import MsrPanel
from tui.widgets.note import NotePanel
from tui.widgets.panel import LinePanel
from tui.widgets.registers import RegistersPanel
from tui.widgets.roots import RootsPanel
from tui.widgets.source import SourceListing, compact_source
from tui.widgets.stack import StackPanel
from tui.widgets.status import FaultBanner, NowBar, StatusLine

WIDE = (160, 50)
NARROW = (80, 24)


def text(widget: Widget) -> str:
    """What a panel shows, as plain text."""
    if isinstance(widget, LinePanel):
        return widget.plain
    return widget.render().plain  # type: ignore[union-attr]


def goto(app: object, position: int) -> DebuggerScreen:
    screen = app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, DebuggerScreen)
    screen.position = position
    return screen


def first(trace_steps: tuple[Step, ...], text_startswith: str, line: int | None = None) -> int:
    """Position right after the first step whose disassembly starts with the given text."""
    for k, step in enumerate(trace_steps, start=1):
        if step.text.startswith(text_startswith) and (line is None or step.source_line == line):
            return k
    raise AssertionError(text_startswith)


@run_async
async def test_start_shows_the_initial_state_with_nothing_changed() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app()
    async with app.run_test(size=WIDE):
        registers = app.query_one(RegistersPanel).view
        assert registers is not None
        assert registers.regs == trace.initial
        assert registers.changed == frozenset()
        listing = app.query_one(SourceListing)
        assert listing.ran_row is None
        assert listing.next_row is not None
        assert "mov $39, %eax" in listing.rows[listing.next_row].text  # as written
        status = text(app.query_one(StatusLine))
        assert f"step 0/{len(trace.steps)}" in status and "CPL 3" in status and "exit —" in status
        assert "verdict pending" in text(app.query_one(ChecksPanel))


@run_async
async def test_changed_registers_are_those_of_the_last_step_only() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app()
    async with app.run_test(size=WIDE):
        panel = app.query_one(RegistersPanel)

        def changed() -> frozenset[str]:
            assert panel.view is not None
            return panel.view.changed

        syscall = position_after(trace, has_event("syscall"))
        goto(app, syscall)
        assert {"rcx", "r11", "rip", "cs", "ss", "rflags"} <= changed()
        goto(app, syscall + 1)  # swapgs: no general register but RIP changes
        assert "rcx" not in changed()
        goto(app, 0)
        assert changed() == frozenset()


@run_async
async def test_swapgs_swaps_the_two_gs_bases_visibly() -> None:
    trace = scenario_trace("getpid.toml")
    at = position_after(trace, has_event("swapgs"))
    before = trace.steps[at - 2].regs
    app = make_app()
    async with app.run_test(size=WIDE):
        goto(app, at)
        panel = app.query_one(MsrPanel)
        msrs = panel.view
        assert msrs is not None and msrs.swapped
        assert msrs.gs_base == before.kernel_gs_base != 0
        assert msrs.kernel_gs_base == before.gs_base
        assert text(panel).count("⇄ swapgs") == 2
        goto(app, at + 1)
        assert panel.view is not None and not panel.view.swapped
        assert "⇄" not in text(panel)


@run_async
async def test_cr3_switch_moves_the_live_root_and_lights_both() -> None:
    trace = scenario_trace("getpid.toml")
    at = position_after(trace, has_event("cr3_switch"))
    app = make_app()
    async with app.run_test(size=WIDE):
        roots = app.query_one(RootsPanel)
        goto(app, at - 1)
        header = text(roots).splitlines()[0]
        assert "user ● live" in header and "kernel ● live" not in header
        assert "MOV to CR3" not in str(roots.border_title)
        goto(app, at)
        header = text(roots).splitlines()[0]
        assert "kernel ● live" in header and "user ● live" not in header
        assert "MOV to CR3" in str(roots.border_title)
        # Under the user root the task stack is absent; the panel says so.
        assert "task stack" in text(roots) and "✗ unmapped" in text(roots)


@run_async
async def test_stack_grows_with_each_push_and_rsp_points_at_the_last() -> None:
    trace = scenario_trace("getpid.toml")
    push_ss = first(trace.steps, "pushq $0x2b")
    app = make_app()
    async with app.run_test(size=WIDE):
        stack = app.query_one(StackPanel)
        goto(app, push_ss - 1)
        assert stack.view is not None
        assert stack.view.stack_name == "task" and stack.view.stack == ()
        assert "empty" in text(stack)
        goto(app, push_ss)
        rows = [row for row in text(stack).splitlines() if " ss " in row]
        assert len(rows) == 1
        # RSP's arrow and the "written" mark, then the word itself.
        assert rows[0].startswith("→w ") and rows[0].endswith("000000000000002b")
        last_push = max(
            k for k, s in enumerate(trace.steps, start=1) if s.macro == "PUSH_AND_CLEAR_REGS"
        )
        goto(app, last_push)
        lines = text(stack).splitlines()
        arrow = [row for row in lines if row.startswith("→")]
        assert len(arrow) == 1 and " r15 " in arrow[0]
        assert stack.view is not None and len(stack.view.stack) == 21


@run_async
async def test_stack_title_names_the_stack_rsp_is_on() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app()
    async with app.run_test(size=WIDE):
        title = app.query_one("#stack")
        goto(app, 0)
        assert "user stack" in str(title.border_title)
        goto(app, first(trace.steps, "btsq $0x3f, %rsp"))
        assert "scratch" in str(title.border_title)
        goto(app, first(trace.steps, "pushq $0x2b"))
        assert "task stack" in str(title.border_title)
        sysret_path_entry = first(trace.steps, "movq %gs:0x6004, %rsp")
        goto(app, sysret_path_entry)
        assert "entry stack" in str(title.border_title)


@run_async
async def test_first_failing_check_is_explained_and_the_rest_skipped() -> None:
    trace = scenario_trace("sigreturn-noncanonical.toml")
    at = position_after(
        trace, lambda s: any(c.name == "canonical_rip" and c.result == "fail" for c in s.checks)
    )
    app = make_app("sigreturn-noncanonical.toml")
    async with app.run_test(size=WIDE):
        goto(app, at - 1)
        assert "canonical_rip" not in text(app.query_one(VerdictBar))
        goto(app, at)
        checks = text(app.query_one(ChecksPanel))
        assert "✓ 1 rcx_eq_rip" in checks
        assert "✗ 2 canonical_rip" in checks and "FAIL" in checks
        assert "IRET via" in checks and "swapgs_restore_regs_and_return_to_usermode" in checks
        assert "CVE-2012-0217" in checks
        assert checks.count("skipped") == 4
        assert "exit IRET (slow path)" in text(app.query_one(StatusLine))
        assert "canonical_rip FAIL" in text(app.query_one(VerdictBar))


@run_async
async def test_fault_banner_appears_when_the_fault_is_reached() -> None:
    trace = scenario_trace("sigreturn-noncanonical.toml")
    assert trace.fault is not None
    app = make_app("sigreturn-noncanonical.toml")
    async with app.run_test(size=WIDE):
        banner = app.query_one(FaultBanner)
        screen = goto(app, 0)
        assert not banner.display
        screen.position = screen.timeline.end
        assert banner.display
        assert trace.fault.describe() in text(banner)
        assert "exit fault #GP" in text(app.query_one(StatusLine))


@run_async
async def test_source_marks_the_line_just_run_and_the_next() -> None:
    trace = scenario_trace("getpid.toml")
    at = first(trace.steps, "movq %rsp, %gs:0x6014")
    app = make_app()
    async with app.run_test(size=WIDE):
        goto(app, at)
        listing = app.query_one(SourceListing)
        ran_line = trace.source[trace.steps[at - 1].source_line - 1]  # type: ignore[operator]
        next_line = trace.source[trace.steps[at].source_line - 1]  # type: ignore[operator]
        assert listing.ran_row is not None and listing.next_row is not None
        assert listing.rows[listing.ran_row].text == compact_source(ran_line.text)
        assert listing.rows[listing.next_row].text == compact_source(next_line.text)
        assert "SWITCH_TO_KERNEL_CR3" in next_line.text
        note = " ".join(text(app.query_one(NotePanel)).split())
        assert note.startswith(ran_line.note)


@run_async
async def test_expansion_marks_the_instruction_inside_a_long_macro() -> None:
    trace = scenario_trace("getpid.toml")
    start = min(k for k, s in enumerate(trace.steps) if s.macro == "PUSH_AND_CLEAR_REGS")
    app = make_app()
    async with app.run_test(size=WIDE):
        goto(app, start + 10)
        expansion = app.query_one(MacroExpansion)
        shown = text(expansion)
        ran = trace.steps[start + 9]
        upcoming = trace.steps[start + 10]
        assert f"● {ran.rip:016x}" in shown and ran.text in shown
        assert f"▶ {upcoming.rip:016x}" in shown
        assert "⋮" in shown  # 27 instructions do not all fit; the window says so
        assert "PUSH_AND_CLEAR_REGS" in str(expansion.border_title)


@run_async
async def test_modelled_handler_is_labelled_and_explained() -> None:
    trace = scenario_trace("getpid.toml")
    at = position_after(trace, has_event("handler"))
    app = make_app()
    async with app.run_test(size=WIDE):
        goto(app, at)
        assert "modelled" in text(app.query_one(StatusLine))
        note = text(app.query_one(NotePanel))
        assert "getpid() = 1234" in note and "modelled" in note
        assert "modelled" in text(app.query_one(MacroExpansion))
        # the first instruction after the C side: executed, not modelled
        after = next(i for i in range(at, len(trace.steps)) if not trace.steps[i].modelled)
        goto(app, after + 1)
        assert "modelled" not in text(app.query_one(StatusLine))


@run_async
async def test_msrs_are_decoded() -> None:
    app = make_app()
    async with app.run_test(size=WIDE):
        shown = text(app.query_one(MsrPanel))
        assert "SYSCALL cs 0010 ss 0018" in shown
        assert "SYSRET  cs 0033 ss 002b" in shown
        assert "SYSCALL jumps to entry_SYSCALL_64" in shown
        assert "SCE LME LMA NXE" in shown
        for flag in ("TF", "IF", "DF", "NT", "AC", "IOPL"):
            assert flag in shown.split("SYSCALL clears", 1)[1].splitlines()[0]


@run_async
async def test_narrow_layout_keeps_the_line_and_the_verdict_in_view() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        at = position_after(trace, has_event("check"))
        goto(app, at)
        await pilot.pause()
        now = app.query_one(NowBar)
        verdict = app.query_one(VerdictBar)
        assert now.region.height == 2 and verdict.region.height == 1
        step = trace.steps[at - 1]
        assert step.text in text(now)
        assert "✓" in text(verdict)
        await pilot.press("4")  # another tab: the pinned rows stay
        await pilot.pause()
        assert now.region.height == 2 and verdict.region.height == 1


@run_async
async def test_wide_layout_hides_the_pinned_rows() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        assert app.query_one(NowBar).region.height == 0
        assert app.query_one(VerdictBar).region.height == 0
        for panel in ("#listing", "#registers", "#stack", "#msrs", "#roots", "#checks"):
            assert app.query_one(panel).region.height > 0, panel


def _widest_line(widget: Widget) -> int:
    return max((len(line) for line in text(widget).splitlines()), default=0)


@run_async
async def test_no_value_is_cut_at_either_size() -> None:
    """Every row of the value panels fits the panel's width, so nothing is cut mid-value."""
    trace = scenario_trace("getpid.toml")
    positions = [
        0,
        position_after(trace, has_event("cr3_switch")),
        position_after(trace, has_event("handler")),
        len(trace.steps),
    ]
    panels = (("3", RegistersPanel), ("4", StackPanel), ("5", MsrPanel), ("6", RootsPanel))
    for size in (WIDE, NARROW):
        app = make_app()
        async with app.run_test(size=size) as pilot:
            # wide shows all four at once; narrow one tab at a time, each at every position
            for tabs in [panels] if size == WIDE else [(p,) for p in panels]:
                if size == NARROW:
                    await pilot.press(tabs[0][0])
                for position in positions:
                    goto(app, position)
                    await pilot.pause()
                    for _, widget_type in tabs:
                        widget = app.query_one(widget_type)
                        assert _widest_line(widget) <= widget.scrollable_content_region.width, (
                            size,
                            position,
                            widget_type.__name__,
                        )


@run_async
async def test_narrow_stack_follows_rsp() -> None:
    """At 80x24 pt_regs is taller than the tab; the RSP arrow is scrolled into view."""
    trace = scenario_trace("getpid.toml")
    call = position_after(trace, lambda s: s.text.startswith("call"))
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("4")
        goto(app, call)
        await pilot.pause()
        await pilot.pause()
        scroll = app.query_one(StackPanel)
        lines = text(scroll).splitlines()
        arrow = next(i for i, line in enumerate(lines) if line.startswith("→"))
        top = round(scroll.scroll_y)
        assert top <= arrow < top + scroll.scrollable_content_region.height
        assert top > 0


@run_async
async def test_status_line_keeps_every_value_at_80_columns() -> None:
    trace = scenario_trace("sigreturn-noncanonical.toml")
    app = make_app("sigreturn-noncanonical.toml")
    async with app.run_test(size=NARROW) as pilot:
        goto(app, position_after(trace, lambda s: any(c.result == "fail" for c in s.checks)))
        await pilot.pause()
        status = app.query_one(StatusLine)
        shown = text(status)
        assert len(shown) <= status.content_size.width
        assert "step " in shown and "CPL 0" in shown and "exit IRET" in shown
        # where the failed check's jne goes: the CPU is there now
        assert "swapgs_restore_regs_and_return_to_usermode" in shown


@run_async
async def test_removed_check_is_marked_and_sysret_still_taken() -> None:
    app = make_app("cve-2012-0217-intel.toml")
    async with app.run_test(size=WIDE):
        goto(app, len(scenario_trace("cve-2012-0217-intel.toml").steps))
        shown = text(app.query_one(ChecksPanel))
        assert "canonical_rip" in shown and "REMOVED" in shown
        assert "FAIL" not in shown


@run_async
async def test_stack_shows_the_handlers_new_ss_at_the_handler_step() -> None:
    trace = scenario_trace("check-ss-user.toml")
    handler = position_after(trace, has_event("handler"))
    app = make_app("check-ss-user.toml")
    async with app.run_test(size=WIDE):
        goto(app, handler)
        stack = app.query_one(StackPanel)
        rows = [row for row in text(stack).splitlines() if " ss " in row]
        assert len(rows) == 1
        # marked as rewritten by the handler, with the value it wrote
        assert rows[0][1] == "h" and rows[0].endswith("0000000000000023")
        note = text(app.query_one(NotePanel))
        assert "ss      0x2b → 0x23" in note
        assert stack.tooltip is not None and "ss: 0x2b → 0x23" in str(stack.tooltip)
        goto(app, handler + 1)
        assert stack.tooltip is None


@run_async
async def test_roots_show_what_mov_to_cr3_wrote_and_what_cr3_reads_back() -> None:
    trace = scenario_trace("getpid.toml")
    switch = position_after(trace, has_event("cr3_switch"))
    app = make_app()
    async with app.run_test(size=WIDE):
        roots = app.query_one(RootsPanel)
        goto(app, switch - 1)
        assert "MOV to CR3 none yet" in text(roots)
        goto(app, switch)
        written = trace.steps[switch - 1].cr3_written
        assert written is not None and written >> 63 == 1  # btsq $0x3f: no flush asked
        regs = trace.steps[switch - 1].regs
        assert regs.cr3 >> 63 == 0  # with CR4.PCIDE the CPU does not store bit 63
        shown = text(roots)
        assert f"MOV to CR3 {written:016x} (bit 63 1)" in shown
        assert f"CR3 reads  {regs.cr3:016x} (bit 63 0)" in shown


@run_async
async def test_every_flag_syscall_clears_shows_within_the_msr_panel() -> None:
    """6.12's mask clears 14 flags: the line wraps instead of running past the panel."""
    from engine.views.decode import fmask_names

    trace = scenario_trace("v6.12-nopti.toml")
    names = fmask_names(trace.msrs["SYSCALL_MASK"])
    assert {"RF", "AC", "ID"} <= set(names)
    for size in (WIDE, (200, 60)):
        app = make_app("v6.12-nopti.toml")
        async with app.run_test(size=size):
            panel = app.query_one(MsrPanel)
            width = panel.scrollable_content_region.width
            start = next(i for i, line in enumerate(panel.lines) if "clears" in line.plain)
            shown = [line.plain for line in panel.lines[start:] if line.cell_length <= width]
            words = " ".join(shown).split()
            assert all(name in words for name in names), (size, shown)
