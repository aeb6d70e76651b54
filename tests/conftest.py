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


def _poll_idle_faster() -> None:
    """Pilot's key presses and pauses wait for the process to go idle by sleeping in
    20 ms slices (textual._wait.SLEEP_GRANULARITY) until one passes with almost no CPU
    used; every press sleeps at least two slices. The app under test runs in the test's
    own event loop, so its work is done long before that: at 5 ms slices (the same 1/20
    idle ratio) the tests do the same work with a quarter of the idle wall time, which on
    two workers sharing two cores was a fifth of the whole run."""
    import textual._wait as wait

    wait.SLEEP_GRANULARITY = 0.005
    wait.SLEEP_IDLE = wait.SLEEP_GRANULARITY / 20.0


_poll_idle_faster()


def _share_parsed_css() -> None:
    """Every test makes new Apps, and Textual parses the same CSS again for each (its parse
    cache lives in each App's Stylesheet): the warm parent of ``serve`` shares one cache
    across its sessions (tui.warm.share_parsed_css), and the tests take the same one, keyed
    by the CSS variables too, so a theme test still parses its own."""
    from tui.warm import share_parsed_css

    share_parsed_css()


_share_parsed_css()
