"""The engine's shape: which modules a light import may load (the import contracts in
pyproject.toml hold the layering and the absence of circles; ``lint-imports`` runs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ("unicorn", "capstone", "keystone")


def loaded_after(statement: str, names: tuple[str, ...]) -> list[str]:
    """Which of *names* a fresh interpreter has in sys.modules after *statement*."""
    code = f"import sys; {statement}; print([m for m in {names!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(eval(done.stdout))  # a list of str literals printed by the child above


@pytest.mark.parametrize(
    "statement",
    [
        "import engine.scenario.parse",
        "import engine.scenario.reader",
        "import engine.compare.diff, engine.compare.render",
        "import engine.views.json",
        "import engine.trace, engine.checks, engine.store, engine.run.cached",
    ],
)
def test_the_scenario_side_loads_no_emulator_assembler_or_disassembler(statement: str) -> None:
    assert loaded_after(statement, NATIVE) == []


def test_parsing_assembles_user_code_but_builds_no_machine() -> None:
    # Every scenario has user code (``syscall`` by default): parsing it loads Keystone and
    # Capstone, in that order of need, and still no emulator.
    parse = "from engine.scenario.parse import parse_scenario; parse_scenario('name = \"n\"')"
    assert loaded_after(parse, NATIVE) == ["capstone", "keystone"]


def test_running_a_scenario_loads_the_emulator() -> None:
    # The check above can fail: the same probe sees Unicorn once a run needs it.
    assert "unicorn" in loaded_after("import engine.run.session", NATIVE)
