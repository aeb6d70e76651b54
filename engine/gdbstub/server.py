"""The stub's transport: one TCP connection from gdb, packets framed per the protocol.

Safety: it listens on 127.0.0.1 unless another address is asked for explicitly,
accepts one client and then stops listening (a second one is refused), bounds every
packet at :data:`~engine.gdbstub.protocol.MAX_PACKET`, and ends when that client
detaches, kills, or hangs up.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from engine.gdbstub.elf import symbol_elf, symbol_sizes
from engine.gdbstub.protocol import MAX_PACKET, Stub, checksum, frame, unescape
from engine.gdbstub.replay import Replay
from engine.machine import idt
from engine.scenario.model import Scenario
from engine.trace import Trace

DEFAULT_HOST = "127.0.0.1"


def write_symbol_file(trace: Trace, directory: Path) -> Path:
    """The labels of the kernel image this run used, as an ELF symbol file, with the
    names of the IDT's handler stubs (engine/machine/idt.py)."""
    code = [(i.address, len(i.code)) for line in trace.source for i in line.instructions]
    code += [(s.rip, len(s.code)) for s in trace.steps]
    stubs = idt.stub_symbols(trace.kernel, trace.symbols)
    code += [(address, idt.STUB_SIZE) for address in stubs.values()]
    symbols = {**stubs, **trace.symbols}
    path = directory / f"kernel-{trace.kernel}.elf"
    path.write_bytes(symbol_elf(symbols, symbol_sizes(symbols, code)))
    return path


class Connection:
    """Frames packets off one socket and hands them to a :class:`Stub`."""

    def __init__(self, sock: socket.socket, stub: Stub):
        self.sock = sock
        self.stub = stub
        self.last_reply = b""

    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _packet(self, payload: bytes, sum_text: bytes) -> None:
        try:
            ok = int(sum_text, 16) == checksum(payload)
        except ValueError:
            ok = False
        if not ok:
            if not self.stub.no_ack:
                self._send(b"-")  # ask for it again
            return
        acking = not self.stub.no_ack
        if acking:
            self._send(b"+")
        try:
            reply = self.stub.handle(unescape(payload))
        except ValueError:
            reply = b"E01"
        if reply is not None:
            self.last_reply = frame(reply)
            self._send(self.last_reply)

    def serve(self) -> None:
        buf = bytearray()
        while not self.stub.closed:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionError:
                return
            if not chunk:
                return
            buf += chunk
            while buf and not self.stub.closed:
                c = buf[0]
                if c == ord("$"):
                    end = buf.find(b"#")
                    if end < 0:
                        if len(buf) > MAX_PACKET + 4:
                            # Too long to be a packet gdb would send after our PacketSize:
                            # refuse it and resynchronise on the next '$'.
                            nxt = buf.find(b"$", 1)
                            del buf[: nxt if nxt > 0 else len(buf)]
                            self._send(frame(b"E01"))
                            continue
                        break
                    if len(buf) < end + 3:
                        break
                    payload, sum_text = bytes(buf[1:end]), bytes(buf[end + 1 : end + 3])
                    del buf[: end + 3]
                    if len(payload) > MAX_PACKET:
                        self._send(frame(b"E01"))
                        continue
                    self._packet(payload, sum_text)
                elif c == ord("-") and self.last_reply:
                    del buf[0]
                    self._send(self.last_reply)
                else:
                    del buf[0]  # '+' acks, ^C (nothing runs asynchronously), line noise


def serve(
    scenario: Scenario,
    host: str = DEFAULT_HOST,
    port: int = 1234,
    announce: Callable[[str, int, Path, Trace], None] | None = None,
    qemu_compat: bool = False,
) -> None:
    """Record *scenario*, then serve it to one gdb client until it leaves.

    *announce* is called once listening, with the bound address and port (useful with
    port 0) and the path of the symbol file.  *qemu_compat* makes the stub answer
    QEMU's own packets and monitor commands (see :mod:`engine.gdbstub.monitor`).
    """
    replay = Replay(scenario)
    workdir = Path(tempfile.mkdtemp(prefix="syscall-tui-gdb-"))
    try:
        elf = write_symbol_file(replay.trace, workdir)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(1)
            bound_host, bound_port = listener.getsockname()[:2]
            if announce is not None:
                announce(bound_host, bound_port, elf, replay.trace)
            sock, _ = listener.accept()
        # The listener is closed now: one client at a time, and no second one.
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stub = Stub(replay, exec_file=str(elf), qemu_compat=qemu_compat)
            with contextlib.suppress(OSError):
                Connection(sock, stub).serve()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["DEFAULT_HOST", "Connection", "serve", "write_symbol_file"]
