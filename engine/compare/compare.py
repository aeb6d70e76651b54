"""Two recorded runs side by side: which steps correspond, and where the runs part.

Pure functions over two :class:`~engine.trace.Trace` objects; nothing here runs the
machine or imports UI code.

Alignment.  Two runs of the entry code do mostly the same work in the same order, but
one may run steps the other lacks (another kernel's mitigation, the IRET path instead
of SYSRET, a PCID-less CR3 switch).  Corresponding steps are found by what they *do*,
not by their index: each step gets a key made of where it is (user code or the
kernel), its source line's text (comments and spacing dropped, so that two kernels'
renditions of the same line match) and its instruction with numbers blanked (branch
targets, per-CPU offsets and immediates move between builds).  A global sequence
alignment (Needleman-Wunsch) then pairs the steps: the same key scores most, the same
source line with another instruction less, a step present on one side only is a gap.
The common prefix and suffix are matched first, so the quadratic part only covers
where the runs really differ.

Divergence.  A row of the alignment differs when its steps do not have the same key
(the *path* differs), when the events they raised differ (a check verdict, a fault,
the exit), or when the registers or pt_regs slots they leave differ.  Kernel RIPs are
not compared (two builds place code differently; the instruction is compared instead),
user RIPs are.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from engine.constants import PT_REGS_FIELDS
from engine.errors import escape
from engine.i18n import N_
from engine.scenario.model import Scenario
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

#: Above this many cells a block is split at sure pairs (patience diff) before it is
#: aligned, so that a 10,000-step run never costs 10^8 Python operations.
FULL_ALIGNMENT_CELLS = 1_500_000

SCORE_SAME = 3
SCORE_SIMILAR = 1
SCORE_EVENTS = 1  # bonus when both steps raised the same kinds of events
GAP = -1
NEVER = -(10**9)

_COMMENT = re.compile(r"/\*.*?\*/|//.*$")
_NUMBER = re.compile(r"-?(?:0x[0-9a-fA-F]+|\d+)")


@dataclass(frozen=True, slots=True)
class StepKey:
    """What a step does, as far as lining up two runs goes."""

    region: Literal["user", "kernel"]
    source: str  # the source line (or user statement), comments and spacing dropped
    instruction: str  # Capstone's text with numbers blanked

    @classmethod
    def of(cls, step: Step) -> StepKey:
        user = step.source_line is None and step.cpl == 3
        return _step_key(user, step.source, step.text)


@functools.lru_cache(maxsize=4096)
def _step_key(user: bool, source: str, text: str) -> StepKey:
    # A run of 100,000 steps is a few hundred distinct instructions, each met many times.
    instruction = _NUMBER.sub("#", " ".join(text.split()))
    if user:
        return StepKey("user", "", instruction)
    return StepKey("kernel", " ".join(_COMMENT.sub("", source).split()), instruction)


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


def _score(a: StepKey, b: StepKey, ea: frozenset[str], eb: frozenset[str]) -> int:
    if a.region != b.region:
        return NEVER
    if a == b:
        base = SCORE_SAME
    elif a.region == "kernel" and a.source == b.source:
        base = SCORE_SIMILAR
    elif a.region == "user" and a.instruction.split(" ", 1)[0] == b.instruction.split(" ", 1)[0]:
        base = SCORE_SIMILAR  # two user programs doing the same kind of thing
    else:
        return NEVER
    return base + (SCORE_EVENTS if ea == eb else 0)


def _needleman_wunsch(
    ka: list[StepKey], kb: list[StepKey], ea: list[frozenset[str]], eb: list[frozenset[str]]
) -> list[tuple[int | None, int | None]]:
    """Optimal global alignment of two short key sequences (indices relative to the lists)."""
    n, m = len(ka), len(kb)
    if n == 0 or m == 0:
        return [(i, None) for i in range(n)] + [(None, j) for j in range(m)]
    # score[i][j]: best score of ka[:i] against kb[:j]; move[i][j]: 0 diag, 1 up, 2 left
    score = [[0] * (m + 1) for _ in range(n + 1)]
    move = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        score[i][0] = i * GAP
        move[i][0] = 1
    for j in range(1, m + 1):
        score[0][j] = j * GAP
        move[0][j] = 2
    for i in range(1, n + 1):
        a, e_a = ka[i - 1], ea[i - 1]
        prev, cur, mv = score[i - 1], score[i], move[i]
        for j in range(1, m + 1):
            s = _score(a, kb[j - 1], e_a, eb[j - 1])
            diag = prev[j - 1] + s if s > NEVER else NEVER
            up = prev[j] + GAP
            left = cur[j - 1] + GAP
            # Ties prefer the pairing, then the left run's step first: gaps on the right
            # read as "only the left run does this here".
            if diag >= up and diag >= left:
                cur[j], mv[j] = diag, 0
            elif up >= left:
                cur[j], mv[j] = up, 1
            else:
                cur[j], mv[j] = left, 2
    out: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        mv_ij = move[i][j]
        if i > 0 and j > 0 and mv_ij == 0:
            out.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and (mv_ij == 1 or j == 0):
            out.append((i - 1, None))
            i -= 1
        else:
            out.append((None, j - 1))
            j -= 1
    out.reverse()
    return out


Pairs = list[tuple[int | None, int | None]]


def _patience_anchors(
    ka: list[StepKey], kb: list[StepKey], a0: int, a1: int, b0: int, b1: int
) -> list[tuple[int, int]]:
    """Steps whose key occurs once in each block, paired, keeping the longest run that is
    in order on both sides (patience diff): sure pairs to split a long block at."""
    count_a = Counter(ka[a0:a1])
    count_b = Counter(kb[b0:b1])
    where_b = {kb[j]: j for j in range(b0, b1) if count_b[kb[j]] == 1}
    candidates = [
        (i, where_b[ka[i]]) for i in range(a0, a1) if count_a[ka[i]] == 1 and ka[i] in where_b
    ]
    # Longest increasing subsequence of the right-hand positions (patience sorting).
    tails: list[int] = []  # index into candidates of the smallest tail of each length
    tail_values: list[int] = []  # the right-hand position of each of those tails
    back: list[int] = []
    for k, (_, j) in enumerate(candidates):
        pos = bisect.bisect_left(tail_values, j)
        back.append(tails[pos - 1] if pos else -1)
        if pos == len(tails):
            tails.append(k)
            tail_values.append(j)
        else:
            tails[pos] = k
            tail_values[pos] = j
    out: list[tuple[int, int]] = []
    k = tails[-1] if tails else -1
    while k >= 0:
        out.append(candidates[k])
        k = back[k]
    out.reverse()
    return out


def _align_keys(
    ka: list[StepKey], kb: list[StepKey], ea: list[frozenset[str]], eb: list[frozenset[str]]
) -> Pairs:
    """The alignment of two key sequences (see the module's docstring).

    Blocks are handled from a work list, not by recursion, so that a long run cannot hit
    Python's recursion limit: each block loses its common prefix and suffix, then is
    aligned whole when small enough, else split at patience anchors, else (nothing sure
    to split at) left as one run of gaps on each side.
    """
    pairs: Pairs = []
    work: list[tuple[int, int, int, int] | tuple[int, int]] = [(0, len(ka), 0, len(kb))]
    while work:
        item = work.pop()
        if len(item) == 2:
            pairs.append(item)
            continue
        a0, a1, b0, b1 = item
        while a0 < a1 and b0 < b1 and ka[a0] == kb[b0]:
            pairs.append((a0, b0))
            a0, b0 = a0 + 1, b0 + 1
        tail: list[tuple[int, int]] = []
        while a0 < a1 and b0 < b1 and ka[a1 - 1] == kb[b1 - 1]:
            a1, b1 = a1 - 1, b1 - 1
            tail.append((a1, b1))
        work.extend(tail)  # last in, first out: the tail, built backwards, pops in order
        if (a1 - a0) * (b1 - b0) <= FULL_ALIGNMENT_CELLS:
            part = _needleman_wunsch(ka[a0:a1], kb[b0:b1], ea[a0:a1], eb[b0:b1])
            pairs.extend(
                (None if i is None else a0 + i, None if j is None else b0 + j) for i, j in part
            )
            continue
        anchors = _patience_anchors(ka, kb, a0, a1, b0, b1)
        if not anchors:
            pairs.extend((i, None) for i in range(a0, a1))
            pairs.extend((None, j) for j in range(b0, b1))
            continue
        # Blocks between the anchors, pushed in reverse so they pop out in order.
        segments: list[tuple[int, int, int, int] | tuple[int, int]] = []
        i0, j0 = a0, b0
        for i, j in anchors:
            segments.append((i0, i, j0, j))
            segments.append((i, j))
            i0, j0 = i + 1, j + 1
        segments.append((i0, a1, j0, b1))
        work.extend(reversed(segments))
    return pairs


def step_keys(trace: Trace) -> tuple[list[StepKey], list[frozenset[str]]]:
    """Each step's key and the kinds of the events it raised."""
    return (
        [StepKey.of(s) for s in trace.steps],
        [frozenset(e.kind for e in s.events) for s in trace.steps],
    )


def align(left: Trace, right: Trace) -> Pairs:
    """Pairs of step indices (None for a gap) that put corresponding steps side by side."""
    ka, ea = step_keys(left)
    kb, eb = step_keys(right)
    return _align_keys(ka, kb, ea, eb)


# -- differences ------------------------------------------------------------------------


def register_differences(a: Regs, b: Regs) -> tuple[ValuePair, ...]:
    """Registers holding different values; a kernel RIP is where a build put the code, so
    RIP only counts while both are user addresses."""
    va, vb = a.values(), b.values()
    if va == vb:  # most rows of two similar runs: one tuple comparison, in C
        return ()
    out = []
    for name, x, y in zip(REG_NAMES, va, vb, strict=True):
        if x == y:
            continue
        if name == "rip" and (x >> 63 or y >> 63):
            continue
        out.append(ValuePair(name, x, y))
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
    if step is None or not step.checks:
        return None
    results = [c.result for c in step.checks]
    if CheckResult.FAIL in results:
        return ExitPath.IRET
    if all(r in (CheckResult.PASS, CheckResult.REMOVED) for r in results):
        return ExitPath.SYSRET
    return None


def verdict_difference(a: Step | None, b: Step | None) -> tuple[ExitPath, ExitPath] | None:
    """Both runs' checks have decided, on different exits: whatever each kernel calls its
    checks, this is where they decide differently."""
    va, vb = verdict(a), verdict(b)
    return (va, vb) if va is not None and vb is not None and va != vb else None


def compare_traces(left: Trace, right: Trace) -> Comparison:
    """Align two runs and find where they first differ."""
    ka, ea = step_keys(left)
    kb, eb = step_keys(right)
    kinds_a = frozenset().union(*ea)
    kinds_b = frozenset().union(*eb)
    rows: list[AlignedRow] = []
    last_a: Step | None = None
    last_b: Step | None = None
    for i, j in _align_keys(ka, kb, ea, eb):
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
        checks = check_differences(last_a, last_b)
        verdicts = verdict_difference(last_a, last_b)
        regs_a = last_a.regs if last_a is not None else left.initial
        regs_b = last_b.regs if last_b is not None else right.initial
        rows.append(
            AlignedRow(
                i,
                j,
                kind,
                events_differ,
                bool(checks or verdicts or decisive),
                checks,
                verdicts,
                register_differences(regs_a, regs_b),
                slot_differences(_pt_regs(last_a), _pt_regs(last_b)),
            )
        )
    start = register_differences(left.initial, right.initial)
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
        positions=tuple(positions),
    )


def _outcome_differs(name: str, a: Outcome, b: Outcome) -> bool:
    x, y = getattr(a, name), getattr(b, name)
    if name == "final_rip" and (x >> 63 or y >> 63):
        return False  # where each build put its code, as with the registers
    return bool(x != y)


# -- scenarios to compare ---------------------------------------------------------------


def variant(sc: Scenario, kernel: str | None = None, cpu: str | None = None) -> Scenario:
    """The same scenario on another kernel or CPU vendor (names already validated)."""
    if kernel is not None:
        sc = with_kernel(sc, kernel)
    if cpu is not None:
        sc = dataclasses.replace(sc, machine=dataclasses.replace(sc.machine, cpu=cpu))
    return sc


def printable(text: str) -> str:
    """*text* with control characters escaped (engine.errors.escape): a scenario's name
    is untrusted, and the summary goes to a terminal."""
    return escape(text)


def run_label(trace: Trace) -> str:
    """How a run is named beside the other: scenario · kernel · CPU."""
    return f"{printable(trace.scenario)} · {trace.kernel} · {trace.cpu}"


# -- JSON and text ---------------------------------------------------------------------


Landmark = Literal["first", "paths", "decision"]
LANDMARK_TITLES: dict[Landmark, str] = {
    "first": N_("first difference"),
    "paths": N_("paths part"),
    "decision": N_("decisions differ"),
}


def landmarks(c: Comparison) -> list[tuple[tuple[Landmark, ...], Difference]]:
    """The first difference, where the paths part and where the runs decide differently,
    in order, those at one position together."""
    out: list[tuple[tuple[Landmark, ...], Difference]] = []
    named: tuple[tuple[Landmark, Difference | None], ...] = (
        ("first", c.first_difference),
        ("paths", c.paths_part),
        ("decision", c.decision),
    )
    for name, d in named:
        if d is None:
            continue
        if out and out[-1][1].position == d.position:
            out[-1] = ((*out[-1][0], name), out[-1][1])
        else:
            out.append(((name,), d))
    return out


def _hx(value: int | None) -> str | None:
    return None if value is None else f"{value:#x}"


def _pairs_json(pairs: tuple[ValuePair, ...]) -> list[dict[str, Any]]:
    return [{"name": p.name, "left": _hx(p.left), "right": _hx(p.right)} for p in pairs]


def _step_brief(trace: Trace, index: int | None) -> dict[str, Any] | None:
    if index is None:
        return None
    s = trace.steps[index]
    return {
        "index": index,
        "step": index + 1,  # as `trace --json` numbers it
        "rip": f"{s.rip:#x}",
        "text": s.text,
        "source_line": s.source_line,
        "source": s.source,
        "cpl": s.cpl,
        "events": [e.kind for e in s.events],
    }


def _difference_json(c: Comparison, d: Difference | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "position": d.position,
        "left": _step_brief(c.left, d.left),
        "right": _step_brief(c.right, d.right),
        "what": list(d.aspects),
        "registers": _pairs_json(d.registers),
        "pt_regs": _pairs_json(d.pt_regs),
        "checks": [{"name": c.name, "left": c.left, "right": c.right} for c in d.checks],
        "verdicts": None if d.verdicts is None else {"left": d.verdicts[0], "right": d.verdicts[1]},
    }


def _run_json(trace: Trace) -> dict[str, Any]:
    o = Outcome.of(trace)
    return {
        "scenario": trace.scenario,
        "path": trace.path,
        "kernel": trace.kernel,
        "cpu": trace.cpu,
        "machine": {"paging": trace.paging, "pti": trace.pti, "pcid": trace.pcid},
        "steps": o.steps,
        "exit": o.exit,
        "failed_check": o.failed_check,
        "fault": None if o.fault is None else {"name": o.fault, "cpl": o.fault_cpl},
        "final": {"cpl": o.final_cpl, "rip": _hx(o.final_rip)},
        "stopped": trace.stopped,
        "not_removed": list(trace.not_removed),
    }


def comparison_json(c: Comparison) -> dict[str, Any]:
    """The comparison as plain JSON data (the contract of ``syscall-tui compare --json``)."""
    return {
        "left": _run_json(c.left),
        "right": _run_json(c.right),
        "identical": c.identical,
        "counts": dict(c.counts()),
        "start": _pairs_json(c.start),
        "first_difference": _difference_json(c, c.first_difference),
        "paths_part": _difference_json(c, c.paths_part),
        "decision": _difference_json(c, c.decision),
        "outcome_differs": list(c.outcome_differs),
        "pt_regs": {
            "at_call": _pairs_json(c.pt_regs_at_call),
            "after_call": _pairs_json(c.pt_regs_after_call),
        },
        "rows": [
            {
                "left": r.left,
                "right": r.right,
                "kind": r.kind,
                "what": list(r.aspects),
                "checks": [c.name for c in r.checks],
                "registers": [p.name for p in r.registers],
                "pt_regs": [p.name for p in r.pt_regs],
            }
            for r in c.rows
        ],
    }


def _values(pairs: tuple[ValuePair, ...]) -> str:
    return ", ".join(f"{p.name} {_hx(p.left) or '—'} ≠ {_hx(p.right) or '—'}" for p in pairs)


def _side(trace: Trace, index: int | None) -> str:
    if index is None:
        return "(no step yet)"
    s = trace.steps[index]
    where = f"line {s.source_line}" if s.source_line is not None else "user"
    events = f" [{', '.join(e.kind for e in s.events)}]" if s.events else ""
    source = printable(" ".join(s.source.split()))
    # numbered as the trace table and the app number it: step 1 is the first instruction
    return f"step {index + 1} {s.text} ({where}: {source}){events}"


def _exit_words(o: Outcome) -> str:
    words = o.exit or "no exit"
    if o.failed_check:
        words += f" ({o.failed_check} failed)"
    if o.fault:
        words += f", {o.fault} at CPL {o.fault_cpl}"
    elif o.final_cpl == 3 and o.exit:
        words += f" to {o.final_rip:#x}"
    return words


def summary_lines(c: Comparison) -> list[str]:
    """A few lines saying where the two runs part, for ``syscall-tui compare`` without a TUI."""
    counts = c.counts()
    out = [
        f"A  {run_label(c.left)} · {len(c.left.steps)} steps",
        f"B  {run_label(c.right)} · {len(c.right.steps)} steps",
        *(
            f"{side}: remove_checks {', '.join(t.not_removed)} not applied: "
            f"{t.kernel} has no such check"
            for side, t in (("A", c.left), ("B", c.right))
            if t.not_removed
        ),
        f"aligned {len(c.rows)} rows: {counts['same']} same, {counts['similar']} similar, "
        f"{counts['left']} only in A, {counts['right']} only in B",
    ]
    if c.identical:
        out.append("identical: the same steps, values and outcome")
        return out
    for names, d in landmarks(c):
        title = " and ".join(LANDMARK_TITLES[n] for n in names)
        where = "at the start" if d.position == 0 else f"at row {d.position}"
        out.append(f"{title} {where}: {', '.join(d.aspects)}")
        if d.position:
            out.append(f"  A {_side(c.left, d.left)}")
            out.append(f"  B {_side(c.right, d.right)}")
        if d.registers:
            out.append(f"  registers: {_values(d.registers)}")
        if d.checks:
            checks = ", ".join(f"{c.name} {c.left} ≠ {c.right}" for c in d.checks)
            out.append(f"  checks: {checks}")
        if d.verdicts:
            out.append(f"  the checks decided: A {d.verdicts[0]} ≠ B {d.verdicts[1]}")
        if d.pt_regs:
            out.append(f"  pt_regs: {_values(d.pt_regs)}")
    if c.paths_part is None:
        out.append("the paths do not part: every step corresponds")
    if c.pt_regs_after_call:
        out.append(f"pt_regs after do_syscall_64: {_values(c.pt_regs_after_call)}")
    oa, ob = Outcome.of(c.left), Outcome.of(c.right)
    mark = "≠" if c.outcome_differs else "="
    out.append(f"exit: A {_exit_words(oa)} {mark} B {_exit_words(ob)}")
    return out


__all__ = [
    "AlignedRow",
    "CheckPair",
    "Comparison",
    "Difference",
    "Outcome",
    "StepKey",
    "ValuePair",
    "align",
    "compare_traces",
    "comparison_json",
    "landmarks",
    "run_label",
    "summary_lines",
    "variant",
]  # fmt: skip
