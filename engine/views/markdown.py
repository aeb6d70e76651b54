"""A recorded run as an annotated listing in Markdown (``syscall-tui trace --format markdown``).

The kind of listing people publish about the entry path: the verdict first, then
entry_64.S at the macro level with its ``///`` notes, and under each executed line the
instructions it became with what each did (registers, the pt_regs slot written or read,
the stack and CR3 switches), then the six SYSRET checks with the values compared.

Every value comes from the trace and every explanation is a text the engine already
has (the source notes, event texts, the checks' own descriptions); nothing here restates a fact.
Learner-facing words pass through :func:`_`, the one translation hook, so that
``--lang`` renders them from the gettext catalogues (engine.i18n, as everywhere).

Scenario files are untrusted: every string that reaches the document is escaped for
Markdown (inline text, code spans, table cells, fenced blocks), so a scenario's name or
code cannot inject markup, links or HTML, and for terminals (engine.errors.escape), so
that its name or its program's write() output cannot send control sequences.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.checks import describe, facts
from engine.constants import flag_names
from engine.errors import escape
from engine.i18n import LANGUAGES, N_, get_language, msg, pgettext, set_language, tr
from engine.kernel.variants import spec
from engine.mitigations import mitigation_costs
from engine.trace import SLOT_RETURN_ADDRESS, Regs, StackSlot, Step, Trace
from engine.views.header import line_of, paragraph

#: The languages the listing is written in: those the UI offers.
LANGS = tuple(LANGUAGES)


class ExportError(Exception):
    """The listing cannot be written as asked (e.g. a language this build lacks)."""


def _(text: str) -> str:
    """The one translation hook: every learner-facing string of the listing passes here,
    the fixed words (English msgids) and the engine's own texts alike (engine.i18n.tr,
    in the language :func:`_language` has set)."""
    return tr(text)


# Babel's extractor does not look inside f-strings (before Python 3.12 an f-string is one
# token), so the listing's fixed words used in them are marked here, where it sees them,
# and translated where they are shown.
W_ENTRY_STACK = N_("entry stack")
W_SAVED_AX = N_("saved ax")
W_REWROTE = N_("rewrote")
W_USER_CODE_CPL_3 = N_("User code, CPL 3")
W_EXIT_PATH = N_("exit path")
W_FIRST_FAILING_CHECK = N_("first failing check")
W_NONE = N_("none")
W_FAULT = N_("fault")
W_MODELLED = N_("modelled")
W_OUTPUT = N_("output")
W_FINAL_STATE = N_("final state")
W_RUN_ENDED = N_("run ended")
W_C_MODELLED = N_("C, modelled")
W_PT_REGS_AROUND_DO_SYSCALL_64 = N_("pt_regs around do_syscall_64")
W_PT_REGS_AROUND_DO_INT80 = N_("pt_regs around do_int80_syscall_32")
W_PT_REGS_AROUND = N_("pt_regs around {function}")
W_MITIGATIONS = N_("Mitigations this run executed")
W_PATCHED_OUT = N_("patched out (a NOP or a jmp over it)")
W_RUNS = N_("runs")
W_MACHINE = N_("Machine")
W_VERDICT = N_("Verdict")
W_SYSRET_CHECKS = N_("SYSRET checks")
W_MOMENTS = N_("Moments")
W_LISTING = N_("Listing")


@contextlib.contextmanager
def _language(lang: str) -> Iterator[None]:
    """Render in *lang* for the duration, then put the previous language back."""
    if lang not in LANGUAGES:
        raise ExportError(f"unknown language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    previous = get_language()
    set_language(lang)
    try:
        yield
    finally:
        set_language(previous)


# -- Markdown escaping ---------------------------------------------------------------------

# Characters that can start markup anywhere in a line; an underscore only at a word's
# edge (GFM ignores it inside words: rcx_eq_rip stays readable); # and > only in front.
_INLINE_SPECIAL = re.compile(r"[\\`*\[\]<|~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|^[#>+=-]")


# What GFM would turn into a link without brackets (http://..., www...., a@b).
_AUTOLINK = re.compile(r"(?<=[A-Za-z])(:)(?=//)|(?<=www)(\.)|(@)", re.I)


def esc(text: str) -> str:
    """*text* as literal inline Markdown (one line, no markup, no HTML, no autolinks)."""
    one_line = escape(" ".join(str(text).split()))  # no control reaches a terminal
    out = _INLINE_SPECIAL.sub(lambda m: "\\" + m.group(0), one_line)
    return _AUTOLINK.sub(lambda m: "\\" + m.group(0), out)


def code(text: str, cell: bool = True) -> str:
    """*text* as an inline code span; in a table cell a ``|`` is escaped as GFM needs."""
    one_line = escape(" ".join(str(text).split())) or " "
    longest = max((len(run) for run in re.findall(r"`+", one_line)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    span = f"{ticks}{pad}{one_line}{pad}{ticks}"
    return span.replace("|", "\\|") if cell else span


def fenced(lines: list[str], info: str = "") -> list[str]:
    """A fenced code block holding *lines* verbatim (the fence outgrows any backtick run)."""
    clean = [escape(line.replace("\r", "").replace("\t", "    ")) for line in lines]
    longest = max((len(run) for line in clean for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, *clean, fence]


def hx(value: int) -> str:
    return f"{value:#x}"


def table(head: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """A GFM table; *align* is one letter per column (l, r), default left."""
    marks = [("---:" if a == "r" else "---") for a in align.ljust(len(head), "l")]
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(marks) + " |"]
    out.extend("| " + " | ".join(cell or " " for cell in row) + " |" for row in rows)
    return out


# -- what a step did -------------------------------------------------------------------------

#: How each kind of event is named in the listing (English msgids).
#: Identifiers (SYSCALL, swapgs, ...) stay as they are in every language.
EVENT_KINDS: dict[str, str] = {
    "syscall": "SYSCALL",
    "swapgs": "swapgs",
    "cr3_switch": N_("CR3 switch"),
    "stack_switch": N_("stack switch"),
    "handler": "do_syscall_64",  # the trace's own C entry where it has another
    "interrupt": N_("interrupt delivery"),
    "helper": N_("modelled C helper"),
    "check": N_("SYSRET check"),
    "sysret": "SYSRET",
    "iret": "IRET",
    "return": N_("back in user space"),
    "fault": N_("fault"),
    "exit": N_("exit"),
    "cap": N_("step cap"),
    "unsupported": N_("not emulated"),
}

EXIT_NAMES = {"sysret": "SYSRET", "iret": "IRET"}
RESULT_WORDS = {
    "pass": N_("pass"),
    "fail": N_("FAIL"),
    "not_reached": N_("not reached"),
    "removed": N_("removed"),
}


def _reg_change(name: str, old: int, new: int) -> str:
    text = code(f"{name} {hx(old)} → {hx(new)}")
    if name == "rflags":
        text += " " + code(" ".join(flag_names(new)) or "—")
    return text


def _slot_name(step: Step, address: int) -> tuple[str, StackSlot] | None:
    for slot in step.stack:
        if slot.address == address:
            if slot.slot == SLOT_RETURN_ADDRESS:
                return _("return address"), slot
            return f"pt_regs->{slot.slot}", slot
    for slot in step.entry_stack:
        if slot.address == address:
            # "ax (saved)" is a word as well as a name: the TUI's short "saved ax" message
            word = _(W_SAVED_AX) if slot.slot == "ax (saved)" else slot.slot
            return _(W_ENTRY_STACK) + (f" {word}" if word else ""), slot
    return None


def _event(kind: str, text: str, modelled: bool, step_label: str = "") -> str:
    """One event as the listing says it; a modelled C call is named by its function, the
    label of the step it is on (do_syscall_64, do_int80_syscall_32)."""
    if kind == "handler" and step_label.startswith("do_"):
        label = step_label
    else:
        label = _(EVENT_KINDS.get(kind, kind))
    tag = " *" + esc(_("modelled")) + "*" if modelled else ""
    said = _(text)
    # An event's text often starts with its own kind ("SYSCALL: CPL 3 → 0"): said once.
    head, sep, rest = said.partition(":")
    if sep and head.strip().lower() == label.lower():
        said = rest.strip()
    return f"**{esc(label)}**: {esc(said)}{tag}"


def _effects(step: Step, before: Regs) -> list[str]:
    """What *step* did, one item each: registers, stack words written and read, events."""
    out = [
        _reg_change(name, getattr(before, name), getattr(step.regs, name))
        for name in step.changed
        if name != "rip"
    ]
    for verb, addresses in ((_("wrote"), step.stack_writes), (_("read"), step.stack_reads)):
        for address in addresses:
            found = _slot_name(step, address)
            if found is not None:
                name, slot = found
                out.append(f"{esc(verb)} **{esc(name)}** {code(hx(slot.value))}")
            else:
                out.append(f"{esc(verb)} {code(hx(address))}")
    for name, old, new in step.rewritten:
        out.append(f"{esc(_(W_REWROTE))} **pt_regs->{esc(name)}** {code(f'{old:#x} → {new:#x}')}")
    out.extend(_event(e.kind, e.text, e.modelled, step.label) for e in step.events)
    return out


# -- the listing's structure -----------------------------------------------------------------


@dataclass
class _Group:
    """Consecutive steps of one source line (kernel) or of the user's code."""

    line: int | None
    steps: list[Step] = field(default_factory=list)


def _groups(steps: tuple[Step, ...]) -> list[_Group]:
    out: list[_Group] = []
    for step in steps:
        if not out or out[-1].line != step.source_line:
            out.append(_Group(step.source_line))
        out[-1].steps.append(step)
    return out


def _listed_before(step: Step, seen: set[tuple[int, str]]) -> bool:
    """The same instruction (address and text) already has a row, and this step is an
    ordinary re-run of it: a modelled step (the C code's pseudo-steps share an address)
    always gets its own row."""
    return (step.rip, step.text) in seen and not step.modelled


def _rows(group: _Group, trace: Trace, seen: set[tuple[int, str]]) -> list[list[str]]:
    """A row per step; a run of steps re-running instructions already listed becomes one
    row with what the run changed (a loop up to the step cap stays readable)."""
    rows: list[list[str]] = []
    steps = group.steps
    i = 0
    while i < len(steps):
        step = steps[i]
        before = trace.steps[step.index - 1].regs if step.index else trace.initial
        if not _listed_before(step, seen):
            seen.add((step.rip, step.text))
            what = code(step.text)
            if step.source_line is None and step.source and step.source != step.text:
                what += " " + esc(_("from")) + " " + code(step.source)
            if step.c is not None:  # a C statement: where, in which calls, what it used
                if step.c.where:
                    what += " " + code(step.c.where)
                what += "<br>" + esc(" › ".join(step.c.stack))
            effects = _effects(step, before)
            if step.c is not None:
                effects = [code(f"{n} = {v:#x}") for n, v in step.c.values] + effects
            rows.append([str(step.number), code(f"{step.rip:016x}"), what, "<br>".join(effects)])
            i += 1
            continue
        j = i
        while j + 1 < len(steps) and _listed_before(steps[j + 1], seen):
            j += 1
        run = steps[i : j + 1]
        last = run[-1]
        changed = [n for n in last.regs.changed_from(before) if n != "rip"]
        effects = [_reg_change(n, getattr(before, n), getattr(last.regs, n)) for n in changed]
        effects.extend(_event(e.kind, e.text, e.modelled, s.label) for s in run for e in s.events)
        low, high = min(s.rip for s in run), max(s.rip for s in run)
        again = _("{count} instructions listed above, run again").format(count=len(run))
        rows.append(
            [
                f"{run[0].number}–{last.number}" if len(run) > 1 else str(last.number),
                code(f"{low:016x}–{high:016x}" if low != high else f"{low:016x}"),
                f"*{esc(again)}*",
                "<br>".join(effects),
            ]
        )
        i = j + 1
    return rows


def _context(trace: Trace, group: _Group, previous: Step | None) -> list[int]:
    """Source lines to show with an executed line: the comments and labels between it and
    the line before when execution fell through, else those just above it (a jump's
    target label)."""
    assert group.line is not None
    numbers = {s.number: s for s in trace.source}
    first = group.steps[0]
    if (
        previous is not None
        and previous.source_line is not None
        and previous.source_line < group.line
        and previous.rip + len(previous.code) == first.rip
    ):
        return list(range(previous.source_line + 1, group.line + 1))
    lines = [group.line]
    n = group.line - 1
    while n in numbers and not numbers[n].instructions and len(lines) < 16:
        lines.insert(0, n)
        if numbers[n].label:
            break
        n -= 1
    if numbers.get(lines[0]) is not None and not numbers[lines[0]].label:
        # no label above: keep only the comments directly above, not a run of blanks
        while len(lines) > 1 and not numbers[lines[0]].text.strip():
            lines.pop(0)
    return lines


def user_program(trace: Trace) -> list[str]:
    """The scenario's code, a line per statement: address, then the statement as written;
    a data statement with its bytes as a comment (data is never shown as instructions)."""
    out = []
    for line in trace.user_code:
        text = escape(line.text)
        if line.kind == "label":
            out.append(f"{line.address:016x}  {text}")
        elif line.kind == "data":
            shown = line.code[:16].hex(" ") + (" …" if len(line.code) > 16 else "")
            out.append(f"{line.address:016x}      {text}   /* {shown} */")
        else:
            out.append(f"{line.address:016x}      {text}")
    return out


def _listing(trace: Trace) -> Iterator[str]:
    numbers = {s.number: s for s in trace.source}
    seen: set[tuple[int, str]] = set()
    previous: Step | None = None
    head = [pgettext("column", "step"), _("address"), _("instruction"), _("what it did")]
    program_shown = False
    for group in _groups(trace.steps):
        if group.line is None:
            yield f"### {esc(_(W_USER_CODE_CPL_3))}"
            yield ""
            if not program_shown and trace.user_code:
                # the user's program as written (labels, data as bytes) before what it did
                program_shown = True
                yield from fenced(user_program(trace), "asm")
                yield ""
        else:
            shown = _context(trace, group, previous)
            while len(shown) > 1 and not numbers[shown[0]].text.strip():
                shown.pop(0)
            for n in shown:
                if numbers[n].label:
                    yield f"### {esc(numbers[n].label or '')}"
                    yield ""
            opening = paragraph(trace.source)
            block = [
                f"{n:4}  {(line_of(opening, n) if opening else None) or numbers[n].text}".rstrip()
                for n in shown
            ]
            yield from fenced(block, "asm")
            yield ""
            notes = [(n, numbers[n].note) for n in shown if numbers[n].note]
            for n, note in notes:
                prefix = f"**{n}** " if len(notes) > 1 else ""
                yield f"> {prefix}{esc(_(note))}"
                yield ""
        rows = _rows(group, trace, seen)
        if len(rows) == 1 and group.line is not None:
            # one instruction: a line of text reads better than a one-row table
            number, address, what, effects = rows[0]
            yield f"**{number}** · {address} · {what}" + (
                " — " + effects.replace("<br>", " · ") if effects else ""
            )
        else:
            yield from table(head, rows, "rl")
        yield ""
        previous = group.steps[-1]


def _verdict(trace: Trace) -> Iterator[str]:
    final = trace.final or trace.initial
    path = EXIT_NAMES.get(trace.exit or "", _("none"))
    failed = trace.failed_check
    yield f"- **{esc(_(W_EXIT_PATH))}**: {esc(path)}"
    yield f"- **{esc(_(W_FIRST_FAILING_CHECK))}**: " + (code(failed) if failed else esc(_(W_NONE)))
    if trace.fault is not None:
        yield f"- **{esc(_(W_FAULT))}**: {esc(_(trace.fault.describe()))}"
    if trace.handler:
        yield f"- **{trace.c_entry}** *({esc(_(W_MODELLED))})*: " + "; ".join(
            esc(_(line)) for line in trace.handler
        )
    if trace.output:
        text = trace.output.decode("utf-8", "backslashreplace")
        yield f"- **{esc(_(W_OUTPUT))}**: {code(text, cell=False)}"
    yield (
        f"- **{esc(_(W_FINAL_STATE))}**: "
        + code(
            f"CPL {trace.final_cpl}  RIP {hx(final.rip)}  RSP {hx(final.rsp)}  "
            f"RFLAGS {hx(final.rflags)} [{' '.join(flag_names(final.rflags))}]",
            cell=False,
        )
    )
    yield f"- **{esc(_(W_RUN_ENDED))}**: {esc(_(trace.stopped))}"


def _check_notes(trace: Trace, name: str) -> list[str]:
    """The source notes that explain the check (the entry code's own words): its own, and
    the one before when it goes on from it ("... and it must ...")."""
    noted = [s.note for s in trace.source if s.note]
    for i, note in enumerate(noted):
        if f"({name})" in note:
            goes_on = note.split(":", 1)[-1].strip().startswith("...")
            return [noted[i - 1], note] if goes_on and i else [note]
    return []


def _without_check_head(note: str, name: str) -> str:
    """A note without its "Check 2 (canonical_rip):" head: the table's # and check columns
    already say it."""
    for marked in (f"({name})", f"（{name}）"):
        head, sep, rest = note.partition(marked)
        if sep and len(head) < 24 and rest[:1] in (":", "："):
            rest = rest[1:].strip()
            return rest[:1].upper() + rest[1:]
    return note


def _check_why(trace: Trace, name: str) -> str:
    """Why the kernel makes the check: the entry code's note for an assembly check, the
    C source line for one tested in C (6.12's do_syscall_64, modelled)."""
    notes = [_without_check_head(_(note), name) for note in _check_notes(trace, name)]
    dots = ("...", "…")
    if len(notes) == 2 and notes[0].endswith(dots) and notes[1].lstrip(".… ")[:1].islower():
        # One sentence the entry code split over two comments: joined where it was split.
        first, second = notes[0].rstrip(".…").rstrip(), notes[1].lstrip(".…").lstrip()
        notes = [f"{first} {second}"]
    elif len(notes) == 2 and notes[0].endswith(dots) and notes[1].startswith(dots):
        notes = [notes[0].rstrip(".…").rstrip() + notes[1].lstrip(".…").lstrip()]
    if notes:
        return " ".join(esc(note) for note in notes)
    known = facts(name)
    if name in spec(trace.kernel).c_checks and known is not None and known.c_source:
        return f"{code(known.c_source)} *({esc(_(W_C_MODELLED))})*"
    return ""


def _checks(trace: Trace) -> Iterator[str]:
    rows = []
    for number, check in enumerate(trace.checks, start=1):
        result = _(RESULT_WORDS.get(check.result, check.result))
        rows.append(
            [
                str(number),
                code(check.name),
                f"**{esc(result)}**" if check.result == "fail" else esc(result),
                esc(_(describe(check))),
                _check_why(trace, check.name),
            ]
        )
    head = ["#", _("check"), _("result"), _("values compared"), _("why the kernel checks it")]
    yield from table(head, rows, "r")


def _moments(trace: Trace) -> Iterator[str]:
    rows = [
        [
            str(step.number),
            esc(
                step.label
                if e.kind == "handler" and step.label.startswith("do_")
                else _(EVENT_KINDS.get(e.kind, e.kind))
            ),
            _event_text(e.text, e.modelled),
        ]
        for step in trace.steps
        for e in step.events
    ]
    yield from table([pgettext("column", "step"), _("what"), _("detail")], rows, "r")


def _event_text(text: str, modelled: bool) -> str:
    return esc(_(text)) + (" *" + esc(_("modelled")) + "*" if modelled else "")


def _pt_regs(trace: Trace) -> Iterator[str]:
    if not trace.pt_regs_at_call:
        return
    entry = trace.c_entry  # the run's own C side
    around = {
        "do_syscall_64": _(W_PT_REGS_AROUND_DO_SYSCALL_64),
        "do_int80_syscall_32": _(W_PT_REGS_AROUND_DO_INT80),
    }.get(entry) or tr(msg(W_PT_REGS_AROUND, function=entry))
    yield f"## {esc(around)}"
    yield ""
    rows = []
    for name, value in trace.pt_regs_at_call.items():
        after = trace.pt_regs_after_call.get(name, value)
        mark = f"**{code(hx(after))}**" if after != value else code(hx(after))
        rows.append([code(f"pt_regs->{name}"), code(hx(value)), mark])
    yield from table([_("slot"), _("at the call"), _("after it")], rows, "lrr")
    yield ""


def _mitigations(trace: Trace) -> Iterator[str]:
    """What each mitigation macro executed on this CPU model, and what it answers."""
    costs = mitigation_costs(trace)
    if not costs:
        return
    yield f"## {esc(_(W_MITIGATIONS))}"
    yield ""
    rows = [
        [
            code(c.macro),
            esc(_(c.answers)),
            str(c.instructions),
            esc(_(W_PATCHED_OUT) if c.patched_out else _(W_RUNS)),
        ]
        for c in costs
    ]
    head = [_("macro"), _("answers"), _("instructions"), _("on this CPU")]
    yield from table(head, rows, "llrl")
    yield ""


def _machine(trace: Trace) -> Iterator[str]:
    yield f"## {esc(_(W_MACHINE))}"
    yield ""
    rows = [[code(name), code(hx(value))] for name, value in trace.msrs.items()]
    yield from table([_("register"), _("value")], rows, "lr")
    yield ""
    rows = [
        [esc(_(r.name)), code(hx(r.cr3)), code(hx(r.pgd)), code(str(r.pcid))] for r in trace.roots
    ]
    if rows:
        yield from table([_("page-table root"), "CR3", "PGD", "PCID"], rows, "lrrr")
        yield ""


def _document(trace: Trace) -> Iterator[str]:
    yield f"# {esc(trace.scenario)}"
    yield ""
    facts = [
        f"Linux {trace.kernel} entry_SYSCALL_64",
        _("CPU: {cpu}").format(cpu=trace.cpu),
        _("{levels}-level paging").format(levels=trace.paging),
        _("PTI on") if trace.pti else _("PTI off"),
        _("PCID on") if trace.pcid else _("PCID off"),
        _("{count} steps").format(count=len(trace.steps)),
    ]
    yield esc(" · ".join(facts))
    yield ""
    yield (
        "*"
        + esc(
            _(
                "Recorded by syscall-tui on an emulated x86-64 CPU: every value below was read "
                "from the machine at that step; steps marked modelled were computed from the "
                "Intel SDM where the emulator is not the CPU."
            )
        )
        + "*"
    )
    yield ""
    yield f"## {esc(_(W_VERDICT))}"
    yield ""
    yield from _verdict(trace)
    yield ""
    yield f"## {esc(_(W_SYSRET_CHECKS))}"
    yield ""
    yield from _checks(trace)
    yield ""
    yield f"## {esc(_(W_MOMENTS))}"
    yield ""
    yield from _moments(trace)
    yield ""
    yield f"## {esc(_(W_LISTING))}"
    yield ""
    yield from _listing(trace)
    yield from _pt_regs(trace)
    yield from _mitigations(trace)
    yield from _machine(trace)


def trace_markdown(trace: Trace, lang: str = "en") -> str:
    """The run as an annotated Markdown listing, in *lang* ("en" or "ja")."""
    with _language(lang):
        # Every untrusted part was escaped where it was placed (esc, code, fenced); the
        # document is passed through escape() once more so that no path can miss it.
        return escape("\n".join(_document(trace)).rstrip(), keep="\n") + "\n"


__all__ = ["LANGS", "ExportError", "code", "esc", "fenced", "trace_markdown"]
