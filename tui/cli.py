"""The ``syscall-tui`` command: open the debugger, print a trace, or check scenarios.

    syscall-tui [SCENARIO]               the debugger (default scenario without one)
    syscall-tui trace SCENARIO [--json]  the step table, then the verdict
    syscall-tui check PATH...            run every scenario's [expect]; exit 1 on a mismatch
    syscall-tui gdb SCENARIO [--port N]  serve the run to gdb (remote protocol, 127.0.0.1)
    syscall-tui compare A [B] [--kernel K,K] [--cpu C,C] [--json|--summary]
                                         two runs side by side (see tui/compare_cli.py)

A broken scenario prints one line naming the file and key and exits with status 2.
Everything a scenario wrote (its name, file names, user code, program output) is
printed as text: control characters escaped, never read as Rich markup.  A closed
pipe (``trace --json | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine import EngineError, ScenarioError, load_scenario, run_scenario
from engine.checks import describe
from engine.constants import flag_names
from engine.errors import escape
from engine.report import expectation_mismatches, trace_json
from engine.trace import Trace

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in syscall-tui, not in the scenario
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command ended by SIGPIPE


def _error(message: str, status: int = EXIT_BAD_INPUT) -> int:
    print(f"syscall-tui: {escape(message)}", file=sys.stderr)
    return status


def _internal(exc: BaseException) -> str:
    return f"internal error: {type(exc).__name__}: {exc} (a bug in syscall-tui; please report it)"


def print_trace(trace: Trace) -> None:
    """A readable step table, then the verdict."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def text(value: str) -> Text:  # never markup; control characters escaped
        return Text(escape(value))

    # markup=False: the plain strings below carry user text (program output, handler
    # lines, the stop reason) too.
    # soft_wrap: the verdict lines are not broken at 80 columns when piped (the table is)
    console = Console(highlight=False, markup=False, soft_wrap=True)
    console.on_broken_pipe = _reraise_broken_pipe  # type: ignore[method-assign]
    table = Table(title=text(f"{trace.scenario} · {trace.kernel} · {trace.cpu}"), expand=False)
    for col in ("#", "CPL", "rip", "instruction", "source", "events"):
        table.add_column(col, overflow="fold")
    for s in trace.steps:
        events = "; ".join(("[modelled] " if e.modelled else "") + e.text for e in s.events)
        table.add_row(
            str(s.index), str(s.cpl), f"{s.rip:016x}", text(s.text), text(s.source), text(events),
            style="bold" if s.events else None,
        )  # fmt: skip
    console.print(table)
    final = trace.final
    console.print(f"exit path:    {trace.exit or '—'}")
    console.print(f"failed check: {trace.failed_check or 'none'}")
    name_width = max((len(c.name) for c in trace.checks), default=0)
    for c in trace.checks:
        console.print(f"  {c.result:12} {c.name:{name_width}} {escape(describe(c))}")
    if trace.handler:
        console.print("do_syscall_64: " + escape("; ".join(trace.handler)))
    if trace.fault:
        console.print(f"fault:        {escape(trace.fault.describe())}", style="bold red")
    if final is not None:
        console.print(
            f"final:        CPL {trace.final_cpl}  RIP {final.rip:#x}  RSP {final.rsp:#x}  "
            f"RFLAGS {final.rflags:#x} [{' '.join(flag_names(final.rflags))}]"
        )
    console.print(f"stopped:      {escape(trace.stopped or '')}")


def _reraise_broken_pipe() -> None:
    """Rich would exit with status 1 itself; let main end every broken pipe the same way."""
    raise BrokenPipeError


def cmd_trace(path: str, as_json: bool) -> int:
    try:
        trace = run_scenario(load_scenario(path))
    except ScenarioError as exc:
        return _error(str(exc))
    if as_json:
        json.dump(trace_json(trace), sys.stdout, indent=1)
        sys.stdout.write("\n")
        sys.stdout.flush()  # a closed pipe shows here, inside main's handler
    else:
        print_trace(trace)
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


def _check_one(f: Path) -> tuple[str, str]:
    """One file's verdict for `check`: (ok|FAIL|SKIP|ERROR, one escaped line)."""
    name = escape(str(f))
    try:
        sc = load_scenario(f)
        trace = run_scenario(sc)
        problems = expectation_mismatches(sc, trace)
    except ScenarioError as exc:
        return "ERROR", str(exc)
    except Exception as exc:  # one file's engine failure must not hide the others' results
        return "ERROR", f"{name}: {escape(_internal(exc))}"
    if not sc.expect.given:
        return "SKIP", f"{name}: no [expect]"
    if problems:
        return "FAIL", f"{name}: " + escape("; ".join(problems))
    verdict = f"exit {trace.exit or 'none'}, failed check {trace.failed_check or 'none'}"
    return "ok", f"{name}: {verdict}"


def cmd_check(paths: list[str]) -> int:
    """Check every file, whatever happens to one; exit 2 if any was broken, else 1 if any
    failed its [expect], else 0.  Files without [expect] are counted as skipped."""
    files = _scenario_files(paths)
    if not files:
        return _error(f"no scenario files in {' '.join(paths)}")
    counts = {"ok": 0, "FAIL": 0, "SKIP": 0, "ERROR": 0}
    for f in files:
        verdict, line = _check_one(f)
        counts[verdict] += 1
        print(f"{verdict:5} {line}", flush=True)
    summary = f"{counts['ok']} passed, {counts['FAIL']} failed"
    if counts["SKIP"]:
        summary += f", {counts['SKIP']} skipped"
    if counts["ERROR"]:
        summary += f", {counts['ERROR']} broken"
    print(summary)
    if counts["ERROR"]:
        return EXIT_BAD_INPUT
    return 1 if counts["FAIL"] else 0


def cmd_gdb(argv: list[str]) -> int:
    from tui.gdb import main as gdb_main

    return gdb_main(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`trace --json | head`): stop quietly.  Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "gdb":
            return cmd_gdb(args[1:])
        if args and args[0] == "compare":
            from tui.compare_cli import main_compare

            return main_compare(args[1:])
        if args and args[0] in ("trace", "check"):
            parser = argparse.ArgumentParser(prog=f"syscall-tui {args[0]}")
            if args[0] == "trace":
                parser.add_argument("scenario")
                parser.add_argument("--json", action="store_true", help="print the trace as JSON")
                ns = parser.parse_args(args[1:])
                return cmd_trace(ns.scenario, ns.json)
            parser.add_argument("paths", nargs="+", help="scenario files or folders")
            ns = parser.parse_args(args[1:])
            return cmd_check(ns.paths)
        parser = argparse.ArgumentParser(
            prog="syscall-tui",
            description="Step through Linux entry_SYSCALL_64 (v5.8.13, 6.1 or 6.12, as the "
            "scenario's [machine] kernel says) on an emulated CPU. "
            "Subcommands: trace SCENARIO [--json], check PATH..., gdb SCENARIO [--port N], "
            "compare A [B] ...",
        )
        parser.add_argument("scenario", nargs="?", help="scenario file (default: built-in getpid)")
        ns = parser.parse_args(args)
        if ns.scenario is not None:
            try:
                load_scenario(ns.scenario)
            except ScenarioError as exc:
                return _error(str(exc))
        from tui.app import run_app

        return run_app(ns.scenario)
    except EngineError as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # ^C inside a Unicorn hook
            return 130
        return _error(f"engine error: {exc}")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # never a traceback; the one line says it is our bug
        return _error(_internal(exc), EXIT_INTERNAL)
