"""The app's loader child: the trace it sends back is checked data, never a pickle."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from engine.codec import encode_trace
from engine.i18n import Msg
from engine.run.session import run_scenario
from engine.scenario.parse import load_scenario, parse_scenario
from tests.tui.helpers import SCENARIOS
from tui import loader


def test_the_child_sends_the_trace_the_engine_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSCALL_TUI_NO_CACHE", "1")  # the child runs it, not the cache
    path = str(SCENARIOS / "getpid.toml")
    trace, source = loader.load_with_source(path, lambda: False)
    expected = run_scenario(load_scenario(path))
    assert trace == expected and source == Path(path).read_bytes()
    assert isinstance(trace.stopped, Msg) and isinstance(expected.stopped, Msg)
    assert trace.stopped.template == expected.stopped.template


def test_batches_of_steps_arrive_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSCALL_TUI_NO_CACHE", "1")
    text = 'name = "spin"\nstep_cap = 1234\n[user]\ncode = "1: jmp 1b; syscall"\n'
    path = tmp_path / "spin.toml"
    path.write_text(text)
    trace, _ = loader.load_with_source(str(path), lambda: False)
    assert trace == run_scenario(parse_scenario(text, str(path)))
    assert len(trace.steps) == 1234 > loader.BATCH


class _CreatesAFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def _child_writing(data: bytes) -> tuple[int, int]:
    """A child that writes *data* down a pipe and exits: a loader child gone wrong."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view) :]
        finally:
            os._exit(0)
    os.close(write_end)
    return pid, read_end


def test_a_pickle_from_the_child_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    payload = pickle.dumps(("trace", _CreatesAFile(marker)))
    pid, read_end = _child_writing(loader._HEADER.pack(len(payload)) + payload)
    with pytest.raises(loader.LoadError, match="malformed"):
        loader._receive("x.toml", pid, read_end, lambda: False)
    assert not marker.exists()


def _head() -> list[Any]:
    trace = run_scenario(load_scenario(SCENARIOS / "getpid.toml"))
    return encode_trace(dataclasses.replace(trace, steps=()))


@pytest.mark.parametrize(
    "message",
    [
        {"kind": "trace", "head": [["os.system", "true"]], "count": 0, "source": ""},
        {"kind": "trace", "head": "head", "count": 10**12, "source": ""},  # too many steps
        {"kind": "trace", "head": "head", "count": 1, "source": "zz"},  # not hex
        {"kind": "steps", "head": "head", "count": 0, "source": ""},  # not the first message
        ["not", "an", "object"],
    ],
)
def test_a_malformed_answer_is_one_error(message: Any) -> None:
    if isinstance(message, dict) and message["head"] == "head":
        message["head"] = _head()
    data = json.dumps(message).encode()
    pid, read_end = _child_writing(loader._HEADER.pack(len(data)) + data)
    with pytest.raises(loader.LoadError, match="malformed"):
        loader._receive("x.toml", pid, read_end, lambda: False)


def test_a_claimed_huge_message_is_refused_before_it_is_read() -> None:
    pid, read_end = _child_writing(loader._HEADER.pack(1 << 62))
    with pytest.raises(loader.LoadError, match="malformed"):
        loader._receive("x.toml", pid, read_end, lambda: False)
