"""Memory at any step: the cost of ``x`` and ``walk`` on a long run, and of keeping the log.

    python bench/memory.py

x_ms_median / x_ms_max          x/8g $rsp through the live CR3 at 300 random steps (and the
                                first and last) of a 10,000-step run whose loop stores to
                                its stack at every third step; target <= 5 median, <= 20 max
walk_ms_median / walk_ms_max    walk $rsp under both roots at the same steps; same targets
history_build_ms                indexing that run's memory log (once per run)
log_writes                      the writes the log holds for it
recorded_round_trip_ms_log_off  one recorded getpid round trip without the memory log
recorded_round_trip_ms_log_on   the same with it (the default)
log_overhead_percent            on / off - 1; target <= 20

The two round-trip figures are medians of interleaved runs (the machine is shared).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import load_scenario, parse_scenario
from engine.inspect.examine import examine
from engine.inspect.machine_at import MachineAt
from engine.run.session import Session

ROOT = Path(__file__).resolve().parent.parent
LOOP = """
name = "store loop"
[user]
code = '''
1: push %rax
incq (%rsp)
pop %rax
jmp 1b
'''
"""


def timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - t) * 1e3


def main() -> None:
    sc = parse_scenario(LOOP, "loop.toml")
    session = Session(sc)
    trace = session.run()
    t = time.perf_counter()
    at = MachineAt(session, trace)
    build_ms = (time.perf_counter() - t) * 1e3
    assert session._memory is not None
    writes = len(session._memory[1].writes)
    rng = random.Random(16)
    steps = [0, at.last, *(rng.randrange(0, at.last + 1) for _ in range(300))]
    x_times = [timed(lambda s=s: examine(at, s, "$rsp", 8)) for s in steps]
    walk_times = [timed(lambda s=s: at.walk(s, at.regs(s).rsp)) for s in steps]
    print(f"steps: {at.last}")
    print(f"x_ms_median: {statistics.median(x_times):.3f}")
    print(f"x_ms_max: {max(x_times):.3f}")
    print(f"walk_ms_median: {statistics.median(walk_times):.3f}")
    print(f"walk_ms_max: {max(walk_times):.3f}")
    print(f"history_build_ms: {build_ms:.1f}")
    print(f"log_writes: {writes}")

    getpid = load_scenario(ROOT / "scenarios" / "getpid.toml")
    off, on = Session(getpid, memory=False), Session(getpid, memory=True)
    off.run()
    on.run()
    t_off, t_on = [], []
    for _ in range(300):
        t_off.append(timed(off.run))
        t_on.append(timed(on.run))
    m_off, m_on = statistics.median(t_off), statistics.median(t_on)
    print(f"recorded_round_trip_ms_log_off: {m_off:.3f}")
    print(f"recorded_round_trip_ms_log_on: {m_on:.3f}")
    print(f"log_overhead_percent: {100 * (m_on / m_off - 1):.1f}")


if __name__ == "__main__":
    main()
