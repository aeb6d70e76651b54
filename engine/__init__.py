"""The headless engine: scenario → emulated machine → trace.  Imports no UI code."""

from engine.errors import AssemblyError, EngineError, HookError, ScenarioError
from engine.run import Session, run_scenario
from engine.scenario import (
    Scenario,
    bundled_scenarios_dir,
    default_scenario_path,
    load_scenario,
    parse_scenario,
)
from engine.trace import Trace

__all__ = [
    "AssemblyError", "EngineError", "HookError", "Scenario", "ScenarioError", "Session",
    "Trace", "bundled_scenarios_dir", "default_scenario_path", "load_scenario",
    "parse_scenario", "run_scenario",
]  # fmt: skip
