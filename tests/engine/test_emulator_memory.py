"""A machine whose memory cannot be had is one clear error, never Unicorn's exit(1).

Unicorn prints "Could not allocate dynamic translator buffer" and ends the process when
its buffer cannot be mapped: under a 2 GiB ``ulimit -v`` every ``compare`` died that way,
with compare's "the runs differ" status.  Each test runs in a child process, since the
limit (and the failure it guards against) is the whole process's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GETPID = ROOT / "scenarios" / "getpid.toml"


def run_child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": "/nonexistent"},
    )  # fmt: skip


def test_too_little_address_space_raises_emulator_memory_error() -> None:
    child = run_child(f"""
        import resource
        from engine import load_scenario, run_scenario
        from engine.errors import EmulatorMemoryError
        sc = load_scenario({str(GETPID)!r})  # the assembler ran: only the machine is left
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        limit = used + (96 << 20)  # less than a machine needs, more than Python does
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            run_scenario(sc)
        except EmulatorMemoryError as exc:
            print("refused:", exc)
        """)
    assert child.returncode == 0, child.stderr
    assert "refused: cannot get memory for the emulator" in child.stdout


def test_two_machines_fit_in_two_gib() -> None:
    # compare builds two machines: with Unicorn's 1 GiB buffers that did not fit.
    child = run_child(f"""
        import resource
        limit = 2 << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from engine import load_scenario, run_scenario
        sc = load_scenario({str(GETPID)!r})
        a, b = run_scenario(sc), run_scenario(sc)
        print(a.stopped == b.stopped)
        """)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "True"


def test_compare_says_so_and_exits_2() -> None:
    child = run_child(f"""
        import sys
        import engine.machine.core as core
        core.TCG_BUFFER_SIZE = 1 << 46  # more than any address space: the probe fails
        from tui.cli import main
        sys.exit(main(["compare", {str(GETPID)!r}, "--kernel", "v6.1,v6.12", "--json"]))
        """)
    assert child.returncode == 2, (child.returncode, child.stderr)
    assert child.stdout == ""
    (line,) = child.stderr.splitlines()
    assert "cannot get memory for the emulator" in line
