"""The memory log: memory at any step, rebuilt from step 0 and the writes, equals the machine's.

The reference is the machine itself, replayed to the step (engine.gdbstub.replay runs the
scenario again with its step cap at the step and checks the registers): every writable
byte it holds must be what the log says, and the fixed regions must be the built ones.
"""

from __future__ import annotations

import pytest

from engine import parse_scenario
from engine.gdbstub import Replay
from engine.run import memlog
from engine.run.memlog import MemoryHistory, WriteLog
from engine.run.session import Session


def _history_matches_replay(source: str, positions: list[int] | None = None) -> int:
    sc = parse_scenario(source, "t.toml")
    session = Session(sc)
    trace = session.run()
    history = session.memory_history()
    assert history is not None
    assert history.steps == len(trace.steps)
    replay = Replay(sc, trace)
    last = len(trace.steps)
    for pos in positions or sorted({0, 1, last // 3, last // 2, last - 1, last}):
        replay.goto(pos)
        for base, data in replay.machine.snapshot_memory():
            assert history.read_phys(pos, base, len(data)) == data, f"step {pos}, {base:#x}"
    return last


LOOP = """
name = "loop"
[user]
code = '''
mov $100, %ecx
1: push %rcx
incq (%rsp)
pop %rax
dec %ecx
jnz 1b
mov $39, %eax
syscall
'''
"""


def test_a_page_written_many_times_reads_right_between_and_at_checkpoints() -> None:
    # 200 writes to one stack word: the page's checkpoints (every CHECKPOINT_EVERY writes)
    # and the writes after them must give the same bytes as the machine at each step.
    last = _history_matches_replay(LOOP, [0, 1, 2, 3, 60, 61, 62, 63, 64, 65, 200, 301, 500])
    assert last > 500


def test_wide_stores_are_read_back_when_their_step_closes() -> None:
    # A store wider than 8 bytes (the hook's value holds only 8 of them) is read back from
    # memory when its step closes.  The machine has no SSE enabled (CR4.OSFXSR=0: movups
    # is #UD), so this is the log alone.
    log = WriteLog()
    log.stored(0x1008, 16, 0x1122)
    log.close_step(lambda a, n: bytes(range(n)) if (a, n) == (0x1008, 16) else b"?")
    h = MemoryHistory([(0x1000, bytes(0x1000))], log, 4)
    assert h.read_phys(1, 0x1008, 16) == bytes(range(16))


def test_modelled_writes_are_logged() -> None:
    # do_syscall_64 writes regs->ax (the result) directly, not through the CPU, and
    # [handler.set] rewrites regs->ip: both must be in memory after that step.
    src = """
name = "handler"
[user]
code = "mov $39, %eax\\nsyscall"
[handler.set]
ip = 0x401000
"""
    _history_matches_replay(src)


def test_a_log_with_no_steps_is_the_step_0_image() -> None:
    log = WriteLog()
    h = MemoryHistory([(0x1000, b"\1" * 0x1000)], log, 4)
    assert h.read_phys(0, 0x1800, 2) == b"\1\1"
    assert h.read_phys(0, 0x3000, 1) is None  # not memory


def test_writes_cross_pages_and_skip_what_is_not_memory() -> None:
    log = WriteLog()
    log.start()
    log.direct(0x1FFE, b"abcd")  # the last two bytes of one page, the first two of the next
    log.stored(0x9000, 8, 1)  # not memory: dropped, not an error
    log.close_step(lambda a, n: b"")
    h = MemoryHistory([(0x1000, bytes(0x2000))], log, 4)
    assert h.read_phys(1, 0x1FFE, 4) == b"abcd"
    assert h.read_phys(0, 0x1FFE, 4) == bytes(4)


@pytest.mark.parametrize("every", [1, 2, memlog.CHECKPOINT_EVERY])
def test_every_count_of_writes_reads_back(monkeypatch: pytest.MonkeyPatch, every: int) -> None:
    monkeypatch.setattr(memlog, "CHECKPOINT_EVERY", every)
    log = WriteLog()
    for i in range(70):
        log.stored(0x1000 + (i % 3), 1, i)
        log.close_step(lambda a, n: b"")
    h = MemoryHistory([(0x1000, bytes(0x1000))], log, 4)
    for step in range(71):
        want = bytearray(3)
        for i in range(step):
            want[i % 3] = i
        assert h.read_phys(step, 0x1000, 3) == bytes(want), step


@pytest.mark.parametrize("name", ["write-hello.toml", "sigreturn-noncanonical.toml"])
def test_the_gdb_stub_reads_memory_from_the_log_as_the_replayed_machine_holds_it(
    name: str,
) -> None:
    from engine import load_scenario
    from tests.conftest import SCENARIOS, trace_of

    sc = load_scenario(SCENARIOS / name)
    replay = Replay(sc, trace_of(name))  # a given trace: the log comes from a run of its own
    user_stack = sc.rsp - 0x40
    for pos in range(replay.last + 1):
        regs = replay.regs_at(pos)
        for address in (regs.rsp - 0x20, user_stack, regs.rip, 0, 1 << 63):
            want_runs = replay.replays
            got = replay.read_at(pos, address, 0x60)
            assert replay.replays == want_runs  # no replay for memory
            replay.goto(pos)
            assert got == replay.read(address, 0x60), f"{name} position {pos} {address:#x}"
