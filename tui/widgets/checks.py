"""The six SYSRET-eligibility checks in the order the kernel makes them.

v5.8.13 and 6.1 make them in entry_SYSCALL_64's assembly; 6.12 in C at the end of
do_syscall_64, where the panel shows each as the C condition SYSRET needs.
"""

from __future__ import annotations

from typing import ClassVar

from textual.content import Content
from textual.reactive import reactive
from textual.style import Style
from textual.widget import Widget

from engine.checks import decided_exit, describe, facts
from engine.i18n import N_, _, msg, tr
from engine.trace import CheckState, Door, ExitPath
from tui.text import pad
from tui.text import wrap as wrap_cells
from tui.widgets.panel import LinePanel

IRET_PATH = "IRET via swapgs_restore_regs_and_return_to_usermode"
SYSRET_PATH = "SYSRET via syscall_return_via_sysret"

#: The panel under FRED, where ERETU is the only exit (entry_64_fred.S, 6.12).
FRED_NO_DECISION = N_(
    "Under FRED there is no SYSRET decision: ERETU restores every register from the frame."
)
FRED_WHY = N_(
    "do_syscall_64 still computes its six conditions, but fred_other() ignores the bool it "
    "returns; ERETU reloads RIP, RFLAGS, RSP, CS and SS from the FRED frame, so RCX, R11 and "
    "a non-canonical RIP need no check before it."
)

#: The panel after int $0x80, whose entry never tries SYSRET (entry_64_compat.S).
INT80_NO_DECISION = N_(
    "After int $0x80 there is no SYSRET decision: the int $0x80 entry always leaves through IRET."
)
INT80_WHY = N_(
    "After the C side (do_int80_syscall_32 on v5.8.13, do_int80_emulation on 6.1 and 6.12) "
    "it jumps to swapgs_restore_regs_and_return_to_usermode (on 6.1 and 6.12 through "
    "error_return): IRET reloads RIP, CS, RFLAGS, RSP and SS from pt_regs, so a 32-bit "
    "caller gets its own CS back, and RCX and R11 are restored with the rest."
)

#: The panel after a compat-mode SYSCALL into 6.12's entry_SYSCALL32_ignore.
IGNORE32_NO_DECISION = N_(
    "After SYSCALL from compatibility mode there is no SYSRET decision here: with "
    "ia32_emulation=off, entry_SYSCALL32_ignore returns -ENOSYS with SYSRETL at once."
)
IGNORE32_WHY = N_(
    "It never leaves the user's stack, GS base or page tables: EAX ← -ENOSYS, then SYSRETL "
    "loads EIP from ECX and RFLAGS from R11, and CS and SS from MSR_STAR (__USER32_CS, "
    "__USER_DS)."
)

GLYPHS = {"pass": "✓", "fail": "✗", "not_reached": "·", "removed": "⊘"}


def check_detail(check: CheckState) -> str:
    """The values a check compared, compact enough for one line of the panel."""
    return describe(check, compact=True)


def first_failure(checks: tuple[CheckState, ...]) -> CheckState | None:
    return next((c for c in checks if c.result == "fail"), None)


def exit_path(checks: tuple[CheckState, ...]) -> ExitPath | None:
    """The way back to user mode the checks decided on, once they have."""
    return decided_exit(checks)


def wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    """Wrap with a hanging indent, in cells; a value is never split across lines."""
    return wrap_cells(
        text,
        max(width, 20),
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
    ) or [indent]


class ChecksPanel(LinePanel):
    """Each check with its verdict and compared values; the first failure explained."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "checks--pass",
        "checks--fail",
        "checks--pending",
        "checks--detail",
        "checks--first-failure",
        "checks--verdict-sysret",
        "checks--verdict-iret",
        "checks--verdict-pending",
    }

    checks: reactive[tuple[CheckState, ...]] = reactive((), repaint=False)
    """The six checks as of the current step."""

    in_c: reactive[bool] = reactive(False, repaint=False)
    """The kernel makes the checks in C (6.12): show them as C conditions."""

    fred: reactive[bool] = reactive(False, repaint=False)
    """The run is on a FRED machine: nothing decides between SYSRET and IRET."""

    door: reactive[Door] = reactive(Door.SYSCALL, repaint=False)
    """The way the run entered: after int $0x80 (always IRET) or a compat-mode SYSCALL
    into the ignore entry (always SYSRETL) nothing decides the exit."""

    def watch_checks(self) -> None:
        self.rebuild()
        self.call_after_refresh(self.show_failure)

    def show_failure(self) -> None:
        """Scroll the first failure's lines (its row, the values it compared and why it
        matters) into view: a late check (ss_user, sixth) ended below the fold at 160x50."""
        rows = self._failure_rows
        height = self.scrollable_content_region.height
        if rows is None or not height:
            return
        first, last = rows
        top = round(self.scroll_y)
        if top <= first and last < top + height:
            return
        self.scroll_to(y=max(0, min(first, last - height + 1)), animate=False, immediate=True)

    def watch_fred(self) -> None:
        self.rebuild()

    def watch_door(self) -> None:
        self.rebuild()

    def watch_in_c(self) -> None:
        self.rebuild()

    _failure_rows: tuple[int, int] | None = None
    """The first and last line of the first failure's block, once built."""

    def build(self, width: int) -> list[Content]:
        if (
            self.fred
            or self.door is Door.INT80
            or (self.door is Door.SYSCALL32 and not self.checks)
        ):
            style = self.style("checks--verdict-sysret")
            said = (
                (FRED_NO_DECISION, FRED_WHY)
                if self.fred
                else (INT80_NO_DECISION, INT80_WHY)
                if self.door is Door.INT80
                else (IGNORE32_NO_DECISION, IGNORE32_WHY)
            )
            return [
                Content.assemble((line, style))
                for text in said
                for line in wrap(_(text), width, indent="")
            ]
        checks = self.checks
        failure = first_failure(checks)
        self._failure_rows = None
        # The verdict comes first so it stays in view even when the details need scrolling.
        lines = self._verdict(checks, failure, width)
        detail_style = self.style("checks--detail")
        for number, check in enumerate(checks, start=1):
            known = facts(check.name)
            if self.in_c:
                # the C condition is longer than the column: it gets a line of its own
                title = ""
            else:
                title = _(known.title) if known is not None else check.name
            if check.result == "pass":
                style = self.style("checks--pass")
                verdict = ""
            elif check.result == "fail":
                style = self.style("checks--first-failure" if check is failure else "checks--fail")
                verdict = _("FAIL")
            elif check.result == "removed":
                style = self.style("checks--fail")
                verdict = _("REMOVED")
            else:
                style = self.style("checks--pending")
                verdict = _("skipped") if failure is not None else _("pending")
            if self.in_c:
                head = f"{GLYPHS.get(check.result, '?')} {number} {check.name:<24}"
            else:
                head = f"{GLYPHS.get(check.result, '?')} {number} {check.name:<14}{pad(title, 17)}"
            if check is failure:
                start = len(lines)
            lines.append(Content.assemble((head, style), (verdict, style)))
            if self.in_c:
                c_test = known.c_test if known is not None else ""
                lines.append(Content.assemble((f"    C: {c_test}", style)))
            detail = check_detail(check)
            if detail:
                for text in wrap(tr(detail), width):
                    lines.append(Content.assemble((text, detail_style)))
            reason = facts(check.name) if check is failure else None
            if reason is not None:
                for text in wrap(_(reason.reason), width):
                    lines.append(Content.assemble((text, self.style("checks--fail"))))
            if check is failure:
                self._failure_rows = (start, len(lines) - 1)
        return lines

    def _verdict(
        self, checks: tuple[CheckState, ...], failure: CheckState | None, width: int
    ) -> list[Content]:
        # Wrapped to the panel's width, in cells: the verdict is read in full at every size.
        if self.door.fast32:
            return self._fast32_verdict(checks, failure, width)
        if failure is not None:
            style = self.style("checks--verdict-iret")
            target = IRET_PATH.split()[-1]
            if self.in_c:
                text = "✗ " + _(
                    "{check} failed: do_syscall_64 returns false → IRET via {target}"
                ).format(check=failure.name, target=target)
            else:
                text = "✗ " + _("{check} failed → slow exit, IRET via {target}").format(
                    check=failure.name, target=target
                )
        elif exit_path(checks) is not None:
            style = self.style("checks--verdict-sysret")
            passed = sum(c.result == "pass" for c in checks)
            summary = (
                _("all six passed")
                if passed == len(checks)
                else tr(msg("{passed} passed, the rest removed", passed=passed))
            )
            target = SYSRET_PATH.split()[-1]
            if self.in_c:
                via = _("{head} → true, SYSRET via {target}")
            else:
                via = _("{head} → fast exit, SYSRET via {target}")
            text = "✓ " + via.format(head=summary, target=target)
        elif any(c.result == "pass" for c in checks):
            # Some passed, none failed yet: "pending" would read as if nothing had run.
            style = self.style("checks--verdict-pending")
            text = _so_far(checks)
        else:
            style = self.style("checks--verdict-pending")
            if self.in_c:
                text = _("verdict pending: the checks run in C at the end of do_syscall_64")
            else:
                text = _("verdict pending: the checks run after do_syscall_64 returns")
        return [Content.assemble((line, style)) for line in wrap(text, width, indent="")]

    def _fast32_verdict(
        self, checks: tuple[CheckState, ...], failure: CheckState | None, width: int
    ) -> list[Content]:
        """The verdict of do_fast_syscall_32's SYSRETL conditions (a 32-bit SYSCALL or
        SYSENTER), which every kernel tests in C."""
        target = IRET_PATH.split()[-1]
        if failure is not None:
            style = self.style("checks--verdict-iret")
            text = "✗ " + _(
                "{check} failed: do_fast_syscall_32 returns false → IRET via {target}"
            ).format(check=failure.name, target=target)
        elif exit_path(checks) is not None:
            style = self.style("checks--verdict-sysret")
            text = "✓ " + _(
                "all {total} passed → true, SYSRETL via sysret32_from_system_call"
            ).format(total=len(checks))
        elif any(c.result == "pass" for c in checks):
            style = self.style("checks--verdict-pending")
            text = _so_far(checks)
        else:
            style = self.style("checks--verdict-pending")
            text = _(
                "verdict pending: do_fast_syscall_32 tests its SYSRETL conditions in C after "
                "the system call"
            )
        return [Content.assemble((line, style)) for line in wrap(text, width, indent="")]


def _so_far(checks: tuple[CheckState, ...]) -> str:
    """The verdict while some checks passed and none failed yet."""
    passed = sum(c.result == "pass" for c in checks)
    return _("{passed} of {total} checks passed so far; the rest decide").format(
        passed=passed, total=len(checks)
    )


class VerdictBar(Widget):
    """One line for narrow terminals: a glyph per check, the first failure and the exit."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"checks--pass", "checks--fail", "checks--pending"}

    checks: reactive[tuple[CheckState, ...]] = reactive(())
    """The six checks as of the current step."""
    fault: reactive[str] = reactive("")
    """The name of the fault that ended the run ("#GP"), once the position reached it."""
    fred: reactive[bool] = reactive(False)
    """The run is on a FRED machine: there are no checks, ERETU is the exit."""
    door: reactive[Door] = reactive(Door.SYSCALL)
    """The way the run entered: after int $0x80 or a compat-mode SYSCALL into the ignore
    entry there are no checks."""

    def render(self) -> Content:
        styles = {
            "pass": self.get_visual_style("checks--pass"),
            "fail": self.get_visual_style("checks--fail"),
        }
        pending = self.get_visual_style("checks--pending")
        parts: list[str | Content | tuple[str, str | Style]] = [_("checks") + " "]
        for check in self.checks:
            parts.append((GLYPHS.get(check.result, "?"), styles.get(check.result, pending)))
        failure = first_failure(self.checks)
        if self.fred:
            parts.append(("  " + _("none under FRED → ERETU"), styles["pass"]))
        elif self.door is Door.INT80:
            parts.append(("  " + _("none after int $0x80 → IRET"), styles["pass"]))
        elif self.door is Door.SYSCALL32 and not self.checks:
            parts.append(("  " + _("none in entry_SYSCALL32_ignore → SYSRETL"), styles["pass"]))
        elif failure is not None:
            text = _("{check} FAIL → IRET (slow path)").format(check=failure.name)
            parts.append(("  " + text, styles["fail"]))
        elif exit_path(self.checks) is not None:
            passed = sum(c.result == "pass" for c in self.checks)
            removed = len(self.checks) - passed
            head = (
                _("all passed")
                if not removed
                else _("{passed} passed, {removed} removed").format(passed=passed, removed=removed)
            )
            parts.append(
                (f"  {head} → {'SYSRETL' if self.door.fast32 else 'SYSRET'}", styles["pass"])
            )
        else:
            parts.append(("  " + _("verdict pending"), pending))
        if self.fault:
            parts.append((f" → {self.fault}", styles["fail"]))
        return Content.assemble(*parts)
