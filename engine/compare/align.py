"""Which steps of two runs correspond: a key per step and a sequence alignment.

Two runs of the entry code do mostly the same work in the same order, but one may run
steps the other lacks (another kernel's mitigation, the IRET path instead of SYSRET, a
PCID-less CR3 switch).  Corresponding steps are found by what they *do*, not by their
index: each step gets a key made of where it is (user code or the kernel), its source
line's text (comments and spacing dropped, so that two kernels' renditions of the same
line match) and its instruction with numbers blanked (branch targets, per-CPU offsets and
immediates move between builds).  A global sequence alignment (Needleman-Wunsch) then
pairs the steps: the same key scores most, the same source line with another instruction
less, a step present on one side only is a gap.  The common prefix and suffix are matched
first, so the quadratic part only covers where the runs really differ.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from engine.trace import Step, Trace

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


def align_keys(
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
    return align_keys(ka, kb, ea, eb)


# -- differences ------------------------------------------------------------------------


__all__ = ["Pairs", "StepKey", "align", "align_keys", "step_keys"]
