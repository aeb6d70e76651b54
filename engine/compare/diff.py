"""Two recorded runs side by side: the aligned rows, and where the runs part.

Pure functions over two :class:`~engine.trace.Trace` objects (aligned by
engine.compare.align); nothing here runs the machine or imports UI code.

A row of the alignment differs when its steps do not have the same key (the *path*
differs), when the events they raised differ (a check verdict, a fault, the exit), or
when the registers or pt_regs slots they leave differ.  Kernel RIPs are not compared (two
builds place code differently; the instruction is compared instead), user RIPs are.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from itertools import compress
from typing import Any, Literal

from engine.checks import decided_exit
from engine.compare.align import align_keys, step_keys
from engine.constants import PT_REGS_FIELDS
from engine.scenario.model import CPU_MODEL_VENDORS, Scenario
from engine.scenario.parse import with_kernel
from engine.trace import REG_NAMES, CheckResult, EventKind, ExitPath, Regs, Step, Trace

#: How an aligned row's two sides relate.
#:  same     both sides ran the same instruction of the same source line
#:  similar  both sides are on the same source line, with another instruction
#:  left     only the left run has this step (a gap on the right)
#:  right    only the right run has this step
RowKind = Literal["same", "similar", "left", "right"]

#: What can differ at a row (or at the start, before any step).
Aspect = Literal["path", "events", "checks", "registers", "pt_regs"]

#: The aspects that mean the runs went (or are about to go) different ways, as opposed to
#: carrying different values along the same way.
PATH_ASPECTS: frozenset[str] = frozenset({"path", "events", "checks"})

#: Events that decide how a run ends.  A row where the runs differ in these (or in a
#: check's verdict) is where they *decide* differently.
DECISIVE_EVENTS: frozenset[str] = frozenset(
    {
        EventKind.SYSRET,
        EventKind.IRET,
        EventKind.FAULT,
        EventKind.EXIT,
        EventKind.CAP,
        EventKind.UNSUPPORTED,
    }
)


@dataclass(frozen=True, slots=True)
class ValuePair:
    """One named value that differs between the runs; None where a side has no such value."""

    name: str
    left: int | None
    right: int | None


@dataclass(frozen=True, slots=True)
class CheckPair:
    """A SYSRET check with another verdict in each run ("pass", "fail", "not_reached")."""

    name: str
    left: CheckResult
    right: CheckResult


@dataclass(frozen=True, slots=True)
class AlignedRow:
    """One row of the side-by-side view: a step of each run, or a step and a gap."""

    left: int | None  # index into the left trace's steps
    right: int | None
    kind: RowKind
    events_differ: bool  # the two steps raised different kinds of events
    decides: bool  # the runs decide differently here: a verdict, the exit, a fault
    checks: tuple[CheckPair, ...]  # checks both runs decided, with other verdicts
    verdicts: tuple[ExitPath, ExitPath] | None  # both decided, on other exits: (A, B)
    registers: tuple[ValuePair, ...]  # registers that differ after this row
    pt_regs: tuple[ValuePair, ...]  # pt_regs slots that differ after this row

    @property
    def aspects(self) -> tuple[Aspect, ...]:
        """What differs at this row, in the order a reader wants it."""
        out: list[Aspect] = []
        if self.kind != "same":
            out.append("path")
        if self.events_differ:
            out.append("events")
        if self.checks or self.verdicts:
            out.append("checks")
        if self.registers:
            out.append("registers")
        if self.pt_regs:
            out.append("pt_regs")
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Difference:
    """Where something first differs: a position in the aligned view and what differs."""

    position: int  # 0: the start, before any step; k: right after row k - 1
    left: int | None  # the step each side ran last at that position (None: none yet)
    right: int | None
    aspects: tuple[Aspect, ...]
    registers: tuple[ValuePair, ...]
    pt_regs: tuple[ValuePair, ...]
    checks: tuple[CheckPair, ...] = ()
    verdicts: tuple[ExitPath, ExitPath] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run ended, in the terms the two are compared on."""

    exit: ExitPath | None
    failed_check: str | None
    fault: str | None  # "#GP", ... or None
    fault_cpl: int | None
    final_cpl: int
    final_rip: int
    steps: int

    @classmethod
    def of(cls, trace: Trace) -> Outcome:
        final = trace.final or trace.initial
        f = trace.fault
        return cls(
            trace.exit,
            trace.failed_check,
            f.name if f else None,
            f.cpl if f else None,
            trace.final_cpl,
            final.rip,
            len(trace.steps),
        )


OUTCOME_FIELDS = ("exit", "failed_check", "fault", "fault_cpl", "final_cpl", "final_rip")


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two runs aligned step by step, with the first places they differ."""

    left: Trace
    right: Trace
    rows: tuple[AlignedRow, ...]
    start: tuple[ValuePair, ...]  # registers that differ before the first step
    first_difference: Difference | None  # the first position where anything differs
    paths_part: Difference | None  # the first row where the steps themselves differ
    decision: Difference | None  # the first row where the runs decide differently
    outcome_differs: tuple[str, ...]  # names from OUTCOME_FIELDS
    pt_regs_at_call: tuple[ValuePair, ...]  # what do_syscall_64 was given
    pt_regs_after_call: tuple[ValuePair, ...]  # what it left for the exit
    positions: tuple[tuple[int | None, int | None], ...] = ((None, None),)
    """For each position 0 .. len(rows): the step each run has run last there."""
    deciding: tuple[int | None, int | None] = (None, None)
    """Each run's own deciding step (the index of the step after which its checks have
    decided its exit): two kernels that check in different places decide at different
    rows, so the row where the verdicts first differ holds one run's decision and an
    unrelated step of the other's."""

    @property
    def identical(self) -> bool:
        return self.first_difference is None and not self.outcome_differs

    @property
    def left_outcome(self) -> Outcome:
        return Outcome.of(self.left)

    @property
    def right_outcome(self) -> Outcome:
        return Outcome.of(self.right)

    def counts(self) -> dict[RowKind, int]:
        out: dict[RowKind, int] = {"same": 0, "similar": 0, "left": 0, "right": 0}
        for row in self.rows:
            out[row.kind] += 1
        return out

    def steps_at(self, position: int) -> tuple[int | None, int | None]:
        """The step each side has run last at *position* (0 .. len(rows)); None: none yet."""
        return self.positions[position]


# -- alignment ------------------------------------------------------------------------


_REG_VALUES = operator.attrgetter(*REG_NAMES)
_RIP = REG_NAMES.index("rip")


def register_differences(a: Regs, b: Regs) -> tuple[ValuePair, ...]:
    """Registers holding different values; a kernel RIP is where a build put the code, so
    RIP only counts while both are user addresses."""
    va, vb = _REG_VALUES(a), _REG_VALUES(b)
    if va == vb:  # most rows of two similar runs: one tuple comparison, in C
        return ()
    out = []
    # the indices of the registers that differ, found in C
    for k in compress(range(len(REG_NAMES)), map(operator.ne, va, vb)):
        x, y = va[k], vb[k]
        if k == _RIP and (x >> 63 or y >> 63):
            continue
        out.append(ValuePair(REG_NAMES[k], x, y))
    return tuple(out)


def _pt_regs(step: Step | None) -> dict[str, int]:
    if step is None:
        return {}
    return {s.slot: s.value for s in step.stack if s.slot in PT_REGS_FIELDS}


def slot_differences(a: dict[str, int], b: dict[str, int]) -> tuple[ValuePair, ...]:
    """pt_regs slots with different values (or written on one side only), in struct order."""
    return tuple(
        ValuePair(f, a.get(f), b.get(f))
        for f in PT_REGS_FIELDS
        if (f in a or f in b) and a.get(f) != b.get(f)
    )


def check_differences(a: Step | None, b: Step | None) -> tuple[CheckPair, ...]:
    """Checks both runs have decided, with other verdicts, as of these steps.

    A check one run has not reached yet is no difference: two kernels make their checks
    at different points (6.12 in C after the call).  A kernel that names its checks
    differently is compared on the names both share.
    """
    if a is None or b is None:
        return ()
    theirs = {c.name: c.result for c in b.checks}
    return tuple(
        CheckPair(c.name, c.result, theirs[c.name])
        for c in a.checks
        if c.name in theirs
        and theirs[c.name] != c.result
        and CheckResult.NOT_REACHED not in (c.result, theirs[c.name])
    )


def verdict(step: Step | None) -> ExitPath | None:
    """The exit the checks have decided on as of *step*: IRET once one failed, SYSRET once
    all passed (or were removed), None before that."""
    return None if step is None else decided_exit(step.checks)


def verdict_difference(a: Step | None, b: Step | None) -> tuple[ExitPath, ExitPath] | None:
    """Both runs' checks have decided, on different exits: whatever each kernel calls its
    checks, this is where they decide differently."""
    va, vb = verdict(a), verdict(b)
    return (va, vb) if va is not None and vb is not None and va != vb else None


#: No record yet (a memo in :func:`compare_traces` that matches nothing).
_NOT_YET = object()


def compare_traces(left: Trace, right: Trace) -> Comparison:
    """Align two runs and find where they first differ."""
    rows = _aligned_rows(left, right)
    start = register_differences(left.initial, right.initial)
    first, parts, decision, positions = _landmarks(rows, start)
    oa, ob = Outcome.of(left), Outcome.of(right)
    outcome = tuple(f for f in OUTCOME_FIELDS if _outcome_differs(f, oa, ob))
    return Comparison(
        left=left,
        right=right,
        rows=tuple(rows),
        start=start,
        first_difference=first,
        paths_part=parts,
        decision=decision,
        outcome_differs=outcome,
        pt_regs_at_call=slot_differences(left.pt_regs_at_call, right.pt_regs_at_call),
        pt_regs_after_call=slot_differences(left.pt_regs_after_call, right.pt_regs_after_call),
        positions=positions,
        deciding=(deciding_step(left), deciding_step(right)),
    )


def deciding_step(trace: Trace) -> int | None:
    """The index of the step after which the run's checks have decided its exit (None:
    they never do, as on FRED, or before a fault)."""
    decided = None
    for step in trace.steps:
        # The recorder shares the checks of consecutive steps while they are equal.
        if step.checks is decided:
            continue
        if verdict(step) is not None:
            return step.index
        decided = step.checks
    return None


def _aligned_rows(left: Trace, right: Trace) -> list[AlignedRow]:
    """The two runs step beside step, each row with what differs there."""
    ka, ea = step_keys(left)
    kb, eb = step_keys(right)
    kinds_a = frozenset().union(*ea)
    kinds_b = frozenset().union(*eb)
    rows: list[AlignedRow] = []
    last_a: Step | None = None
    last_b: Step | None = None
    # The recorder shares a step's registers, stacks and checks with the step before when
    # they are equal, so neighbouring rows mostly hold the very records the row before
    # compared: each of the three comparisons keeps its last pair of records (by
    # identity; the traces keep them alive) and its answer.
    seen_checks: tuple[Any, Any, Any] = (_NOT_YET, _NOT_YET, None)
    seen_regs: tuple[Any, Any, Any] = (_NOT_YET, _NOT_YET, None)
    seen_slots: tuple[Any, Any, Any] = (_NOT_YET, _NOT_YET, None)
    for i, j in align_keys(ka, kb, ea, eb):
        sa = left.steps[i] if i is not None else None
        sb = right.steps[j] if j is not None else None
        last_a = sa or last_a
        last_b = sb or last_b
        kind: RowKind
        if sa is not None and sb is not None:
            assert i is not None and j is not None
            kind = "same" if ka[i] == kb[j] else "similar"
            events_differ = ea[i] != eb[j]
            decisive = (ea[i] ^ eb[j]) & DECISIVE_EVENTS
        else:
            kind = "left" if sa is not None else "right"
            events_differ = False
            # An exit or fault the other run never has, raised where it has no step.
            if i is not None:
                decisive = (ea[i] - kinds_b) & DECISIVE_EVENTS
            else:
                assert j is not None
                decisive = (eb[j] - kinds_a) & DECISIVE_EVENTS
        ca = last_a.checks if last_a is not None else None
        cb = last_b.checks if last_b is not None else None
        if ca is not seen_checks[0] or cb is not seen_checks[1]:
            answer = (check_differences(last_a, last_b), verdict_difference(last_a, last_b))
            seen_checks = (ca, cb, answer)
        checks, verdicts = seen_checks[2]
        regs_a = last_a.regs if last_a is not None else left.initial
        regs_b = last_b.regs if last_b is not None else right.initial
        if regs_a is not seen_regs[0] or regs_b is not seen_regs[1]:
            seen_regs = (regs_a, regs_b, register_differences(regs_a, regs_b))
        sa_stack = last_a.stack if last_a is not None else None
        sb_stack = last_b.stack if last_b is not None else None
        if sa_stack is not seen_slots[0] or sb_stack is not seen_slots[1]:
            slots = slot_differences(_pt_regs(last_a), _pt_regs(last_b))
            seen_slots = (sa_stack, sb_stack, slots)
        rows.append(
            AlignedRow(
                i,
                j,
                kind,
                events_differ,
                bool(checks or verdicts or decisive),
                checks,
                verdicts,
                seen_regs[2],
                seen_slots[2],
            )
        )
    return rows


def _landmarks(
    rows: list[AlignedRow], start: tuple[ValuePair, ...]
) -> tuple[
    Difference | None, Difference | None, Difference | None,
    tuple[tuple[int | None, int | None], ...],
]:  # fmt: skip
    """The first difference, where the paths part and where the verdicts part, and each
    row's (left, right) step positions."""
    first: Difference | None = None
    if start:
        first = Difference(0, None, None, ("registers",), start, ())
    parts: Difference | None = None
    decision: Difference | None = None
    last_left: int | None = None
    last_right: int | None = None
    positions: list[tuple[int | None, int | None]] = [(None, None)]
    for row in rows:
        last_left = row.left if row.left is not None else last_left
        last_right = row.right if row.right is not None else last_right
        positions.append((last_left, last_right))
    for k, row in enumerate(rows, start=1):
        aspects = row.aspects
        if not aspects and not row.decides:
            continue
        wanted = first is None or row.decides or (parts is None and PATH_ASPECTS & set(aspects))
        if not wanted:
            continue
        diff = Difference(
            k, *positions[k], aspects, row.registers, row.pt_regs, row.checks, row.verdicts
        )
        first = first or diff
        if parts is None and PATH_ASPECTS.intersection(aspects):
            parts = diff
        if row.decides:
            decision = diff
            break  # neither of the others can come after it
    return first, parts, decision, tuple(positions)


def _outcome_differs(name: str, a: Outcome, b: Outcome) -> bool:
    x, y = getattr(a, name), getattr(b, name)
    if name == "final_rip" and (x >> 63 or y >> 63):
        return False  # where each build put its code, as with the registers
    return bool(x != y)


# -- scenarios to compare ---------------------------------------------------------------


def variant(
    sc: Scenario,
    kernel: str | None = None,
    cpu: str | None = None,
    fred: bool | None = None,
    cpu_model: str | None = None,
) -> Scenario:
    """The same scenario on another kernel or CPU vendor (names already validated), or
    with FRED off or on.  Either FRED side is 6.12 on a FRED CPU without PTI: such a CPU
    is not affected by Meltdown, so 6.12 leaves PTI off by default, and with PTI on it
    would turn FRED off (pti_init()); the two sides then differ by FRED alone."""
    if fred is not None:
        sc = with_kernel(sc, "v6.12")
        machine = dataclasses.replace(sc.machine, fred=fred, pti=False, removed_checks=())
        sc = dataclasses.replace(sc, machine=machine)
        if fred and "exit" in sc.expect.given:
            # an [expect] exit of the IDT path says nothing about ERETU
            given = tuple(k for k in sc.expect.given if k not in ("exit", "failed_check"))
            expect = dataclasses.replace(sc.expect, exit=None, failed_check=None, given=given)
            sc = dataclasses.replace(sc, expect=expect)
    if kernel is not None:
        sc = with_kernel(sc, kernel)
    if cpu is not None:
        sc = dataclasses.replace(sc, machine=dataclasses.replace(sc.machine, cpu=cpu))
    if cpu_model is not None:
        # a model names its vendor (qemu-max keeps the scenario's)
        vendor = CPU_MODEL_VENDORS.get(cpu_model, sc.machine.cpu)
        machine = dataclasses.replace(sc.machine, cpu_model=cpu_model, cpu=vendor)
        sc = dataclasses.replace(sc, machine=machine)
    return sc


__all__ = [
    "AlignedRow", "CheckPair", "Comparison", "Difference", "Outcome", "ValuePair",
    "compare_traces", "variant",
]  # fmt: skip
