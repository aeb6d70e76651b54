"""gdb stub speed on this machine: one ``name: value`` line per measurement.

    python bench/gdbstub.py

stub_start_ms              record getpid and write the symbol file (before listening)
replay_cold_ms_median      rebuilding the machine at a step not seen yet (a capped rerun)
replay_cold_ms_max         the same, the slowest step
replay_cached_us_median    going back to a step already rebuilt (restore from the cache)
stepi_packets_ms           what gdb sends per stepi (vCont;s, g, two m reads) over TCP
gdb_100_stepi_s            the real gdb: connect, 100 x stepi, 50 x reverse-stepi (if installed)
largest_rss_mib_200_steps  RSS of a process serving the largest accepted scenario (32 MiB of
                           writable memory) after 200 x (stepi, g, m): target <= 500 MB
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import load_scenario, parse_scenario
from engine.gdbstub import Replay, Stub, serve, write_symbol_file
from engine.gdbstub.protocol import frame

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "getpid.toml"


def _reply(sock: socket.socket) -> bytes:
    buf = b""
    while not (b"#" in buf and len(buf) >= buf.index(b"#") + 3):
        buf += sock.recv(65536)
    return buf


def _served(announce_port: list[int], ready: threading.Event) -> threading.Thread:
    def announce(host: str, port: int, elf: Path, trace: object) -> None:
        announce_port.append(port)
        ready.set()

    t = threading.Thread(target=serve, args=(load_scenario(SCENARIO), "127.0.0.1", 0, announce))
    t.daemon = True
    t.start()
    ready.wait(30)
    return t


#: The most memory a scenario may map, all of it writable, and a loop that stores to it.
LARGEST = """
name = "largest memory"
step_cap = 100000
[user]
code = "mov $0x10000000, %rdi; 1: mov %rax, (%rdi); add $4096, %rdi; inc %rax; jmp 1b"
[[memory]]
address = 0x10000000
size = 0x1000000
access = "rw"
[[memory]]
address = 0x20000000
size = 0x1000000
access = "rw"
"""


def largest_rss() -> None:
    """In a process of its own (``--largest-rss``): serve LARGEST's 200 first steps."""
    stub = Stub(Replay(parse_scenario(LARGEST, "largest.toml")))
    for _ in range(200):
        for packet in (b"vCont;s:1", b"g", b"m10000000,40"):
            stub.handle(packet)
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    print(f"largest_rss_mib_200_steps: {rss / 1024:.0f}")


def main() -> None:
    if sys.argv[1:] == ["--largest-rss"]:
        largest_rss()
        return
    out = subprocess.run(
        [sys.executable, __file__, "--largest-rss"], capture_output=True, text=True, check=True,
        env={**os.environ, "SYSCALL_TUI_NO_CACHE": "1"},
    ).stdout  # fmt: skip
    print(out.strip(), flush=True)
    sc = load_scenario(SCENARIO)
    Replay(sc)  # warm the image cache: it is shared by every run of the process
    t = time.perf_counter()
    r = Replay(sc)
    with tempfile.TemporaryDirectory() as d:
        write_symbol_file(r.trace, Path(d))
    start_ms = (time.perf_counter() - t) * 1e3

    cold = []
    for p in range(r.last + 1):
        t = time.perf_counter()
        r.goto(p)
        cold.append((time.perf_counter() - t) * 1e3)
    cached = []
    for p in range(r.last, -1, -1):
        t = time.perf_counter()
        r.goto(p)
        cached.append((time.perf_counter() - t) * 1e6)

    port: list[int] = []
    thread = _served(port, threading.Event())
    with socket.create_connection(("127.0.0.1", port[0])) as s:
        s.sendall(frame(b"QStartNoAckMode"))
        _reply(s)
        per = []
        for _ in range(r.last):
            t = time.perf_counter()
            for packet in (b"vCont;s:1", b"g", b"m7ffc0000eff8,40", b"m401000,1"):
                s.sendall(frame(packet))
                _reply(s)
            per.append((time.perf_counter() - t) * 1e3)
        s.sendall(frame(b"D"))
        _reply(s)
    thread.join(10)

    print(f"stub_start_ms: {start_ms:.1f}")
    print(f"replay_cold_ms_median: {statistics.median(cold):.2f}")
    print(f"replay_cold_ms_max: {max(cold):.2f}")
    print(f"replay_cached_us_median: {statistics.median(cached):.0f}")
    print(f"stepi_packets_ms: {statistics.median(per):.2f}")

    gdb = shutil.which("gdb")
    if gdb is None:
        print("gdb_100_stepi_s: gdb not installed")
        return
    port.clear()
    thread = _served(port, threading.Event())
    t = time.perf_counter()
    subprocess.run(
        [gdb, "-nx", "-q", "-batch", "-ex", f"target remote 127.0.0.1:{port[0]}",
         "-ex", "stepi 100", "-ex", "reverse-stepi 50"],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    print(f"gdb_100_stepi_s: {time.perf_counter() - t:.2f}")
    thread.join(10)


if __name__ == "__main__":
    main()
