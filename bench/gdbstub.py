"""gdb stub speed on this machine: one ``name: value`` line per measurement.

    python bench/gdbstub.py

stub_start_ms              record getpid and write the symbol file (before listening)
replay_cold_ms_median      rebuilding the machine at a step not seen yet (a capped rerun)
replay_cold_ms_max         the same, the slowest step
replay_cached_us_median    going back to a step already rebuilt (restore from the cache)
stepi_packets_ms           what gdb sends per stepi (vCont;s, g, two m reads) over TCP
gdb_100_stepi_s            the real gdb: connect, 100 x stepi, 50 x reverse-stepi (if installed)
big_stub_rss_mib           peak RSS of a process serving 200 stepi (vCont;s, g, m) of the
                           largest accepted scenario: 32 MiB of [[memory]], 100,000 steps
                           (bound: 500 MB); run with --big, it takes about a minute
"""

from __future__ import annotations

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

from engine import load_scenario
from engine.gdbstub import Replay, serve, write_symbol_file
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


def main() -> None:
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


BIG_MEMORY = "".join(
    f'[[memory]]\naddress = {0x10000000 + i * (1 << 20):#x}\nsize = 0x100000\naccess = "rw"\n'
    for i in range(32)
)
BIG = (
    'name = "big"\nstep_cap = 100000\n[user]\n'
    'code = "1: addq $8, %rsp; pushq %rax; jmp 1b"\n' + BIG_MEMORY
)


def big() -> None:
    import resource

    from engine import parse_scenario
    from engine.gdbstub.protocol import Stub

    stub = Stub(Replay(parse_scenario(BIG, "big.toml")))
    for _ in range(200):
        stub.handle(b"vCont;s:1")
        stub.handle(b"g")
        stub.handle(b"m7ffc0000eff8,40")
    print(f"big_stub_rss_mib: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


if __name__ == "__main__":
    big() if "--big" in sys.argv[1:] else main()
