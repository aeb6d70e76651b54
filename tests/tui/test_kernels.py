"""The panels on 6.1 and 6.12: the listing, the C checks of 6.12 and their notes."""

from __future__ import annotations

from tests.tui.helpers import make_app, position_after, run_async, scenario_trace
from tests.tui.test_panels import WIDE, goto, text
from tui.widgets.checks import ChecksPanel, VerdictBar
from tui.widgets.expansion import MacroExpansion
from tui.widgets.note import NotePanel
from tui.widgets.source import SourceListing
from tui.widgets.status import StatusLine


@run_async
async def test_v612_checklist_shows_the_c_conditions_and_the_failure() -> None:
    name = "v6.12-fallthrough-to-task-size-max.toml"
    trace = scenario_trace(name)
    at = position_after(trace, lambda s: s.text == "(C) regs->ip >= TASK_SIZE_MAX")
    app = make_app(name)
    async with app.run_test(size=WIDE):
        goto(app, at)
        checks = text(app.query_one(ChecksPanel))
        assert "C: regs->cx == regs->ip" in checks and "C: regs->ip < TASK_SIZE_MAX" in checks
        assert "✗ 5 rip_below_task_size_max" in checks and "FAIL" in checks
        assert "regs->ip 0x7ffffffff000 ≥ TASK_SIZE_MAX" in checks
        assert "do_syscall_64 returns false" in checks and checks.count("skipped") == 1
        assert "rip_below_task_size_max FAIL" in text(app.query_one(VerdictBar))
        note = text(app.query_one(NotePanel))
        assert "regs->ip >= TASK_SIZE_MAX" in note and "modelled" in note
        assert "modelled" in text(app.query_one(StatusLine))
        expansion = app.query_one(MacroExpansion)
        assert "(C) regs->ip >= TASK_SIZE_MAX" in text(expansion)
        assert "C, modelled" in str(expansion.border_title)


@run_async
async def test_v612_listing_is_its_own_source_and_steps_reach_the_end() -> None:
    name = "v6.12-tf-single-step.toml"
    trace = scenario_trace(name)
    app = make_app(name)
    async with app.run_test(size=WIDE):
        listing = app.query_one(SourceListing)
        assert "v6.12" in str(listing.border_title)
        assert any('ALTERNATIVE "testb %al, %al' in r.text for r in listing.rows)
        for position in range(len(trace.steps) + 1):  # every step renders
            goto(app, position)
            await app.workers.wait_for_complete()
        assert "IRET" in text(app.query_one(StatusLine))


@run_async
async def test_v61_checklist_keeps_the_assembly_checks() -> None:
    name = "v6.1-tf-single-step.toml"
    trace = scenario_trace(name)
    app = make_app(name)
    async with app.run_test(size=WIDE):
        goto(app, len(trace.steps))
        checks = text(app.query_one(ChecksPanel))
        assert "C:" not in checks and "✓ 2 canonical_rip" in checks
        assert "✗ 5 no_rf_tf" in checks and "slow exit" in checks


@run_async
async def test_fred_panels_say_there_is_no_sysret_decision_and_name_the_frame() -> None:
    from tui.widgets.msrs import MsrPanel
    from tui.widgets.stack import StackPanel

    name = "fred-getpid.toml"
    trace = scenario_trace(name)
    at = position_after(trace, lambda s: s.text == "movq %rsp, %rdi")
    app = make_app(name)
    async with app.run_test(size=WIDE):
        goto(app, at)
        checks = " ".join(text(app.query_one(ChecksPanel)).split())  # unwrapped
        assert "Under FRED there is no SYSRET decision" in checks
        assert "ERETU restores every register from the frame" in checks
        assert "✓ 1" not in checks and "pending" not in checks
        stack = text(app.query_one(StackPanel))
        for slot in ("fred_ss", "fred_cs", "edata", "resv", "orig_ax"):
            assert slot in stack
        msrs = text(app.query_one(MsrPanel))
        assert "FRED_CONFIG" in msrs and "asm_fred_entrypoint_user" in msrs
        assert "FRED_RSP0" in msrs and "ffffc90000014000" in msrs.replace("_", "")
        assert "ERETU" in text(app.query_one(StatusLine))
        assert "none under FRED → ERETU" in text(app.query_one(VerdictBar))
        assert "entry_64_fred.S" in str(app.query_one(SourceListing).border_title)
