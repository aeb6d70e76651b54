from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Trace, load_scenario, run_scenario
from engine.i18n import set_language

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


#: Folders whose every test drives the app (Pilot, snapshots) or a real gdb: the slow tier.
SLOW_FOLDERS = ("tui", "gdb")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow tier: ``scripts/gate --fast`` leaves it out (``-m "not slow"``)."""
    for item in items:
        if Path(item.path).parent.name in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """Every test starts in English (the UI language is process-wide) and leaves it so."""
    set_language("en")
    yield
    set_language("en")


@functools.cache
def trace_of(name: str) -> Trace:
    """A recorded trace of a shipped scenario (cached: runs are deterministic)."""
    return run_scenario(load_scenario(SCENARIOS / name))
