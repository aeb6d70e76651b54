"""A comparison in words and as JSON: the summary ``compare`` prints and ``compare --json``."""

from __future__ import annotations

from typing import Any, Literal

from engine.compare.diff import Comparison, Difference, Outcome, ValuePair
from engine.i18n import N_
from engine.trace import Trace


def printable(text: str) -> str:
    """*text* with control characters escaped: a scenario's name is untrusted, and the
    summary goes to a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
        "step": s.number,  # as `trace --json` numbers it
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
    return f"step {s.number} {s.text} ({where}: {source}){events}"


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


__all__ = ["comparison_json", "landmarks", "printable", "run_label", "summary_lines"]
