"""The machine at any step of a recorded run, by deterministic replay.

A recorded :class:`~engine.trace.Trace` keeps the registers of every step but not the
memory.  To show gdb the whole machine at step N (memory through that step's page
tables, the x87/SSE state, control registers), the scenario is run again on the same
:class:`~engine.Session` with its step cap set to N: the engine stops right after
the N-th step, so the Unicorn machine *is* the machine at that step.  Runs are
deterministic; every replay is checked against the recording, register by register,
and a mismatch is an error rather than a silently different picture.

Positions: 0 is the machine before the first user instruction (``Trace.initial``);
position p >= 1 is the machine right after step p-1 (``Trace.steps[p-1].regs``).
Replayed positions are kept (CPU context and writable memory, a few tens of KiB each
for most scenarios, 32 MiB for the largest) in a small LRU cache bounded in entries and
in bytes, so stepping back and forth costs a restore, not a run.

Memory needs no replay at all: a recorded run keeps what each step wrote
(engine.run.memlog), so :meth:`Replay.read_at` reads any position from step 0's
image plus the writes up to it, through the page tables of that position's CR3 as
they were then.  Watchpoints, which compare every position with the one before,
read this way.

This module only uses the engine's public API (Session, Trace, Step records) plus a
Unicorn hook of its own for position 0.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

from unicorn import UC_HOOK_CODE
from unicorn import x86_const as X

from engine.errors import EngineError
from engine.run.memlog import MemoryHistory
from engine.run.session import Session
from engine.scenario.model import Scenario
from engine.trace import Regs, Trace

CACHE_SIZE = 128
#: The cache's bound in bytes of saved memory: a position keeps a copy of all writable
#: memory, and a scenario may map 32 MiB of it (128 such copies were 4.3 GB of RSS).
CACHE_BYTES = 128 << 20

MSR_EFER = 0xC0000080
MSR_FS_BASE = 0xC0000100
MSR_GS_BASE = 0xC0000101
MSR_KERNEL_GS_BASE = 0xC0000102


class ReplayError(EngineError):
    """A replayed step did not reproduce the recorded registers."""


def _size(memory: list[tuple[int, bytes]]) -> int:
    return sum(len(data) for _, data in memory)


class Replay:
    """One scenario, its recorded trace, and the machine moved to any position."""

    def __init__(self, scenario: Scenario, trace: Trace | None = None):
        self.scenario = scenario
        self.session = Session(scenario)
        self.trace = self.session.run() if trace is None else trace
        self._history = self.session.memory_history() if trace is None else None
        self.machine = self.session.machine
        self.position: int | None = None
        self.replays = 0  # runs made (not cache hits): for the benchmark
        self._cache: OrderedDict[int, tuple[Any, list[tuple[int, bytes]]]] = OrderedDict()
        self._cache_bytes = 0  # of memory saved in _cache

    # -- positions -------------------------------------------------------------------
    @property
    def last(self) -> int:
        """The final position: right after the last recorded step."""
        return len(self.trace.steps)

    def regs_at(self, position: int) -> Regs:
        """The recorded registers at *position*."""
        return self.trace.initial if position == 0 else self.trace.steps[position - 1].regs

    def pc_at(self, position: int) -> int:
        return self.regs_at(position).rip

    def goto(self, position: int) -> None:
        """Put the Unicorn machine in the state it had at *position*."""
        if not 0 <= position <= self.last:
            raise ValueError(f"position {position} outside 0..{self.last}")
        if position == self.position:
            return
        uc = self.machine.uc
        cached = self._cache.get(position)
        if cached is not None:
            self._cache.move_to_end(position)
            ctx, memory = cached
            self.machine.restore_memory(memory)
            uc.context_restore(ctx)
        else:
            self.position = None
            if position == 0:
                self._replay_launch()
            else:
                self._replay(position)
            self.replays += 1
            self._check(position)
            memory = self.machine.snapshot_memory()
            self._cache[position] = (uc.context_save(), memory)
            self._cache_bytes += _size(memory)
            # the oldest go first; the position just saved always stays
            while len(self._cache) > 1 and (
                len(self._cache) > CACHE_SIZE or self._cache_bytes > CACHE_BYTES
            ):
                _, (_, old) = self._cache.popitem(last=False)
                self._cache_bytes -= _size(old)
        self.position = position

    def _replay(self, position: int) -> None:
        capped = dataclasses.replace(self.scenario, step_cap=position)
        again = self.session.run(scenario=capped)
        if len(again.steps) < position or again.steps[position - 1].regs != self.regs_at(position):
            raise ReplayError(f"replay to step {position - 1} did not reproduce the recording")

    def _replay_launch(self) -> None:
        """Position 0: the machine at the first user instruction, before it runs.

        The engine's own records start after that instruction, so a code hook on the
        first user instruction saves the machine there (it only reads, so the run it
        watches is unchanged) and the run, capped at one step, is then rolled back to it.
        """
        uc, machine = self.machine.uc, self.machine
        saved: list[tuple[Any, list[tuple[int, bytes]]]] = []
        errors: list[BaseException] = []

        def on_first(uc_: Any, address: int, size: int, data: Any) -> None:
            # Unicorn swallows exceptions raised in hooks (unicorn-engine/unicorn#1386):
            # keep it and raise it after the run.
            try:
                if not saved:
                    saved.append((uc_.context_save(), machine.snapshot_memory()))
            except BaseException as exc:
                errors.append(exc)

        rip = self.trace.initial.rip
        hook = uc.hook_add(UC_HOOK_CODE, on_first, None, rip, rip)
        uc.ctl_flush_tb()  # type: ignore[attr-defined]  # blocks translated before the hook existed would skip it
        try:
            self.session.run(scenario=dataclasses.replace(self.scenario, step_cap=1))
        finally:
            uc.hook_del(hook)
            uc.ctl_flush_tb()  # type: ignore[attr-defined]
        if errors:
            raise ReplayError(f"error saving the first user instruction's state: {errors[0]!r}")
        if not saved:
            # A model that stops the run on the first instruction (a modelled #GP or #UD)
            # ends it in a hook that runs before this one: the launch the run kept is the
            # same state.
            kept = self.session.launch_state(self.scenario)
            if kept is not None:
                saved.append(kept)
        if not saved:
            raise ReplayError("the replay never reached the first user instruction")
        ctx, memory = saved[0]
        machine.restore_memory(memory)
        uc.context_restore(ctx)

    def _check(self, position: int) -> None:
        live = self.live_regs()
        if live != self.regs_at(position):
            want = self.regs_at(position).as_dict()
            bad = [k for k, v in live.as_dict().items() if want[k] != v]
            raise ReplayError(f"machine at position {position} differs in {', '.join(bad)}")

    # -- reading the machine at the current position -----------------------------------
    def live_regs(self) -> Regs:
        """The :class:`Regs` fields as the live machine holds them now."""
        uc, m = self.machine.uc, self.machine
        r = {
            name: int(uc.reg_read(getattr(X, f"UC_X86_REG_{name.upper()}")))
            for name in (
                "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                "rip", "rflags", "cs", "ss", "cr3",
            )
        }  # fmt: skip
        r["fs_base"] = m.read_msr(MSR_FS_BASE)
        r["gs_base"] = m.read_msr(MSR_GS_BASE)
        r["kernel_gs_base"] = m.read_msr(MSR_KERNEL_GS_BASE)
        return Regs(**r)

    @property
    def history(self) -> MemoryHistory:
        """The run's memory at every position (one more recorded run when the trace was
        given, checked against it: a different run would be a different picture)."""
        if self._history is None:
            self.position = None  # the run below moves the machine
            again = self.session.run()
            if again.steps != self.trace.steps or again.final != self.trace.final:
                raise ReplayError("running the scenario again did not reproduce the recording")
            history = self.session.memory_history()
            if history is None:
                raise ReplayError("the run kept no memory log")
            self._history = history
        return self._history

    def read_at(self, position: int, address: int, size: int) -> bytes:
        """:meth:`read` at *position*, from the memory log: no replay, the machine unmoved."""
        if not 0 <= position <= self.last:
            raise ValueError(f"position {position} outside 0..{self.last}")
        history, cr3 = self.history, self.regs_at(position).cr3
        out = bytearray()
        while size > 0 and 0 <= address < 1 << 64:
            n = min(size, 0x1000 - (address & 0xFFF))
            chunk = history.read_virt(position, cr3, address, n)
            if chunk is None:
                break
            out += chunk
            address, size = address + n, size - n
        return bytes(out)

    def reg(self, uc_id: int) -> Any:
        return self.machine.uc.reg_read(uc_id)

    def msr(self, msr: int) -> int:
        return self.machine.read_msr(msr)

    def read(self, address: int, size: int) -> bytes:
        """Up to *size* bytes at virtual *address* through the current CR3's tables.

        Stops at the first unmapped page, so the result may be shorter (empty when the
        first byte is unmapped), as gdb's memory reads allow.
        """
        cr3 = int(self.machine.uc.reg_read(X.UC_X86_REG_CR3))
        out = bytearray()
        while size > 0 and 0 <= address < 1 << 64:
            n = min(size, 0x1000 - (address & 0xFFF))
            chunk = self.machine.read_virt(cr3, address, n)
            if chunk is None:
                break
            out += chunk
            address, size = address + n, size - n
        return bytes(out)

    def read_phys_upto(self, address: int, length: int) -> bytes:
        """Up to *length* bytes of guest-physical memory at the current position, stopping
        where it is not backed (QEMU's physical-memory mode)."""
        out = bytearray()
        while length > 0:
            n = min(length, 0x1000 - (address & 0xFFF))
            try:
                out += self.machine.read_phys(address, n)
            except Exception:  # unicorn.UcError: no RAM there
                break
            address, length = address + n, length - n
        return bytes(out)


__all__ = ["Replay", "ReplayError"]
