"""Regenerate ``screenshots/*.svg`` by driving the real app over real scenario runs.

    python -m tui.screenshots [--out DIR]

Each scene loads a shipped scenario, moves to a meaningful step (found from the trace's
events, not hard-coded numbers, so the pictures follow the engine) and saves the screen.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine import load_scenario, run_scenario
from engine.trace import Step, Trace
from tui.app import SyscallTuiApp
from tui.screens.debugger import DebuggerScreen

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
WIDE = (160, 50)
NARROW = (80, 24)

Where = Callable[[Trace], int]


def start(trace: Trace) -> int:
    return 0


def end(trace: Trace) -> int:
    return len(trace.steps)


def after(predicate: Callable[[Step], bool]) -> Where:
    """The position right after the first step that matches."""

    def where(trace: Trace) -> int:
        return next(k for k, step in enumerate(trace.steps, start=1) if predicate(step))

    return where


def event(kind: str) -> Where:
    return after(lambda step: any(e.kind == kind for e in step.events))


def failed_check(trace: Trace) -> int:
    return after(lambda step: any(c.result == "fail" for c in step.checks))(trace)


def full_pt_regs(trace: Trace) -> int:
    return after(lambda step: step.text.startswith("call"))(trace)


@dataclass(frozen=True)
class Scene:
    name: str
    scenario: str
    where: Where
    size: tuple[int, int] = WIDE
    panel: str | None = None
    caption: str = ""
    lang: str = "en"
    #: command lines typed at ``:`` before the shot (x and walk pin their panels)
    commands: tuple[str, ...] = ()


def on_task_stack(trace: Trace) -> int:
    """After the second push of pt_regs: RSP inside the task stack, a slot just written."""
    return after(lambda step: step.text.startswith("push") and step.cpl == 0)(trace) + 1


def label(name: str) -> Where:
    """Stopped before the first instruction at kernel label *name* (a breakpoint's stop)."""

    def where(trace: Trace) -> int:
        return next(i for i, s in enumerate(trace.steps) if s.rip == trace.symbols[name])

    return where


SCENES = (
    Scene("01-getpid-start", "getpid.toml", start, caption="before the first instruction"),
    Scene("02-getpid-swapgs", "getpid.toml", event("swapgs"), caption="swapgs swaps GS bases"),
    Scene("03-getpid-cr3-switch", "getpid.toml", event("cr3_switch"), caption="KPTI CR3 switch"),
    Scene("04-getpid-pt-regs", "getpid.toml", full_pt_regs, caption="pt_regs complete"),
    Scene("05-getpid-handler", "getpid.toml", event("handler"), caption="do_syscall_64, modelled"),
    Scene("06-getpid-sysret", "getpid.toml", end, caption="all checks pass, SYSRET"),
    Scene(
        "07-noncanonical-check-fails",
        "sigreturn-noncanonical.toml",
        failed_check,
        caption="canonical_rip fails",
    ),
    Scene("08-noncanonical-fault", "sigreturn-noncanonical.toml", end, caption="#GP on IRETQ"),
    Scene("09-rf-in-frame-check", "rf-in-frame.toml", failed_check, caption="no_rf_tf fails"),
    Scene(
        "10-narrow-code",
        "getpid.toml",
        event("cr3_switch"),
        size=NARROW,
        caption="80x24: the code tab",
    ),
    Scene(
        "11-narrow-checks",
        "sigreturn-noncanonical.toml",
        failed_check,
        size=NARROW,
        panel="checks",
        caption="80x24: the checks tab",
    ),
    Scene(
        "12-narrow-stack",
        "getpid.toml",
        full_pt_regs,
        size=NARROW,
        panel="stack",
        caption="80x24: the stack tab",
    ),
    Scene(
        "14-medium-checks",
        "sigreturn-noncanonical.toml",
        failed_check,
        size=(120, 36),
        panel="checks",
        caption="120x36: the code beside the checks",
    ),
    Scene(
        "13-cve-2012-0217-intel",
        "cve-2012-0217-intel.toml",
        end,
        caption="what-if without canonical_rip: Intel SYSRET #GP in ring 0",
    ),
    Scene(
        "15-check-ss-user-handler",
        "check-ss-user.toml",
        event("handler"),
        caption="the pt_regs words do_syscall_64 rewrote, old → new",
    ),
    Scene(
        "16-sysret-drops-rf",
        "what-if-sysret-rf.toml",
        end,
        caption="what-if without no_rf_tf: SYSRET loads RFLAGS 0x246 from R11 0x10246",
    ),
    Scene(
        "17-v6.12-task-size-max",
        "v6.12-fallthrough-to-task-size-max.toml",
        failed_check,
        caption="6.12: the C check regs->ip >= TASK_SIZE_MAX sends TASK_SIZE_MAX itself to IRET",
    ),
    Scene(
        "18-v6.1-mitigations",
        "v6.1-tf-single-step.toml",
        event("handler"),
        caption="6.1: IBRS_ENTER, UNTRAIN_RET, CLEAR_BRANCH_HISTORY as patched",
    ),
    Scene(
        "23-ja-noncanonical-check-fails",
        "sigreturn-noncanonical.toml",
        failed_check,
        caption="--lang ja: canonical_rip fails",
        lang="ja",
    ),
    Scene(
        "24-ja-getpid-handler",
        "getpid.toml",
        event("handler"),
        caption="--lang ja: do_syscall_64, modelled",
        lang="ja",
    ),
    Scene(
        "25-ja-narrow-why",
        "getpid.toml",
        event("cr3_switch"),
        size=NARROW,
        panel="why",
        caption="--lang ja, 80x24: the why tab",
        lang="ja",
    ),
    Scene(
        "26-ja-narrow-checks",
        "sigreturn-noncanonical.toml",
        failed_check,
        size=NARROW,
        panel="checks",
        caption="--lang ja, 80x24: the checks tab",
        lang="ja",
    ),
    Scene(
        "28-inspect-walk-and-memory",
        "getpid.toml",
        on_task_stack,
        caption=":walk $rsp and :x/8g $rsp: KPTI's user root stops at the PGD",
        commands=("walk $rsp", "x/8g $rsp"),
    ),
    Scene(
        "29-inspect-breakpoint-iret-path",
        "sigreturn-noncanonical.toml",
        label("swapgs_restore_regs_and_return_to_usermode"),
        caption=":break swapgs_restore_regs_and_return_to_usermode, :watch regs->ip, c",
        commands=(
            "break swapgs_restore_regs_and_return_to_usermode",
            "watch regs->ip",
            "x/6g regs->ip",
            "walk regs->ip",
        ),
    ),
    Scene(
        "30-narrow-walk",
        "getpid.toml",
        on_task_stack,
        size=NARROW,
        panel="walk",
        caption="80x24: the walk tab, one root under the other",
        commands=("walk $rsp",),
    ),
    Scene(
        "32-ja-rendition-header",
        "getpid.toml",
        lambda trace: 0,
        lang="ja",
        caption="--lang ja: the rendition's opening paragraph (the project's words) in Japanese",
    ),
    Scene(
        "27-fred-getpid-frame",
        "fred-getpid.toml",
        after(lambda step: step.cpl == 0),
        caption="FRED: the 64-byte frame on FRED_RSP0, no SYSRET decision",
    ),
    Scene(
        "34-fred-tf-eretu-pends-db",
        "fred-tf.toml",
        end,
        caption="FRED: a stepped syscall returns into the #DB that ERETU pended",
    ),
    Scene(
        "35-int80-hardware-frame",
        "int80-getpid.toml",
        after(lambda step: step.text == "pushq %rdi" and step.cpl == 0),
        caption="int $0x80: the hardware frame the CPU pushed on the trampoline stack",
    ),
    Scene(
        "36-int80-iret",
        "int80-stack-pointer-truncated.toml",
        end,
        caption="int $0x80 from 64-bit code: the stack pointer cut to 32 bits, -EFAULT, IRET",
    ),
    Scene(
        "38-v6.1-int80-sync-regs",
        "v6.1-int80-getpid.toml",
        after(lambda step: step.label == "sync_regs"),
        caption="6.1: error_entry built pt_regs on the trampoline stack, sync_regs copied it",
    ),
    Scene(
        "39-int80-from-32-bit-code",
        "int80-from-32-bit-code.toml",
        after(lambda step: step.text == "pushq %rdi" and step.cpl == 0),
        caption="a 32-bit program's int $0x80: CS 0x23 and its 32-bit stack in the frame",
    ),
    Scene(
        "40-compat-syscall-amd",
        "compat-syscall-amd.toml",
        after(lambda step: step.text == "sysretl"),
        caption="AMD: SYSCALL from the 32-bit vDSO, do_fast_syscall_32's conditions, SYSRETL",
    ),
    Scene(
        "41-sysenter-intel-do-sysenter-32",
        "v6.12-compat-sysenter-intel.toml",
        after(lambda step: step.label == "do_SYSENTER_32" and step.is_c),
        caption="Intel, 6.12: SYSENTER saved nothing; do_SYSENTER_32 fills regs->sp from EBP",
    ),
    Scene(
        "42-v6.1-c-side-kstack-offset",
        "v6.1-tf-single-step.toml",
        after(lambda step: step.c is not None and step.c.key == "kstack"),
        caption="6.1's C side, statement by statement: add_random_kstack_offset() moves RSP",
    ),
    Scene(
        "43-v6.1-signal-delivery",
        "v6.1-signal-delivery.toml",
        after(lambda step: step.c is not None and step.c.key == "sig.ip"),
        caption="a pending SIGALRM: the rt_sigframe is written, regs->ip becomes the handler",
    ),
    Scene(
        "44-v6.1-skylake-verw",
        "v6.1-skylake-client-verw.toml",
        after(lambda step: step.text.startswith("verw")),
        caption="Skylake-Client, 6.1: CLEAR_CPU_BUFFERS' VERW before SYSRET (MDS)",
    ),
)


@dataclass(frozen=True)
class CompareScene:
    """The compare view on two runs, at the row where their paths part (or the end)."""

    name: str
    left: str
    right: str
    size: tuple[int, int] = WIDE
    cpus: tuple[str | None, str | None] = (None, None)
    kernels: tuple[str | None, str | None] = (None, None)
    caption: str = ""


COMPARE_SCENES = (
    CompareScene(
        "37-compare-syscall-int80",
        "getpid.toml",
        "int80-getpid.toml",
        caption="compare: getpid through SYSCALL and through int $0x80, where the paths part",
    ),
    CompareScene(
        "19-compare-v5.8-v6.12-last-page",
        "v6.12-fallthrough-to-task-size-max.toml",
        "v6.12-fallthrough-to-task-size-max.toml",
        kernels=("v5.8.13", "v6.12"),
        caption="compare: a return to TASK_SIZE_MAX, SYSRET on v5.8.13, IRET on 6.12",
    ),
    CompareScene(
        "20-compare-ptrace-rip",
        "getpid.toml",
        "check-rcx-eq-rip.toml",
        caption="compare: ptrace moved RIP, rcx_eq_rip fails, the IRET path opens a gap",
    ),
    CompareScene(
        "21-compare-sysret-intel-amd",
        "cve-2012-0217-intel.toml",
        "cve-2012-0217-amd.toml",
        caption="compare: the same SYSRET faults in ring 0 on Intel, in user mode on AMD",
    ),
    CompareScene(
        "31-compare-each-runs-own-decision",
        "cve-2012-0217-intel.toml",
        "cve-2012-0217-intel.toml",
        kernels=("v5.8.13", "v6.12"),
        caption="compare: 5.8 decides at its jne, 6.12 in C long before (◈ after each step)",
    ),
    CompareScene(
        "22-compare-narrow-pti-off",
        "getpid.toml",
        "pti-off.toml",
        size=NARROW,
        caption="compare at 80x24: without PTI the CR3 switches are gaps",
    ),
)


async def shoot_compare(scene: CompareScene, out: Path) -> Path:
    from engine.compare.diff import compare_traces, variant
    from tui.app import CompareApp
    from tui.screens.compare import CompareScreen

    left, right = (
        run_scenario(variant(load_scenario(SCENARIOS / name), kernel=kernel, cpu=cpu))
        for name, kernel, cpu in zip(
            (scene.left, scene.right), scene.kernels, scene.cpus, strict=True
        )
    )
    comparison = compare_traces(left, right)
    app = CompareApp(comparison)
    async with app.run_test(size=scene.size) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        # Where the runs decide differently, else where they part, else the end.
        mark = comparison.decision or comparison.paths_part or comparison.first_difference
        screen.position = mark.position if mark is not None else len(comparison.rows)
        await pilot.pause()
        await pilot.pause()
        path = out / f"{scene.name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        return path


@dataclass(frozen=True)
class AgainstScene:
    """``compare --against``: a scenario beside a real trace, the cursor on a row."""

    name: str
    scenario: str
    fixture: str  # under tests/engine/oracle/fixtures/
    row: Callable[[str], bool]  # the engine's instruction the cursor goes to
    size: tuple[int, int] = (120, 36)
    caption: str = ""


AGAINST_SCENES = (
    AgainstScene(
        "33-compare-against-real-skylake",
        "v6.12-skylake-client-verw.toml",
        "cloud_Skylake-Client/v6.12_getpid.json.gz",
        lambda text: text.startswith("verw"),
        caption="compare --against: 6.12 on Skylake-Client, every instruction as the real one",
    ),
)


async def shoot_against(scene: AgainstScene, out: Path) -> Path:
    from textual.widgets import DataTable

    from engine.compare.real import against, load_real_trace, on_the_real_machine
    from tui.app import AgainstApp

    real = load_real_trace(ROOT / "tests" / "engine" / "oracle" / "fixtures" / scene.fixture)
    sc = on_the_real_machine(load_scenario(SCENARIOS / scene.scenario), real)
    report = against(real, run_scenario(sc))
    app = AgainstApp(report)
    async with app.run_test(size=scene.size) as pilot:
        await pilot.pause()
        row = next(r.index for r in report.rows if r.engine and scene.row(r.engine))
        app.screen.query_one(DataTable).move_cursor(row=row)
        await pilot.pause()
        await pilot.pause()
        path = out / f"{scene.name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        return path


async def shoot(scene: Scene, trace: Trace, out: Path) -> Path:
    app = SyscallTuiApp(trace, scenario_dirs=(SCENARIOS,), lang=scene.lang)
    async with app.run_test(size=scene.size) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        screen.position = scene.where(trace)
        if scene.commands:
            from engine.inspect.command import run_command

            at = screen.machine()
            for line in scene.commands:
                screen.answered(line, run_command(at, screen.position, line, screen.points))
        if scene.panel is not None:
            screen.panel = scene.panel
        await pilot.pause()
        await pilot.pause()
        path = out / f"{scene.name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        return path


async def shoot_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    traces: dict[str, Trace] = {}
    paths = []
    for scene in SCENES:
        if scene.scenario not in traces:
            traces[scene.scenario] = run_scenario(load_scenario(SCENARIOS / scene.scenario))
        paths.append(await shoot(scene, traces[scene.scenario], out))
    # The Japanese scenes set the process's language; the compare view has no lang of its
    # own and came out in Japanese after them.
    from engine.i18n import set_language

    set_language("en")
    for compare_scene in COMPARE_SCENES:
        paths.append(await shoot_compare(compare_scene, out))
    for against_scene in AGAINST_SCENES:
        paths.append(await shoot_against(against_scene, out))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    for path in asyncio.run(shoot_all(args.out)):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
