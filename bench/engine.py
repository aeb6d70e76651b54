"""Engine speed on this machine: one ``name: value`` line per measurement.

    python bench/engine.py

machine_build_ms               building the machine for scenarios/getpid.toml (Unicorn, memory,
                               page tables, GDT, MSRs), the kernel image already assembled
image_assemble_ms              expanding and assembling entry_64.S once (Keystone + Capstone)
recorded_round_trip_ms         one fully recorded trace of getpid (every step a record)
unrecorded_round_trips_per_s   the same round trip without per-step records, one core
untrusted_assemble_ms          assembling a scenario's user code in the limited child
                               (fork, Keystone, answer; a new text each time, no cache)
memory_16mib_build_ms          building the machine for a scenario with a 16 MiB [[memory]]
recorded_loop_10000_ms         recording user code that never reaches its syscall
                               (``1: jmp 1b``) up to the default step cap of 10,000 steps;
                               the target is well under 1500
<kernel>_image_assemble_ms     the same three for getpid on each kernel ([machine] kernel):
<kernel>_recorded_round_trip_ms  v5.8.13, v6.1, v6.12 (6.12 adds its modelled C steps)
<kernel>_unrecorded_round_trips_per_s

Where the time goes (unrecorded, about 400 us a round trip here): the kernel half in
Unicorn about 210 us, of which roughly half is the ~50 stack loads and stores (Unicorn 2
stores are tens of times slower than Unicorn 1's: unicorn-engine/unicorn#1970) and the
rest the dozen Python hooks (do_syscall_64, the six checks, CR3 bit 63, the exits); the
modelled SYSCALL about 55 us; the user half about 35 us; setting up from the cached
user-mode state about 20 us.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import KERNELS, Session, load_scenario, parse_scenario, with_kernel
from engine.asm import assemble_untrusted
from engine.kernel.image import build_image
from engine.kernel.macros import Features

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "getpid.toml"


def median_ms(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    sc = load_scenario(SCENARIO)
    t = time.perf_counter()
    build_image.cache_clear()
    build_image(Features(pti=True, pcid=True, la57=False))
    image_ms = (time.perf_counter() - t) * 1e3
    build_ms = median_ms(lambda: Session(sc), 20)
    session = Session(sc)
    session.run(True)
    recorded_ms = median_ms(lambda: session.run(True), 50)
    session.run(False)
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        session.run(False)
    per_s = n / (time.perf_counter() - t)
    steps = len(session.run(True).steps)
    texts = iter(range(1 << 20))
    untrusted_ms = median_ms(
        lambda: assemble_untrusted([f"mov ${next(texts):#x}, %eax\nsyscall"], 0x401000), 30
    )
    big = parse_scenario('name = "m"\n[[memory]]\naddress = 0x10000000\nsize = 0x1000000\n')
    big_ms = median_ms(lambda: Session(big), 5)
    loop = Session(parse_scenario('name = "loop"\n[user]\ncode = "1: jmp 1b"\n', "loop.toml"))
    loop_ms = median_ms(lambda: loop.run(True), 5)
    print(f"machine_build_ms: {build_ms:.1f}")
    print(f"image_assemble_ms: {image_ms:.1f}")
    print(f"recorded_round_trip_ms: {recorded_ms:.2f}")
    print(f"recorded_steps: {steps}")
    print(f"unrecorded_round_trips_per_s: {per_s:.0f}")
    print(f"untrusted_assemble_ms: {untrusted_ms:.1f}")
    print(f"memory_16mib_build_ms: {big_ms:.1f}")
    print(f"recorded_loop_10000_ms: {loop_ms:.0f}")
    for kernel in KERNELS:
        ksc = with_kernel(sc, kernel)
        build_image.cache_clear()
        t = time.perf_counter()
        build_image(Features(pti=True, pcid=True, la57=False, kernel=kernel))
        print(f"{kernel}_image_assemble_ms: {(time.perf_counter() - t) * 1e3:.1f}")
        ks = Session(ksc)
        ks.run(True)
        print(f"{kernel}_recorded_round_trip_ms: {median_ms(lambda ks=ks: ks.run(True), 30):.2f}")
        print(f"{kernel}_recorded_steps: {len(ks.run(True).steps)}")
        t = time.perf_counter()
        for _ in range(500):
            ks.run(False)
        print(f"{kernel}_unrecorded_round_trips_per_s: {500 / (time.perf_counter() - t):.0f}")


if __name__ == "__main__":
    main()
