"""The hand-written step encoder writes exactly what the json module writes for step_json."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.trace import (
    CheckName,
    CheckResult,
    CheckState,
    Event,
    EventKind,
    Operand,
    StackName,
    StackSlot,
    Step,
    StepKind,
)
from engine.views.json import step_json
from engine.views.json_steps import StepWriter
from tests.conftest import SCENARIOS, trace_of

EVERY = sorted(str(p.relative_to(SCENARIOS)) for p in SCENARIOS.rglob("*.toml"))
ENCODE = json.JSONEncoder().encode


def same_as_json(steps: list[Step] | tuple[Step, ...]) -> None:
    writer = StepWriter()
    for step in steps:
        assert writer.encode(step) == ENCODE(step_json(step)), step.number


@pytest.mark.parametrize("name", EVERY)
def test_every_step_of_every_shipped_scenario(name: str) -> None:
    same_as_json(trace_of(name).steps)


def test_records_shared_or_not_give_the_same_text() -> None:
    """A record equal to the one before but not the same object, and the same object
    after a different one, are each written from their own values."""
    steps = trace_of("getpid.toml").steps
    first, second = steps[0], steps[len(steps) // 2]
    copies = [
        first,
        replace(first, index=1, regs=replace(first.regs), stack=tuple(first.stack)),
        second,
        replace(second, index=3, regs=first.regs, checks=first.checks),
        replace(second, index=4),
    ]
    same_as_json(copies)


def test_text_that_needs_escaping_and_every_optional_field(tmp_path: Path) -> None:
    base = trace_of("getpid.toml").steps[0]
    odd = '\x1b[2J \u009b \u202e ステップ " \\ \n \ud800'
    step = replace(
        base,
        text=odd,
        source=odd,
        macro=odd,
        label=odd,
        source_line=7,
        changed=("rax", odd),
        stack=(StackSlot(0xFFFF_C900_0000_3FF8, 2**64 - 1, odd),),
        entry_stack=(StackSlot(0, 0, ""),),
        checks=(
            CheckState(
                CheckName.SS_USER, CheckResult.FAIL, Operand("SS", 0x23), Operand("__USER_DS", 0x2B)
            ),
            CheckState(CheckName.NO_RF_TF, CheckResult.REMOVED),
        ),
        events=(Event(EventKind.FAULT, odd, modelled=True), Event(EventKind.SWAPGS, "")),
        modelled=True,
        stack_name=StackName.OTHER,
        rewritten=(("ip", 1, 2**63), (odd, 0, 0)),
        cr3_written=2**63 | 0x1000,
        kind=StepKind.C_CALL,
    )
    same_as_json([step, replace(step, cr3_written=0, source_line=None, macro=None)])
