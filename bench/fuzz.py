"""The long fuzz: generated scenario files through the engine, counting outcomes.

    nice python bench/fuzz.py --minutes 60 [--jobs 2] [--seed N] [--save DIR]

Each case (tests/engine/fuzzing.py makes them: mutated shipped scenarios, TOML documents
written from scratch, character noise in either) is parsed and, when valid, run and
written in every ``trace --format``.  Cases run in worker processes, one at a time each,
so that what the test suite cannot catch is caught here: a case with no answer after
--timeout seconds is a hang (the worker is killed and restarted), a worker that dies is
a crash, an exception other than a ScenarioError is a traceback, a MemoryError (the
worker's address space is limited to --memory-mib, 2 GiB as on a lab machine) a memory
hit, and an output holding a raw control character a raw-control.  Cases over --slow
CPU seconds are counted as slow (CPU time: the machine may be shared), and the workers'
peak RSS is printed.  Reproducers of every failure are written to --save.

Prints the cases tried and the outcome counts; the goal is 0 tracebacks, 0 hangs, 0
crashes, 0 memory hits and 0 raw controls.
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
import signal
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


def worker(memory_mib: int, step_cap: int) -> None:
    """Read one JSON-encoded case per line; answer one JSON line per case."""
    limit = memory_mib << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from tests.engine.fuzzing import RawControl, check_case

    for line in sys.stdin:
        text = json.loads(line)
        start = time.perf_counter()
        cpu = time.process_time()
        try:
            outcome = check_case(text, step_cap=step_cap or None)
            answer: dict[str, object] = {"kind": outcome.kind, "detail": outcome.text}
        except BaseException as exc:  # everything: what escapes is what the fuzz is for
            kinds: dict[type[BaseException], str] = {
                RawControl: "raw-control",
                MemoryError: "memory",
            }
            kind = kinds.get(type(exc), "traceback")
            tb = traceback.format_exc(limit=-3)
            answer = {"kind": kind, "detail": f"{type(exc).__name__}: {exc}"[:300], "tb": tb}
        answer["seconds"] = time.perf_counter() - start
        answer["cpu"] = time.process_time() - cpu
        answer["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # A Session is a reference cycle holding Unicorn's translation buffer (virtual):
        # collect it now, or the address-space limit is reached in a few cases.
        gc.collect()
        try:
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # the driver has gone (stopped): nothing left to answer
            return


class Worker:
    def __init__(self, memory_mib: int, step_cap: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--memory-mib", str(memory_mib),
             "--step-cap", str(step_cap)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        self.text = ""
        self.started = 0.0

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.text = text
        self.started = time.monotonic()
        self.proc.stdin.write(json.dumps(text) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, object]:
        """The answer to the case sent (call when its stdout is readable)."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            return {"kind": "crash", "detail": f"worker died with status {code}"}
        answer: dict[str, object] = json.loads(line)
        return answer

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)


KINDS = ("run", "error", "traceback", "hang", "crash", "memory", "raw-control", "slow")
FAILURES = ("traceback", "hang", "crash", "memory", "raw-control")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--cases", type=int, default=0, help="stop after this many (0: no limit)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument(
        "--timeout", type=float, default=30.0, help="wall-clock seconds before a case is a hang"
    )
    ap.add_argument(
        "--slow", type=float, default=4.0, help="CPU seconds above which a case counts as slow"
    )
    ap.add_argument(
        "--step-cap", type=int, default=0,
        help="lower every scenario's step cap to this (0: the scenario's own, up to 100,000)",
    )  # fmt: skip
    ap.add_argument("--memory-mib", type=int, default=2048)
    ap.add_argument("--save", default="fuzz-failures", help="folder for reproducers")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.worker:
        worker(ns.memory_mib, ns.step_cap)
        return 0

    from tests.engine.fuzzing import case

    chooser = SeededChooser(ns.seed)
    counts: collections.Counter[str] = collections.Counter()
    failures: collections.Counter[str] = collections.Counter()
    slowest = (0.0, "")
    peak_rss = 0.0
    began = time.monotonic()
    end = began + ns.minutes * 60
    idle = [Worker(ns.memory_mib, ns.step_cap) for _ in range(ns.jobs)]
    busy: list[Worker] = []
    sent = tried = 0
    save = Path(ns.save)

    def record(w: Worker, answer: dict[str, object]) -> None:
        nonlocal tried, slowest, peak_rss
        tried += 1
        kind = str(answer["kind"])
        counts[kind] += 1
        cpu = float(answer.get("cpu", 0.0))  # type: ignore[arg-type]
        peak_rss = max(peak_rss, float(answer.get("rss_mib", 0.0)))  # type: ignore[arg-type]
        if cpu > slowest[0]:
            slowest = (cpu, w.text)
        if cpu > ns.slow:
            counts["slow"] += 1
        if kind in FAILURES:
            failures[f"{kind}: {str(answer['detail'])[:120]}"] += 1
            save.mkdir(exist_ok=True)
            (save / f"{kind}-{tried:06d}.toml").write_text(w.text)
            if "tb" in answer:
                (save / f"{kind}-{tried:06d}.txt").write_text(str(answer["tb"]))
        if tried % 1000 == 0:
            rate = tried / (time.monotonic() - began)
            print(f"... {tried} cases ({rate:.1f}/s): {dict(counts)}", file=sys.stderr, flush=True)

    # SIGTERM (or ^C) ends the run early, still with its figures
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while busy or (time.monotonic() < end and (not ns.cases or sent < ns.cases)):
            while idle and time.monotonic() < end and (not ns.cases or sent < ns.cases):
                w = idle.pop()
                w.send(case(chooser))
                sent += 1
                busy.append(w)
            wait = min(w.started + ns.timeout for w in busy) - time.monotonic()
            streams = {w.proc.stdout.fileno(): w for w in busy if w.proc.stdout is not None}
            ready, _, _ = select.select(list(streams), [], [], max(wait, 0.0))
            for fd in ready:
                w = streams[fd]
                busy.remove(w)
                record(w, w.receive())
                idle.append(w if w.alive() else Worker(ns.memory_mib, ns.step_cap))
            for w in [w for w in busy if time.monotonic() > w.started + ns.timeout]:
                busy.remove(w)
                w.kill()
                record(w, {"kind": "hang", "detail": f"no answer in {ns.timeout:g} s"})
                idle.append(Worker(ns.memory_mib, ns.step_cap))
    except KeyboardInterrupt:
        print("stopped early", file=sys.stderr)
    finally:
        for w in busy:
            w.kill()
        for w in idle:
            w.close()
    minutes = (time.monotonic() - began) / 60
    print(
        f"cases tried: {tried} in {minutes:.1f} min ({tried / max(minutes * 60, 1e-9):.1f}/s; "
        f"seed {ns.seed}, {ns.jobs} job(s), step cap {ns.step_cap or 'own'}; hang: no answer "
        f"in {ns.timeout:g} s; slow: over {ns.slow:g} CPU s; memory limit {ns.memory_mib} MiB)"
    )
    for kind in KINDS:
        print(f"{kind:12} {counts[kind]}")
    print(f"slowest case: {slowest[0]:.2f} CPU s;  workers' peak RSS: {peak_rss:.0f} MiB")
    for what, n in failures.most_common(20):
        print(f"  {n:5}  {what}")
    if failures:
        print(f"reproducers in {save}/")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
