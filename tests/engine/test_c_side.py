"""do_syscall_64's C side, statement by statement (engine.run.c_side): against the real
kernels' full-depth traces, against the kernels' own source, and as invariants over
generated task states."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Session, parse_scenario
from engine.constants import IF
from engine.errors import ScenarioError
from engine.inspect.machine_at import MachineAt
from engine.kernel.c_source import (
    C_LINES,
    OUT_OF_LINE,
    TASKS,
    TIF_BITS,
    kstack_alloca,
    next_kstack_offset,
)
from engine.kernel.variants import KERNELS
from engine.scenario.model import TaskState
from engine.scenario.parse import load_scenario
from engine.trace import Step, StepKind, Trace
from tests.engine.test_invariants import (
    SCENARIOS,
    SHIPPED,
    assert_pt_regs_follow_the_handler,
    run_watched,
)
from tests.engine.test_oracle import scenario_text
from tui.screens.timeline import Timeline

ORACLE = Path(__file__).parent / "oracle"
#: What the full traces' C does that the model does as one step: getpid's own body
#: (its RCU read section and __task_pid_nr_ns) is the system call's single step.
BODY_CALLEES = frozenset({"__task_pid_nr_ns", "__rcu_read_lock", "__rcu_read_unlock"})


def real_c_side() -> dict[str, dict]:
    return json.loads((ORACLE / "c_side.json").read_text())


def getpid(kernel: str, task: str = "") -> Trace:
    text = (
        f'name = "getpid"\n[machine]\nkernel = "{kernel}"\n'
        f'[user]\ncode = "mov $39, %eax; syscall"\n{task}'
    )
    return Session(parse_scenario(text, "getpid.toml")).run()


def c_steps(trace: Trace) -> list[Step]:
    return [s for s in trace.steps if s.c is not None]


def entered(trace: Trace, kernel: str) -> list[str]:
    """The C functions the model enters, in order: a frame new on a step's call stack
    (against the step before) that the traced kernel calls out of line, or the system
    call's own function (its body step)."""
    out: list[str] = []
    before: tuple[str, ...] = ()
    for s in c_steps(trace):
        assert s.c is not None
        stack = s.c.stack
        common = next(
            (i for i, (a, b) in enumerate(zip(before, stack, strict=False)) if a != b),
            min(len(before), len(stack)),
        )
        for name in stack[common:]:
            if name in OUT_OF_LINE[kernel] or (s.c.key == "body" and name == stack[-1]):
                out.append(name)
        before = stack
    return out


def oracle_replay(key: str) -> Trace:
    kernel, case = key.split("_")
    real = real_c_side()[key]["kstack"]
    text = scenario_text(kernel, case) + (
        f"[task]\nkstack_offset = {real['offset']:#x}\ntsc = {real['tsc']:#x}\n"
    )
    return Session(parse_scenario(text, "oracle.toml")).run()


FULL = sorted(real_c_side())


@pytest.mark.parametrize("key", FULL)
def test_the_c_functions_are_entered_in_the_real_kernels_order(key: str) -> None:
    """6.1's and 6.12's cases a (SYSRET) and b (TF: IRET), stepped into the C."""
    kernel = key.split("_")[0]
    real = [f for f in real_c_side()[key]["entered"] if f not in BODY_CALLEES]
    assert entered(oracle_replay(key), kernel) == real


@pytest.mark.parametrize("key", FULL)
def test_the_c_side_writes_the_pt_regs_fields_the_real_one_does(key: str) -> None:
    trace = oracle_replay(key)
    changed = sorted(
        k for k, v in trace.pt_regs_at_call.items() if trace.pt_regs_after_call[k] != v
    )
    assert changed == real_c_side()[key]["pt_regs_changed"]


@pytest.mark.parametrize("key", FULL)
def test_the_random_kstack_offset_is_the_real_kernels(key: str) -> None:
    """The offset read from current, the bytes RSP moves by, and the next offset mixed
    from RDTSC, as the traced kernel computed them."""
    kernel = key.split("_")[0]
    real = real_c_side()[key]["kstack"]
    trace = oracle_replay(key)
    assert kstack_alloca(kernel, real["offset"]) == real["alloca"]
    assert next_kstack_offset(real["offset"], real["tsc"]) == real["next"]
    steps = {s.c.key: s for s in c_steps(trace) if s.c is not None}
    kstack, choose = steps["kstack"], steps["arch.kstack"]
    assert kstack.c is not None and choose.c is not None
    assert dict(kstack.c.values)["alloca"] == real["alloca"]
    assert choose.c.values[-1] == ("current->kstack_offset", real["next"])


@pytest.mark.parametrize("kernel", KERNELS)
def test_n_over_the_call_lands_on_the_first_exit_instruction(kernel: str) -> None:
    trace = getpid(kernel)
    timeline = Timeline(trace)
    call = next(i for i, s in enumerate(trace.steps) if s.text.startswith("call"))
    landed = trace.steps[timeline.next_line(call)]
    assert landed.kind is StepKind.INSTRUCTION and landed.cpl == 0
    assert landed.source_line != trace.steps[call].source_line
    assert all(s.is_c or s.text == "retq" for s in trace.steps[call + 1 : timeline.next_line(call)])
    assert len(c_steps(trace)) > 20  # and s goes through every statement on the way


@pytest.mark.parametrize("kernel", KERNELS)
def test_each_statement_names_its_line_in_that_kernels_table(kernel: str) -> None:
    for s in c_steps(getpid(kernel)):
        assert s.c is not None and s.modelled and s.code == b""
        if s.c.key == "body":
            assert (s.c.file, s.c.line) == ("", 0) and s.label == "__x64_sys_getpid"
            continue
        file, line, text = C_LINES[kernel][s.c.key]
        assert (s.c.file, s.c.line) == (file, line)
        assert s.c.stack[0] == "do_syscall_64" and s.label == s.c.stack[-1]
        assert s.source == text


def test_every_line_is_the_kernels_own_when_the_trees_are_at_hand() -> None:
    """SYSCALL_TUI_KERNEL_SRC=DIR with DIR/v5.8.13, DIR/v6.1 and DIR/v6.12 unpacked (Debian's
    linux-source-6.1 and -6.12, a 5.8 tree): each (file, line) holds its statement."""
    root = os.environ.get("SYSCALL_TUI_KERNEL_SRC")
    if not root:
        pytest.skip("SYSCALL_TUI_KERNEL_SRC names no kernel trees")
    for kernel, lines in C_LINES.items():
        for key, (file, number, text) in lines.items():
            source = (Path(root) / kernel / file).read_text(errors="replace").splitlines()
            assert source[number - 1].strip() == text, (kernel, key)


@pytest.mark.parametrize("kernel", KERNELS)
def test_need_resched_runs_the_exit_loop_once_and_clears_the_flag(kernel: str) -> None:
    trace = getpid(kernel, '[task]\nflags = ["NEED_RESCHED", "NOTIFY_RESUME"]\n')
    keys = [s.c.key for s in c_steps(trace) if s.c is not None]
    assert keys.count("loop.resched") == 1 and keys.count("loop.resume") == 1
    flags = [
        dict(s.c.values) for s in c_steps(trace) if s.c is not None and s.c.key == "loop.flags"
    ]
    name = "cached_flags" if kernel == "v5.8.13" else "ti_work"
    assert flags == [{name: 0}]  # both handled in one turn, then no work is left
    assert trace.exit == "sysret"
    plain = [s.c.key for s in c_steps(getpid(kernel)) if s.c is not None]
    assert "etump.loop" in keys and "etump.loop" not in plain


@pytest.mark.parametrize(
    ("task", "error"),
    [
        ('flags = ["SIGKILL"]', "task.flags[0]"),
        ('flags = ["NEED_RESCHED", "NEED_RESCHED"]', "already set"),
        ('flags = "NEED_RESCHED"', "expected an array"),
        ("kstack_offset = 0x100000000", "task.kstack_offset"),
        ("tsc = -1", "task.tsc"),
        ("pid = 3", "unknown key"),
    ],
)
def test_a_bad_task_table_is_a_one_line_error(task: str, error: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(f'name = "x"\n[user]\ncode = "syscall"\n[task]\n{task}\n', "x.toml")
    assert error in str(info.value) and "\n" not in str(info.value)


def assert_c_side_holds(trace: Trace, kernel: str, task: TaskState) -> None:
    """RSP is the call's minus the alloca from kstack to the return, RFLAGS.IF is set
    exactly where the C enables interrupts, and the next offset is ror32 ^ tsc."""
    steps = c_steps(trace)
    if not steps:
        return
    first = steps[0]
    call_rsp = trace.steps[first.index - 1].regs.rsp  # the call has pushed its return
    irq = False
    for s in steps:
        assert s.c is not None
        key = s.c.key
        if key in ("enter.irq", "loop.irq"):
            irq = True
        elif key in ("irq.off", "loop.irqoff"):
            irq = False
        assert bool(s.regs.rflags & IF) == irq, (key, hex(s.regs.rflags))
        if TASKS[kernel].kstack_offset is not None and key != "ret":
            assert s.regs.rsp == call_rsp - kstack_alloca(kernel, task.kstack_offset), key
        if key == "arch.kstack":
            assert s.c.values[-1][1] == next_kstack_offset(task.kstack_offset, task.tsc)
        if key == "ret":
            assert s.regs.rsp == call_rsp
    keys = [s.c.key for s in steps if s.c is not None]
    if "exit" in keys:  # exit() never gets there: do_exit() does not return
        assert keys.count("loop.resched") == ("NEED_RESCHED" in task.flags)


@settings(max_examples=30, deadline=None)
@given(
    kernel=st.sampled_from(KERNELS),
    nr=st.sampled_from((39, 1, 60, 500, -1 & 0xFFFFFFFF)),
    flags=st.lists(st.sampled_from(sorted(TIF_BITS)), unique=True),
    offset=st.integers(0, 0xFFFFFFFF),
    tsc=st.integers(0, 2**64 - 1),
)
def test_generated_task_states_hold_the_machine_and_the_c_side(
    kernel: str, nr: int, flags: list[str], offset: int, tsc: int
) -> None:
    text = (
        f'name = "generated"\n[machine]\nkernel = "{kernel}"\n'
        f'[user]\ncode = "mov ${nr:#x}, %eax; mov $1, %edi; syscall"\n'
    )
    sc = parse_scenario(text, "generated.toml")
    task = TaskState(tuple(flags), offset, tsc)
    sc = dataclasses.replace(sc, task=task)
    trace = run_watched(Session(sc), sc)
    assert_pt_regs_follow_the_handler(trace)
    assert_c_side_holds(trace, kernel, task)


#: the values a statement names that are registers, pt_regs slots or current's fields
FLAG_VALUES = {"ti_work", "cached_flags", "thread_info.flags"}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_statements_values_are_the_machines_after_it(name: str) -> None:
    """Over every step of every shipped scenario: a value a C statement shows as RSP,
    RFLAGS.IF, a pt_regs slot (regs->X) or current's thread flags is what the machine
    holds once the statement is done (the registers, the task stack, and the task_struct
    in memory at that step)."""
    at = MachineAt.run(load_scenario(SCENARIOS / name))
    kernel = at.trace.kernel
    task = TASKS[kernel]
    current = at.machine.layout.task_struct
    for k, s in enumerate(at.trace.steps, start=1):
        if s.c is None:
            continue
        slots = {w.slot: w.value for w in s.stack}
        for value_name, value in s.c.values:
            where = f"{name} step {k} {s.c.key} {value_name}"
            if value_name == "rsp":
                assert s.regs.rsp == value, where
            elif value_name == "RFLAGS.IF":
                assert bool(s.regs.rflags & IF) == bool(value), where
            elif value_name.startswith("regs->") and value_name[6:] in slots:
                assert slots[value_name[6:]] == value, where
            elif value_name in FLAG_VALUES and s.c.key in ("etump.flags", "loop.flags"):
                raw = at.read_virt(k, at.machine.kernel_cr3, current + task.flags, 8)
                assert raw is not None and int.from_bytes(raw, "little") == value, where
