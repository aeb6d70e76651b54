"""compare's shortcuts (records compared once per pair, rows written as text) give what the
plain definitions give."""

from __future__ import annotations

import json

import pytest

from engine.compare import diff
from engine.compare.diff import compare_traces
from engine.compare.render import comparison_json, comparison_json_text
from engine.errors import json_safe, unsafe
from engine.trace import Step, Trace
from tests.conftest import trace_of
from tests.engine.test_compare import PAIRS, run

KERNEL_PAIRS = [("getpid.toml", "v5.8.13", "v6.12"), ("check-rcx-eq-rip.toml", "v6.1", "v6.12")]


def comparisons() -> list[tuple[Trace, Trace]]:
    out = [(trace_of(a), trace_of(b)) for a, b in PAIRS]
    out += [(trace_of(b), trace_of(a)) for a, b in PAIRS]
    out += [(run(name, kernel=k1), run(name, kernel=k2)) for name, k1, k2 in KERNEL_PAIRS]
    out.append((trace_of("getpid.toml"), trace_of("getpid.toml")))
    return out


@pytest.mark.parametrize("pair", range(len(comparisons())))
def test_rows_hold_the_differences_of_the_steps_they_follow(pair: int) -> None:
    left, right = comparisons()[pair]
    c = compare_traces(left, right)
    last_a: Step | None = None
    last_b: Step | None = None
    for row in c.rows:
        last_a = left.steps[row.left] if row.left is not None else last_a
        last_b = right.steps[row.right] if row.right is not None else last_b
        regs_a = last_a.regs if last_a is not None else left.initial
        regs_b = last_b.regs if last_b is not None else right.initial
        assert row.registers == diff.register_differences(regs_a, regs_b)
        assert row.pt_regs == diff.slot_differences(diff._pt_regs(last_a), diff._pt_regs(last_b))
        assert row.checks == diff.check_differences(last_a, last_b)
        assert row.verdicts == diff.verdict_difference(last_a, last_b)


@pytest.mark.parametrize("pair", range(len(comparisons())))
def test_the_json_text_is_what_the_json_module_writes(pair: int) -> None:
    c = compare_traces(*comparisons()[pair])
    want = json.JSONEncoder(indent=1, ensure_ascii=False).encode(comparison_json(c))
    assert "".join(comparison_json_text(c)) == want


def test_json_safe_escapes_what_escape_escapes_and_keeps_json_whitespace() -> None:
    every = "".join(chr(c) for c in range(0x3000)) + "\u2066\u2069\ud800"
    doc = json.dumps({"k": every}, ensure_ascii=False, indent=1)
    safe = json_safe(doc)
    assert json.loads(safe) == json.loads(doc)
    assert [ch for ch in safe if unsafe(ch)] == ["\n", "\n"]  # the indent's two newlines
