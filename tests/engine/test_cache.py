"""The on-disk cache: a hit gives what a run gives, and a damaged or unwritable cache costs a
recomputation, never a wrong answer or an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import store
from engine.run import cached
from engine.run.session import run_scenario
from engine.scenario.parse import load_scenario

ROOT = Path(__file__).resolve().parents[2]
GETPID = ROOT / "scenarios" / "getpid.toml"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("SYSCALL_TUI_NO_CACHE", raising=False)
    return tmp_path / "syscall-tui"


def test_a_hit_is_the_trace_a_run_gives(cache_home: Path) -> None:
    fresh = run_scenario(load_scenario(GETPID))
    first, data = cached.run_file(str(GETPID))
    assert data == GETPID.read_bytes()
    assert list((cache_home / "trace").iterdir())
    second, _ = cached.run_file(str(GETPID))
    assert first == fresh and second == fresh


def test_other_bytes_are_another_entry(cache_home: Path, tmp_path: Path) -> None:
    text = GETPID.read_text()
    one = cached.run_bytes(text.encode(), "s.toml")
    other = cached.run_bytes(text.replace("$39", "$110").encode(), "s.toml")  # getppid
    assert one.steps[0].text != other.steps[0].text
    assert len(list((cache_home / "trace").iterdir())) == 2


def test_a_damaged_entry_is_recomputed(cache_home: Path) -> None:
    good, _ = cached.run_file(str(GETPID))
    (entry,) = (cache_home / "trace").iterdir()
    raw = bytearray(entry.read_bytes())
    raw[-5] ^= 0xFF
    entry.write_bytes(bytes(raw))
    assert store.load("trace", entry.name) is None
    again, _ = cached.run_file(str(GETPID))
    assert again == good


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_cache_is_no_error(cache_home: Path) -> None:
    cache_home.parent.chmod(0o500)
    try:
        trace, _ = cached.run_file(str(GETPID))
    finally:
        cache_home.parent.chmod(0o700)
    assert trace.exit == "sysret"


def test_a_cache_path_that_is_a_file_is_no_error(cache_home: Path) -> None:
    cache_home.write_text("not a directory")
    trace, _ = cached.run_file(str(GETPID))
    assert trace.exit == "sysret"


def test_the_engine_source_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(store.engine_fingerprint()) == 64
    key = store.entry_key("trace", "a", b"b")
    monkeypatch.setattr(store, "engine_fingerprint", lambda: "0" * 64)
    assert store.entry_key("trace", "a", b"b") != key


def test_the_cache_keeps_a_bounded_number_of_entries(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "MAX_ENTRIES", 3)
    for n in range(5):
        store.store("trace", f"{n:064x}", n)
    assert len(list((cache_home / "trace").iterdir())) == 3


def test_a_long_loop_pickles_back_to_equal_records_sharing_repeated_values() -> None:
    import pickle

    from engine.scenario.parse import parse_scenario

    text = 'name = "spin"\nstep_cap = 300\n[user]\ncode = "1: jmp 1b; syscall"\n'
    trace = run_scenario(parse_scenario(text, "spin.toml"))
    assert len(trace.steps) == 300
    back = pickle.loads(pickle.dumps(trace, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == trace
    assert type(back.steps[5].regs) is type(trace.steps[5].regs)
    # The loop changes no register: every step after the first records no change, and the
    # equal registers are one record, read back as one.
    assert all(step.changed == () for step in back.steps[2:])
    assert back.steps[10].regs is back.steps[11].regs
    assert back.steps[10].checks is back.steps[11].checks


def test_copies_of_records_go_through_the_same_reduction_and_stay_equal() -> None:
    import copy

    trace = run_scenario(load_scenario(GETPID))
    assert copy.deepcopy(trace) == trace
    assert copy.copy(trace.steps[3]) == trace.steps[3]
