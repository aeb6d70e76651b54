"""Screenshots of the debugger at the moments that matter, compared with accepted ones.

Each app is built from a real run of a shipped scenario; the position is set before the
screenshot, so nothing depends on timing.  Update with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from textual.pilot import Pilot
from textual.screen import Screen

from tests.tui.helpers import has_event, make_app, position_after, scenario_trace
from tui.app import CompareApp
from tui.screens.compare import CompareScreen
from tui.screens.debugger import DebuggerScreen

SnapCompare = Callable[..., bool]
S = TypeVar("S", bound=Screen[Any])
WIDE = (160, 50)
NARROW = (80, 24)
MEDIUM = (120, 36)


async def mounted(pilot: Pilot[Any], kind: type[S]) -> S:
    """The screen, a *kind*, once it is mounted and laid out: the first pause lets it
    mount, the second its first layout and the resize events that sends (a position set
    before the panels know their size would be revealed in a window of another height)."""
    await pilot.pause()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, kind)
    return screen


def at(position: int, panel: str | None = None) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await mounted(pilot, DebuggerScreen)
        screen.position = position
        if panel is not None:
            screen.panel = panel
        await pilot.pause()

    return run_before


def call_position() -> int:
    trace = scenario_trace("getpid.toml")
    return position_after(trace, lambda s: s.text.startswith("call"))


def failing_check_position() -> int:
    trace = scenario_trace("sigreturn-noncanonical.toml")
    return position_after(trace, lambda s: any(c.result == "fail" for c in s.checks))


class TestWide:
    """The full three-column screen at 160x50."""

    def test_start(self, snap_compare: SnapCompare) -> None:
        """Before the first instruction: user mode, user CR3 live, nothing highlighted."""
        assert snap_compare(make_app(), terminal_size=WIDE, run_before=at(0))

    def test_cr3_switch(self, snap_compare: SnapCompare) -> None:
        """Right after SWITCH_TO_KERNEL_CR3 writes CR3: both roots lit, kernel root live."""
        trace = scenario_trace("getpid.toml")
        position = position_after(trace, has_event("cr3_switch"))
        assert snap_compare(make_app(), terminal_size=WIDE, run_before=at(position))

    def test_call_do_syscall_64(self, snap_compare: SnapCompare) -> None:
        """At the call to do_syscall_64: pt_regs complete on the task stack, RSI points at it."""
        assert snap_compare(make_app(), terminal_size=WIDE, run_before=at(call_position()))

    def test_failing_check(self, snap_compare: SnapCompare) -> None:
        """sigreturn to 2^47: canonical_rip fails, the rest are skipped, IRET is the way out."""
        app = make_app("sigreturn-noncanonical.toml")
        assert snap_compare(app, terminal_size=WIDE, run_before=at(failing_check_position()))

    def test_v612_c_check_fails(self, snap_compare: SnapCompare) -> None:
        """6.12, a return to TASK_SIZE_MAX (0x7ffffffff000): the modelled C condition
        regs->ip >= TASK_SIZE_MAX holds, the checklist shows the C conditions, do_syscall_64
        will return false."""
        name = "v6.12-fallthrough-to-task-size-max.toml"
        trace = scenario_trace(name)
        position = position_after(trace, lambda s: any(c.result == "fail" for c in s.checks))
        assert snap_compare(make_app(name), terminal_size=WIDE, run_before=at(position))

    def test_fault(self, snap_compare: SnapCompare) -> None:
        """The end of sigreturn to 2^47: IRETQ raises #GP at CPL 0, shown as a banner."""
        app = make_app("sigreturn-noncanonical.toml")
        end = len(scenario_trace("sigreturn-noncanonical.toml").steps)
        assert snap_compare(app, terminal_size=WIDE, run_before=at(end))


class TestInt80:
    """int $0x80 through the 32-bit door: the hardware frame, and the checks panel saying
    there is no SYSRET decision."""

    def test_wide_hardware_frame(self, snap_compare: SnapCompare) -> None:
        """After entry_INT80_compat's pushq %rdi: the CPU's five words and the entry's two
        on the trampoline stack, named; SS null, CPL 0, the user's CR3 still live."""
        trace = scenario_trace("int80-getpid.toml")
        position = position_after(trace, lambda s: s.cpl == 0 and s.text == "pushq %rdi")
        app = make_app("int80-getpid.toml")
        assert snap_compare(app, terminal_size=WIDE, run_before=at(position))

    def test_narrow_checks_tab(self, snap_compare: SnapCompare) -> None:
        """At 80x24, the checks tab after int $0x80: no SYSRET decision, IRET."""
        trace = scenario_trace("int80-getpid.toml")
        position = position_after(trace, lambda s: s.text == "iretq")
        app = make_app("int80-getpid.toml")
        assert snap_compare(app, terminal_size=NARROW, run_before=at(position, "checks"))


class TestSyscall32:
    """6.12 with ia32_emulation=off, AMD: a compat-mode SYSCALL into entry_SYSCALL32_ignore."""

    def test_narrow_checks_tab_at_sysretl(self, snap_compare: SnapCompare) -> None:
        """The checks tab at SYSRETL: no SYSRET decision in the ignore entry."""
        name = "v6.12-ia32-emulation-off-syscall-amd.toml"
        position = position_after(scenario_trace(name), lambda s: s.text == "sysretl")
        app = make_app(name)
        assert snap_compare(app, terminal_size=NARROW, run_before=at(position, "checks"))


class TestFast32:
    """The fast 32-bit doors through the vDSO: SYSCALL on AMD, SYSENTER on Intel."""

    def test_wide_compat_syscall_at_sysretl(self, snap_compare: SnapCompare) -> None:
        """SYSRETL reached: do_fast_syscall_32's four conditions passed, in C, and the
        stack panel holds the pt_regs entry_SYSCALL_compat built."""
        name = "compat-syscall-amd.toml"
        position = position_after(scenario_trace(name), lambda s: s.text == "sysretl") - 1
        assert snap_compare(make_app(name), terminal_size=WIDE, run_before=at(position))

    def test_wide_sysenter_failed_condition(self, snap_compare: SnapCompare) -> None:
        """A rewritten regs->ip fails ip_landing_pad: the checks panel names it."""
        name = "compat-syscall-ptrace-ip-iret.toml"
        position = position_after(scenario_trace(name), has_event("check"))
        assert snap_compare(make_app(name), terminal_size=WIDE, run_before=at(position + 2))

    def test_medium_vdso_step(self, snap_compare: SnapCompare) -> None:
        """A step in the vDSO's __kernel_vsyscall: its source line and its note."""
        name = "v6.12-compat-sysenter-intel.toml"
        position = position_after(scenario_trace(name), lambda s: s.text == "pushl %ebp")
        assert snap_compare(make_app(name), terminal_size=MEDIUM, run_before=at(position))


class TestNarrow:
    """80x24: the panels become tabs; the current line and the verdict stay pinned."""

    def test_code_tab_at_cr3_switch(self, snap_compare: SnapCompare) -> None:
        """The code tab with the pinned line and verdict rows."""
        trace = scenario_trace("getpid.toml")
        position = position_after(trace, has_event("cr3_switch"))
        assert snap_compare(make_app(), terminal_size=NARROW, run_before=at(position))

    def test_checks_tab_at_failing_check(self, snap_compare: SnapCompare) -> None:
        """The checks tab on a failure: the verdict and the reason fit in 80 columns."""
        app = make_app("sigreturn-noncanonical.toml")
        run_before = at(failing_check_position(), panel="checks")
        assert snap_compare(app, terminal_size=NARROW, run_before=run_before)

    def test_stack_tab_at_call(self, snap_compare: SnapCompare) -> None:
        """The stack tab with the whole pt_regs frame and RSP at r15."""
        run_before = at(call_position(), panel="stack")
        assert snap_compare(make_app(), terminal_size=NARROW, run_before=run_before)

    def test_why_tab_at_handler(self, snap_compare: SnapCompare) -> None:
        """The why tab on the modelled do_syscall_64 step: what the C side changed."""
        trace = scenario_trace("getpid.toml")
        run_before = at(position_after(trace, has_event("handler")), panel="why")
        assert snap_compare(make_app(), terminal_size=NARROW, run_before=run_before)

    def test_registers_tab_after_syscall(self, snap_compare: SnapCompare) -> None:
        """The registers tab right after the modelled SYSCALL: RCX, R11, RFLAGS, CS/SS changed."""
        trace = scenario_trace("getpid.toml")
        run_before = at(position_after(trace, has_event("syscall")), panel="registers")
        assert snap_compare(make_app(), terminal_size=NARROW, run_before=run_before)

    def test_msrs_tab_after_swapgs(self, snap_compare: SnapCompare) -> None:
        """The MSRs tab after the entry swapgs: GS_BASE and KERNEL_GS_BASE exchanged."""
        trace = scenario_trace("arch-prctl-set-gs.toml")
        run_before = at(position_after(trace, has_event("swapgs")), panel="msrs")
        assert snap_compare(
            make_app("arch-prctl-set-gs.toml"), terminal_size=NARROW, run_before=run_before
        )

    def test_roots_tab_at_cr3_switch(self, snap_compare: SnapCompare) -> None:
        """The CR3 tab at the switch to the kernel root: both roots decoded, the kernel one live."""
        trace = scenario_trace("getpid.toml")
        run_before = at(position_after(trace, has_event("cr3_switch")), panel="roots")
        assert snap_compare(make_app(), terminal_size=NARROW, run_before=run_before)


class TestJapanese:
    """The same screens with --lang ja: double-width text in every panel, at both sizes."""

    def test_wide_failing_check(self, snap_compare: SnapCompare) -> None:
        """canonical_rip fails: the verdict, the reason and the /// note in Japanese."""
        app = make_app("sigreturn-noncanonical.toml", lang="ja")
        assert snap_compare(app, terminal_size=WIDE, run_before=at(failing_check_position()))

    def test_wide_handler(self, snap_compare: SnapCompare) -> None:
        """do_syscall_64, modelled: the why panel's events and the handler's lines."""
        trace = scenario_trace("getpid.toml")
        run_before = at(position_after(trace, has_event("handler")))
        assert snap_compare(make_app(lang="ja"), terminal_size=WIDE, run_before=run_before)

    def test_narrow_why_tab_at_cr3_switch(self, snap_compare: SnapCompare) -> None:
        """The why tab at 80 columns: a long Japanese note wrapped between characters."""
        trace = scenario_trace("getpid.toml")
        run_before = at(position_after(trace, has_event("cr3_switch")), panel="why")
        assert snap_compare(make_app(lang="ja"), terminal_size=NARROW, run_before=run_before)

    def test_narrow_checks_tab_at_failing_check(self, snap_compare: SnapCompare) -> None:
        """The checks tab: columns stay aligned with Japanese titles and verdicts."""
        app = make_app("sigreturn-noncanonical.toml", lang="ja")
        run_before = at(failing_check_position(), panel="checks")
        assert snap_compare(app, terminal_size=NARROW, run_before=run_before)

    def test_narrow_roots_tab(self, snap_compare: SnapCompare) -> None:
        """The CR3 tab: a table of Japanese region names padded in cells."""
        trace = scenario_trace("getpid.toml")
        run_before = at(position_after(trace, has_event("cr3_switch")), panel="roots")
        assert snap_compare(make_app(lang="ja"), terminal_size=NARROW, run_before=run_before)

    def test_narrow_stack_tab_at_call(self, snap_compare: SnapCompare) -> None:
        """The stack tab: Japanese headings above the pt_regs slots."""
        run_before = at(call_position(), panel="stack")
        assert snap_compare(make_app(lang="ja"), terminal_size=NARROW, run_before=run_before)


def handler_position() -> int:
    return position_after(scenario_trace("getpid.toml"), has_event("handler"))


MEDIUM = (120, 36)


class TestMedium:
    """120x36: the code column beside one tabbed panel; the verdict pinned below."""

    def test_start(self, snap_compare: SnapCompare) -> None:
        """Before the first instruction: the user program, the registers beside it."""
        assert snap_compare(make_app(), terminal_size=MEDIUM, run_before=at(0))

    def test_handler_step(self, snap_compare: SnapCompare) -> None:
        """The modelled do_syscall_64 step, the stack beside the code."""
        run_before = at(handler_position(), panel="stack")
        assert snap_compare(make_app(), terminal_size=MEDIUM, run_before=run_before)

    def test_failing_check(self, snap_compare: SnapCompare) -> None:
        """canonical_rip fails: the checks panel whole, with its values and the reason."""
        app = make_app("sigreturn-noncanonical.toml")
        run_before = at(failing_check_position(), panel="checks")
        assert snap_compare(app, terminal_size=MEDIUM, run_before=run_before)


class TestNarrowHabits:
    """80x24: the start, the handler step and a failing check on the code tab."""

    def test_start(self, snap_compare: SnapCompare) -> None:
        assert snap_compare(make_app(), terminal_size=NARROW, run_before=at(0))

    def test_handler_step(self, snap_compare: SnapCompare) -> None:
        assert snap_compare(make_app(), terminal_size=NARROW, run_before=at(handler_position()))

    def test_failing_check(self, snap_compare: SnapCompare) -> None:
        app = make_app("sigreturn-noncanonical.toml")
        assert snap_compare(app, terminal_size=NARROW, run_before=at(failing_check_position()))


class TestCompare:
    """The compare view: getpid beside the same call with RIP moved by ptrace."""

    @staticmethod
    def app() -> CompareApp:
        from engine.compare.diff import compare_traces

        return CompareApp(
            compare_traces(scenario_trace("getpid.toml"), scenario_trace("check-rcx-eq-rip.toml"))
        )

    @staticmethod
    def at_paths_part() -> Callable[[Pilot[Any]], Any]:
        async def run_before(pilot: Pilot[Any]) -> None:
            screen = await mounted(pilot, CompareScreen)
            parts = screen.comparison.paths_part
            assert parts is not None
            screen.position = parts.position
            await pilot.pause()

        return run_before

    def test_wide_where_the_paths_part(self, snap_compare: SnapCompare) -> None:
        """Both runs at the first check: A passes it, B fails it; the IRET path opens a gap."""
        assert snap_compare(self.app(), terminal_size=WIDE, run_before=self.at_paths_part())

    def test_narrow_where_the_paths_part(self, snap_compare: SnapCompare) -> None:
        """80x24: the aligned steps and the values that differ, nothing else."""
        assert snap_compare(self.app(), terminal_size=NARROW, run_before=self.at_paths_part())


def pinned(position: int, panel: str | None = None) -> Callable[[Pilot[Any]], Any]:
    """At *position* with ``:walk $rsp`` and ``:x/8g $rsp`` pinned to their panels."""

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await mounted(pilot, DebuggerScreen)
        screen.position = position
        screen.machine()
        screen.show_inspect("walk", "walk $rsp")
        screen.show_inspect("memory", "x/8g $rsp")
        if panel is not None:
            screen.panel = panel
        await pilot.pause()

    return run_before


def second_push_position() -> int:
    """After the second push of pt_regs: RSP inside the task stack, a slot just written."""
    trace = scenario_trace("getpid.toml")
    return position_after(trace, lambda s: s.text.startswith("push") and s.cpl == 0) + 1


class TestInspect:
    """The memory and page-walk panels, pinned by the command line."""

    def test_wide_memory_and_walk(self, snap_compare: SnapCompare) -> None:
        """Both panels under the columns: the user root stops at the PGD, the kernel root
        maps the task stack; the quadword the push wrote is highlighted."""
        position = second_push_position()
        assert snap_compare(make_app(), terminal_size=WIDE, run_before=pinned(position))

    def test_narrow_walk_tab(self, snap_compare: SnapCompare) -> None:
        """At 80x24 the walk is a tab, the two roots one under the other."""
        position = second_push_position()
        assert snap_compare(make_app(), terminal_size=NARROW, run_before=pinned(position, "walk"))

    def test_medium_memory_beside_the_code(self, snap_compare: SnapCompare) -> None:
        """At 120x36 the memory panel is the side panel beside the code."""
        position = second_push_position()
        run_before = pinned(position, "memory")
        assert snap_compare(make_app(), terminal_size=(120, 36), run_before=run_before)


class TestCSide:
    """do_syscall_64's C, statement by statement: the expansion panel shows the file and
    line, the calls the statement is inside and the values it read and wrote."""

    def test_wide_v61_kstack_offset(self, snap_compare: SnapCompare) -> None:
        """6.1's add_random_kstack_offset(): RSP moved below pt_regs by the alloca."""
        name = "v6.1-tf-single-step.toml"
        trace = scenario_trace(name)
        position = position_after(trace, lambda s: s.c is not None and s.c.key == "kstack")
        assert snap_compare(make_app(name), terminal_size=WIDE, run_before=at(position))

    def test_narrow_code_tab_in_the_exit_work(self, snap_compare: SnapCompare) -> None:
        """Deep in the exit work, at 80x24: the call stack wraps at its › joins."""
        trace = scenario_trace("getpid.toml")
        position = position_after(trace, lambda s: s.c is not None and s.c.key == "arch.status")
        app = make_app()
        assert snap_compare(app, terminal_size=NARROW, run_before=at(position, panel="code"))

    def test_japanese_wide_dispatch(self, snap_compare: SnapCompare) -> None:
        """6.12's x64_sys_call switch, in Japanese: the dispatch target on the step."""
        name = "v6.12-tf-single-step.toml"
        trace = scenario_trace(name)
        position = position_after(trace, lambda s: s.c is not None and s.c.key == "switch")
        app = make_app(name, lang="ja")
        assert snap_compare(app, terminal_size=WIDE, run_before=at(position))
