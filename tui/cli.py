"""The ``syscall-tui`` command: open the debugger, print a trace, or check scenarios.

    syscall-tui [SCENARIO]               the debugger (default scenario without one)
    syscall-tui trace SCENARIO [--json]  the step table, then the verdict
    syscall-tui trace SCENARIO --format markdown [--lang ja]
                                         an annotated listing of the run, in Markdown
    syscall-tui check PATH...            run every scenario's [expect]; exit 1 on a mismatch
    syscall-tui serve [SCENARIO] [--port 8000] [--host 127.0.0.1]
                                         the debugger in a browser, one instance per tab
    syscall-tui gdb SCENARIO [--port N]  serve the run to gdb (remote protocol, 127.0.0.1)

A broken scenario prints one line naming the file and key and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine import EngineError, ScenarioError, load_scenario, run_scenario
from engine.checks import describe
from engine.constants import flag_names
from engine.report import expectation_mismatches, trace_json
from engine.trace import Trace

EXIT_BAD_INPUT = 2


def _error(message: str) -> int:
    print(f"syscall-tui: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def print_trace(trace: Trace) -> None:
    """A readable step table, then the verdict."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"{trace.scenario} · {trace.kernel} · {trace.cpu}", expand=False)
    for col in ("#", "CPL", "rip", "instruction", "source", "events"):
        table.add_column(col, overflow="fold")
    for s in trace.steps:
        events = "; ".join(("[modelled] " if e.modelled else "") + e.text for e in s.events)
        table.add_row(
            str(s.index), str(s.cpl), f"{s.rip:016x}", s.text, s.source, events,
            style="bold" if s.events else None,
        )  # fmt: skip
    console.print(table)
    final = trace.final
    console.print(f"exit path:    {trace.exit or '—'}")
    console.print(f"failed check: {trace.failed_check or 'none'}")
    for c in trace.checks:
        console.print(f"  {c.result:12} {c.name:14} {describe(c)}")
    if trace.handler:
        console.print("do_syscall_64: " + "; ".join(trace.handler))
    if trace.fault:
        console.print(f"fault:        {trace.fault.describe()}", style="bold red")
    if final is not None:
        console.print(
            f"final:        CPL {trace.final_cpl}  RIP {final.rip:#x}  RSP {final.rsp:#x}  "
            f"RFLAGS {final.rflags:#x} [{' '.join(flag_names(final.rflags))}]"
        )
    console.print(f"stopped:      {trace.stopped}")


def cmd_trace(path: str, fmt: str, lang: str = "en") -> int:
    try:
        trace = run_scenario(load_scenario(path))
    except ScenarioError as exc:
        return _error(str(exc))
    if fmt == "json":
        json.dump(trace_json(trace), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif fmt == "markdown":
        from engine.export import ExportError, trace_markdown

        try:
            sys.stdout.write(trace_markdown(trace, lang))
        except ExportError as exc:
            return _error(str(exc))
    else:
        print_trace(trace)
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0-65535, got {text!r}")
    return port


def cmd_serve(scenario: str | None, host: str, port: int, public_url: str | None) -> int:
    if scenario is not None:
        try:
            load_scenario(scenario)
        except ScenarioError as exc:
            return _error(str(exc))
    from tui.serve import serve

    try:
        return serve(scenario, host, port, public_url)
    except OSError as exc:  # the address is taken or not ours
        return _error(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


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
    files = _scenario_files(paths)
    if not files:
        return _error(f"no scenario files in {' '.join(paths)}")
    bad_input = failed = 0
    for f in files:
        try:
            sc = load_scenario(f)
            trace = run_scenario(sc)
        except ScenarioError as exc:
            print(f"ERROR {exc}")
            bad_input += 1
            continue
        problems = expectation_mismatches(sc, trace)
        if not sc.expect.given:
            print(f"SKIP  {f}: no [expect]")
        elif problems:
            failed += 1
            print(f"FAIL  {f}: " + "; ".join(problems))
        else:
            verdict = f"exit {trace.exit or 'none'}, failed check {trace.failed_check or 'none'}"
            print(f"ok    {f}: {verdict}")
    print(f"{len(files) - failed - bad_input} passed, {failed} failed", end="")
    print(f", {bad_input} broken" if bad_input else "")
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
        if args and args[0] == "serve":
            parser = argparse.ArgumentParser(
                prog="syscall-tui serve",
                description="Serve the debugger to web browsers; each tab runs its own instance.",
            )
            parser.add_argument("scenario", nargs="?", help="scenario file (default: getpid)")
            parser.add_argument("--port", type=_port, default=8000, help="TCP port (0: any free)")
            parser.add_argument(
                "--host",
                default="127.0.0.1",
                help="address to listen on (default 127.0.0.1; anyone reaching another "
                "address runs the app)",
            )
            parser.add_argument(
                "--public-url",
                help="the URL browsers use, when it is not the address they connect to "
                "(behind a proxy)",
            )
            ns = parser.parse_args(args[1:])
            return cmd_serve(ns.scenario, ns.host, ns.port, ns.public_url)
        if args and args[0] in ("trace", "check"):
            parser = argparse.ArgumentParser(prog=f"syscall-tui {args[0]}")
            if args[0] == "trace":
                parser.add_argument("scenario")
                parser.add_argument(
                    "--format", choices=("table", "json", "markdown"), default="table"
                )
                parser.add_argument(
                    "--json", dest="format", action="store_const", const="json",
                    help="the same as --format json",
                )  # fmt: skip
                parser.add_argument(
                    "--lang", choices=("en", "ja"), default="en",
                    help="language of the markdown listing's explanations",
                )  # fmt: skip
                ns = parser.parse_args(args[1:])
                return cmd_trace(ns.scenario, ns.format, ns.lang)
            parser.add_argument("paths", nargs="+", help="scenario files or folders")
            ns = parser.parse_args(args[1:])
            return cmd_check(ns.paths)
        parser = argparse.ArgumentParser(
            prog="syscall-tui",
            description="Step through Linux entry_SYSCALL_64 (v5.8.13, 6.1 or 6.12, as the "
            "scenario's [machine] kernel says) on an emulated CPU. "
            "Subcommands: trace SCENARIO [--format table|json|markdown], check PATH..., "
            "gdb SCENARIO [--port N], serve [SCENARIO] [--port N] [--host ADDR]",
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
        return _error(f"engine error: {exc}")
    except KeyboardInterrupt:
        return 130
