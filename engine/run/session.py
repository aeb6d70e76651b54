"""A machine built for one scenario, and the hooks that connect it to each run.

The run itself is engine.run.roundtrip; where its steps go, engine.run.sink; the entry
code's models, engine.run.actions.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from unicorn import UC_HOOK_INSN, UC_HOOK_INTR
from unicorn import x86_const as X

from engine.machine.core import Machine
from engine.run.launch import launch_key, user_mappings
from engine.run.memlog import MemoryHistory, WriteLog
from engine.run.roundtrip import Launches, Run, Stop
from engine.run.sink import Select
from engine.scenario.model import Scenario
from engine.trace import Step, Trace


class Session:
    """A machine built for one scenario, ready to run it any number of times.

    The Unicorn hooks stay installed between runs and call into whichever
    :class:`~engine.run.roundtrip.Run` is active: Unicorn decides at translation time
    which instructions call a code hook, so changing hooks means flushing every
    translated block.  A recorded run and a sweep need different hooks (their sinks say
    which), so the hooks change only when the mode does.
    """

    def __init__(self, scenario: Scenario, memory: bool = True):
        """*memory*: recorded runs keep their memory log (see :meth:`memory_history`)."""
        self.scenario = scenario
        self.machine = Machine(scenario.machine, user_mappings(scenario))
        self.keep_memory = memory
        self._mode: tuple[bool, bool] | None = None
        self._hooks: list[int] = []
        self._launches: Launches = {}
        self._run: Run | None = None
        self._memory: tuple[list[tuple[int, bytes]], WriteLog] | None = None

    def _guarded(self, select: Select) -> Callable[..., Any]:
        """A hook that calls the method *select* picks from the active run (or its sink).

        Unicorn swallows exceptions raised in hooks (unicorn-engine/unicorn#1386, #1987,
        #2129): a :class:`Stop` stops the emulation, anything else is kept for the run to
        raise once ``emu_start`` has returned.
        """

        def call(*args: Any) -> Any:
            run = self._run
            assert run is not None
            try:
                return select(run)(*args)
            except Stop:
                run.uc.emu_stop()
            except BaseException as exc:
                if run.hook_error is None:
                    run.hook_error = exc
                run.uc.emu_stop()
            return None

        return call

    def _install(self, run: Run) -> None:
        mode = (run.recording is not None, run.memory is not None)
        if self._mode == mode:
            return
        uc = self.machine.uc
        for h in self._hooks:
            uc.hook_del(h)
        self._hooks.clear()
        uc.ctl_flush_tb()  # type: ignore[attr-defined]
        on_syscall = self._guarded(lambda r: r.on_syscall)
        self._hooks.append(uc.hook_add(UC_HOOK_INTR, self._guarded(lambda r: r.on_intr)))
        self._hooks.append(uc.hook_add(UC_HOOK_INSN, on_syscall, None, 1, 0, X.UC_X86_INS_SYSCALL))
        # SYSENTER reaches the hook from Unicorn's helper, which otherwise runs past it
        on_sysenter = self._guarded(lambda r: r.on_sysenter)
        self._hooks.append(
            uc.hook_add(UC_HOOK_INSN, on_sysenter, None, 1, 0, X.UC_X86_INS_SYSENTER)
        )

        def add(kind: int, select: Select, begin: int, end: int) -> None:
            self._hooks.append(uc.hook_add(kind, self._guarded(select), None, begin, end))

        run.sink.install(uc, add)
        self._mode = mode

    def launch_state(self, sc: Scenario) -> tuple[object, list[tuple[int, bytes]]] | None:
        """The CPU context and memory at *sc*'s first user instruction, before it runs, as
        a run of this session kept them (None: no run has entered user mode for it)."""
        return self._launches.get(launch_key(sc))

    def run(
        self,
        record: bool = True,
        scenario: Scenario | None = None,
        on_step: Callable[[Step], None] | None = None,
    ) -> Trace:
        """One round trip from the scenario's initial state; *record* keeps every step.

        *scenario* may replace the session's own when it needs the same machine and
        user memory (what-if variations of registers, handler writes or expectations).
        *on_step* sees each recorded step while the machine is still in its state.
        """
        sc = self.scenario if scenario is None else scenario
        if sc is not self.scenario and (
            user_mappings(sc) != self.machine.user or sc.machine != self.machine.config
        ):
            raise ValueError("that scenario needs a different machine; make a new Session")
        run = Run(self.machine, sc, record, self._launches, self.keep_memory)
        run.rec.on_step = on_step
        self._install(run)
        self._run = run
        # A recorded step is a dozen new records, none of them in a reference cycle: the
        # cyclic collector's walks over the growing trace were a sixth of a
        # 100,000-step run.  Off while recording (reference counting frees all the same),
        # back to what it was after.
        paused = record and gc.isenabled()
        if paused:
            gc.disable()
        try:
            trace = run.execute()
        finally:
            self._run = None
            if paused:
                gc.enable()
        if run.memory is not None and run.launch_memory is not None:
            self._memory = (run.launch_memory, run.memory)
        else:
            self._memory = None
        return trace

    def memory_history(self) -> MemoryHistory | None:
        """Memory at any step of the last recorded run; None if it never reached step 0
        (the launch faulted) or was not recorded."""
        if self._memory is None:
            return None
        launch, log = self._memory
        fixed = self.machine.fixed_memory()
        return MemoryHistory([*fixed, *launch], log, self.machine.config.paging)


def run_scenario(scenario: Scenario, record: bool = True) -> Trace:
    """Build the machine for *scenario* and run one recorded round trip."""
    return Session(scenario).run(record)


__all__ = ["Session", "run_scenario"]
