"""Speed of ``syscall-tui compare``'s alignment: one ``name: value`` line per measurement.

    python bench/compare.py

align_typical_ms       getpid against the ptrace'd RIP (IRET): ~100 steps each, paths part
align_identical_ms     getpid against itself: everything is common prefix
align_long_loop_ms     two ~6,000-step runs whose user loops differ by 10 iterations
align_long_unlike_ms   two ~6,000-step runs whose loop bodies differ: over the cell budget,
                       aligned block by block
runs_ms                the two recorded runs of the typical case (for scale)
view_step_ms           the compare view's work for one step (s) over the long-loop pair,
                       screen and panels, without the frame drawing
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import load_scenario, parse_scenario, run_scenario
from engine.compare.diff import Comparison, compare_traces
from engine.trace import Trace

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

LOOP = """
name = "loop"
step_cap = 20000
[user]
code = "mov ${n}, %ecx; 1: {body}; jnz 1b; mov $39, %eax; syscall"
"""


def loop(n: int, body: str) -> Trace:
    return run_scenario(parse_scenario(LOOP.format(n=n, body=body), "loop.toml"))


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    getpid = run_scenario(load_scenario(SCENARIOS / "getpid.toml"))
    moved = run_scenario(load_scenario(SCENARIOS / "check-rcx-eq-rip.toml"))
    print(f"align_typical_ms: {median_ms(lambda: compare_traces(getpid, moved), 20):.2f}")
    print(f"align_identical_ms: {median_ms(lambda: compare_traces(getpid, getpid), 20):.2f}")
    a, b = loop(3000, "dec %ecx"), loop(2990, "dec %ecx")
    print(f"align_long_loop_ms: {median_ms(lambda: compare_traces(a, b), 3):.1f}")
    print(f"  ({len(a.steps)} and {len(b.steps)} steps)")
    c = loop(3000, "sub $1, %ecx")
    print(f"align_long_unlike_ms: {median_ms(lambda: compare_traces(a, c), 3):.1f}")
    print(f"  ({len(a.steps)} and {len(c.steps)} steps)")
    runs = median_ms(
        lambda: [
            run_scenario(load_scenario(SCENARIOS / n))
            for n in ("getpid.toml", "check-rcx-eq-rip.toml")
        ],
        5,
    )
    print(f"runs_ms: {runs:.1f}")
    print(f"view_step_ms: {asyncio.run(view_step_ms(compare_traces(a, b))):.2f}")


async def view_step_ms(comparison: Comparison) -> float:
    from tui.app import CompareApp
    from tui.screens.compare import CompareScreen

    app = CompareApp(comparison)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        return median_ms(screen.action_step, 50)


if __name__ == "__main__":
    main()
