"""Every register gdb can ask for, at every position, without moving the machine.

gdb reads all ~70 registers (``g``) at every stop.  Rebuilding the machine at a new
position means a capped re-run of the scenario from its start (:meth:`Replay.goto`),
which made a ``stepi`` cost milliseconds and grew with the position.  Instead, one
recorded run reads every register of the target description at the end of each step,
while the machine is still in that step's state (the recorder's ``on_step``), and keeps
them: in full every :data:`CHECKPOINT` positions, and in between only what changed
from the position before.  Serving a step is then a lookup and at most
``CHECKPOINT - 1`` small merges.

The log is grown on demand, to twice what it covered (at least to the position
asked for), so that a session that only looks at the first steps of a long run does
not pay for all of them, and one that walks the whole run re-runs O(log N) times.
Position 0 (before the first instruction, which no step record describes) is read
from the machine moved there, once.
"""

from __future__ import annotations

import dataclasses

from engine.gdbstub.replay import Replay, ReplayError
from engine.gdbstub.target import REGISTERS, register_hex
from engine.trace import Step

#: A full copy of the registers every this many positions.
CHECKPOINT = 64
#: The fewest positions a growth of the log covers.
MIN_GROWTH = 256

Registers = tuple[str, ...]


class RegisterLog:
    """gdb's registers (hex, in the description's order) at any position of *replay*."""

    def __init__(self, replay: Replay):
        self.replay = replay
        self._full: dict[int, Registers] = {}  # position → every register
        self._delta: dict[int, tuple[tuple[int, str], ...]] = {}  # position → changes
        self._covered = 0  # positions 1.._covered are logged
        self.runs = 0  # re-runs made to grow the log (for the benchmark)

    def _read_live(self) -> Registers:
        return tuple(register_hex(self.replay, i) for i in range(len(REGISTERS)))

    def _grow(self, position: int) -> None:
        """Log positions up to at least *position* with one capped run from the start."""
        last = self.replay.last
        target = min(last, max(position, 2 * self._covered, MIN_GROWTH))
        covered = self._covered
        previous: list[Registers] = [self.at(covered)] if covered else []
        count = 0

        def on_step(step: Step) -> None:
            nonlocal count
            count += 1
            if count <= covered:
                return
            now = self._read_live()
            if count % CHECKPOINT == 0 or not previous:
                self._full[count] = now
            else:
                before = previous[0]
                self._delta[count] = tuple(
                    (i, v) for i, (v, b) in enumerate(zip(now, before, strict=True)) if v != b
                )
            previous[:] = [now]

        replay = self.replay
        replay.position = None  # the run below moves the machine
        capped = dataclasses.replace(replay.scenario, step_cap=target)
        again = replay.session.run(scenario=capped, on_step=on_step)
        self.runs += 1
        # the regs only: the last step of a capped run says so in its events
        recorded = replay.trace.steps
        if [s.regs for s in again.steps[:target]] != [s.regs for s in recorded[:target]]:
            raise ReplayError("running the scenario again did not reproduce the recording")
        self._covered = min(count, target)

    def at(self, position: int) -> Registers:
        """Every register at *position* (0: before the first instruction)."""
        if not 0 <= position <= self.replay.last:
            raise ValueError(f"position {position} outside 0..{self.replay.last}")
        if position == 0:
            cached = self._full.get(0)
            if cached is None:
                self.replay.goto(0)
                cached = self._full[0] = self._read_live()
            return cached
        if position > self._covered:
            self._grow(position)
        base = position
        while base not in self._full:
            base -= 1
        values = list(self._full[base])
        for p in range(base + 1, position + 1):
            for i, v in self._delta[p]:
                values[i] = v
        return tuple(values)


__all__ = ["CHECKPOINT", "RegisterLog"]
