"""compare at the sizes a class uses: full 16-digit values and at least ten aligned rows
(at 120x36 the three-panel layout showed one row and cut values to 9 digits)."""

from __future__ import annotations

import re

import pytest

from engine import load_scenario, run_scenario
from engine.compare.diff import compare_traces, variant
from engine.trace import Trace
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


# -- each run's own deciding step (the decision row holds only one of them) -------------


def _kernels(name: str) -> tuple[Trace, Trace]:
    sc = load_scenario(SCENARIOS / name)
    return (
        run_scenario(variant(sc, kernel="v5.8.13", cpu=None)),
        run_scenario(variant(sc, kernel="v6.12", cpu=None)),
    )


def test_each_run_is_marked_at_its_own_deciding_step() -> None:
    """v5.8 decides at its last check (a jne), 6.12 in do_syscall_64's C long before: the
    row where the verdicts first differ pairs A's jne with one of B's POP_REGS."""
    from engine.compare.render import comparison_json, summary_lines
    from engine.i18n import tr

    left, right = _kernels("cve-2012-0217-intel.toml")
    c = compare_traces(left, right)
    d = c.decision
    assert d is not None and d.verdicts is not None and d.right is not None
    a, b = c.deciding
    assert a is not None and b is not None
    assert a == d.left and b < d.right
    assert c.left.steps[a].text.startswith("jne") and c.right.steps[b].is_c
    assert c.right.steps[d.right].text.startswith("pop")
    # each run decided here: its checks had not, one step before
    for trace, own in ((c.left, a), (c.right, b)):
        assert trace.steps[own - 1].checks != trace.steps[own].checks
    text = [tr(line) for line in summary_lines(c)]
    assert f"  B decided at step {b + 1} (C) regs->ip >= TASK_SIZE_MAX" in "\n".join(text)
    assert not any(line.startswith("  A decided at") for line in text)  # A's is the row's
    data = comparison_json(c, rows=False)
    assert data["deciding"]["left"]["step"] == a + 1
    assert data["deciding"]["right"]["step"] == b + 1


@run_async
async def test_the_aligned_rows_mark_each_runs_deciding_step() -> None:
    from tui.widgets.compare import DECISION_MARK, difference_lines

    left, right = _kernels("cve-2012-0217-intel.toml")
    c = compare_traces(left, right)
    a, b = c.deciding
    assert a is not None and b is not None
    app = CompareApp(c)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        aligned = app.query_one("#aligned")
        lines = [line.plain for line in aligned.lines]  # type: ignore[attr-defined]
        marked = [k for k, line in enumerate(lines) if f"{DECISION_MARK}" in line[2:]]
        rows = {k for k, r in enumerate(c.rows) if r.left == a or r.right == b}
        assert set(marked) == rows and len(rows) == 2
        banner = "\n".join(difference_lines(c))
        assert f"A {a + 1} · B {b + 1}" in banner
