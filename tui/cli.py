"""The ``syscall-tui`` command: open the debugger, print a trace, or check scenarios.

    syscall-tui [SCENARIO] [--lang en|ja]  the debugger (default scenario without one)
    syscall-tui trace SCENARIO [--format table|json|markdown] [--lang en|ja]
                                         the step table (or JSON, or an annotated
                                         Markdown listing), then the verdict
    syscall-tui check PATH...            run every scenario's [expect]; exit 1 on a mismatch
    syscall-tui serve [SCENARIO] [--port 8000] [--host 127.0.0.1]
                                         the debugger in a browser, one instance per tab
    syscall-tui gdb SCENARIO [--port N]  serve the run to gdb (remote protocol, 127.0.0.1)
    syscall-tui compare A [B] [--kernel K,K] [--cpu C,C] [--json|--summary]
                                         two runs side by side (see tui/compare_cli.py)
    syscall-tui compare A --against TRACE  A beside a real kernel's trace of it
    syscall-tui x SCENARIO ADDR [--step N] [--count K] [--root user|kernel|live] [--json]
    syscall-tui walk SCENARIO ADDR [--step N] [--json]
    syscall-tui info SCENARIO gdt|tss|idt|cr|msr [--step N]
                                         memory, a page walk under both roots, or the
                                         descriptor tables at a step (tui/inspect_cli.py)

A broken scenario prints one line naming the file and key and exits with status 2 (in
English, whatever the language).  Without --lang the explanations follow the locale
(LANGUAGE, LC_ALL, LC_MESSAGES, LANG: ja_JP.UTF-8 gives Japanese); JSON is always English.
Everything a scenario wrote (its name, file names, user code, program output) is
printed as text: control characters escaped, never read as Rich markup.  A closed
pipe (``trace --json | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, Protocol, TextIO

# Only light modules here: the debugger's start must not wait for the parser, Unicorn,
# Capstone or Keystone (the commands that need them import them).
from engine.errors import EngineError, ScenarioError, escape
from engine.i18n import (
    LANGUAGES,
    Msg,
    joined,
    language_from_env,
    literal,
    msg,
    pgettext,
    set_language,
    tr,
)
from engine.trace import Door, Trace
from engine.views.table import write_table

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in syscall-tui, not in the scenario
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command ended by SIGPIPE


def _error(message: str, status: int = EXIT_BAD_INPUT) -> int:
    print(f"syscall-tui: {escape(message)}", file=sys.stderr)
    return status


def _internal(exc: BaseException) -> str:
    return f"internal error: {type(exc).__name__}: {exc} (a bug in syscall-tui; please report it)"


#: A trace output format: writes the whole trace to a text stream, in a language
#: (``--lang``; only the Markdown listing has texts to translate).
class Writer(Protocol):
    def __call__(self, trace: Trace, out: TextIO, lang: str = "en") -> None: ...


#: ``--format`` choices by name.  A new format is one function under ``@trace_format("name")``.
TRACE_FORMATS: dict[str, Writer] = {}


def trace_format(name: str) -> Callable[[Writer], Writer]:
    """Register a writer as ``syscall-tui trace --format NAME``."""

    def register(writer: Writer) -> Writer:
        TRACE_FORMATS[name] = writer
        return writer

    return register


# The table lives with the other views of a trace (engine.views.table); registered here.
TRACE_FORMATS["table"] = write_table


@trace_format("json")
def write_json(trace: Trace, out: TextIO, lang: str = "en") -> None:
    """The trace as JSON (see engine.views.json.trace_json)."""
    from engine.views.json import trace_json
    from engine.views.json_steps import StepWriter

    # One step a line, each encoded and written as it is made: 100,000 steps held as
    # dicts, then as one string, took 800 MB.  json's indenting encoder is pure Python
    # (seconds for a step-cap run); the steps are written by StepWriter, which makes
    # the compact encoder's text without building the dicts.  The rest stays indented.
    head = json.dumps(trace_json(trace, steps=False), indent=1)
    marker = '\n "steps": [],\n'  # top-level keys are indented by one space
    before, after = head.split(marker)
    out.write(before + '\n "steps": [')
    encode = StepWriter().encode
    for k, step in enumerate(trace.steps):
        out.write(("\n  " if k == 0 else ",\n  ") + encode(step))
    out.write(("\n ],\n" if trace.steps else "],\n") + after + "\n")


@trace_format("markdown")
def write_markdown(trace: Trace, out: TextIO, lang: str = "en") -> None:
    """The run as an annotated listing to publish (see engine.views.markdown)."""
    from engine.views.markdown import trace_markdown

    out.write(trace_markdown(trace, lang))


def cmd_trace(path: str, output: str = "table", lang: str = "en") -> int:
    from engine import load_scenario, run_scenario
    from engine.views.markdown import ExportError

    try:
        trace = run_scenario(load_scenario(path))
    except ScenarioError as exc:
        return _error(str(exc))
    # Written in 64 KiB pieces, not a line at a time (10,000 rows cost a few hundred system
    # calls), and not in one piece: a reader that went away shows at the next piece as
    # a broken pipe, inside main's handler.
    out = _Chunked(sys.stdout)
    try:
        TRACE_FORMATS[output](trace, out, lang)
    except ExportError as exc:
        return _error(str(exc))
    out.flush()
    return 0


class _Chunked(io.StringIO):
    """Text gathered and passed on in 64 KiB pieces: never the whole output at once."""

    PIECE = 1 << 16

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target
        self.size = 0

    def write(self, text: str) -> int:
        n = super().write(text)
        self.size += n
        if self.size >= self.PIECE:
            self.flush()
        return n

    def flush(self) -> None:
        if self.size:  # emptied first: a broken pipe must not be met again at close
            text = self.getvalue()
            self.seek(0)
            self.truncate()
            self.size = 0
            self.target.write(text)
            self.target.flush()


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
        from engine import load_scenario

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


def _check_one(f: Path) -> tuple[str, str]:
    """One file's verdict for `check`: (ok|FAIL|SKIP|ERROR, one escaped line)."""
    from engine import load_scenario, run_scenario
    from engine.views.json import expectation_mismatches

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
        return "SKIP", f"{name}: " + tr(msg("no [expect]"))
    if problems:
        return "FAIL", f"{name}: " + escape("; ".join(problems))
    return "ok", f"{name}: {tr(check_verdict(trace))}"


def check_verdict(trace: Trace) -> Msg:
    """What the run did, as `check` reports it: the exit, the checks, and the fault that
    ended it, if any (the what-if scenarios are about that #GP at CPL 0, not the exit).

    "exit SYSRET, all checks passed, then #GP at CPL 0"; "no exit: #UD at CPL 3 before the
    checks"; "no exit: the run ended before the checks" (exit(), the step cap).  English
    (a Msg); tr() renders it in the UI's language.
    """
    fault = (
        msg("#{name} at CPL {cpl}", name=literal(trace.fault.name.lstrip("#")), cpl=trace.fault.cpl)
        if trace.fault
        else None
    )
    before = not trace.failed_check and all(c.result == "not_reached" for c in trace.checks)
    if not trace.exit:
        ended = fault or msg("the run ended")
        if not trace.checks:  # FRED: no SYSRET check exists, so none can be ahead
            return msg("no exit: {ended}", ended=ended)
        if before:
            return msg("no exit: {ended} before the checks", ended=ended)
        if trace.failed_check:
            return msg(
                "no exit: {ended} after {check} failed",
                ended=ended,
                check=literal(trace.failed_check),
            )
        return msg("no exit: {ended} after every check passed", ended=ended)
    exit_word = literal(trace.exit.upper())
    if trace.failed_check:
        verdict = msg(
            "exit {exit}, {check} failed", exit=exit_word, check=literal(trace.failed_check)
        )
    elif trace.door is Door.INT80:  # entry_INT80_compat never tries SYSRET
        verdict = msg("exit {exit}, no SYSRET checks after int $0x80", exit=exit_word)
    elif trace.door is Door.SYSCALL32 and not trace.checks:  # the ignore entry: SYSRETL
        verdict = msg("exit {exit}, no SYSRET checks in entry_SYSCALL32_ignore", exit=exit_word)
    elif not trace.checks:  # FRED: ERETU restores everything, so nothing is checked
        verdict = msg("exit {exit}, no SYSRET checks under FRED", exit=exit_word)
    elif before:
        verdict = msg("exit {exit}, before the checks", exit=exit_word)
    else:
        verdict = msg("exit {exit}, all checks passed", exit=exit_word)
    return msg("{verdict}, then {fault}", verdict=verdict, fault=fault) if fault else verdict


def cmd_check(paths: list[str]) -> int:
    """Check every file, whatever happens to one; exit 2 if any was broken, else 1 if any
    failed its [expect], else 0.  Files without [expect] are counted as skipped.  The
    verdict words (ok, FAIL, SKIP, ERROR) are tags, the same in every language."""
    files = _scenario_files(paths)
    if not files:
        return _error(f"no scenario files in {' '.join(paths)}")
    counts = {"ok": 0, "FAIL": 0, "SKIP": 0, "ERROR": 0}
    for f in files:
        verdict, line = _check_one(f)
        counts[verdict] += 1
        print(f"{verdict:5} {line}", flush=True)
    parts = [msg("{n} passed", n=counts["ok"]), msg("{n} failed", n=counts["FAIL"])]
    if counts["SKIP"]:
        parts.append(msg("{n} skipped", n=counts["SKIP"]))
    if counts["ERROR"]:
        parts.append(msg("{n} broken", n=counts["ERROR"]))
    summary: str = joined(pgettext("list separator", ", "), parts)
    if not counts["ok"] and not counts["FAIL"]:
        summary = msg("{summary}: no check ran", summary=summary)
    print(tr(summary))
    if counts["ERROR"]:
        return EXIT_BAD_INPUT
    return 1 if counts["FAIL"] else 0


def _language_option(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    # A command's own --lang is SUPPRESSed when absent, so `syscall-tui --lang ja trace F`
    # keeps the language given before the command.
    parser.add_argument(
        "--lang",
        choices=sorted(LANGUAGES),
        default=default,
        help="language of the explanations (default: from the locale, LANG=ja_JP.UTF-8 → ja)",
    )


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


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line ("syscall-tui trace: ..."), exit status 2, as a
    broken scenario's are; ``-h`` still prints the usage and every option."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {escape(message)}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


#: The subcommands; the first word that is none of these (or no word) opens the debugger.
COMMANDS = ("open", "trace", "check", "serve", "gdb", "compare", "x", "walk", "info")


def build_parser() -> Parser:
    """The command line: one subparser per command, each listing its own options."""
    parser = Parser(
        prog="syscall-tui",
        description="Step through Linux entry_SYSCALL_64 (v5.8.13, 6.1 or 6.12, as the "
        "scenario's [machine] kernel says) on an emulated CPU. Without a command: the "
        "debugger on SCENARIO (default: the built-in getpid scenario).",
    )
    _language_option(parser, default=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    debug = sub.add_parser("open", help="the debugger (the default command)")
    debug.add_argument("scenario", nargs="?", help="scenario file (default: built-in getpid)")
    _language_option(debug)

    trace = sub.add_parser("trace", help="the step table, JSON or a Markdown listing")
    trace.add_argument("scenario")
    trace.add_argument(
        "--format",
        choices=sorted(TRACE_FORMATS),
        default="table",
        help="table (plain fixed-width text, the default), json or markdown",
    )
    trace.add_argument("--json", action="store_true", help="same as --format json")
    _language_option(trace)

    check = sub.add_parser("check", help="every scenario's [expect]; exit 1 on a mismatch")
    check.add_argument("paths", nargs="+", help="scenario files or folders")
    _language_option(check)

    serve = sub.add_parser(
        "serve",
        help="the debugger in a browser",
        description="Serve the debugger to web browsers; each tab runs its own instance.",
    )
    serve.add_argument("scenario", nargs="?", help="scenario file (default: getpid)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port (0: any free)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anyone reaching another "
        "address runs the app)",
    )
    serve.add_argument(
        "--public-url",
        help="the URL browsers use, when it is not the address they connect to (behind a proxy)",
    )

    from tui import compare_cli, gdb, inspect_cli

    for name, add in (
        ("x", inspect_cli.add_x_arguments),
        ("walk", inspect_cli.add_walk_arguments),
        ("info", inspect_cli.add_info_arguments),
    ):
        add(sub.add_parser(name, help=inspect_cli.HELP[name], description=inspect_cli.HELP[name]))

    gdb.add_arguments(sub.add_parser("gdb", help=gdb.HELP, description=gdb.DESCRIPTION))
    compare_cli.add_arguments(
        sub.add_parser("compare", help=compare_cli.HELP, description=compare_cli.DESCRIPTION)
    )
    return parser


def with_command(args: list[str]) -> list[str]:
    """*args* with ``open`` put first when they name no command (``syscall-tui FILE``)."""
    words = iter(args)
    for word in words:
        if word in ("-h", "--help"):
            return args
        if word == "--lang":
            next(words, None)  # its value
        elif not word.startswith("-"):
            return args if word in COMMANDS else ["open", *args]
    return ["open", *args]


def _main(argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            ns = build_parser().parse_args(with_command(args))
        except SystemExit as exit:  # -h, or a bad command line (one line said why)
            return exit.code if isinstance(exit.code, int) else EXIT_BAD_INPUT
        lang = ns.lang or language_from_env()
        set_language(lang)
        if ns.command == "trace":
            return cmd_trace(ns.scenario, "json" if ns.json else ns.format, lang)
        if ns.command == "check":
            return cmd_check(ns.paths)
        if ns.command == "serve":
            return cmd_serve(ns.scenario, ns.host, ns.port, ns.public_url)
        if ns.command == "gdb":
            from tui.gdb import run

            return run(ns)
        if ns.command in ("x", "walk", "info"):
            from tui import inspect_cli

            answer = {"x": inspect_cli.run_x, "walk": inspect_cli.run_walk}
            return answer.get(ns.command, inspect_cli.run_info)(ns)
        if ns.command == "compare":
            from tui.compare_cli import run as run_compare

            return run_compare(ns)
        # Not tui.app: the engine starts working (and reports a broken file) before
        # Textual is imported.
        from tui.launch import run_app

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
