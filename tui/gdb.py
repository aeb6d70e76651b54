"""``syscall-tui gdb SCENARIO [--port N] [--qemu-compat]``: serve a recorded run to gdb.

The protocol and the replay live in :mod:`engine.gdbstub`; this only parses the
command line and tells the user how to connect.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine import EngineError, ScenarioError, load_scenario
from engine.errors import escape
from engine.gdbstub import DEFAULT_HOST, serve
from engine.trace import Trace

EXIT_BAD_INPUT = 2


def _announce(host: str, port: int, elf: Path, trace: Trace) -> None:
    where = f"[{host}]" if ":" in host else host
    print(f"syscall-tui gdb: {escape(trace.scenario)} · {trace.kernel} · {len(trace.steps)} steps")
    print(f"listening on {where}:{port} (one client; the stub ends when it detaches)")
    print(f"kernel symbols: {elf}")
    print(f"  gdb -q -ex 'target remote {where}:{port}'")
    print(f"  (gdb fetches the symbols itself; if not: symbol-file {elf})")
    sys.stdout.flush()


HELP = "serve the run to gdb (remote protocol, 127.0.0.1)"
DESCRIPTION = (
    "Serve a scenario's recorded run over the GDB Remote Serial Protocol: stepi, "
    "reverse-stepi, continue/reverse-continue to breakpoints, registers and memory of the "
    "emulated machine at every step."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``syscall-tui gdb`` (tui.cli builds the parser)."""
    parser.add_argument("scenario")
    parser.add_argument("--port", type=int, default=1234, help="TCP port (0: any free one)")
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--qemu-compat",
        action="store_true",
        help="also answer as QEMU's system-emulation stub does (qqemu.sstepbits, "
        "qqemu.PhyMemMode, monitor info registers/mem/tlb, xp, gva2gpa), which kernel "
        "front-ends (pwndbg's kernel commands, bata24's GEF) require; pwndbg then ignores "
        "/proc maps: use 'set kernel-vmmap monitor'",
    )


def run(ns: argparse.Namespace) -> int:
    """``syscall-tui gdb``, with the options :func:`add_arguments` defined."""
    if not 0 <= ns.port <= 65535:
        print(f"syscall-tui: --port {ns.port}: expected 0..65535", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        scenario = load_scenario(ns.scenario)
    except ScenarioError as exc:
        print(f"syscall-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        serve(scenario, ns.host, ns.port, _announce, qemu_compat=ns.qemu_compat)
    except OSError as exc:
        print(f"syscall-tui: cannot listen on {ns.host}:{ns.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EngineError as exc:
        print(f"syscall-tui: engine error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
