"""Where the shipped scenarios are.  Light on purpose: the debugger asks before the engine loads."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_scenarios_dir() -> Path:
    """The shipped scenarios: inside the installed package, or scenarios/ of a checkout."""
    installed = Path(str(resources.files("engine"))) / "scenarios"  # the wheel puts them here
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "scenarios"


def default_scenario_path() -> str:
    """The built-in default scenario: getpid through the SYSRET fast path."""
    return str(bundled_scenarios_dir() / "getpid.toml")
