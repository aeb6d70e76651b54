"""The GDB Remote Serial Protocol over a recorded run: packets in, replies out.

:class:`Stub` answers one packet at a time and knows nothing of sockets (the server
in :mod:`engine.gdbstub.server` frames and transports); it moves a position through
the recording and reads the machine there from a :class:`Replay`.

What the program under debug looks like to gdb:

* one process with one thread; positions 0..N of the recording are its states;
* ``s``/``c`` (and ``vCont``) move forward, ``bs``/``bc`` backward; breakpoints (Z0/Z1)
  stop a continue when the next instruction to run is at one, write watchpoints (Z2)
  right after (or, backwards, right before) the step that changed the watched bytes;
* reaching the end of the recording stops with the run's fault as a signal (#GP/#PF →
  SIGSEGV, #UD → SIGILL, ...), or, if the run ended without one, as the end of the
  replay log; going forward from there ends the process: ``W`` (exit status from exit(),
  else 0) or ``X`` with the fault's signal;
* the recording is read-only: register and memory writes are refused with an error;
* it looks like a Linux process to process-oriented front-ends (GEF, pwndbg):
  ``/proc/<pid>/maps``, ``exe``, ``cmdline``, ``environ`` over vFile, and an auxv
  (:mod:`engine.gdbstub.procfs`);
* with *qemu_compat*, it also answers as QEMU's system-emulation stub does, which is
  what kernel-oriented front-ends test for: ``qqemu.sstepbits``, the physical-memory
  mode ``qqemu.PhyMemMode`` and HMP monitor commands over ``qRcmd``
  (:mod:`engine.gdbstub.monitor`).

Every malformed packet gets an ``E`` reply; unknown ones the empty reply the
protocol prescribes for "not supported".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.gdbstub import monitor
from engine.gdbstub.hostio import MAX_FILES, HostIO
from engine.gdbstub.reglog import RegisterLog
from engine.gdbstub.replay import Replay
from engine.gdbstub.target import REGISTERS
from engine.gdbstub.wire import (
    E_MALFORMED,
    MAX_PACKET,
    Malformed,
    addr_len,
    checksum,
    frame,
    hex_int,
    unescape,
)
from engine.trace import Trace

#: Longest range one write watchpoint may watch.
MAX_WATCH = 0x1000

# gdb's own signal numbers (include/gdb/signals.def), which the protocol uses.
SIGILL, SIGTRAP, SIGABRT, SIGFPE, SIGBUS, SIGSEGV = 4, 5, 6, 8, 10, 11

#: How a CPU exception of the run reaches gdb: the signal Linux sends for it
#: (arch/x86/kernel/traps.c).
VECTOR_SIGNALS = {
    0: SIGFPE, 1: SIGTRAP, 3: SIGTRAP, 4: SIGSEGV, 5: SIGSEGV, 6: SIGILL, 7: SIGSEGV,
    10: SIGSEGV, 11: SIGBUS, 12: SIGBUS, 13: SIGSEGV, 14: SIGSEGV, 16: SIGFPE,
    17: SIGBUS, 19: SIGFPE,
}  # fmt: skip

E_READ_ONLY = "E02"
#: The same refusal, in words, for a gdb that shows them ("error-message+", gdb 15).
E_READ_ONLY_TEXT = "E.the recording is history: its memory and registers cannot be written"
E_FAULT = "E0e"  # EFAULT-like: nothing mapped at that address


#: Queries whose reply never changes (one process, one thread, no symbols wanted),
#: by the packet's name (what comes before a ':').
FIXED_REPLIES = {
    "qC": "QC1", "qAttached": "1", "qfThreadInfo": "m1", "qsThreadInfo": "l", "qSymbol": "OK",
}  # fmt: skip


def fault_signal(trace: Trace) -> int | None:
    """The signal the run's fault sends the process (None: the run ended without one)."""
    fault = trace.fault
    if fault is None:
        return None
    return VECTOR_SIGNALS.get(fault.vector, SIGSEGV if fault.vector >= 0 else SIGABRT)


def exit_status(trace: Trace) -> int:
    """The process's exit status: exit()'s argument, else 0."""
    if any(e.kind == "exit" for e in trace.events):
        return trace.pt_regs_at_call.get("di", 0) & 0xFF  # exit(status) takes the low byte
    return 0


@dataclass
class Stub:
    """The protocol state of one gdb connection over one recording."""

    replay: Replay
    exec_file: str | None = None  # the symbol file, offered through qXfer:exec-file
    position: int = 0
    breakpoints: dict[int, str] = field(default_factory=dict)  # address → "sw" | "hw"
    watchpoints: dict[tuple[int, int], None] = field(default_factory=dict)  # (address, length)
    _watch_values: dict[tuple[int, int, int], bytes | None] = field(default_factory=dict)
    qemu_compat: bool = False  # answer QEMU's packets and monitor commands
    phys_mode: bool = False  # Qqemu.PhyMemMode:1: m reads guest-physical memory
    _last_registers: tuple[int, tuple[str, ...]] | None = None
    closed: bool = False  # the client detached or killed, or the process ended
    no_ack: bool = False
    error_messages: bool = False  # gdb said error-message+: "E.text" replies are shown

    def __post_init__(self) -> None:
        self._host = HostIO(self.replay, self.exec_file)
        self._registers = RegisterLog(self.replay)

    # -- the recording -----------------------------------------------------------
    @property
    def last(self) -> int:
        return self.replay.last

    def _fault_signal(self) -> int | None:
        return fault_signal(self.replay.trace)

    def _stop(self, reason: str = "") -> str:
        return f"T{SIGTRAP:02x}{reason}thread:1;"

    def _at_end(self) -> str:
        signal = self._fault_signal()
        if signal is not None:
            return f"T{signal:02x}thread:1;"
        return self._stop("replaylog:end;")

    def _past_end(self) -> str:
        """Going forward from the last position: the process ends."""
        self.closed = True
        signal = self._fault_signal()
        if signal is not None:
            return f"X{signal:02x}"
        return f"W{exit_status(self.replay.trace):02x}"

    def _move(self, position: int) -> None:
        self.position = position

    def _watched(self, position: int, address: int, length: int) -> bytes | None:
        """The watched bytes at *position*, None where that step's tables do not map them."""
        key = (position, address, length)
        if key not in self._watch_values:
            data = self.replay.read_at(position, address, length)
            self._watch_values[key] = data if len(data) == length else None
        return self._watch_values[key]

    def _watch_hit(self, before: int, after: int) -> int | None:
        """A watched address whose bytes differ between two adjacent positions.

        As gdb's write watchpoints do, a change of value is what counts; where either
        position does not map the address (a CR3 switch between them) nothing was written.
        """
        for address, length in self.watchpoints:
            a = self._watched(before, address, length)
            b = self._watched(after, address, length)
            if a is not None and b is not None and a != b:
                return address
        return None

    def _arrive(self, q: int, forward: bool, single: bool) -> str | None:
        """The stop reply if moving onto position *q* stops there, else None."""
        if self.watchpoints:
            hit = self._watch_hit(q - 1, q) if forward else self._watch_hit(q, q + 1)
            if hit is not None:
                self._move(q)
                return self._stop(f"watch:{hit:x};")
        # A modelled C step (6.12's SYSRET conditions, do_fast_syscall_32's) leaves the PC
        # at its stub: the CPU did not arrive there again, so a breakpoint does not fire
        between = self.replay.trace.steps[q - 1 if forward else q]
        kind = None if single or between.is_c else self.breakpoints.get(self.replay.pc_at(q))
        if kind is not None or single:
            self._move(q)
            if forward and q == self.last and self._fault_signal() is not None:
                return self._at_end()
            return self._stop(f"{kind}break:;" if kind else "")
        return None

    def step(self) -> str:
        if self.position == self.last:
            return self._past_end()
        reply = self._arrive(self.position + 1, True, True)
        assert reply is not None
        return reply

    def cont(self) -> str:
        if self.position == self.last:
            return self._past_end()
        for q in range(self.position + 1, self.last + 1):
            reply = self._arrive(q, True, False)
            if reply is not None:
                return reply
        self._move(self.last)
        return self._at_end()

    def reverse_step(self) -> str:
        if self.position == 0:
            return self._stop("replaylog:begin;")
        reply = self._arrive(self.position - 1, False, True)
        assert reply is not None
        return reply

    def reverse_cont(self) -> str:
        for q in range(self.position - 1, -1, -1):
            reply = self._arrive(q, False, False)
            if reply is not None:
                return reply
        self._move(0)
        return self._stop("replaylog:begin;")

    def stop_reply(self) -> str:
        if self.position == self.last and self._fault_signal() is not None:
            return self._at_end()
        return self._stop()

    # -- reading the machine ---------------------------------------------------------
    def _machine(self) -> Replay:
        self.replay.goto(self.position)
        return self.replay

    def _registers_at(self) -> tuple[str, ...]:
        """Every register at the current position, as gdb wants it: from the register
        log (engine.gdbstub.reglog), which moves no machine, and by the position's
        single last lookup kept (gdb asks ``g`` and front-ends ``p`` after ``p``)."""
        if self._last_registers is None or self._last_registers[0] != self.position:
            self._last_registers = (self.position, self._registers.at(self.position))
        return self._last_registers[1]

    def read_registers(self) -> str:
        return "".join(self._registers_at())

    def read_register(self, index: int) -> str:
        if not 0 <= index < len(REGISTERS):
            return E_MALFORMED
        return self._registers_at()[index]

    def read_memory(self, address: int, length: int) -> str:
        length = min(length, MAX_PACKET // 2 - 32)
        if address >= 1 << 64:
            return E_FAULT
        data = (
            self._machine().read_phys_upto(address, length)
            if self.phys_mode
            else self.replay.read_at(self.position, address, length)
        )
        if not data and length:
            return E_FAULT
        return data.hex()

    # -- packets ---------------------------------------------------------------------
    def handle(self, packet: bytes) -> bytes | None:
        """The reply payload to *packet* (unframed), or None when none is due."""
        if not packet.isascii() and not packet.startswith((b"X", b"vFile")):
            return E_MALFORMED.encode()  # only binary-data packets carry non-ASCII bytes
        text = packet.decode("latin-1")
        try:
            reply = self._dispatch(text, packet)
        except Malformed:
            return E_MALFORMED.encode()
        return None if reply is None else (reply if isinstance(reply, bytes) else reply.encode())

    def _dispatch(self, text: str, raw: bytes) -> str | bytes | None:
        if not raw:
            return ""
        head, args = text[:1], text[1:]
        if text.startswith("qSupported"):
            return self._supported(text)
        if text == "QStartNoAckMode":
            self.no_ack = True
            return "OK"
        if text.startswith("qXfer:"):
            return self._host.xfer(text)
        fixed = FIXED_REPLIES.get(text.split(":", 1)[0])
        if fixed is not None:
            return fixed
        if self.qemu_compat:
            answer = monitor.qemu_packet(text, self.phys_mode, self._machine)
            if answer is not None:
                reply, self.phys_mode = answer
                return reply
        if head == "?":
            return self.stop_reply()
        if head == "H" or head == "T":
            return "OK"
        if head == "g":
            return self.read_registers()
        if head == "p":
            return self.read_register(hex_int(args))
        if head in ("G", "P", "M", "X"):
            return E_READ_ONLY_TEXT if self.error_messages else E_READ_ONLY
        if head == "m":
            return self.read_memory(*addr_len(args))
        if head in ("Z", "z"):
            return self._breakpoint(head == "Z", args)
        if head in ("s", "S"):
            return self.step()
        if head in ("c", "C"):
            return self.cont()
        if text == "bs":
            return self.reverse_step()
        if text == "bc":
            return self.reverse_cont()
        if text == "vCont?":
            return "vCont;c;C;s;S"
        if text.startswith("vCont;"):
            actions = [a.split(":")[0] for a in text[6:].split(";")]
            if not actions or any(a[:1] not in ("c", "C", "s", "S") for a in actions):
                raise Malformed(text)
            # One thread: the first action that applies to it decides.
            return self.step() if actions[0][0] in "sS" else self.cont()
        if text.startswith("vFile:"):
            return self._host.vfile(text[6:])
        if head == "D":
            self.closed = True
            return "OK"
        if head == "k" or text.startswith("vKill"):
            self.closed = True
            return None if head == "k" else "OK"
        return ""  # not supported

    def _supported(self, text: str) -> str:
        self.error_messages = "error-message+" in text.split(":", 1)[-1].split(";")
        return (
            f"PacketSize={MAX_PACKET:x};qXfer:features:read+;qXfer:auxv:read+;"
            + ("qXfer:exec-file:read+;" if self.exec_file else "")
            + "QStartNoAckMode+;ReverseStep+;ReverseContinue+;swbreak+;hwbreak+;"
            "vContSupported+" + (";error-message+" if self.error_messages else "")
        )

    def _breakpoint(self, insert: bool, args: str) -> str:
        kind, _, rest = args.partition(",")
        address, length = addr_len(rest.split(";")[0])
        if kind == "2":  # write watchpoint
            if not 0 < length <= MAX_WATCH:
                return E_MALFORMED
            if insert:
                self.watchpoints[(address, length)] = None
            else:
                self.watchpoints.pop((address, length), None)
            return "OK"
        if kind not in ("0", "1"):
            return ""  # read and access watchpoints: the recording keeps no reads of all memory
        if insert:
            self.breakpoints[address] = "sw" if kind == "0" else "hw"
        else:
            self.breakpoints.pop(address, None)
        return "OK"


__all__ = [
    "MAX_FILES", "MAX_PACKET", "VECTOR_SIGNALS", "Malformed", "Stub", "checksum", "frame",
    "unescape",
]  # fmt: skip
