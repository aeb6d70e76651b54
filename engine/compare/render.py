"""A comparison in words and as JSON: the summary ``compare`` prints and ``compare --json``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from json.encoder import encode_basestring
from typing import Any, Literal

from engine.compare.diff import Comparison, Difference, Outcome, ValuePair
from engine.compare.real import Against
from engine.errors import escape
from engine.i18n import N_, joined, literal, msg
from engine.mitigations import mitigation_costs
from engine.trace import EventKind, StackName, Trace


def fred_removes(idt: Trace) -> str:
    """What the IDT/SYSCALL run *idt* did that FRED does without, counted from its trace."""
    swapgs = sum(e.kind is EventKind.SWAPGS for e in idt.events)
    cr3 = sum(e.kind is EventKind.CR3_SWITCH for e in idt.events)
    entry_stack = any(s.stack_name is StackName.ENTRY for s in idt.steps)
    parts = [
        f"{swapgs} swapgs",
        f"{cr3} CR3 switches" + (" (PTI is off on FRED hardware)" if not idt.pti else ""),
        f"{len(idt.checks)} SYSRET checks",
        "the trampoline (entry) stack" if entry_stack else "no trampoline stack",
        f"the {idt.exit} exit" if idt.exit else "no exit",
    ]
    return ", ".join(parts)


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


def comparison_json(c: Comparison, rows: bool = True) -> dict[str, Any]:
    """The comparison as plain JSON data (the contract of ``syscall-tui compare --json``).

    Without *rows*, ``"rows"`` is an empty list, for :func:`comparison_json_text`."""
    return {
        "left": _run_json(c.left),
        "right": _run_json(c.right),
        "identical": c.identical,
        "counts": dict(c.counts()),
        "start": _pairs_json(c.start),
        "first_difference": _difference_json(c, c.first_difference),
        "paths_part": _difference_json(c, c.paths_part),
        "decision": _difference_json(c, c.decision),
        "deciding": {
            "left": _step_brief(c.left, c.deciding[0]),
            "right": _step_brief(c.right, c.deciding[1]),
        },
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
        ]
        if rows
        else [],
    }


def _names_text(names: tuple[str, ...] | list[str]) -> str:
    """A list of names as ``JSONEncoder(indent=1)`` writes it as a value of a row's key."""
    if not names:
        return "[]"
    return "[\n    " + ",\n    ".join(map(encode_basestring, names)) + "\n   ]"


def comparison_json_text(c: Comparison) -> Iterator[str]:
    """:func:`comparison_json` as the pieces of the text that
    ``JSONEncoder(indent=1, ensure_ascii=False)`` writes for it, the rows written here.

    The indenting encoder is pure Python, and 200,000 rows of dicts cost seconds to build
    and seconds more to walk; a row is the same few lists of names over and over, so the
    text of its lists is kept per distinct content, and the two step indices are written
    into it.  ``tests/engine/test_compare.py`` holds the two equal.
    """
    head = json.JSONEncoder(indent=1, ensure_ascii=False).encode(comparison_json(c, rows=False))
    end = '"rows": []\n}'  # "rows" is the last key
    assert head.endswith(end)
    if not c.rows:
        yield head
        return
    yield head[: -len(end)] + '"rows": ['
    bodies: dict[tuple[object, ...], str] = {}
    lead = "\n  {\n   "
    for r in c.rows:
        key = (
            r.kind,
            r.aspects,
            tuple(p.name for p in r.checks),
            tuple(p.name for p in r.registers),
            tuple(p.name for p in r.pt_regs),
        )
        body = bodies.get(key)
        if body is None:
            body = (
                f'"kind": {encode_basestring(r.kind)},\n   "what": {_names_text(key[1])},\n'
                f'   "checks": {_names_text(key[2])},\n'
                f'   "registers": {_names_text(key[3])},\n'
                f'   "pt_regs": {_names_text(key[4])}\n  }}'
            )
            bodies[key] = body
        left = "null" if r.left is None else int.__repr__(r.left)
        right = "null" if r.right is None else int.__repr__(r.right)
        yield f'{lead}"left": {left},\n   "right": {right},\n   {body}'
        lead = ",\n  {\n   "
    yield "\n ]\n}"


def _values(pairs: tuple[ValuePair, ...]) -> str:
    return ", ".join(f"{p.name} {_hx(p.left) or '—'} ≠ {_hx(p.right) or '—'}" for p in pairs)


#: A check's result as the summary writes it: the machine word in English (as `trace`
#: prints it), a word in another language.
RESULT_WORDS: dict[str, str] = {
    "pass": N_("pass"),
    "fail": N_("fail"),
    "not_reached": N_("not_reached"),
    "removed": N_("removed"),
}

#: The aspects as words (summary_lines), translated where they are shown.
ASPECT_WORDS: dict[str, str] = {
    "path": N_("path"),
    "events": N_("events"),
    "checks": N_("checks"),
    "registers": N_("registers"),
    "pt_regs": "pt_regs",
}


def _side(trace: Trace, index: int | None) -> str:
    if index is None:
        return N_("(no step yet)")
    s = trace.steps[index]
    where: str
    if s.c is not None:
        # a C statement: the place in the kernel's C ("" for the system call's own body)
        where = literal(s.c.where or s.c.function)
    elif s.source_line is not None:
        where = msg("line {line}", line=s.source_line)
    else:
        where = N_("user")
    events = f" [{', '.join(e.kind for e in s.events)}]" if s.events else ""
    source = literal(printable(" ".join(s.source.split())))
    return msg(
        "step {n} {text} ({where}: {source}){events}",
        n=s.number,
        text=literal(s.text),
        where=where,
        source=source,
        events=literal(events),
    )


def _exit_words(o: Outcome) -> str:
    parts: list[str] = [literal(EXIT_WORDS.get(o.exit, o.exit)) if o.exit else N_("no exit")]
    if o.failed_check:
        parts.append(msg(" ({check} failed)", check=literal(o.failed_check)))
    if o.fault:
        parts.append(msg(", {fault} at CPL {cpl}", fault=literal(o.fault), cpl=o.fault_cpl))
    elif o.final_cpl == 3 and o.exit:
        parts.append(msg(" to {rip:#x}", rip=o.final_rip))
    return joined("", parts)


#: The exit paths as the summary writes them (lower case, as `trace` prints them).
EXIT_WORDS = {"sysret": "sysret", "iret": "iret"}


def _landmark_lines(c: Comparison, names: tuple[Landmark, ...], d: Difference) -> list[str]:
    """One landmark (first difference, paths part, verdicts part): where, then what."""
    out: list[str] = []
    title: str = LANDMARK_TITLES[names[0]]
    for n in names[1:]:
        title = msg("{a} and {b}", a=title, b=LANDMARK_TITLES[n])
    aspects = joined(", ", [ASPECT_WORDS.get(a, a) for a in d.aspects])
    if d.position == 0:
        out.append(msg("{title} at the start: {aspects}", title=title, aspects=aspects))
    else:
        out.append(
            msg("{title} at row {row}: {aspects}", title=title, row=d.position, aspects=aspects)
        )
    if d.position:
        out.append(msg("  A {side}", side=_side(c.left, d.left)))
        out.append(msg("  B {side}", side=_side(c.right, d.right)))
    if d.registers:
        out.append(msg("  registers: {values}", values=literal(_values(d.registers))))
    if d.checks:
        checks = joined(
            ", ",
            [
                msg(
                    "{name} {left} ≠ {right}",
                    name=literal(c.name),
                    left=RESULT_WORDS.get(c.left, c.left),
                    right=RESULT_WORDS.get(c.right, c.right),
                )
                for c in d.checks
            ],
        )
        out.append(msg("  checks: {values}", values=checks))
    if d.verdicts:
        out.append(
            msg(
                "  the checks decided: A {left} ≠ B {right}",
                left=literal(d.verdicts[0]),
                right=literal(d.verdicts[1]),
            )
        )
    if d.pt_regs:
        out.append(msg("  pt_regs: {values}", values=literal(_values(d.pt_regs))))
    if "decision" in names:
        # The row holds one run's decision; the other decided at its own step.
        for run, trace, own, here in (
            ("A", c.left, c.deciding[0], d.left),
            ("B", c.right, c.deciding[1], d.right),
        ):
            if own is not None and own != here:
                out.append(
                    msg("  {run} decided at {side}", run=literal(run), side=_side(trace, own))
                )
    return out


def _mitigation_lines(c: Comparison) -> list[str]:
    """What the two runs' mitigations cost, where they differ (engine.mitigations):
    instructions in mitigation macros, and each macro whose count or work differs."""
    a = {m.macro: m for m in mitigation_costs(c.left)}
    b = {m.macro: m for m in mitigation_costs(c.right)}
    if a == b:
        return []
    parts = []
    for macro in dict.fromkeys([*a, *b]):
        ma, mb = a.get(macro), b.get(macro)
        na, nb = (ma.instructions if ma else 0), (mb.instructions if mb else 0)
        wa, wb = (ma is not None and not ma.patched_out), (mb is not None and not mb.patched_out)
        if (na, wa) != (nb, wb):
            parts.append(f"{macro} {na}{'' if wa else '·'} → {nb}{'' if wb else '·'}")
    return [
        msg(
            "mitigations: A {left} instructions, B {right} ({diffs}; · patched out)",
            left=sum(m.instructions for m in a.values()),
            right=sum(m.instructions for m in b.values()),
            diffs=literal(", ".join(parts)),
        )
    ]


def summary_lines(c: Comparison) -> list[str]:
    """A few lines saying where the two runs part, for ``syscall-tui compare`` without a TUI.

    Each line is English (a :class:`~engine.i18n.Msg`); engine.i18n.tr() renders it in
    the UI's language.  Names, steps and source are literals: never looked up.
    """
    counts = c.counts()
    out: list[str] = [
        msg("A  {run} · {n} steps", run=literal(run_label(c.left)), n=len(c.left.steps)),
        msg("B  {run} · {n} steps", run=literal(run_label(c.right)), n=len(c.right.steps)),
        *(
            msg(
                "{side}: remove_checks {names} not applied: {kernel} has no such check",
                side=literal(side),
                names=literal(", ".join(t.not_removed)),
                kernel=literal(t.kernel),
            )
            for side, t in (("A", c.left), ("B", c.right))
            if t.not_removed
        ),
        msg(
            "aligned {rows} rows: {same} same, {similar} similar, {left} only in A, "
            "{right} only in B",
            rows=len(c.rows),
            same=counts["same"],
            similar=counts["similar"],
            left=counts["left"],
            right=counts["right"],
        ),
    ]
    if c.identical:
        out.append(N_("identical: the same steps, values and outcome"))
        return out
    if c.left.fred != c.right.fred:
        (idt_side, idt), fred_side = (("A", c.left), "B") if c.right.fred else (("B", c.right), "A")
        out.append(
            msg(
                "FRED ({fred}) has none of {idt}'s: {removed}; it returns by ERETU, every "
                "register from the frame",
                fred=literal(fred_side),
                idt=literal(idt_side),
                removed=literal(fred_removes(idt)),
            )
        )
    for names, d in landmarks(c):
        out.extend(_landmark_lines(c, names, d))
    if c.paths_part is None:
        out.append(N_("the paths do not part: every step corresponds"))
    if c.pt_regs_after_call:
        a, b = c.left.c_entry, c.right.c_entry
        if a == b == "do_syscall_64":
            said = msg(
                "pt_regs after do_syscall_64: {values}",
                values=literal(_values(c.pt_regs_after_call)),
            )
        elif a == b:  # the C side of another door, the same in both
            said = msg(
                "pt_regs after {function}: {values}",
                function=literal(a),
                values=literal(_values(c.pt_regs_after_call)),
            )
        else:  # each run's own C side (int $0x80, the 32-bit fast doors)
            said = msg(
                "pt_regs after the C side (A {left}, B {right}): {values}",
                left=literal(a),
                right=literal(b),
                values=literal(_values(c.pt_regs_after_call)),
            )
        out.append(said)
    out.extend(_mitigation_lines(c))
    oa, ob = Outcome.of(c.left), Outcome.of(c.right)
    mark = "≠" if c.outcome_differs else "="
    out.append(
        msg(
            "exit: A {left} {mark} B {right}",
            left=_exit_words(oa),
            mark=literal(mark),
            right=_exit_words(ob),
        )
    )
    return out


def against_lines(a: Against, summary: bool = False) -> list[str]:
    """``compare SCENARIO --against TRACE`` as text: the machine, each kernel instruction
    beside the real one (not with *summary*), then the verdict and each difference.  The
    instructions and the differences are literals (the differ's lines are English)."""
    out: list[str] = [
        msg(
            "real: {package} on QEMU -cpu {cpu}; the engine ran on the same machine",
            package=literal(printable(a.package)),
            cpu=literal(printable(a.cpu)),
        )
    ]
    if not summary:
        for r in a.rows:
            mark = "=" if r.same else "≠"
            real = printable(r.real) if r.real is not None else "-"
            at = printable(r.real_at)[:32]
            out.append(literal(f"{r.index:4} {mark} {at:32} {real[:40]:40} {r.engine or '-'}"))
    if a.equal:
        out.append(
            msg(
                "equal: {n} kernel instructions, then the same registers, pt_regs, exit and "
                "user state",
                n=sum(r.real is not None for r in a.rows),
            )
        )
    else:
        out.append(N_("differs:"))
        out.extend(literal("  " + printable(d)) for d in a.differences)
    return out


def against_json(a: Against) -> str:
    """``compare SCENARIO --against TRACE --json``."""
    return json.dumps(
        {
            "kernel": a.kernel,
            "package": a.package,
            "cpu": a.cpu,
            "equal": a.equal,
            "rows": [
                {
                    "index": r.index,
                    "real": r.real,
                    "real_at": r.real_at,
                    "engine": r.engine,
                    "same": r.same,
                }
                for r in a.rows
            ],
            "differences": list(a.differences),
        },
        ensure_ascii=False,
        indent=1,
    )


__all__ = [
    "against_json",
    "against_lines",
    "comparison_json",
    "comparison_json_text",
    "fred_removes",
    "landmarks",
    "printable",
    "run_label",
    "summary_lines",
]
