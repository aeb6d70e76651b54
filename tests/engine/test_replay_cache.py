"""The gdb stub's cache of replayed positions is bounded by the bytes it saves."""

from __future__ import annotations

import pytest

from engine import load_scenario, parse_scenario
from engine.gdbstub import Replay, replay
from tests.conftest import SCENARIOS

#: 32 MiB of writable memory, the most a scenario may map: a saved position copies it all.
LARGEST = """
name = "largest memory"
step_cap = 300
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


def saved_bytes(r: Replay) -> int:
    return sum(len(data) for _, memory in r._cache.values() for _, data in memory)


@pytest.mark.slow
def test_a_scenario_with_the_most_memory_keeps_few_positions() -> None:
    r = Replay(parse_scenario(LARGEST, "largest.toml"))
    per_position = 32 << 20
    for p in range(0, 20):
        r.goto(p)
        assert saved_bytes(r) == r._cache_bytes <= replay.CACHE_BYTES
    assert 1 <= len(r._cache) <= replay.CACHE_BYTES // per_position
    for p in (19, 18, 3, 10):  # cached or replayed again: the same machine either way
        r.goto(p)
        assert r.live_regs() == r.regs_at(p)
        for page in range(4):
            address = 0x10000000 + 4096 * page
            assert r.read(address, 8) == r.read_at(p, address, 8)


def test_the_byte_bound_evicts_the_oldest_but_never_the_position_just_saved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = Replay(load_scenario(SCENARIOS / "getpid.toml"))
    monkeypatch.setattr(replay, "CACHE_BYTES", 1)  # smaller than any one position
    for p in (3, 7, 5):
        r.goto(p)
        assert list(r._cache) == [p]
        assert r.live_regs() == r.regs_at(p)
    monkeypatch.setattr(replay, "CACHE_BYTES", 3 * r._cache_bytes)
    for p in (1, 2, 3, 4):
        r.goto(p)
    assert list(r._cache) == [2, 3, 4]
    runs = r.replays
    r.goto(3)
    assert r.replays == runs  # a restore, not a run
