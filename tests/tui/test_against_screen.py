"""The ``compare --against`` view: the real kernel's instructions beside the engine's."""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

from textual.widgets import DataTable

from engine import load_scenario, run_scenario
from engine.compare.real import Against, against, on_the_real_machine
from tests.tui.helpers import run_async
from tui.app import AgainstApp

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "engine" / "oracle" / "fixtures" / "v6.1_getpid.json.gz"


@cache
def report(*changed: int, scenario: str = "getpid.toml") -> Against:
    """getpid's real trace against *scenario*, with the instructions at *changed* altered."""
    real = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    real = copy.deepcopy(real)
    kernel = [s for s in real["steps"] if s["asm"]]
    for i in changed:
        kernel[i]["asm"] = "ud2 [31m\x1b[31mred"  # never read as markup or a control
    sc = on_the_real_machine(load_scenario(ROOT / "scenarios" / scenario), real)
    return against(real, run_scenario(sc))


def table(app: AgainstApp) -> DataTable:
    return app.screen.query_one(DataTable)


@run_async
async def test_the_cursor_starts_on_the_first_place_they_part_and_n_p_move_between() -> None:
    app = AgainstApp(report(5, 20))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        rows = table(app)
        assert rows.row_count == 99 and rows.cursor_row == 5
        await pilot.press("n")
        assert rows.cursor_row == 20
        await pilot.press("n")
        assert rows.cursor_row == 20  # no later one
        await pilot.press("p")
        assert rows.cursor_row == 5
        cells = [str(c) for c in rows.get_row_at(5)]
        assert cells[1] == "≠" and "\x1b" not in cells[3] and "[31m" in cells[3]
        await pilot.press("q")
    assert app.return_code == 0


@run_async
async def test_an_equal_run_has_no_mark_and_says_equal() -> None:
    app = AgainstApp(report())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        rows = table(app)
        assert rows.cursor_row == 0
        assert all(str(rows.get_row_at(i)[1]) == "=" for i in range(rows.row_count))
        verdict = str(app.screen.query_one("#against-verdict").render())
        assert verdict.startswith("equal: 99 kernel instructions")


def test_snapshot_where_tf_parts_from_getpid(snap_compare: Callable[..., bool]) -> None:
    """tf-single-step's run beside getpid's real trace: the cursor on instruction 66."""
    app = AgainstApp(report(scenario="tf-single-step.toml"))
    assert snap_compare(app, terminal_size=(120, 36))
