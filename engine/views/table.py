"""The trace as a plain fixed-width table, then the verdict (``syscall-tui trace``).

One line per step, the same on a terminal, in a file or through a pipe: widths are counted
in terminal cells (a Japanese character takes two), and everything a scenario wrote is
escaped, so no control character reaches the terminal.
"""

from __future__ import annotations

import unicodedata
from typing import TextIO

from engine.errors import escape
from engine.i18n import N_, _, get_language, literal, msg, pgettext, tr
from engine.trace import Door, Event, Step, Trace


def cell_len(text: str) -> int:
    """Terminal cells *text* takes: two for a wide or full-width character, none for a
    combining mark, one otherwise (the text is escaped: it holds no control character)."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def failed_check_words(trace: Trace) -> str:
    """The first failed check, "none" when every check that ran passed, or "no check ran"
    when the run never reached them (a fault, the step cap)."""
    if trace.failed_check:
        return trace.failed_check
    if trace.door is Door.INT80 and not trace.fred and not trace.checks and trace.fault is None:
        return _("none: int $0x80 always returns through IRET")
    if trace.door is Door.SYSCALL32 and not trace.checks and trace.fault is None:
        return _("none: entry_SYSCALL32_ignore returns with SYSRETL at once")
    if all(c.result == "not_reached" for c in trace.checks):
        return _("no check ran")
    return _("none")


def event_text(event: Event) -> str:
    return ("[" + _("modelled") + "] " if event.modelled else "") + tr(event.text)


#: The table's width: every line of it fits a 160-column terminal.
TABLE_WIDTH = 160
#: Where an event line starts, under its row.
EVENT_INDENT = 8


def table_text(step: Step, c_entry: str = "do_syscall_64") -> str:
    """The instruction column: the C function *c_entry* is C the engine models, not a
    ``retq`` that ran (the stub's return is how the modelled call hands back); a C
    statement is its function, modelled (the source column has the statement)."""
    if step.c is not None:
        return step.label + " [" + _("modelled") + "]"
    if any(e.kind == "handler" for e in step.events):
        return c_entry + " [" + _("modelled") + "]"
    if any(e.kind == "helper" for e in step.events):
        return step.label + " [" + _("modelled") + "]"
    return step.text


def source_text(step: Step) -> str:
    """The source column: the line as written; a C statement with its file and line."""
    text = tr(step.source).strip()
    if step.c is not None and step.c.where:
        return f"{' '.join(text.split())}   {step.c.where}"
    return text


def wrap_at_spaces(text: str, first: str, rest: str, width: int = TABLE_WIDTH) -> list[str]:
    """*text* in lines of at most *width* cells, broken at spaces only (a word wider than a
    line stays whole on a line of its own)."""
    lines: list[str] = []
    line = first
    bare = True
    for word in text.split(" "):
        if not bare and cell_len(line) + 1 + cell_len(word) > width:
            lines.append(line)
            line, bare = rest, True
        line = line + word if bare else f"{line} {word}"
        bare = False
    lines.append(line)
    return lines


def write_table(trace: Trace, out: TextIO, lang: str = "en") -> None:
    """A plain fixed-width table, then the verdict.

    A row holds the step, CPL, RIP, instruction and source; its events follow on lines of
    their own, indented under it and wrapped at spaces to TABLE_WIDTH columns, so a value
    is never split and a 160-column terminal shows every line whole, whether the output
    goes to a terminal, a file or a pipe.
    """

    def pad(text: str, width: int) -> str:
        return text + " " * max(width - cell_len(text), 0)

    steps = trace.steps
    words = {k: _(k) for k in (N_("instruction"), N_("source"), N_("events"))}
    words["step"] = pgettext("column", "step")  # the number, not the key's action
    number_width = max(cell_len(words["step"]), len(str(len(steps))))
    texts = [escape(table_text(s, trace.c_entry)) for s in steps]
    sources = [escape(source_text(s)) for s in steps]
    # 48: the longest C function a step names, "syscall_exit_to_user_mode_prepare [modelled]"
    text_width = min(max(map(cell_len, [*texts, words["instruction"]]), default=0), 48)
    fixed = number_width + 2 + 3 + 2 + 16 + 2 + text_width + 2
    source_width = min(max(map(cell_len, sources), default=0), TABLE_WIDTH - fixed)
    indent = " " * EVENT_INDENT
    write = out.write
    # Everything a scenario wrote is escaped: no control character reaches the terminal.
    write(escape(f"{trace.scenario} · {trace.kernel} · {trace.cpu}") + "\n")
    header = (
        f"{' ' * (number_width - cell_len(words['step']))}{words['step']}  CPL  {'rip':<16}  "
        f"{pad(words['instruction'], text_width)}  {words['source']}"
    )
    write(header.rstrip() + "\n")
    write(f"{indent}{words['events']}\n")
    rows = []
    for s, text, source in zip(steps, texts, sources, strict=True):
        if cell_len(source) > source_width:
            source = source[: max(source_width - 1, 0)] + "…"
        if cell_len(text) > text_width:  # a long C function's name
            text = text[: max(text_width - 1, 0)] + "…"
        row = (
            f"{s.number:>{number_width}}  {s.cpl:>3}  {s.rip:016x}  "
            f"{pad(text, text_width)}  {source}"
        )
        rows.append(row.rstrip())
        for event in s.events:
            rows.extend(wrap_at_spaces(escape(event_text(event)), indent + "• ", indent + "  "))
    if rows:
        write("\n".join(rows))
        write("\n")
    write_verdict(trace, out)


#: A check's state in the words of the checks panel and the help (JSON keeps the names).
#: At the end of a trace a check not reached was never made: skipped.
RESULT_WORDS = {
    "pass": N_("pass"),
    "fail": N_("FAIL"),
    "not_reached": N_("skipped"),
    "removed": N_("REMOVED"),
}


def write_verdict(trace: Trace, out: TextIO) -> None:
    from engine.checks import describe
    from engine.constants import flag_names
    from engine.views.markdown import EXIT_NAMES

    labels = {k: _(k) for k in (N_("steps:"), N_("exit path:"), N_("failed check:"),
                                N_("fault:"), N_("final:"), N_("stopped:"))}  # fmt: skip
    width = max(max(cell_len(label) for label in labels.values()) + 1, 14)

    def head(label: str) -> str:
        return labels[label] + " " * (width - cell_len(labels[label]))

    final = trace.final
    # English keeps the machine words (scripts read them); another language gets words.
    english = get_language() == "en"
    exit_word = (trace.exit if english else EXIT_NAMES.get(trace.exit or "", trace.exit)) or "—"

    lines = [
        f"{head('steps:')}{len(trace.steps)}",
        f"{head('exit path:')}{exit_word}",
        f"{head('failed check:')}{failed_check_words(trace)}",
    ]
    # 6.12's rip_below_task_size_max is longer than the others: size the column to it
    name_width = max((len(c.name) for c in trace.checks), default=0)
    results = {r: _(w) for r, w in RESULT_WORDS.items()}
    result_width = max(12, *(cell_len(w) + 1 for w in results.values()))

    def result(check: str) -> str:
        word = results.get(check, check)
        return word + " " * (result_width - cell_len(word))

    lines.extend(
        f"  {result(c.result)}{c.name:{name_width}} {escape(tr(describe(c)))}".rstrip()
        for c in trace.checks
    )
    if trace.handler:
        lines.append(f"{trace.c_entry}: " + escape("; ".join(tr(line) for line in trace.handler)))
    for trip in trace.trips:  # a later round trip of the run (a signal handler's rt_sigreturn)
        word = (trip.exit if english else EXIT_NAMES.get(trip.exit or "", trip.exit)) or "—"
        said = msg(
            "{exit} (the next round trip, from step {step}; failed check {check})",
            step=trip.first_step + 1, exit=literal(word),
            check=literal(trip.failed_check or "—"),
        )  # fmt: skip
        lines.append(f"{head('exit path:')}{escape(tr(said))}")
        if trip.handler:
            lines.append(f"{trace.c_entry}: " + escape("; ".join(tr(x) for x in trip.handler)))
    if trace.fault:
        lines.append(f"{head('fault:')}{escape(tr(trace.fault.describe()))}")
    if final is not None:
        lines.append(
            f"{head('final:')}CPL {trace.final_cpl}  RIP {final.rip:#x}  RSP {final.rsp:#x}  "
            f"RFLAGS {final.rflags:#x} [{' '.join(flag_names(final.rflags))}]"
        )
    lines.append(f"{head('stopped:')}{escape(tr(trace.stopped or ''))}")
    # A long fault or handler line goes on under its label, as the events do under a row.
    wrapped = [
        part
        for line in lines
        for part in (
            wrap_at_spaces(line, "", " " * width) if cell_len(line) > TABLE_WIDTH else [line]
        )
    ]
    out.write("\n".join(wrapped) + "\n")
