"""compare at the sizes a class uses: full 16-digit values and at least ten aligned rows
(at 120x36 the three-panel layout showed one row and cut values to 9 digits)."""

from __future__ import annotations

import re

import pytest

from engine import load_scenario, run_scenario
from engine.compare.diff import compare_traces, variant
from tests.tui.contrast import segments
from tests.tui.helpers import SCENARIOS, run_async
from tui.app import CompareApp
from tui.screens.compare import CompareScreen

NAME = "v6.12-fallthrough-to-task-size-max.toml"


def _screen_lines(app: CompareApp) -> list[str]:
    from rich.segment import Segment

    width, _ = app.size
    return [
        "".join(s.text for s in line) for line in Segment.split_and_crop_lines(segments(app), width)
    ]


@pytest.mark.parametrize("size", [(80, 24), (120, 36), (140, 40), (160, 50)])
@run_async
async def test_compare_shows_whole_values_and_ten_aligned_rows(size: tuple[int, int]) -> None:
    left, right = (
        run_scenario(variant(load_scenario(SCENARIOS / NAME), kernel=kernel, cpu=None))
        for kernel in ("v5.8.13", "v6.12")
    )
    comparison = compare_traces(left, right)
    app = CompareApp(comparison)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        mark = comparison.decision or comparison.paths_part
        assert mark is not None
        screen.position = mark.position
        await pilot.pause()
        await pilot.pause()
        aligned = app.query_one("#aligned")
        if size[1] >= 24 and (size[0], size[1]) != (80, 24):
            assert aligned.scrollable_content_region.height >= 10, aligned.region
        lines = _screen_lines(app)
        values = [
            m for line in lines for m in re.findall(r"\b(?:rax|rcx|ip|cx) +([0-9a-f]+)\b", line)
        ]
        assert values, "\n".join(lines)
        assert all(len(v) == 16 for v in values), (values, "\n".join(lines))
