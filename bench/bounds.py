"""The work bounds of issue 15, measured: time and peak memory of each case, in a child.

    python bench/bounds.py [--only NAME,NAME] [--memory-mib 2048] [--timeout 60]

Each case is one ``syscall-tui`` command on a file written here, run in a subprocess with
an address-space limit (``--memory-mib``) and a wall-clock limit; one line per case:

    name  seconds  peak_rss_mib  exit_status  bound  first line of stderr

The bounds: any file of at most 1 MiB gets its answer or its one-line error in 2 s and
300 MB; ``trace --format json`` of a 100,000-step run in 4 s and 300 MB; ``compare`` of
two 100,000-step runs in 10 s.  ``--root`` measures another checkout (for before/after).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: A loop body whose every step changes registers or the user stack.
BUSY = "inc %rbx; add %rbx, %rcx; push %rcx; pop %rdx; nop"

LOOP = 'name = "loop"\nstep_cap = 100000\n[user]\ncode = "1: {body}; jmp 1b"\n'


def cases() -> list[tuple[str, str, list[str], float, int]]:
    """(name, file text, command after the file, seconds bound, MB bound)."""
    dotted = 'name = "x"\n' + ".".join(["a"] * 20000) + " = 1\n"
    header = 'name = "x"\n[' + ".".join(["a"] * 30000) + "]\n"
    quoted = 'name = "x"\n' + ".".join(['"a"'] * 20000) + " = 1\n"
    big_decimal = 'name = "x"\n[user]\ncode = "mov $' + "9" * 5000 + ', %eax; syscall"\n'
    deep = 'name = "x"\nx = ' + "[" * 100000 + "]" * 100000 + "\n"
    deep_table = 'name = "x"\nx = ' + "{a=" * 50000 + "1" + "}" * 50000 + "\n"
    long_int = 'name = "x"\nstep_cap = ' + "9" * 5000 + "\n"
    many_keys = 'name = "x"\n' + "".join(f"k{i} = {i}\n" for i in range(70000))
    many_tables = 'name = "x"\n' + "".join(f"[t{i}]\n" for i in range(100000))
    trace = ["trace", "{f}"]
    return [
        ("dotted-key-20000", dotted, trace, 2, 300),
        ("quoted-dotted-key-20000", quoted, trace, 2, 300),
        ("header-30000-parts", header, trace, 2, 300),
        ("unknown-key-with-[", 'name = "x"\nuser = { "a[" = 1 }\n', trace, 2, 300),
        ("unknown-key-U+2028", 'name = "x"\nuser = { "a\u2028[" = 1 }\n', trace, 2, 300),
        ("unknown-key-newline", 'name = "x"\nuser = { "a\\n[" = 1 }\n', trace, 2, 300),
        ("decimal-5000-digits", big_decimal, trace, 2, 300),
        ("nesting-100000", deep, trace, 2, 300),
        ("inline-tables-50000", deep_table, trace, 2, 300),
        ("integer-5000-digits", long_int, trace, 2, 300),
        ("keys-70000", many_keys, trace, 2, 300),
        ("tables-100000", many_tables, trace, 2, 300),
        (
            "non-ascii-code",
            'name = "x"\n[user]\ncode = "mov $1, %eax # ok\\nnop；syscall"\n',
            trace,
            2,
            300,
        ),
        (
            "trace-json-100000",
            LOOP.format(body="nop"),
            ["trace", "{f}", "--format", "json"],
            4,
            300,
        ),
        ("trace-table-100000", LOOP.format(body="nop"), ["trace", "{f}"], 4, 300),
        # every step changes several registers, and the user stack (more of a step is new
        # than in the nop loop)
        (
            "trace-json-100000-regs",
            LOOP.format(body=BUSY),
            ["trace", "{f}", "--format", "json"],
            4,
            300,
        ),
        ("compare-100000", LOOP.format(body="nop"), ["compare", "{f}", "{g}"], 10, 600),
        (
            "compare-json-100000",
            LOOP.format(body="nop"),
            ["compare", "{f}", "{g}", "--json"],
            10,
            600,
        ),
        ("compare-100000-regs", LOOP.format(body=BUSY), ["compare", "{f}", "{g}"], 10, 600),
    ]


def measure(root: Path, argv: list[str], memory_mib: int, timeout: float
            ) -> tuple[float, float, int, str]:  # fmt: skip
    """Wall seconds, peak RSS (MiB), exit status and the first stderr line of one command."""
    limit = memory_mib << 20

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(root), "XDG_CACHE_HOME": tempfile.mkdtemp()}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", *argv], cwd=root, env=env, preexec_fn=limits,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    seconds = time.perf_counter() - start
    # this process's only child: RUSAGE_CHILDREN is its peak (and its own children's)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    line = err.decode("utf-8", "replace").strip().splitlines()
    first = line[-1][:110] if line else ""
    return seconds, rss / 1024, proc.returncode, first


def measure_one(root: Path, argv: list[str], memory_mib: int, timeout: float
                ) -> tuple[float, float, int, str]:  # fmt: skip
    """:func:`measure` in a fresh process, so that its RUSAGE_CHILDREN is this case alone."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps([str(root), argv, memory_mib, timeout])],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    s, rss, rc, first = json.loads(out)
    return float(s), float(rss), int(rc), str(first)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--memory-mib", type=int, default=2048)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--root", default=str(ROOT), help="the checkout to measure")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.child:
        root, argv, memory_mib, timeout = json.loads(ns.child)
        print(json.dumps(measure(Path(root), argv, memory_mib, timeout)))
        return 0
    only = {n for n in ns.only.split(",") if n}
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, text, argv, secs, mb in cases():
            if only and name not in only:
                continue
            f = Path(tmp, f"{name}.toml")
            g = Path(tmp, f"{name}-b.toml")
            f.write_text(text)
            g.write_text(text.replace("nop", "pause"))
            args = [a.format(f=f, g=g) for a in argv]
            s, rss, rc, first = measure_one(Path(ns.root), args, ns.memory_mib, ns.timeout)
            ok = s <= secs and rss * 1.048576 <= mb and rc in (0, 1, 2)
            failed += not ok
            print(
                f"{name:26} {s:7.2f} s {rss:7.0f} MiB  rc {rc:3}  "
                f"{'ok  ' if ok else 'OVER'} (<= {secs} s, {mb} MB)  {first}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
