"""Every shipped scenario that a real kernel can run, against that kernel's real run of it.

tests/engine/oracle/fixtures/ holds what ``scripts/oracle --fixtures`` recorded: each
``<kernel>_<scenario>.json.gz`` is the scenario replayed in a real process on Debian's
kernel under QEMU (cloud flavour, -cpu max,la57=off unless the scenario needs LA57),
single-stepped with gdb from entry_SYSCALL_64 back to user mode.  Offline and without
QEMU, each is compared with the engine's run of the same scenario on the same machine
(engine/compare/real.py says what is compared and what may differ).
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pytest

from engine import Session
from engine.compare.real import (
    compare,
    cut,
    is_user_state,
    on_real_machine,
    on_the_real_machine,
)
from engine.scenario.parse import load_scenario
from engine.trace import Trace

FIXTURES = Path(__file__).parent / "oracle" / "fixtures"
SCENARIOS = Path(__file__).parents[2] / "scenarios"
#: <kernel>_<scenario>, and generic/, cloud_<QEMU CPU>/ ... <kernel>_<scenario> for other
#: machines (scripts/oracle --fixtures --flavour / --cpu)
CASES = sorted(
    str(p.relative_to(FIXTURES)).removesuffix(".json.gz") for p in FIXTURES.rglob("*.json.gz")
)


@cache
def fixture(name: str) -> dict:
    return json.loads(gzip.decompress((FIXTURES / f"{name}.json.gz").read_bytes()))


def scenario_path(stem: str) -> Path:
    found = list(SCENARIOS.rglob(f"{stem}.toml"))
    assert len(found) == 1, f"{stem}: {found}"
    return found[0]


def test_there_are_fixtures_for_both_kernels() -> None:
    kernels = {fixture(n)["kernel"] for n in CASES}
    assert kernels == {"v6.1", "v6.12"}
    assert len(CASES) >= 20


def test_fixtures_hold_what_the_differ_reads_and_no_more() -> None:
    """Stored cut (scripts/oracle writes cut(trace)): every step has its instruction and
    the registers compare() reads, the last one is the user state or an exception's entry."""
    for name in CASES:
        real = fixture(name)
        assert cut(real) == real, name
        assert (
            is_user_state(real["steps"][-1]) or real.get("exception") or (real["exit"] == "none")
        ), name


@pytest.mark.parametrize("name", CASES)
def test_the_engine_matches_the_real_kernel(name: str) -> None:
    real = fixture(name)
    sc = on_the_real_machine(load_scenario(scenario_path(real["case"])), real)
    diffs = compare(real, Session(sc).run())
    assert not diffs, "\n".join(diffs[:10])


@cache
def getpid_run() -> tuple[dict, Trace]:
    real = fixture("v6.1_getpid")
    return real, Session(on_real_machine(load_scenario(scenario_path("getpid")), "v6.1")).run()


def _changed(path: tuple, value: object) -> dict:
    """The getpid fixture with one item replaced (a deep copy)."""
    doc = json.loads(json.dumps(getpid_run()[0]))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "said"),
    [
        (("steps", 5, "asm"), "push   %rbx", "instruction 5: real `push   %rbx`"),
        (("steps", 3, "regs", "rsp"), "0x1234", "step 2 "),
        (("steps", 20, "regs", "eflags"), "0x3", "RFLAGS engine"),
        (("pt_regs", "at call do_syscall_64", "orig_ax"), "0x3c", "pt_regs at call"),
        (("pt_regs", "after do_syscall_64 returned", "ax"), "0x2", "pt_regs after"),
        (("exit",), "iret", "exit: engine sysret vs real iret"),
        (("steps", -1, "regs", "r11"), "0x202", "r11 engine 0x246 vs real 0x202"),
        (("steps", -1, "regs", "ss"), "0x23", "user state: ss engine 0x2b vs real 0x23"),
        (("steps", -1, "regs", "k_gs_base"), "0x0", "user state: KERNEL_GS_BASE"),
    ],
)
def test_the_differ_sees_one_changed_item(path: tuple, value: object, said: str) -> None:
    real, trace = getpid_run()
    assert compare(real, trace) == []
    diffs = compare(_changed(path, value), trace)
    assert any(said in d for d in diffs), diffs


def test_the_differ_counts_missing_instructions() -> None:
    real, trace = getpid_run()
    doc = json.loads(json.dumps(real))
    del doc["steps"][10]
    assert compare(doc, trace)
