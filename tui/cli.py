"""The ``syscall-tui`` command: open the debugger, print a trace, or check scenarios.

    syscall-tui [SCENARIO]               the debugger (default scenario without one)
    syscall-tui trace SCENARIO [--format table|json]  the step table, then the verdict
    syscall-tui check PATH...            run every scenario's [expect]; exit 1 on a mismatch
    syscall-tui gdb SCENARIO [--port N]  serve the run to gdb (remote protocol, 127.0.0.1)

A broken scenario prints one line naming the file and key and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from engine.errors import EngineError, ScenarioError
from engine.trace import Event, Step, Trace

EXIT_BAD_INPUT = 2


def _error(message: str) -> int:
    print(f"syscall-tui: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


#: A trace output format: writes the whole trace to a text stream.
Writer = Callable[[Trace, TextIO], None]

#: ``--format`` choices by name.  A new format is one function under ``@trace_format("name")``.
TRACE_FORMATS: dict[str, Writer] = {}


def trace_format(name: str) -> Callable[[Writer], Writer]:
    """Register a writer as ``syscall-tui trace --format NAME``."""

    def register(writer: Writer) -> Writer:
        TRACE_FORMATS[name] = writer
        return writer

    return register


def step_number(step: Step) -> int:
    """The number a person sees for a step: 1 is the first instruction, as in the app
    (position N is "after step N", and ``g N`` goes there)."""
    return step.index + 1


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def failed_check_words(trace: Trace) -> str:
    """The first failed check, "none" when every check that ran passed, or "no check ran"
    when the run never reached them (a fault, the step cap)."""
    if trace.failed_check:
        return trace.failed_check
    if all(c.result == "not_reached" for c in trace.checks):
        return "no check ran"
    return "none"


def event_text(event: Event) -> str:
    return ("[modelled] " if event.modelled else "") + event.text


@trace_format("table")
def write_table(trace: Trace, out: TextIO) -> None:
    """A plain fixed-width table, then the verdict.

    No wrapping and no terminal width: a row is one line however long, so a value is never
    split, whether the output goes to a terminal, a file or a pipe.
    """
    steps = trace.steps
    number_width = max(len("step"), len(str(len(steps))))
    text_width = max((len(s.text) for s in steps), default=0)
    source_width = min(max((len(s.source.strip()) for s in steps), default=0), 60)
    write = out.write
    write(f"{trace.scenario} · {trace.kernel} · {trace.cpu}\n")
    header = (
        f"{'step':>{number_width}}  CPL  {'rip':<16}  {'instruction':<{text_width}}  "
        f"{'source':<{source_width}}  events"
    )
    write(header.rstrip() + "\n")
    rows = []
    for s in steps:
        events = "; ".join(event_text(e) for e in s.events)
        row = (
            f"{step_number(s):>{number_width}}  {s.cpl:>3}  {s.rip:016x}  "
            f"{s.text:<{text_width}}  {s.source.strip():<{source_width}}  {events}"
        )
        rows.append(row.rstrip())
    if rows:
        write("\n".join(rows))
        write("\n")
    write_verdict(trace, out)


def write_verdict(trace: Trace, out: TextIO) -> None:
    from engine.checks import describe
    from engine.constants import flag_names

    final = trace.final
    lines = [
        f"steps:        {len(trace.steps)}",
        f"exit path:    {trace.exit or '—'}",
        f"failed check: {failed_check_words(trace)}",
    ]
    lines.extend(f"  {c.result:12} {c.name:14} {describe(c)}".rstrip() for c in trace.checks)
    if trace.handler:
        lines.append("do_syscall_64: " + "; ".join(trace.handler))
    if trace.fault:
        lines.append(f"fault:        {trace.fault.describe()}")
    if final is not None:
        lines.append(
            f"final:        CPL {trace.final_cpl}  RIP {final.rip:#x}  RSP {final.rsp:#x}  "
            f"RFLAGS {final.rflags:#x} [{' '.join(flag_names(final.rflags))}]"
        )
    lines.append(f"stopped:      {trace.stopped}")
    out.write("\n".join(lines) + "\n")


@trace_format("json")
def write_json(trace: Trace, out: TextIO) -> None:
    """The trace as JSON (see engine.report.trace_json)."""
    from engine.report import trace_json

    json.dump(trace_json(trace), out, indent=1)
    out.write("\n")


def print_trace(trace: Trace) -> None:
    """The step table, then the verdict, on stdout."""
    write_table(trace, sys.stdout)


def cmd_trace(path: str, output: str = "table") -> int:
    from engine import load_scenario, run_scenario

    try:
        trace = run_scenario(load_scenario(path))
    except ScenarioError as exc:
        return _error(str(exc))
    # One write of the whole text: 10,000 rows cost one system call, not 10,000.
    buffer = io.StringIO()
    TRACE_FORMATS[output](trace, buffer)
    try:
        sys.stdout.write(buffer.getvalue())
        sys.stdout.flush()
    except BrokenPipeError:
        # `syscall-tui trace X | head`: the reader has what it wanted.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _scenario_files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(path.rglob("*.toml")))
        else:
            out.append(path)
    return out


def cmd_check(paths: list[str]) -> int:
    from engine import load_scenario, run_scenario
    from engine.report import expectation_mismatches

    files = _scenario_files(paths)
    if not files:
        return _error(f"no scenario files in {' '.join(paths)}")
    bad_input = failed = skipped = passed = 0
    for f in files:
        try:
            sc = load_scenario(f)
            trace = run_scenario(sc)
        except ScenarioError as exc:
            print(f"ERROR {exc}")
            bad_input += 1
            continue
        if not sc.expect.given:
            # Nothing to compare: neither a pass nor a failure.
            skipped += 1
            print(f"SKIP  {f}: no [expect]")
            continue
        problems = expectation_mismatches(sc, trace)
        if problems:
            failed += 1
            print(f"FAIL  {f}: " + "; ".join(problems))
        else:
            passed += 1
            verdict = f"exit {trace.exit or 'none'}, failed check {failed_check_words(trace)}"
            print(f"ok    {f}: {verdict}")
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped (no [expect])"
    if bad_input:
        summary += f", {bad_input} broken"
    if not passed and not failed:
        summary += ": no check ran"
    print(summary)
    if bad_input:
        return EXIT_BAD_INPUT
    return 1 if failed else 0


def cmd_gdb(argv: list[str]) -> int:
    from tui.gdb import main as gdb_main

    return gdb_main(argv)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "gdb":
            return cmd_gdb(args[1:])
        if args and args[0] in ("trace", "check"):
            parser = argparse.ArgumentParser(prog=f"syscall-tui {args[0]}")
            if args[0] == "trace":
                parser.add_argument("scenario")
                parser.add_argument(
                    "--format",
                    choices=sorted(TRACE_FORMATS),
                    default="table",
                    help="table (plain fixed-width text, the default) or another format",
                )
                parser.add_argument("--json", action="store_true", help="same as --format json")
                ns = parser.parse_args(args[1:])
                return cmd_trace(ns.scenario, "json" if ns.json else ns.format)
            parser.add_argument("paths", nargs="+", help="scenario files or folders")
            ns = parser.parse_args(args[1:])
            return cmd_check(ns.paths)
        parser = argparse.ArgumentParser(
            prog="syscall-tui",
            description="Step through Linux entry_SYSCALL_64 (v5.8.13, 6.1 or 6.12, as the "
            "scenario's [machine] kernel says) on an emulated CPU. "
            "Subcommands: trace SCENARIO [--format table|json], check PATH..., "
            "gdb SCENARIO [--port N]",
        )
        parser.add_argument("scenario", nargs="?", help="scenario file (default: built-in getpid)")
        ns = parser.parse_args(args)
        # Not tui.app: the engine starts working before Textual is imported.
        from tui.launch import run_app

        return run_app(ns.scenario)
    except EngineError as exc:
        return _error(f"engine error: {exc}")
    except KeyboardInterrupt:
        return 130
