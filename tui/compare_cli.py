"""``syscall-tui compare``: two runs side by side, in the TUI or as a summary or JSON.

    syscall-tui compare A.toml B.toml                 two scenarios
    syscall-tui compare A.toml --kernel v5.8.13,v6.1  one scenario on two kernels
    syscall-tui compare A.toml --cpu intel,amd        one scenario on two CPU vendors
    syscall-tui compare A.toml --fred off,on          one scenario on 6.12 without and with FRED
        [--json | --summary]
    syscall-tui compare A.toml --against TRACE        one scenario against a real kernel's
                                                      single-step trace of it (scripts/oracle's)

The TUI opens when stdout is a terminal; otherwise (a pipe, a file) and with --summary the
text summary is printed, with --json the JSON.  Headless, the exit status is that of diff:
0 when the runs are identical, 1 when they differ, 2 for bad input.
"""

from __future__ import annotations

import argparse
import gc
import sys

from engine import ScenarioError, load_scenario, run_scenario
from engine.compare.diff import compare_traces, variant
from engine.compare.render import comparison_json_text, summary_lines
from engine.errors import escape, json_safe
from engine.i18n import LANGUAGES, tr
from engine.kernel import KERNELS
from engine.scenario.model import CPU_MODELS, CPUS

EXIT_BAD_INPUT = 2


class BadArguments(Exception):
    """A command line that cannot be run; the message is one line."""


HELP = "two runs side by side"
DESCRIPTION = "Two runs side by side, aligned by what they do, with where they part."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``syscall-tui compare`` (tui.cli builds the parser)."""
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="one or two scenario files")
    p.add_argument(
        "--kernel",
        metavar="K[,K]",
        help=f"kernel of A and B (one name: both); one of {', '.join(KERNELS)}",
    )
    p.add_argument(
        "--cpu", metavar="C[,C]", help=f"CPU vendor of A and B (one name: both); {', '.join(CPUS)}"
    )
    p.add_argument(
        "--cpu-model",
        metavar="M[,M]",
        help="CPU model of A and B (one name: both), as [machine] cpu_model: its vendor and "
        f"the mitigations its kernel patches in; {', '.join(CPU_MODELS)}",
    )
    p.add_argument(
        "--fred",
        metavar="off|on[,off|on]",
        help="FRED off or on for A and B (6.12 on a FRED CPU, PTI off; see docs/scenarios.md)",
    )
    p.add_argument(
        "--against",
        metavar="TRACE",
        help="a real kernel's trace of the scenario (scripts/oracle's .json.gz): the "
        "scenario runs on that machine and is shown instruction by instruction beside it",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the comparison as JSON")
    out.add_argument("--summary", action="store_true", help="print the text summary")
    p.add_argument(
        "--lang",
        choices=sorted(LANGUAGES),
        default=argparse.SUPPRESS,
        help="language of the view (default: from the locale, LANG=ja_JP.UTF-8 → ja)",
    )


def _pair(value: str | None, option: str, choices: tuple[str, ...]) -> list[str]:
    if value is None:
        return []
    names = [v.strip() for v in value.split(",")]
    if not 1 <= len(names) <= 2:
        raise BadArguments(f"{option}: expected one or two names separated by a comma")
    for name in names:
        if name not in choices:
            raise BadArguments(f"{option}: unknown {name!r}; expected one of {', '.join(choices)}")
    return names


def run(ns: argparse.Namespace) -> int:
    """``syscall-tui compare``, with the options :func:`add_arguments` defined (the language
    is set already)."""
    # Two 100,000-step runs are millions of records, none of them in a reference cycle:
    # the cyclic collector walked them over and over while the second run, the alignment
    # and the JSON were made (seconds of a compare).  Off for this batch work; on again
    # for the interactive view and when the command returns.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(ns)
    finally:
        if enabled:
            gc.enable()


def _run(ns: argparse.Namespace) -> int:
    if ns.against is not None:
        return _run_against(ns)
    try:
        files: list[str] = ns.scenarios
        if len(files) > 2:
            raise BadArguments(f"expected one or two scenario files, got {len(files)}")
        kernels = _pair(ns.kernel, "--kernel", KERNELS)
        cpus = _pair(ns.cpu, "--cpu", CPUS)
        freds = [v == "on" for v in _pair(ns.fred, "--fred", ("off", "on"))]
        models = _pair(ns.cpu_model, "--cpu-model", tuple(CPU_MODELS))
        if len(files) == 1 and max(len(kernels), len(cpus), len(freds), len(models)) < 2:
            raise BadArguments(
                "one scenario needs two kernels, two CPUs, two CPU models or FRED off and on "
                "to compare (--kernel A,B, --cpu A,B, --cpu-model A,B or --fred off,on), or "
                "give two scenario files"
            )
        if freds and kernels:
            raise BadArguments("--fred runs 6.12 on both sides: it takes no --kernel")
        if models and cpus:
            raise BadArguments("--cpu-model names the CPU's vendor itself: it takes no --cpu")
    except BadArguments as exc:
        print(f"syscall-tui compare: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        scenarios = [load_scenario(f) for f in files]
        traces = []
        for side, sc in enumerate(scenarios * (3 - len(scenarios))):
            if side >= 2:
                break
            kernel = kernels[min(side, len(kernels) - 1)] if kernels else None
            cpu = cpus[min(side, len(cpus) - 1)] if cpus else None
            fred = freds[min(side, len(freds) - 1)] if freds else None
            model = models[min(side, len(models) - 1)] if models else None
            one = variant(sc, kernel=kernel, cpu=cpu, fred=fred, cpu_model=model)
            if model is not None and one.kernel not in CPU_MODELS[model]:
                raise BadArguments(
                    f"--cpu-model {model} is checked against a real trace of "
                    f"{' and '.join(CPU_MODELS[model])} only; side {'AB'[side]} runs "
                    f"{one.kernel} (add --kernel)"
                )
            traces.append(run_scenario(one))
    except ScenarioError as exc:
        print(f"syscall-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BadArguments as exc:
        print(f"syscall-tui compare: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    comparison = compare_traces(traces[0], traces[1])
    if not (ns.json or ns.summary) and sys.stdout.isatty():
        from tui.app import run_compare_app

        gc.enable()
        return run_compare_app(comparison)
    try:
        if ns.json:
            # Japanese stays readable; C1 controls and the like become \u escapes.  Written
            # as encoded, in pieces: one string of 100,000 rows' JSON was hundreds of MB.
            pieces: list[str] = []
            size = 0
            for piece in comparison_json_text(comparison):
                pieces.append(piece)
                size += len(piece)
                if size > 1 << 16:
                    sys.stdout.write(json_safe("".join(pieces)))
                    pieces, size = [], 0
            sys.stdout.write(json_safe("".join(pieces)) + "\n")
        else:
            print("\n".join(escape(tr(line)) for line in summary_lines(comparison)))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) has gone: not an error of the comparison.
        sys.stdout = None
    return 0 if comparison.identical else 1


def _run_against(ns: argparse.Namespace) -> int:
    """``compare SCENARIO --against TRACE``: the engine's run on the machine the trace was
    made on, instruction by instruction beside the real one; exit 0 when they agree, 1
    when they differ, 2 for bad input."""
    from engine.compare.real import against, load_real_trace, on_the_real_machine
    from engine.compare.render import against_json, against_lines

    try:
        if len(ns.scenarios) != 1 or ns.kernel or ns.cpu or ns.fred:
            raise BadArguments("--against takes one scenario and no --kernel, --cpu or --fred")
    except BadArguments as exc:
        print(f"syscall-tui compare: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        real = load_real_trace(ns.against)
        sc = on_the_real_machine(load_scenario(ns.scenarios[0]), real)
        report = against(real, run_scenario(sc))
    except ScenarioError as exc:
        print(f"syscall-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not (ns.json or ns.summary) and sys.stdout.isatty():
        from tui.app import run_against_app

        gc.enable()
        return run_against_app(report)
    try:
        if ns.json:
            sys.stdout.write(json_safe(against_json(report)) + "\n")
        else:
            print("\n".join(escape(tr(line)) for line in against_lines(report, summary=ns.summary)))
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stdout = None
    return 0 if report.equal else 1
