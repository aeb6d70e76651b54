"""One command line, as the debugger's ``:`` prompt takes it: parsed, answered, typed.

    x[/N{g,w,h,b,i,s}] ADDR [--root user|kernel|live]
    walk ADDR
    info gdt|tss|idt|cr|msr|break
    break LABEL|LINE|*ADDR [if COND]      (b)
    watch ADDR|SLOT
    delete [N ...]                         (d)
    hide [memory|walk]                     unpin the debugger's panels

The answer is the inspection result itself (an Examination, a PageWalkReport, an info
record, or the session's breakpoints as a :class:`PointsAnswer`), never text to parse
back; a bad line is a :class:`CommandError` of one line.
:func:`completions` offers what may come next: command names, ``info`` topics, kernel
labels, registers and pt_regs slots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import EngineError
from engine.inspect import info
from engine.inspect.breakpoints import Point, Points, make_break, make_watch
from engine.inspect.examine import Examination, context, examine, parse_x
from engine.inspect.expr import MAX_EXPR, evaluate, register_names, slot_names
from engine.inspect.machine_at import LIVE, MachineAt
from engine.inspect.pagewalk import PageWalkReport

COMMANDS = ("x", "walk", "info", "break", "watch", "delete", "hide")
#: The debugger's panels that x and walk pin, which ``hide`` unpins.
PANELS = ("memory", "walk")
#: gdb's short forms.
ALIASES = {"b": "break", "br": "break", "d": "delete", "i": "info"}
#: ``info`` topics that list the session's points rather than read the machine.
INFO_POINTS = ("b", "break", "breakpoints", "watch", "watchpoints")
INFO: dict[str, Callable[[MachineAt, int], info.Info]] = {
    "gdt": info.info_gdt, "tss": info.info_tss, "idt": info.info_idt,
    "cr": info.info_cr, "msr": info.info_msr,
}  # fmt: skip
ROOTS = ("user", "kernel", LIVE)


@dataclass(frozen=True, slots=True)
class PointsAnswer:
    """The session's points after a break, watch, delete or ``info break``."""

    points: Points
    added: Point | None = None
    deleted: tuple[int, ...] = ()
    listed: bool = False


@dataclass(frozen=True, slots=True)
class HideAnswer:
    """``hide``: the panels to unpin."""

    panels: tuple[str, ...]


Answer = Examination | PageWalkReport | info.Info | PointsAnswer | HideAnswer


class CommandError(EngineError):
    """A command line that names no command, or whose arguments do not fit it."""


def run_command(at: MachineAt, step: int, line: str, points: Points | None = None) -> Answer:
    """The answer to *line* at *step*, with the session's *points* for break, watch,
    delete and ``info break`` (the answer carries the new set; nothing is changed here)."""
    points = Points() if points is None else points
    if len(line) > MAX_EXPR + 64:
        raise CommandError("command line too long")
    words = line.split()
    if not words:
        raise CommandError("empty command")
    head, rest = ALIASES.get(words[0], words[0]), words[1:]
    if head in ("break", "watch"):
        argument = line.strip()[len(words[0]) :].strip()
        make = make_break if head == "break" else make_watch
        point = make(at, at.check_step(step), argument, points.next_number)
        return PointsAnswer(points.with_point(point), added=point)
    if head == "delete":
        try:
            numbers = tuple(int(w) for w in rest)
        except ValueError:
            raise CommandError("delete takes breakpoint numbers (none: delete all)") from None
        return PointsAnswer(
            points.without(numbers), deleted=numbers or tuple(p.number for p in points.points)
        )
    if head == "hide":
        if any(w not in PANELS for w in rest):
            raise CommandError(f"hide takes {' or '.join(PANELS)}, or nothing for both")
        return HideAnswer(tuple(rest) or PANELS)
    if head == "info" and len(rest) == 1 and rest[0] in INFO_POINTS:
        return PointsAnswer(points, listed=True)
    if head == "x" or head.startswith("x/"):
        root = LIVE
        if "--root" in rest:
            i = rest.index("--root")
            if i + 1 >= len(rest) or rest[i + 1] not in ROOTS:
                raise CommandError("--root takes user, kernel or live")
            root = rest[i + 1]
            rest = rest[:i] + rest[i + 2 :]
        count, unit = parse_x(head)
        if not rest:
            raise CommandError(f"{head} needs an address")
        return examine(at, step, " ".join(rest), count, unit, root)
    if head == "walk":
        if not rest:
            raise CommandError("walk needs an address")
        at.check_step(step)
        return at.walk(step, evaluate(" ".join(rest), context(at, step)))
    if head == "info":
        if len(rest) != 1 or rest[0] not in INFO:
            raise CommandError(f"info takes one of {', '.join((*INFO, 'break'))}")
        return INFO[rest[0]](at, step)
    raise CommandError(f"no command {head!r} (commands: {', '.join(COMMANDS)})")


def completions(at: MachineAt, line: str) -> tuple[str, ...]:
    """The words that complete the last word of *line*, sorted."""
    words = line.split()
    last = "" if line.endswith(" ") or not words else words[-1]
    before = words if line.endswith(" ") else words[:-1]
    if not before:
        pool: tuple[str, ...] = COMMANDS
    elif ALIASES.get(before[0], before[0]) == "info":
        pool = (*INFO, "break")
    elif ALIASES.get(before[0], before[0]) == "hide":
        pool = PANELS
    elif ALIASES.get(before[0], before[0]) == "delete":
        pool = ()
    elif before[-1] == "--root":
        pool = ROOTS
    else:
        labels = tuple(n for n in at.trace.symbols if not n.startswith("."))
        regs = tuple(f"${r}" for r in register_names())
        pool = (*labels, *regs, *slot_names(), "--root")
        if ALIASES.get(before[0], before[0]) == "break":
            # the C functions the run's statements are inside (break FUNCTION stops there)
            pool += tuple({f for s in at.trace.steps if s.c is not None for f in s.c.stack})
    return tuple(sorted(w for w in set(pool) if w.startswith(last) and w != last))


__all__ = [
    "COMMANDS", "Answer", "CommandError", "HideAnswer", "PointsAnswer", "completions",
    "run_command",
]  # fmt: skip
