"""The long fuzz: mutated shipped scenarios through the engine, counting outcomes.

    python bench/fuzz.py --minutes 10 [--seed N] [--timeout 10] [--save DIR]

Each case (tests/engine/fuzzing.py makes them) is parsed and, when valid, run and
encoded as `trace --json` would.  Cases run in a worker process, one at a time, so
that what the test suite cannot catch is caught here: a case with no answer after
--timeout seconds is a hang (the worker is killed and restarted), a worker that
dies is a crash, an exception other than a ScenarioError is a traceback.  Legal
but long runs (a loop up to a 100,000-step cap) are counted as slow when they take
more than --slow CPU seconds: CPU time, because the machine may be shared.  The
worker's address space is limited (--memory-mib), so a memory blow-up shows as a
traceback or crash instead of exhausting the machine.  Reproducers of every
hang, crash and traceback are written to --save.

Prints the cases tried and the outcome counts; the goal is 0 tracebacks, 0 hangs
and 0 crashes.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import random
import resource
import select
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class SeededChooser:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


def worker(memory_mib: int) -> None:
    """Read one JSON-encoded case per line; answer one JSON line per case."""
    limit = memory_mib << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from tests.engine.fuzzing import check_case

    for line in sys.stdin:
        text = json.loads(line)
        start = time.perf_counter()
        cpu = time.process_time()
        try:
            outcome = check_case(text)
            answer: dict[str, object] = {"kind": outcome.kind, "detail": outcome.text}
        except BaseException as exc:  # everything: what escapes is what the fuzz is for
            tb = traceback.format_exc(limit=-3)
            answer = {"kind": "traceback", "detail": f"{type(exc).__name__}: {exc}"[:300],
                      "tb": tb}  # fmt: skip
        answer["seconds"] = time.perf_counter() - start
        answer["cpu"] = time.process_time() - cpu
        # A Session is a reference cycle holding Unicorn's 1 GiB translation buffer
        # (virtual): collect it now, or the address-space limit is reached in a few cases.
        gc.collect()
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class Worker:
    def __init__(self, memory_mib: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--memory-mib", str(memory_mib)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip

    def ask(self, text: str, timeout: float) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(text) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            return {"kind": "hang", "detail": f"no answer in {timeout:g} s"}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            return {"kind": "crash", "detail": f"worker died with status {code}"}
        answer: dict[str, object] = json.loads(line)
        return answer

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--cases", type=int, default=0, help="stop after this many (0: no limit)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--timeout", type=float, default=120.0, help="wall-clock seconds before a case is a hang"
    )
    ap.add_argument(
        "--slow", type=float, default=10.0, help="CPU seconds above which a case counts as slow"
    )
    ap.add_argument("--memory-mib", type=int, default=4096)
    ap.add_argument("--save", default="fuzz-failures", help="folder for reproducers")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.worker:
        worker(ns.memory_mib)
        return 0

    from tests.engine.fuzzing import case

    chooser = SeededChooser(ns.seed)
    counts: collections.Counter[str] = collections.Counter()
    failures: collections.Counter[str] = collections.Counter()
    slowest = (0.0, "")
    end = time.monotonic() + ns.minutes * 60
    w = Worker(ns.memory_mib)
    tried = 0
    save = Path(ns.save)
    try:
        while time.monotonic() < end and (not ns.cases or tried < ns.cases):
            text = case(chooser)
            answer = w.ask(text, ns.timeout)
            tried += 1
            kind = str(answer["kind"])
            counts[kind] += 1
            cpu = float(answer.get("cpu", 0.0))  # type: ignore[arg-type]
            if cpu > slowest[0]:
                slowest = (cpu, text)
            if cpu > ns.slow:
                counts["slow"] += 1
            if kind in ("hang", "crash", "traceback"):
                failures[f"{kind}: {str(answer['detail'])[:120]}"] += 1
                save.mkdir(exist_ok=True)
                (save / f"{kind}-{tried:06d}.toml").write_text(text)
                if "tb" in answer:
                    (save / f"{kind}-{tried:06d}.txt").write_text(str(answer["tb"]))
            if not w.alive():
                w = Worker(ns.memory_mib)
            if tried % 1000 == 0:
                print(f"... {tried} cases: {dict(counts)}", file=sys.stderr, flush=True)
    finally:
        w.close()
    print(
        f"cases tried: {tried}  (seed {ns.seed}, {ns.minutes:g} min; hang: no answer in "
        f"{ns.timeout:g} s; slow: over {ns.slow:g} CPU s)"
    )
    for kind in ("run", "error", "traceback", "hang", "crash", "slow"):
        print(f"{kind:10} {counts[kind]}")
    print(f"slowest case: {slowest[0]:.2f} CPU s")
    for what, n in failures.most_common(20):
        print(f"  {n:5}  {what}")
    if failures:
        print(f"reproducers in {save}/")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
