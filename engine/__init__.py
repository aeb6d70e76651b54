"""The headless engine: scenario → emulated machine → trace.  Imports no UI code.

The names below are loaded on first use: ``import engine.trace`` (all a cached trace needs)
must not pay for Unicorn, Capstone and Keystone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.errors import AssemblyError, EngineError, HookError, ScenarioError
    from engine.kernel import KERNELS
    from engine.paths import bundled_scenarios_dir, default_scenario_path
    from engine.run.session import Session, run_scenario
    from engine.scenario.model import Scenario
    from engine.scenario.parse import load_scenario, parse_scenario, with_kernel
    from engine.trace import Trace

_WHERE = {
    "AssemblyError": "engine.errors", "EngineError": "engine.errors",
    "HookError": "engine.errors", "ScenarioError": "engine.errors",
    "KERNELS": "engine.kernel",
    "Session": "engine.run.session", "run_scenario": "engine.run.session",
    "Scenario": "engine.scenario.model", "bundled_scenarios_dir": "engine.paths",
    "default_scenario_path": "engine.paths", "load_scenario": "engine.scenario.parse",
    "parse_scenario": "engine.scenario.parse", "with_kernel": "engine.scenario.parse",
    "Trace": "engine.trace",
}  # fmt: skip

__all__ = [
    "KERNELS", "AssemblyError", "EngineError", "HookError", "Scenario", "ScenarioError",
    "Session", "Trace", "bundled_scenarios_dir", "default_scenario_path", "load_scenario",
    "parse_scenario", "run_scenario", "with_kernel",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
