"""Helpers for the TUI tests: real runs of the shipped scenarios, cached per session.

Plain functions rather than fixtures, so that each test says which scenario it runs.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec

from engine import load_scenario, run_scenario
from engine.trace import Step, Trace
from tui.app import SyscallTuiApp

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
P = ParamSpec("P")


@functools.cache
def scenario_trace(name: str) -> Trace:
    """The recorded trace of ``scenarios/<name>``; runs are deterministic, so one per session."""
    return run_scenario(load_scenario(SCENARIOS / name))


def position_after(trace: Trace, predicate: Callable[[Step], bool]) -> int:
    """The position right after the first step matching ``predicate``."""
    for k, step in enumerate(trace.steps, start=1):
        if predicate(step):
            return k
    raise AssertionError("no step matches")


def has_event(kind: str) -> Callable[[Step], bool]:
    return lambda step: any(event.kind == kind for event in step.events)


def make_app(
    name: str = "getpid.toml", scenario_dirs: tuple[Path, ...] = (SCENARIOS,), lang: str = "en"
) -> SyscallTuiApp:
    return SyscallTuiApp(scenario_trace(name), scenario_dirs=scenario_dirs, lang=lang)


def run_async(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async Pilot test on a fresh event loop (the test extra has no asyncio plugin)."""

    @functools.wraps(test)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper
