"""``syscall-tui x`` / ``walk`` / ``info``: the debugger's questions, asked from a shell.

    syscall-tui x SCENARIO ADDR [--step N] [--count K] [--unit g|w|h|b|i|s]
                  [--root user|kernel|live] [--json]
    syscall-tui walk SCENARIO ADDR [--step N] [--json]
    syscall-tui info SCENARIO gdt|tss|idt|cr|msr [--step N]

ADDR is an address expression (``0x401000``, ``entry_SYSCALL_64+4``, ``$rsp-8``,
``regs->ip``).  Steps are numbered as in the trace table: 1 is the first instruction,
0 the machine before it; ``--step`` defaults to the last.  Bad input (the scenario, an
expression, a step out of range) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.errors import EngineError, escape

if TYPE_CHECKING:
    from engine.inspect.machine_at import MachineAt

Body = Callable[[argparse.Namespace, "MachineAt", int], int]

EXIT_BAD_INPUT = 2


#: The units of ``x`` (engine.inspect.examine.Unit), written here so that building the
#: command line loads no emulator.
UNITS = ("g", "w", "h", "b", "i", "s")
ADDRESS_HELP = "address expression: 0x..., a label, $reg, regs->slot, +/-"
HELP = {
    "x": "memory at a step, through a page-table root, each word annotated",
    "walk": "the page walk of an address under both KPTI roots, at a step",
    "info": "the GDT, TSS, IDT, control registers or MSRs at a step",
}
INFO_TOPICS = ("cr", "gdt", "idt", "msr", "tss")


def _bad(message: str) -> int:
    print(f"syscall-tui: {escape(message)}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario file")
    p.add_argument("--step", type=int, default=None, help="step number (default: the last)")


def add_x_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("address", help=ADDRESS_HELP)
    p.add_argument("--count", type=int, default=8, help="units to read")
    p.add_argument("--unit", choices=UNITS, default="g", help="g w h b i s")
    p.add_argument("--root", choices=["user", "kernel", "live"], default="live")
    p.add_argument("--json", action="store_true")


def add_walk_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("address", help=ADDRESS_HELP)
    p.add_argument("--json", action="store_true")


def add_info_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("what", choices=INFO_TOPICS)
    p.add_argument("--json", action="store_true", help="one JSON object")


def _answer(ns: argparse.Namespace, body: Body) -> int:
    """Run the scenario once (with its memory log) and answer; one line on bad input."""
    from engine import load_scenario
    from engine.inspect.machine_at import MachineAt

    try:
        at = MachineAt.run(load_scenario(ns.scenario))
        step = at.last if ns.step is None else ns.step
        return body(ns, at, step)
    except EngineError as exc:  # ScenarioError, ExprError, InspectError: the input's fault
        return _bad(str(exc))


def _print_json(obj: object) -> None:
    # ensure_ascii: a string read from memory can hold any byte; JSON escapes it
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=True) + "\n")


def run_x(ns: argparse.Namespace) -> int:
    from engine.inspect.examine import Unit, examine
    from engine.views.inspect import x_json, x_lines

    def body(ns: argparse.Namespace, at: MachineAt, step: int) -> int:
        e = examine(at, step, ns.address, ns.count, Unit(ns.unit), ns.root)
        if ns.json:
            _print_json(x_json(e))
        else:
            sys.stdout.write("\n".join(x_lines(e)) + "\n")
        return 0

    return _answer(ns, body)


def run_walk(ns: argparse.Namespace) -> int:
    from engine.views.inspect import walk_json, walk_lines

    def body(ns: argparse.Namespace, at: MachineAt, step: int) -> int:
        from engine.inspect.examine import context
        from engine.inspect.expr import evaluate

        at.check_step(step)
        report = at.walk(step, evaluate(ns.address, context(at, step)))
        if ns.json:
            _print_json(walk_json(report))
        else:
            sys.stdout.write("\n".join(walk_lines(report)) + "\n")
        return 0

    return _answer(ns, body)


def run_info(ns: argparse.Namespace) -> int:
    from engine.inspect import info
    from engine.views.inspect import info_json, info_lines

    what: dict[str, Callable[[MachineAt, int], info.Info]] = {
        "gdt": info.info_gdt, "tss": info.info_tss, "idt": info.info_idt,
        "cr": info.info_cr, "msr": info.info_msr,
    }  # fmt: skip

    def body(ns: argparse.Namespace, at: MachineAt, step: int) -> int:
        answer = what[ns.what](at, step)
        if ns.json:
            _print_json(info_json(answer))
        else:
            sys.stdout.write("\n".join(info_lines(answer)) + "\n")
        return 0

    return _answer(ns, body)


__all__ = [
    "add_info_arguments", "add_walk_arguments", "add_x_arguments", "run_info", "run_walk",
    "run_x",
]  # fmt: skip
