"""The headless engine: scenario → emulated machine → trace.  Imports no UI code."""

from engine.errors import AssemblyError, EngineError, HookError, ScenarioError
from engine.kernel import KERNELS
from engine.run import Session, run_scenario
from engine.scenario import (
    Scenario,
    bundled_scenarios_dir,
    default_scenario_path,
    load_scenario,
    parse_scenario,
    with_kernel,
)
from engine.trace import Trace

__all__ = [
    "KERNELS",
    "AssemblyError",
    "EngineError",
    "HookError",
    "Scenario",
    "ScenarioError",
    "Session",
    "Trace",
    "bundled_scenarios_dir",
    "default_scenario_path",
    "load_scenario",
    "parse_scenario",
    "run_scenario",
    "with_kernel",
]  # fmt: skip
