"""Measure the TUI: cold start and the cost of one step, printed as ``name: value`` lines.

cold_start_s
    Wall time from spawning ``python -c "run_app(None)"`` on a 160x50 pseudo-terminal until
    the first frame of the default scenario (its status line) has been written to the terminal.
    The engine's work is included, as a user would wait for it: served from the on-disk cache
    (engine.store) filled by the first run, which is reported as cold_start_uncached_s (that
    run also byte-compiles the project, as the first start after an install does).  The
    project's modules are byte-compiled first, as an installed copy is;
    cold_start_no_bytecode_s is the same with every module compiled from source.

step_ms_median / step_back_ms_median
    Time the app spends on one key press at 160x50, over the whole default trace: from the
    moment the Key event is dispatched to the end of the binding's action (which pushes the
    new position into every panel), plus every screen update that follows it (layout, widget
    rendering, compositing and turning the frame into terminal output) until the app is idle.
    Textual paces screen updates at 60 Hz; the wait for that tick is not work and is left out
    of these two numbers, but reported separately as *_latency_ms_median: key to the end of
    the first frame that shows the new position.

open_step_cap_s / open_step_cap_uncached_s
    cold_start_s for a scenario that runs into the step cap (10,000 steps), from the cache,
    and with the cache turned off (the engine assembles the kernel and records all 10,000
    steps before the first frame; the project is byte-compiled, as for cold_start_s).

open_step_cap_new_file_s
    The same scenario in a file not opened before (each run edits a comment), the cache on:
    the kernel image comes from the cache, the 10,000 steps are recorded.

trace_step_cap_s / trace_step_cap_json_s
    ``syscall-tui trace`` of that scenario into a pipe, without the cache: 10,000 rows, as
    the table and as JSON.

*_cpu_s
    The CPU time (user + system) of the measured process, the median over the same runs:
    on a machine shared with other work it varies much less than the wall time.

import_floor_s
    For scale: spawning ``python -c "import textual.app"`` alone, the part of the cold start
    that no code of this project can remove.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import resource
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from textual import events  # noqa: E402
from textual._compositor import CompositorUpdate  # noqa: E402
from textual.app import App  # noqa: E402
from textual.message import Message  # noqa: E402
from textual.screen import Screen  # noqa: E402

from engine import default_scenario_path, load_scenario, run_scenario  # noqa: E402
from tui.app import SyscallTuiApp  # noqa: E402
from tui.screens.debugger import DebuggerScreen  # noqa: E402

SIZE = (160, 50)


#: A run that never reaches its syscall: the user loop spins until the step cap (10,000).
STEP_CAP_SCENARIO = 'name = "spin until the step cap"\n[user]\ncode = "1: jmp 1b; syscall"\n'


def step_cap_file(edit: int = 0) -> str:
    """A step-cap scenario; each *edit* number gives other bytes (a trace cache miss)."""
    path = Path(tempfile.mkdtemp(prefix="syscall-tui-bench-")) / "spin.toml"
    path.write_text(STEP_CAP_SCENARIO + f"# edit {edit}\n", encoding="utf-8")
    return str(path)


def children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: CPU seconds of each measured run, by measurement (see the *_cpu_s numbers).
CPU: dict[str, list[float]] = {}


def trace_step_cap(runs: int = 3, output: str = "table") -> list[float]:
    """Seconds for ``syscall-tui trace`` of a step-cap run (10,000 rows) into a pipe."""
    path = step_cap_file()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SYSCALL_TUI_NO_CACHE": "1"}
    times = []
    cpu = CPU.setdefault(f"trace_step_cap_{output}", [])
    for _ in range(runs):
        start = time.perf_counter()
        used = children_cpu()
        done = subprocess.run(
            [sys.executable, "-m", "tui", "trace", "--format", output, path],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            check=True,
        )
        times.append(time.perf_counter() - start)
        cpu.append(children_cpu() - used)
        assert done.stdout.count(b"\n") > 10_000
    return times


def cold_start(
    runs: int = 5,
    bytecode: bool = True,
    scenario: str | None = None,
    cache: bool = True,
    name: str = "cold_start",
    new_file: bool = False,
) -> list[float]:
    """Seconds from process spawn to the first frame on a real pseudo-terminal.

    With *bytecode*, the project's modules are compiled once beforehand (into a temporary
    pycache, as ``pip install`` does for an installed copy) and the first, compiling run
    is not counted; without it, every run compiles them from source, which is what a
    machine with PYTHONDONTWRITEBYTECODE set does to a checkout.
    """
    code = f"import sys; from tui.launch import run_app; sys.exit(run_app({scenario!r}))"
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "COLUMNS": "160"}
    # A cache of this run's own: the first run fills it (see engine.store), like a user's
    # first start after installing; cold_start_uncached_s reports that run.
    env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="syscall-tui-cache-")
    env.pop("SYSCALL_TUI_NO_CACHE", None)
    if not cache:
        env["SYSCALL_TUI_NO_CACHE"] = "1"
    cpu = CPU.setdefault(name, [])
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="syscall-tui-pycache-")
        runs += 1  # the first run writes the bytecode
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    times = []
    for run in range(runs):
        if new_file:  # a scenario never opened before: its trace is not in the cache
            scenario = step_cap_file(edit=run)
            code = f"import sys; from tui.launch import run_app; sys.exit(run_app({scenario!r}))"
        used = children_cpu()
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        seen = b""
        deadline = start + 30
        # The status line is near the bottom of the first frame: once it is out, so is the frame.
        while b"step" not in seen or b"0/" not in seen:
            if time.perf_counter() > deadline:
                process.kill()
                raise RuntimeError("no frame within 30 s:\n" + seen.decode(errors="replace"))
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        times.append(time.perf_counter() - start)
        # Nothing answers the terminal's capability queries here, so rather than a key press
        # that may sit behind them, end the run with a signal.
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(master)
        cpu.append(children_cpu() - used)
    UNCACHED.append(times[0])
    if bytecode:
        del cpu[-len(times)]  # the run that compiled
    return times[1:] if bytecode else times[1:] or times


UNCACHED: list[float] = []


class Probe:
    """Timestamps of key dispatch, action end and screen updates, collected by patches."""

    def __init__(self) -> None:
        self.key_at: float | None = None
        self.action_end: float | None = None
        self.updates: list[tuple[float, float]] = []

    def reset(self) -> None:
        self.key_at = None
        self.action_end = None
        self.updates = []

    def hook(self, message: Message) -> None:
        if isinstance(message, events.Key) and self.key_at is None:
            self.key_at = time.perf_counter()


def install_probes(probe: Probe) -> Callable[[], None]:
    """Patch the screen update and the two actions; returns a function that undoes it."""
    console = Console(width=SIZE[0], height=SIZE[1], force_terminal=True, color_system="truecolor")
    original_update = Screen._on_timer_update
    original_display = App._display
    originals = {
        name: getattr(DebuggerScreen, name) for name in ("action_step", "action_step_back")
    }

    def timed_update(self: Screen[Any]) -> None:
        start = time.perf_counter()
        original_update(self)
        probe.updates.append((start, time.perf_counter()))

    def rendering_display(self: App[Any], screen: Screen[Any], renderable: Any) -> None:
        # Headless apps skip turning the frame into escape sequences; a terminal would not.
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(console)
        original_display(self, screen, renderable)

    def timed(action: Callable[[DebuggerScreen], None]) -> Callable[[DebuggerScreen], None]:
        def run(self: DebuggerScreen) -> None:
            action(self)
            probe.action_end = time.perf_counter()

        return run

    Screen._on_timer_update = timed_update  # type: ignore[method-assign]
    App._display = rendering_display  # type: ignore[method-assign]
    for name, action in originals.items():
        setattr(DebuggerScreen, name, timed(action))

    def undo() -> None:
        Screen._on_timer_update = original_update  # type: ignore[method-assign]
        App._display = original_display  # type: ignore[method-assign]
        for name, action in originals.items():
            setattr(DebuggerScreen, name, action)

    return undo


async def step_costs() -> dict[str, list[float]]:
    trace = run_scenario(load_scenario(default_scenario_path()))
    probe = Probe()
    undo = install_probes(probe)
    results: dict[str, list[float]] = {"s": [], "b": [], "s_latency": [], "b_latency": []}
    try:
        app = SyscallTuiApp(trace, scenario_dirs=())
        async with app.run_test(size=SIZE, message_hook=probe.hook) as pilot:
            await pilot.pause(0.2)
            for key, count in (("s", len(trace.steps)), ("b", len(trace.steps))):
                for _ in range(count):
                    probe.reset()
                    await pilot.press(key)
                    await pilot.pause(0.04)  # a few 60 Hz ticks: every follow-up update lands
                    if probe.key_at is None or probe.action_end is None or not probe.updates:
                        raise RuntimeError(f"key {key!r} was not measured")
                    work = (probe.action_end - probe.key_at) + sum(
                        end - start for start, end in probe.updates
                    )
                    results[key].append(work * 1000)
                    # The frame that shows the new position is the first update after the action.
                    frame_end = next(
                        end for start, end in probe.updates if start >= probe.action_end
                    )
                    results[f"{key}_latency"].append((frame_end - probe.key_at) * 1000)
            screen = app.screen
            assert isinstance(screen, DebuggerScreen) and screen.position == 0
    finally:
        undo()
    return results


def import_floor(runs: int = 5) -> list[float]:
    times = []
    cpu = CPU.setdefault("import_floor", [])
    for _ in range(runs):
        start = time.perf_counter()
        used = children_cpu()
        subprocess.run([sys.executable, "-c", "import textual.app"], check=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
        cpu.append(children_cpu() - used)
    return times


def main() -> None:
    floor = import_floor()
    starts = cold_start()
    uncached = UNCACHED[0]
    uncompiled = cold_start(4, bytecode=False, name="cold_start_no_bytecode")
    UNCACHED.clear()
    step_cap = cold_start(3, scenario=step_cap_file(), name="open_step_cap")
    step_cap_uncached = cold_start(
        3, scenario=step_cap_file(), cache=False, name="open_step_cap_uncached"
    )
    step_cap_new = cold_start(3, cache=True, name="open_step_cap_new_file", new_file=True)
    traced = trace_step_cap()
    traced_json = trace_step_cap(output="json")
    costs = asyncio.run(step_costs())
    print(f"cold_start_s: {statistics.median(starts):.3f}")
    print(f"cold_start_s_max: {max(starts):.3f}")
    print(f"cold_start_no_bytecode_s: {statistics.median(uncompiled):.3f}")
    print(f"cold_start_uncached_s: {uncached:.3f}")
    print(f"import_floor_s: {statistics.median(floor):.3f}")
    ratio = statistics.median(starts) / statistics.median(floor)
    print(f"cold_start_over_import_floor: {ratio:.2f}")
    print(f"open_step_cap_s: {statistics.median(step_cap):.3f}")
    print(f"open_step_cap_uncached_s: {statistics.median(step_cap_uncached):.3f}")
    print(f"open_step_cap_new_file_s: {statistics.median(step_cap_new):.3f}")
    print(f"trace_step_cap_s: {statistics.median(traced):.3f}")
    print(f"trace_step_cap_json_s: {statistics.median(traced_json):.3f}")
    for name in ("cold_start", "open_step_cap", "open_step_cap_uncached", "open_step_cap_new_file"):
        print(f"{name}_cpu_s: {statistics.median(CPU[name]):.3f}")
    print(f"trace_step_cap_cpu_s: {statistics.median(CPU['trace_step_cap_table']):.3f}")
    print(f"trace_step_cap_json_cpu_s: {statistics.median(CPU['trace_step_cap_json']):.3f}")
    print(f"import_floor_cpu_s: {statistics.median(CPU['import_floor']):.3f}")
    print(f"step_ms_median: {statistics.median(costs['s']):.2f}")
    print(f"step_ms_p90: {statistics.quantiles(costs['s'], n=10)[-1]:.2f}")
    print(f"step_back_ms_median: {statistics.median(costs['b']):.2f}")
    print(f"step_back_ms_p90: {statistics.quantiles(costs['b'], n=10)[-1]:.2f}")
    print(f"step_latency_ms_median: {statistics.median(costs['s_latency']):.2f}")
    print(f"step_back_latency_ms_median: {statistics.median(costs['b_latency']):.2f}")
    print(f"steps_measured: {len(costs['s'])}")


if __name__ == "__main__":
    main()
