"""The gdb stub without gdb: replay exactness, the protocol's answers, the socket's limits."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import load_scenario, parse_scenario
from engine.gdbstub import Replay, Stub, serve
from engine.gdbstub.elf import symbol_elf
from engine.gdbstub.protocol import MAX_PACKET, checksum, frame
from engine.gdbstub.reglog import RegisterLog
from engine.gdbstub.replay import CACHE_SIZE
from engine.gdbstub.target import REGISTER_INDEX, REGISTERS, register_hex, target_xml
from tests.conftest import SCENARIOS

ALL = sorted(p.name for p in SCENARIOS.glob("*.toml"))


@cache
def replay_of(name: str) -> Replay:
    return Replay(load_scenario(SCENARIOS / name))


def reg(stub: Stub, name: str) -> int:
    raw = stub.handle(f"p{REGISTER_INDEX[name]:x}".encode())
    assert raw is not None
    return int.from_bytes(bytes.fromhex(raw.decode()), "little")


def live_registers(r: Replay) -> tuple[str, ...]:
    return tuple(register_hex(r, i) for i in range(len(REGISTERS)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_replay_rebuilds_every_step_with_its_stack_contents(name: str) -> None:
    r = replay_of(name)
    log = RegisterLog(Replay(r.scenario, r.trace))
    kernel_cr3 = r.machine.kernel_cr3
    for p in range(r.last + 1):
        r.goto(p)  # raises if the replayed registers differ from the recording
        # the register log gdb is served from holds what the rebuilt machine holds, for
        # every register of the description (vector, x87, segment, system ones too)
        assert log.at(p) == live_registers(r), (name, p)
        if p == 0:
            continue
        step = r.trace.steps[p - 1]
        for slot in (*step.stack, *step.entry_stack):
            assert r.machine.read_u64(kernel_cr3, slot.address) == slot.value, (p, slot)


def test_the_register_log_follows_sse_and_x87_writes_of_the_user_code() -> None:
    code = (
        "movq $0x1122334455667788, %rax; movq %rax, %xmm3; pxor %xmm1, %xmm1; "
        "fld1; fldpi; movl $39, %eax; syscall; movq %rax, %xmm5; nop"
    )
    r = Replay(parse_scenario(f'name = "sse"\n[user]\ncode = "{code}"', "sse.toml"))
    log = RegisterLog(Replay(r.scenario, r.trace))
    seen = set()
    for p in range(r.last + 1):
        r.goto(p)
        now = log.at(p)
        assert now == live_registers(r), p
        seen.add(now[REGISTER_INDEX["xmm3"]])
    assert len(seen) == 2  # xmm3 before and after the movq


def test_replay_goes_backwards_from_its_cache_exactly() -> None:
    r = Replay(load_scenario(SCENARIOS / "enosys.toml"))
    assert r.last < CACHE_SIZE  # every position fits the cache, so none is replayed twice
    r.goto(r.last)
    runs = r.replays
    for p in range(r.last, -1, -1):
        r.goto(p)
    assert r.replays - runs == r.last  # each earlier position replayed once...
    for p in (5, 60, 0, r.last):
        r.goto(p)  # ...and later visits restore it
        assert r.live_regs() == r.regs_at(p)
    assert r.replays - runs == r.last


def test_registers_come_from_the_machine_at_the_position() -> None:
    r = replay_of("getpid.toml")
    stub = Stub(r)
    for p in (0, 1, 2, 50, r.last):
        stub.position = p
        want = r.regs_at(p)
        assert reg(stub, "rip") == want.rip and reg(stub, "rsp") == want.rsp
        assert reg(stub, "cr3") == want.cr3 and reg(stub, "k_gs_base") == want.kernel_gs_base
        assert reg(stub, "gs_base") == want.gs_base and reg(stub, "cs") == want.cs
        assert reg(stub, "eflags") == want.rflags
    assert reg(stub, "efer") == r.trace.msrs["EFER"]
    g = stub.handle(b"g")
    assert g is not None and len(g) == sum(x.bits for x in REGISTERS) // 4


def test_target_description_names_gdbs_features() -> None:
    xml = target_xml()
    for feature in ("org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.gnu.gdb.i386.segments"):
        assert f'<feature name="{feature}">' in xml
    for name in ("fs_base", "gs_base", "k_gs_base", "cr3", "ds", "es", "fs", "gs", "eflags"):
        assert f'<reg name="{name}"' in xml
    stub = Stub(replay_of("getpid.toml"))
    first = stub.handle(b"qXfer:features:read:target.xml:0,40")
    assert first is not None and first.startswith(b"m") and first[1:] == xml.encode()[:0x40]
    rest = stub.handle(f"qXfer:features:read:target.xml:40,{len(xml):x}".encode())
    assert rest is not None and rest.startswith(b"l") and first[1:] + rest[1:] == xml.encode()


@pytest.mark.parametrize(
    "packet",
    [b"m", b"mzz,4", b"m1000", b"m1000,", b"p", b"pzz", b"Z0,", b"z0,1", b"Z0,zz,1",
     b"qXfer:features:read:target.xml:zz", b"qXfer:features:read:target.xml:0",
     b"vCont;x", b"vCont;", b"p" + b"f" * 40, b"m" + b"1" * 40 + b",4", b"\xff\xfe"],
)  # fmt: skip
def test_malformed_packets_get_an_error(packet: bytes) -> None:
    reply = Stub(replay_of("getpid.toml")).handle(packet)
    assert reply is not None and reply.startswith(b"E"), (packet, reply)


def test_writes_are_refused_and_unknown_packets_unsupported() -> None:
    stub = Stub(replay_of("getpid.toml"))
    for packet in (b"P0=00", b"G00", b"M401000,1:90", b"X401000,1:\x90"):
        assert stub.handle(packet) == b"E02"
    assert stub.handle(b"qSomethingNew") == b""
    assert stub.handle(b"Z4,401000,8") == b""  # access watchpoints: not offered
    assert stub.handle(b"m0,8") == b"E0e"  # nothing mapped at page 0


def test_stepping_and_the_ends_of_the_recording() -> None:
    r = replay_of("getpid.toml")
    stub = Stub(r)
    assert stub.handle(b"bs") == b"T05replaylog:begin;thread:1;"
    assert stub.handle(b"vCont;s:1") == b"T05thread:1;" and stub.position == 1
    entry = r.trace.symbols["swapgs_restore_regs_and_return_to_usermode"]
    sysret = r.trace.symbols["syscall_return_via_sysret"]
    assert stub.handle(f"Z0,{sysret:x},1".encode()) == b"OK"
    assert stub.handle(f"Z1,{entry:x},1".encode()) == b"OK"  # never reached in getpid
    assert stub.handle(b"c") == b"T05swbreak:;thread:1;"
    assert r.pc_at(stub.position) == sysret
    assert stub.handle(b"c") == b"T05replaylog:end;thread:1;" and stub.position == r.last
    assert stub.handle(b"bc") == b"T05swbreak:;thread:1;" and r.pc_at(stub.position) == sysret
    stub.handle(f"z0,{sysret:x},1".encode())
    assert stub.handle(b"bc") == b"T05replaylog:begin;thread:1;" and stub.position == 0
    stub.position = r.last
    assert stub.handle(b"s") == b"W00" and stub.closed


def test_a_fault_stops_with_its_signal_then_ends_the_process() -> None:
    stub = Stub(replay_of("cve-2012-0217-intel.toml"))  # #GP on SYSRET
    assert stub.handle(b"c") == b"T0bthread:1;"
    assert stub.handle(b"?") == b"T0bthread:1;"
    assert stub.handle(b"c") == b"X0b" and stub.closed


def test_symbol_file_holds_the_images_labels() -> None:
    symbols = replay_of("getpid.toml").trace.symbols
    data = symbol_elf(symbols)
    assert data[:4] == b"\x7fELF" and struct.unpack_from("<HH", data, 16) == (2, 62)
    shoff, shnum = struct.unpack_from("<Q", data, 0x28)[0], struct.unpack_from("<H", data, 0x3C)[0]
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + 64 * i) for i in range(shnum)]
    symtab = next(h for h in headers if h[1] == 2)
    strtab = headers[symtab[6]]
    found = {}
    for off in range(symtab[4] + 24, symtab[4] + symtab[5], 24):
        name_off, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, off)
        start = strtab[4] + name_off
        found[data[start : data.index(b"\0", start)].decode()] = value
    assert found == symbols


@contextmanager
def served(name: str = "getpid.toml") -> Iterator[tuple[int, threading.Thread, list[Path]]]:
    ready = threading.Event()
    port: list[int] = []
    elf: list[Path] = []

    def announce(host: str, p: int, path: Path, trace: object) -> None:
        assert host == "127.0.0.1"
        port.append(p)
        elf.append(path)
        ready.set()

    t = threading.Thread(
        target=serve, args=(load_scenario(SCENARIOS / name), "127.0.0.1", 0, announce)
    )
    t.daemon = True
    t.start()
    assert ready.wait(30)
    yield port[0], t, elf
    t.join(30)
    assert not t.is_alive(), "the stub did not end when its client left"


def _reply(sock: socket.socket) -> bytes:
    buf = b""
    while not (b"#" in buf and len(buf) >= buf.index(b"#") + 3):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def test_socket_one_client_bounded_packets_and_the_end() -> None:
    with served() as (port, _, elf):
        assert elf[0].exists()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"$?#00")  # bad checksum
            assert sock.recv(1) == b"-"
            sock.sendall(frame(b"?"))
            assert _reply(sock) == b"+" + frame(b"T05thread:1;")
            # far past PacketSize without a '#': refused, and the stream stays usable
            sock.sendall(b"$" + b"m" * (MAX_PACKET + 64))
            assert frame(b"E01") in _reply(sock)
            sock.sendall(frame(b"g"))
            assert _reply(sock).startswith(b"+$")
            # a second client is refused while the first is connected
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            sock.sendall(frame(b"D"))
            assert _reply(sock) == b"+" + frame(b"OK")
    assert not elf[0].exists()  # the symbol file goes with the stub


def test_socket_hangup_ends_the_stub() -> None:
    with served() as (port, _, _), socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"$qSupported#" + f"{checksum(b'qSupported'):02x}".encode())
        assert b"ReverseStep+" in _reply(s)


def test_write_watchpoints_stop_after_the_write_and_before_it_backwards() -> None:
    r = replay_of("write-hello.toml")
    stub = Stub(r)
    ax = next(s for s in r.trace.steps[-1].stack if s.slot == "ax").address
    assert stub.handle(f"Z2,{ax:x},8".encode()) == b"OK"
    assert stub.handle(b"Z3,0,8") == b""  # read watchpoints: not offered
    assert stub.handle(f"Z2,{ax:x},0".encode()) == b"E01"
    assert stub.handle(b"c") == f"T05watch:{ax:x};thread:1;".encode()
    assert ax in r.trace.steps[stub.position - 1].stack_writes  # the push of -ENOSYS
    assert stub.handle(b"c") == f"T05watch:{ax:x};thread:1;".encode()
    call = stub.position - 1
    # write()'s return value, stored by the system call's own step of the C side
    step = r.trace.steps[call]
    assert step.label == "__x64_sys_write" and step.c is not None
    assert step.c.stack[0] == "do_syscall_64"
    stub.handle(b"bc")
    assert stub.position == call  # before the step that wrote it
    assert stub.handle(f"z2,{ax:x},8".encode()) == b"OK"
    assert stub.handle(b"c") == b"T05replaylog:end;thread:1;"


def test_host_io_serves_the_symbol_file_and_nothing_else(tmp_path: Path) -> None:
    elf = tmp_path / "kernel.elf"
    elf.write_bytes(symbol_elf(replay_of("getpid.toml").trace.symbols))
    stub = Stub(replay_of("getpid.toml"), exec_file=str(elf))
    assert stub.handle(b"qXfer:exec-file:read::0,1000") == b"l" + str(elf).encode()
    for other in ("/etc/passwd", str(tmp_path)):
        assert stub.handle(f"vFile:open:{other.encode().hex()},0,0".encode()) == b"F-1,2"
    assert stub.handle(b"vFile:pread:3,100,0") == b"F-1,9"  # nothing open
    assert stub.handle(f"vFile:open:{str(elf).encode().hex()},0,0".encode()) == b"F3"
    data = b""
    while True:
        reply = stub.handle(f"vFile:pread:3,1000,{len(data):x}".encode())
        assert reply is not None and reply.startswith(b"F")
        head, _, chunk = reply.partition(b";")
        if int(head[1:], 16) == 0:
            break
        data += chunk
    assert data == elf.read_bytes()
    assert stub.handle(b"vFile:close:3") == b"F0"
    assert stub.handle(b"vFile:open:zz,0,0") == b"E01"


PREFIXES = [b"m", b"p", b"Z0,", b"z2,", b"Z2,", b"vCont;", b"vFile:open:", b"vFile:pread:",
            b"qXfer:features:read:target.xml:", b"qXfer:exec-file:read::", b"H", b"g",
            b"?", b"s", b"bc", b"X", b"D", b""]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), rest=st.binary(max_size=40))
def test_no_packet_crashes_the_stub(prefix: bytes, rest: bytes) -> None:
    stub = Stub(replay_of("exit.toml"))
    reply = stub.handle(prefix + rest)
    assert reply is None or isinstance(reply, bytes)


@pytest.mark.parametrize(
    ("name", "function"),
    [("compat-sysenter-intel.toml", "do_SYSENTER_32"), ("v6.12-nopti.toml", "do_syscall_64")],
)
def test_a_breakpoint_on_a_modelled_c_function_fires_once_each_way(
    name: str, function: str
) -> None:
    """Its C steps (the conditions, the return) leave the PC at the stub: continuing from
    the breakpoint goes on to the next one, as on a CPU that never came back there."""
    r = replay_of(name)
    stub = Stub(r)
    stub_at = r.trace.symbols[function]
    assert stub.handle(f"Z0,{stub_at:x},1".encode()) == b"OK"
    assert stub.handle(b"c") == b"T05swbreak:;thread:1;"
    first = stub.position
    assert r.pc_at(first) == stub_at and not r.trace.steps[first - 1].is_c
    assert stub.handle(b"c") == b"T05replaylog:end;thread:1;"  # not the same address again
    assert stub.handle(b"bc") == b"T05swbreak:;thread:1;"
    # backward it stops where the CPU left the stub, before the C steps: once
    assert r.pc_at(stub.position) == stub_at
    assert stub.handle(b"bc") == b"T05replaylog:begin;thread:1;"


def test_symbol_sizes_pass_over_modelled_steps_without_bytes() -> None:
    from engine.gdbstub.elf import symbol_sizes

    # a C step at a stub's address has no bytes; the stub's RET (1 byte) still counts
    assert symbol_sizes({"f": 0x10, "g": 0x20}, [(0x10, 0), (0x10, 1)]) == {"f": 1, "g": 0}
    assert symbol_sizes({"f": 0x10}, [(0x10, 1), (0x10, 0)]) == {"f": 1}
