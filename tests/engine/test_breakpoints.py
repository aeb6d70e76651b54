"""Breakpoints, watchpoints and conditions against the recorded runs of every scenario.

Each stop set is checked against a second source: a breakpoint's positions are exactly
those whose next step runs at its address (or starts a pass through its line); a
watchpoint on a pt_regs slot stops after exactly the CPU steps the recorder saw write
that slot (Step.stack_writes) and after every modelled step that rewrote it; the memory
log's writers of a range agree with a brute-force scan of the log.
"""

from __future__ import annotations

import random
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import load_scenario
from engine.constants import PT_REGS_FIELDS, PT_REGS_OFFSET
from engine.errors import EngineError, ScenarioError
from engine.inspect.breakpoints import (
    MAX_POINTS,
    PointError,
    PointKind,
    Points,
    hits,
    make_break,
    make_watch,
    next_stop,
    previous_stop,
)
from engine.inspect.command import PointsAnswer, completions, run_command
from engine.inspect.expr import ExprContext, ExprError, holds
from engine.inspect.machine_at import MachineAt
from engine.scenario.parse import parse_scenario, read_debug
from engine.trace import REG_NAMES, Regs
from engine.views.inspect import hit_line, points_lines
from tests.conftest import SCENARIOS

ALL = sorted(p.relative_to(SCENARIOS).as_posix() for p in SCENARIOS.rglob("*.toml"))


@cache
def machine_at(name: str) -> MachineAt:
    return MachineAt.run(load_scenario(SCENARIOS / name))


@pytest.mark.parametrize("name", ALL)
def test_a_break_at_each_label_stops_exactly_where_its_address_runs_next(name: str) -> None:
    at = machine_at(name)
    steps = at.trace.steps
    ran = {s.rip for s in steps}
    for label, address in at.trace.symbols.items():
        if label.startswith(".") or address not in ran:
            continue
        p = make_break(at, 0, label, 1)
        assert p.address == address
        assert p.positions == tuple(i for i, s in enumerate(steps) if s.rip == address), label
        for q in p.positions:
            assert steps[q].rip == address  # the step that runs next from the stop


@pytest.mark.parametrize("name", ALL)
def test_a_watch_on_each_pt_regs_slot_stops_after_every_write_of_it(name: str) -> None:
    at = machine_at(name)
    for slot in PT_REGS_FIELDS:
        p = make_watch(at, 0, f"regs->{slot}", 1)
        assert p.kind is PointKind.WATCH and p.address == at.pt_regs_base + 8 * (
            PT_REGS_FIELDS.index(slot)
        )
        stops = set(p.positions)
        for k, s in enumerate(at.trace.steps, start=1):
            if s.modelled:
                # a modelled step (do_syscall_64, sigreturn) may store a slot it does not
                # change (restore_sigcontext writes every register): it must stop where
                # it changed one
                if any(field == slot for field, _, _ in s.rewritten):
                    assert k in stops, f"{name} {slot} step {k}"
            else:
                assert (k in stops) == (p.address in s.stack_writes), f"{name} {slot} step {k}"


@pytest.mark.parametrize("name", ["getpid.toml", "sigreturn-noncanonical.toml", "fred-tf.toml"])
def test_the_memory_log_names_every_writer_of_a_range(name: str) -> None:
    at = machine_at(name)
    rng = random.Random(name)
    base = at.pt_regs_base
    for _ in range(40):
        address = base - 256 + rng.randrange(0, 512)
        size = rng.choice((1, 2, 8, 16))
        found = at.history.steps_writing(address, size)
        # brute force: a step that changed a byte of the range must be among the writers
        for k in range(1, at.last + 1):
            if at.read_phys(k - 1, address, size) != at.read_phys(k, address, size):
                assert k in found, (hex(address), size, k)
        assert list(found) == sorted(set(found))


def test_the_watch_on_regs_ip_stops_at_the_push_and_at_the_sigreturn_rewrite() -> None:
    at = machine_at("sigreturn-noncanonical.toml")
    p = make_watch(at, 0, "regs->ip", 1)
    push, rewrite = p.positions
    assert at.trace.steps[push - 1].text.startswith("pushq %rcx")
    assert at.trace.steps[rewrite - 1].modelled
    first, second = (hits(at, Points((p,), 2), q)[0] for q in p.positions)
    syscall = next(s for s in at.trace.steps if s.text == "syscall")
    assert (first.old, first.new) == (0, syscall.rip + 2)  # RCX: the return address
    assert second.new == 0x800000000000  # the sigframe's non-canonical RIP
    assert "regs->ip: 0x401007 → 0x800000000000" in hit_line(second)


def test_break_at_a_line_stops_at_the_first_instruction_of_each_pass() -> None:
    at = machine_at("getpid.toml")
    steps = at.trace.steps
    line = steps[10].source_line
    assert line is not None
    p = make_break(at, 0, str(line), 1)
    assert p.line == line and p.positions
    for q in p.positions:
        assert steps[q].source_line == line and steps[q - 1].source_line != line
    assert make_break(at, 0, f"entry_64.S:{line}", 2).positions == p.positions


def test_conditions_filter_the_stops() -> None:
    at = machine_at("getpid.toml")
    always = make_break(at, 0, "entry_SYSCALL_64", 1)
    assert len(always.positions) == 1
    assert make_break(at, 0, "entry_SYSCALL_64 if $rax == 39", 2).positions == always.positions
    assert make_break(at, 0, "entry_SYSCALL_64 if $rax != 39", 3).positions == ()
    both = "entry_SYSCALL_64 if $rax == 39 && $rcx == 0x401007 || 0"
    assert make_break(at, 0, both, 4).positions == always.positions


def test_conditions_compare_unsigned_and_join_with_and_or() -> None:
    regs = Regs(**{n: 0 for n in REG_NAMES})
    ctx = ExprContext(regs, {"entry": 0x10}, 0x1000)
    assert holds("entry == 16", ctx) and holds("entry+1 > entry", ctx)
    assert holds("0 - 1 > 5", ctx)  # -1 is 0xffff...: compared unsigned, as gdb does
    assert holds("1 == 2 || 2 == 2", ctx) and not holds("1 == 1 && 2 == 3", ctx)
    assert holds(f"regs->ip == {0x1000 + PT_REGS_OFFSET['ip']:#x}", ctx)
    assert holds("$rax", ctx) is False and holds("entry", ctx) is True
    for bad in ("1 ==", "== 1", "1 = 1", "1 == 1 &&", "(1 == 1)"):
        with pytest.raises(ExprError):
            holds(bad, ctx)


@pytest.mark.parametrize(
    "line",
    [
        "break", "break nosuch", "break 0", "break 99999", "break entry_SYSCALL_64 if",
        "break entry_SYSCALL_64 if $nosuch == 1", "watch", "watch 0x1", "watch $rax if 1",
        "delete 9", "delete one", "break " + "a" * 400,
    ],
)  # fmt: skip
def test_bad_points_are_one_line_errors(line: str) -> None:
    with pytest.raises(EngineError) as err:
        run_command(machine_at("getpid.toml"), 3, line)
    assert "\n" not in str(err.value) and str(err.value)


def test_the_command_line_adds_lists_and_deletes_points() -> None:
    at = machine_at("sigreturn-noncanonical.toml")
    points = Points()
    for line in ("b swapgs_restore_regs_and_return_to_usermode", "watch regs->ip", "break 16"):
        answer = run_command(at, 2, line, points)
        assert isinstance(answer, PointsAnswer) and answer.added is not None
        points = answer.points
    assert [p.number for p in points.points] == [1, 2, 3]
    listed = run_command(at, 2, "info break", points)
    assert isinstance(listed, PointsAnswer)
    text = points_lines(listed)
    assert len(text) == 4 and "swapgs_restore_regs_and_return_to_usermode" in text[1]
    assert "stops 2x, at step " in text[2]
    gone = run_command(at, 2, "d 2", points)
    assert isinstance(gone, PointsAnswer) and [p.number for p in gone.points.points] == [1, 3]
    again = run_command(at, 2, "watch regs->sp", gone.points)
    assert isinstance(again, PointsAnswer) and again.added is not None
    assert again.added.number == 4  # numbers are never reused, as in gdb
    cleared = run_command(at, 2, "delete", again.points)
    assert isinstance(cleared, PointsAnswer) and cleared.points.points == ()
    assert points_lines(run_command(at, 2, "info break", cleared.points)) == [  # type: ignore[arg-type]
        "no breakpoints or watchpoints"
    ]
    assert "break" in completions(at, "br") and "watch" in completions(at, "wa")
    assert "break" in completions(at, "info b")


def test_continue_stops_in_both_directions() -> None:
    stops = (3, 9, 40)
    assert next_stop(stops, 0, 50) == 3 and next_stop(stops, 3, 50) == 9
    assert next_stop(stops, 40, 50) == 50
    assert previous_stop(stops, 50) == 40 and previous_stop(stops, 9) == 3
    assert previous_stop(stops, 3) == 0


def test_points_are_bounded() -> None:
    at = machine_at("getpid.toml")
    points = Points()
    for _ in range(MAX_POINTS):
        points = points.with_point(make_break(at, 0, "entry_SYSCALL_64", points.next_number))
    with pytest.raises(EngineError, match="at most"):
        points.with_point(make_break(at, 0, "entry_SYSCALL_64", points.next_number))


def test_a_fred_machine_names_its_pt_regs_under_fred_info() -> None:
    # struct fred_frame: pt_regs, then struct fred_info (16 bytes) at the top of the stack
    at = machine_at("fred-getpid.toml")
    step = next(k for k, s in enumerate(at.trace.steps, 1) if s.stack)
    recorded = {s.address: s.slot for s in at.trace.steps[step - 1].stack}
    names = {"cs": "fred_cs", "ss": "fred_ss"}
    for i, slot in enumerate(PT_REGS_FIELDS):
        address = at.pt_regs_base + 8 * i
        if address in recorded:
            assert recorded[address] == names.get(slot, slot)


GETPID = (SCENARIOS / "getpid.toml").read_text()


def test_the_debug_table_is_read_and_checked_for_its_shape() -> None:
    text = GETPID + '\n[debug]\nbreak = ["entry_SYSCALL_64"]\nwatch = ["regs->ip"]\n'
    text += 'show = ["walk $rsp", "x/4g $rsp"]\n'
    d = parse_scenario(text).debug
    assert d.breaks == ("entry_SYSCALL_64",) and d.watches == ("regs->ip",)
    assert d.shows == ("walk $rsp", "x/4g $rsp")
    assert read_debug(text, "f.toml") == d
    assert parse_scenario(GETPID).debug == type(d)()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('break = "entry_SYSCALL_64"', "debug.break"),
        ("watch = [1]", "debug.watch[0]"),
        ('show = ["info gdt"]', "debug.show[0]"),
        ('show = [""]', "debug.show[0]"),
        ("stop = []", "debug.stop"),
        ("break = [" + ", ".join(['"a"'] * 17) + "]", "debug.break"),
        ('watch = ["' + "a" * 300 + '"]', "debug.watch[0]"),
    ],
)
def test_a_bad_debug_table_is_a_one_line_error_naming_the_key(table: str, key: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(GETPID + "\n[debug]\n" + table + "\n", "f.toml")
    message = str(err.value)
    assert "\n" not in message and f"{key}:" in message


# Generated scenarios: random [handler.set] rewrites on each kernel, so that the exit
# takes either path and the modelled step rewrites random slots.
_FIELDS = st.sampled_from(("ip", "cx", "r11", "flags", "sp", "ax", "di", "r15"))
_VALUES = st.sampled_from((0x401007, 0x800000000000, 0x246, 0x10246, 0, 0x7FFC0000F000))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(("v5.8.13", "v6.1", "v6.12")),
    rewrites=st.dictionaries(_FIELDS, _VALUES, max_size=3),
    slot=st.sampled_from(PT_REGS_FIELDS),
    pick=st.integers(0, 10_000),
)
def test_points_hold_on_generated_scenarios(
    kernel: str, rewrites: dict[str, int], slot: str, pick: int
) -> None:
    sets = "\n".join(f"{k} = {v:#x}" for k, v in rewrites.items())
    text = f'name = "generated"\n[machine]\nkernel = "{kernel}"\n[handler.set]\n{sets}\n'
    at = MachineAt.run(parse_scenario(text, "generated.toml"))
    steps = at.trace.steps
    p = make_watch(at, 0, f"regs->{slot}", 1)
    for k, s in enumerate(steps, start=1):
        if not s.modelled:
            assert (k in p.positions) == (p.address in s.stack_writes), (slot, k)
        elif any(field == slot for field, _, _ in s.rewritten):
            assert k in p.positions, (slot, k)
    target = steps[pick % len(steps)].rip
    b = make_break(at, 0, f"*{target:#x}", 2)
    assert b.positions == tuple(i for i, s in enumerate(steps) if s.rip == target)


def test_a_break_on_a_c_function_stops_where_the_statements_enter_it() -> None:
    at = machine_at("v6.1-signal-delivery.toml")
    steps = at.trace.steps
    p = make_break(at, 0, "handle_signal", 1)
    assert p.where == "C function handle_signal" and len(p.positions) == 1
    first = steps[p.positions[0]]  # the step that runs next from the stop
    assert first.c is not None and first.c.stack[-1] == "handle_signal"
    before = steps[p.positions[0] - 1].c
    assert before is not None and "handle_signal" not in before.stack


def test_a_break_on_a_line_of_the_kernels_c_stops_before_each_statement_there() -> None:
    at = machine_at("getpid.toml")
    p = make_break(at, 0, "arch/x86/entry/common.c:392", 1)  # v5.8's sys_call_table call
    assert p.where == "C arch/x86/entry/common.c:392"
    texts = [at.trace.steps[q].text for q in p.positions]
    # the call, and after the system call's own step the store of its value
    assert texts == ["(C) sys_call_table[39](regs)", "(C) regs->ax = sys_call_table[nr](regs);"]
    assert make_break(at, 0, "common.c:392", 2).positions == p.positions
    with pytest.raises(PointError, match="no C statement"):
        make_break(at, 0, "common.c:1", 3)


def test_a_kernel_symbol_stays_a_symbol_and_a_stranger_an_error() -> None:
    at = machine_at("getpid.toml")
    assert make_break(at, 0, "entry_SYSCALL_64", 1).c_place is None
    with pytest.raises(ExprError, match="no kernel label 'no_such_function'"):
        make_break(at, 0, "no_such_function", 2)
