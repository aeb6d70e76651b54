"""Breakpoints and watchpoints over a recorded run: where ``continue`` stops, either way.

The whole run is recorded, so a breakpoint is not an ``int3`` planted in memory: it is
the set of positions (engine.inspect's step numbering: position p is after p steps)
at which it stops, found once when it is set.  Going to the next or the previous stop
is then a search in a sorted tuple, the same cost forwards and backwards.

- ``break LABEL[+OFF]``, ``break *EXPR``, ``break 0xADDR``: stops before an instruction
  at that address runs, as gdb's breakpoint does (the position whose next step is it).
- ``break N`` or ``break FILE:N``: before the first instruction of each pass through
  line N of the entry code's rendition (the listing the source panel shows).
- ``... if COND``: only where COND holds (engine.inspect.expr.holds) at that position.
- ``watch EXPR``: after every step that wrote any of the 8 bytes at EXPR, whether or not
  the value changed (a write watch, as x86's debug registers do with R/W = 01; gdb's
  software ``watch`` would skip a store of the same value).  EXPR is evaluated once, at
  the step the watch is set, and its physical address is found by walking the kernel
  root (which maps user memory too), else the user root: the writes the run logged are
  physical, the CPU's and the modelled parts' alike (engine.run.memlog).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from enum import StrEnum

from engine.errors import EngineError
from engine.inspect.examine import context
from engine.inspect.expr import MAX_EXPR, ExprContext, evaluate, holds
from engine.inspect.machine_at import MachineAt
from engine.inspect.pagewalk import Root
from engine.trace import CStatement

#: Points one session may hold: enough for any lesson, few enough to list on a screen.
MAX_POINTS = 64
#: Bytes a watchpoint covers: one quadword, a pt_regs slot.
WATCH_SIZE = 8

_LINE = re.compile(r"(?:(?P<file>[A-Za-z0-9_.\-]+\.S):)?(?P<line>\d+)")
#: a line of the kernel's C, as the C steps name it: kernel/entry/common.c:211 (or the
#: file's last parts, common.c:211)
_C_LINE = re.compile(r"(?P<file>[A-Za-z0-9_./\-]+\.[ch]):(?P<line>\d+)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PointError(EngineError):
    """A break or watch that cannot be set, or a delete of a point that is not there."""


class PointKind(StrEnum):
    BREAK = "breakpoint"
    WATCH = "watchpoint"


@dataclass(frozen=True, slots=True)
class Point:
    """One breakpoint or watchpoint, resolved against the run."""

    number: int
    kind: PointKind
    spec: str  # as the user wrote it, without the condition
    condition: str | None
    address: int | None  # the instruction (break) or the watched quadword (watch)
    line: int | None  # break at a source line
    physical: int | None  # watch: where the watched bytes are in physical memory
    positions: tuple[int, ...]  # where continue stops for this point, ascending
    #: a break on the modelled C: "C function NAME" or a file:line of the kernel's C
    c_place: str | None = None

    @property
    def where(self) -> str:
        """What the point is on, in words (``info break``)."""
        if self.c_place is not None:
            return self.c_place
        if self.line is not None:
            return f"line {self.line}"
        assert self.address is not None
        if self.physical is not None:
            return f"{self.address:#x} (physical {self.physical:#x}), {WATCH_SIZE} bytes"
        return f"{self.address:#x}"


@dataclass(frozen=True, slots=True)
class Hit:
    """A point that stops at a position; a watch with the value before and after."""

    point: Point
    position: int
    old: int | None = None
    new: int | None = None


@dataclass(frozen=True, slots=True)
class Points:
    """The session's points, numbered as gdb numbers them (from 1, never reused)."""

    points: tuple[Point, ...] = ()
    next_number: int = 1

    def with_point(self, point: Point) -> Points:
        if len(self.points) >= MAX_POINTS:
            raise PointError(f"at most {MAX_POINTS} breakpoints and watchpoints")
        return Points((*self.points, point), self.next_number + 1)

    def without(self, numbers: tuple[int, ...]) -> Points:
        """All but *numbers*; every one of them must exist (none: delete them all)."""
        if not numbers:
            return Points((), self.next_number)
        have = {p.number for p in self.points}
        missing = [n for n in numbers if n not in have]
        if missing:
            raise PointError(f"no breakpoint or watchpoint number {missing[0]}")
        return Points(tuple(p for p in self.points if p.number not in numbers), self.next_number)

    @property
    def stops(self) -> tuple[int, ...]:
        """Every position some point stops at, ascending, each once."""
        return tuple(sorted({q for p in self.points for q in p.positions}))

    def at(self, position: int) -> tuple[Point, ...]:
        return tuple(p for p in self.points if _has(p.positions, position))


def _has(positions: tuple[int, ...], position: int) -> bool:
    i = bisect_left(positions, position)
    return i < len(positions) and positions[i] == position


def next_stop(stops: tuple[int, ...], position: int, end: int) -> int:
    """The first of the ascending *stops* after *position*, or *end*."""
    i = bisect_right(stops, position)
    return stops[i] if i < len(stops) else end


def previous_stop(stops: tuple[int, ...], position: int) -> int:
    """The last of the ascending *stops* before *position*, or 0 (the start)."""
    i = bisect_left(stops, position)
    return stops[i - 1] if i > 0 else 0


def _split_condition(text: str) -> tuple[str, str | None]:
    m = re.search(r"\s+if\s+", text)
    if m is None:
        return text.strip(), None
    cond = text[m.end() :].strip()
    if not cond:
        raise PointError("'if' needs a condition, e.g. break entry_SYSCALL_64 if $rax == 39")
    return text[: m.start()].strip(), cond


def _filter(at: MachineAt, positions: list[int], condition: str | None) -> tuple[int, ...]:
    if condition is None:
        return tuple(positions)
    symbols, base = at.trace.symbols, at.pt_regs_base
    return tuple(p for p in positions if holds(condition, ExprContext(at.regs(p), symbols, base)))


def make_break(at: MachineAt, step: int, text: str, number: int) -> Point:
    """A breakpoint from ``break``'s argument *text*, numbered *number*."""
    if len(text) > MAX_EXPR:
        raise PointError(f"breakpoint longer than {MAX_EXPR} characters")
    spec, condition = _split_condition(text)
    if not spec:
        raise PointError("break needs a label, a line, or *ADDRESS")
    steps = at.trace.steps
    if condition is not None:
        holds(condition, context(at, step))  # a condition that does not parse fails now
    line_m = _LINE.fullmatch(spec)
    if line_m is not None:
        line = int(line_m.group("line"))
        if not 1 <= line <= len(at.trace.source):
            raise PointError(f"no line {line}: the entry code has lines 1..{len(at.trace.source)}")
        found = [
            p
            for p, s in enumerate(steps)
            if s.source_line == line and (p == 0 or steps[p - 1].source_line != line)
        ]
        positions = _filter(at, found, condition)
        return Point(number, PointKind.BREAK, spec, condition, None, line, None, positions)
    c_break = _c_break(at, spec)
    if c_break is not None:
        place, found = c_break
        positions = _filter(at, found, condition)
        return Point(number, PointKind.BREAK, spec, condition, None, None, None, positions, place)
    address = evaluate(spec.removeprefix("*"), context(at, step))
    found = [p for p, s in enumerate(steps) if s.rip == address]
    positions = _filter(at, found, condition)
    return Point(number, PointKind.BREAK, spec, condition, address, None, None, positions)


def _c_break(at: MachineAt, spec: str) -> tuple[str, list[int]] | None:
    """A break on the modelled C side: a C function the run's statements are inside
    (stopping where it is entered) or a file:line of the kernel's C (stopping before each
    statement there).  None: *spec* is neither, for the other kinds to try."""
    steps = at.trace.steps
    m = _C_LINE.fullmatch(spec)
    if m is not None:
        file, line = m.group("file"), int(m.group("line"))

        def here(c: CStatement | None) -> bool:
            return (
                c is not None and c.line == line and (c.file == file or c.file.endswith("/" + file))
            )

        found = [p for p, s in enumerate(steps) if here(s.c) and not (p and here(steps[p - 1].c))]
        if not found:
            raise PointError(f"no C statement of this run is at {spec}")
        return f"C {spec}", found
    if _IDENT.fullmatch(spec) and spec not in at.trace.symbols:

        def inside(c: CStatement | None) -> bool:
            return c is not None and spec in c.stack

        found = [
            p for p, s in enumerate(steps) if inside(s.c) and not (p and inside(steps[p - 1].c))
        ]
        if found:
            return f"C function {spec}", found
    return None


def make_watch(at: MachineAt, step: int, text: str, number: int) -> Point:
    """A write watch on the quadword at expression *text*, evaluated at *step*."""
    spec = text.strip()
    if not spec:
        raise PointError("watch needs an address: a pt_regs slot, a label or an expression")
    if " if " in f" {spec} ":
        raise PointError("a watchpoint takes no condition")
    address = evaluate(spec.removeprefix("*"), context(at, step))
    physical = None
    for root in (Root.KERNEL, Root.USER):
        first = at.walk_root(step, root, at.root_cr3(root), address).result.physical
        last = at.walk_root(step, root, at.root_cr3(root), address + WATCH_SIZE - 1)
        if first is not None and last.result.physical == first + WATCH_SIZE - 1:
            physical = first
            break
    if physical is None:
        raise PointError(f"{address:#x} is not mapped under either root: nothing can write it")
    positions = at.history.steps_writing(physical, WATCH_SIZE)
    return Point(number, PointKind.WATCH, spec, None, address, None, physical, positions)


def hits(at: MachineAt, points: Points, position: int) -> tuple[Hit, ...]:
    """The points that stop at *position*, a watch with the quadword's old and new value."""
    out = []
    for p in points.at(position):
        if p.kind is PointKind.WATCH and p.physical is not None and position > 0:
            old = at.read_phys(position - 1, p.physical, WATCH_SIZE)
            new = at.read_phys(position, p.physical, WATCH_SIZE)
            out.append(
                Hit(
                    p,
                    position,
                    None if old is None else int.from_bytes(old, "little"),
                    None if new is None else int.from_bytes(new, "little"),
                )
            )
        else:
            out.append(Hit(p, position))
    return tuple(out)


__all__ = [
    "MAX_POINTS", "WATCH_SIZE", "Hit", "Point", "PointError", "PointKind", "Points",
    "hits", "make_break", "make_watch", "next_stop", "previous_stop",
]  # fmt: skip
