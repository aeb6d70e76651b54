from __future__ import annotations

import functools
from pathlib import Path

from engine import Trace, load_scenario, run_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


@functools.cache
def trace_of(name: str) -> Trace:
    """A recorded trace of a shipped scenario (cached: runs are deterministic)."""
    return run_scenario(load_scenario(SCENARIOS / name))
