"""Positions in a trace and where the navigation keys land, on real recorded runs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tui.helpers import scenario_trace
from tui.screens.timeline import STOP_KINDS, Timeline, line_key

NAMES = ("getpid.toml", "sigreturn-noncanonical.toml", "check-rcx-eq-rip.toml")


@pytest.mark.parametrize("name", NAMES)
def test_state_at_a_position_is_the_state_after_the_previous_step(name: str) -> None:
    trace = scenario_trace(name)
    timeline = Timeline(trace)
    assert timeline.regs(0) == trace.initial
    assert timeline.ran(0) is None and timeline.upcoming(0) is trace.steps[0]
    assert timeline.changed(0) == frozenset()
    for k in (1, len(trace.steps) // 2, len(trace.steps)):
        assert timeline.regs(k) == trace.steps[k - 1].regs
        assert timeline.changed(k) == frozenset(trace.steps[k - 1].changed)
    assert timeline.upcoming(timeline.end) is None


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_next_line_runs_exactly_one_line(name: str, data: st.DataObject) -> None:
    timeline = Timeline(scenario_trace(name))
    steps = timeline.trace.steps
    position = data.draw(st.integers(min_value=0, max_value=timeline.end))
    landed = timeline.next_line(position)
    if position == timeline.end:
        assert landed == position
        return
    assert landed > position
    key = line_key(steps[position])
    assert all(line_key(s) == key for s in steps[position:landed])
    assert landed == timeline.end or line_key(steps[landed]) != key


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_continue_lands_on_the_next_stop_and_skips_nothing(name: str, data: st.DataObject) -> None:
    timeline = Timeline(scenario_trace(name))
    steps = timeline.trace.steps
    position = data.draw(st.integers(min_value=0, max_value=timeline.end))
    landed = timeline.next_stop(position)
    assert landed >= position
    # No step strictly between was a stop.
    for k in range(position + 1, landed):
        assert not {e.kind for e in steps[k - 1].events} & STOP_KINDS
    if landed < timeline.end:
        assert landed in timeline.stops


def test_stops_of_getpid_in_order() -> None:
    timeline = Timeline(scenario_trace("getpid.toml"))
    kinds: list[list[str]] = [
        sorted({e.kind for e in timeline.trace.steps[k - 1].events} & STOP_KINDS)
        for k in timeline.stops
    ]
    assert kinds[0] == ["syscall"]
    assert kinds[1] == ["swapgs"]
    assert kinds[2] == ["cr3_switch"]
    assert ["handler"] in kinds
    assert kinds.count(["check"]) == 6
    assert kinds[-1] == ["return", "sysret"]


def test_fault_appears_only_once_reached() -> None:
    trace = scenario_trace("sigreturn-noncanonical.toml")
    timeline = Timeline(trace)
    assert trace.fault is not None and timeline.fault_position is not None
    assert timeline.fault_at(timeline.fault_position - 1) is None
    assert timeline.fault_at(timeline.fault_position) is trace.fault
    assert timeline.fault_at(0) is None


def test_clamp() -> None:
    timeline = Timeline(scenario_trace("getpid.toml"))
    assert timeline.clamp(-5) == 0
    assert timeline.clamp(10**6) == timeline.end
