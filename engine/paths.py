"""Where the shipped scenarios are.  Light on purpose: the debugger asks before the engine loads."""

from __future__ import annotations

from pathlib import Path


def bundled_scenarios_dir() -> Path:
    """The shipped scenarios: inside the installed package, or scenarios/ of a checkout."""
    # The package's own folder, where the wheel puts them.  (importlib.resources would say
    # the same for a package on disk, but imports zipfile to say
    # it, which nothing else at start-up needs.)
    installed = Path(__file__).resolve().parent / "scenarios"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "scenarios"


def default_scenario_path() -> str:
    """The built-in default scenario: getpid through the SYSRET fast path."""
    return str(bundled_scenarios_dir() / "getpid.toml")
