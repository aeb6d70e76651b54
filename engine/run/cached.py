"""A scenario's trace, from the on-disk store when it has it (engine.store), else by a run.

Light until a run is needed: a hit is served before Unicorn, Capstone or Keystone load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.codec import Invalid, decode_trace, encode_trace
from engine.scenario.reader import read_scenario_bytes
from engine.store import cached, entry_key, load

if TYPE_CHECKING:
    from engine.trace import Trace


def run_file(path: str | Path) -> tuple[Trace, bytes]:
    """Load and run the scenario file at *path*: its trace and the bytes it was made from.

    Raises :class:`engine.errors.ScenarioError` as ``load_scenario`` does.  A failing file is
    never cached, so its error is reported afresh each time.
    """
    data = read_scenario_bytes(path)
    return run_bytes(data, str(path)), data


def cached_trace(data: bytes, name: str) -> Trace | None:
    """The trace :func:`run_bytes` would give, if the cache has it; None otherwise."""
    try:
        key = entry_key("trace", name, data)
    except OSError:
        return None
    return load("trace", key, _reader(name))


def _reader(name: str) -> Callable[[Any], Trace]:
    """The checked reader of a trace entry for the scenario named *name*."""

    def read(pool: Any) -> Trace:
        trace: Trace = decode_trace(pool)
        if trace.path != name:  # the key binds the name too: this is another scenario's
            raise Invalid("the trace of another file")
        return trace

    return read


def run_bytes(data: bytes, name: str) -> Trace:
    """The trace of scenario text *data* (named *name*), from the cache when possible."""

    def compute() -> Trace:
        from engine.errors import ScenarioError
        from engine.run.session import run_scenario
        from engine.scenario.parse import parse_scenario

        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ScenarioError(name, None, "not UTF-8 text") from None
        return run_scenario(parse_scenario(text, name))

    return cached("trace", (name, data), compute, encode_trace, _reader(name))
