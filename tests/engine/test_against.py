"""``syscall-tui compare SCENARIO --against TRACE``: the engine beside a real kernel's
trace, and the trace file read as untrusted input (bounded, checked key by key)."""

from __future__ import annotations

import copy
import gzip
import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import load_scenario, run_scenario
from engine.compare.real import (
    MAX_JSON_BYTES,
    RealTraceError,
    against,
    kernel_steps,
    load_real_trace,
    on_the_real_machine,
)
from tui.cli import main

FIXTURES = Path(__file__).parent / "oracle" / "fixtures"
SCENARIOS = Path(__file__).parents[2] / "scenarios"
GETPID_61 = FIXTURES / "v6.1_getpid.json.gz"


@cache
def getpid_doc() -> dict:
    return json.loads(gzip.decompress(GETPID_61.read_bytes()))


def write(tmp_path: Path, doc: object, packed: bool = True) -> Path:
    data = json.dumps(doc).encode()
    path = tmp_path / ("t.json.gz" if packed else "t.json")
    path.write_bytes(gzip.compress(data) if packed else data)
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["compare", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_real_trace_of_the_same_scenario_is_equal_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(capsys, str(SCENARIOS / "getpid.toml"), "--against", str(GETPID_61))
    assert code == 0 and not err
    lines = out.splitlines()
    assert "linux-image-6.1.0-57-cloud-amd64" in lines[0]
    assert lines[1].split()[:3] == ["0", "=", "entry_SYSCALL_64+0x0"]
    assert lines[-1].startswith("equal: 99 kernel instructions")


def test_another_scenario_differs_where_the_paths_part_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tf = str(SCENARIOS / "tf-single-step.toml")
    code, out, _ = cli(capsys, tf, "--against", str(GETPID_61), "--summary")
    assert code == 1
    assert out.splitlines()[1:] == [
        "differs:",
        "  instruction 66: real `cmpq   $0x2b,0xa0(%rsp)` vs engine `jmp 0xffffffff81a001c6`",
    ]


def test_the_row_that_parts_is_marked(tmp_path: Path) -> None:
    doc = copy.deepcopy(getpid_doc())
    doc["steps"][5]["asm"] = "push   %rbx"
    real = load_real_trace(write(tmp_path, doc))
    sc = on_the_real_machine(load_scenario(SCENARIOS / "getpid.toml"), real)
    report = against(real, run_scenario(sc))
    assert [r.index for r in report.rows if not r.same] == [5]
    assert not report.equal and "instruction 5" in report.differences[0]


def test_the_json_says_equal_and_lists_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, str(SCENARIOS / "getpid.toml"), "--against", str(GETPID_61), "--json"
    )
    doc = json.loads(out)
    assert code == 0 and doc["equal"] is True and len(doc["rows"]) == 99
    assert doc["rows"][0] == {
        "index": 0, "real": "swapgs", "real_at": "entry_SYSCALL_64+0x0", "engine": "swapgs",
        "same": True,
    }  # fmt: skip


def test_the_engine_runs_on_the_traces_machine() -> None:
    real = load_real_trace(FIXTURES / "generic" / "v6.1_tf-single-step.json.gz")
    sc = on_the_real_machine(load_scenario(SCENARIOS / "tf-single-step.toml"), real)
    assert (sc.kernel, sc.machine.flavour, sc.machine.pcid, sc.pid) == ("v6.1", "generic", False, 1)
    sky = load_real_trace(FIXTURES / "cloud_Skylake-Client" / "v6.12_getpid.json.gz")
    sc = on_the_real_machine(load_scenario(SCENARIOS / "getpid.toml"), sky)
    assert (sc.kernel, sc.machine.cpu_model) == ("v6.12", "skylake-client")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["a.toml", "b.toml"], "--against takes one scenario"),
        (["a.toml", "--kernel", "v6.1"], "--against takes one scenario"),
    ],
)
def test_against_with_other_options_is_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    code, out, err = cli(capsys, *args, "--against", str(GETPID_61))
    assert code == 2 and not out and said in err and err.count("\n") == 1


def _bad(tmp_path: Path) -> list[tuple[bytes | object, str]]:
    good = getpid_doc()

    def changed(path: tuple, value: object) -> dict:
        doc = copy.deepcopy(good)
        node = doc
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return doc

    return [
        (b"\x1f\x8b\x08\x00garbage", "not a gzip file"),
        (gzip.compress(b"\0" * (MAX_JSON_BYTES + 10)), "MiB unpacked"),
        (b"{", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        ([], "expected a JSON object"),
        (changed(("kernel",), "v9"), "kernel: expected one of"),
        (changed(("kernel",), KeyError), "kernel: expected a string"),
        (changed(("exit",), "sideways"), "exit: expected one of"),
        (changed(("pid",), True), "pid: expected a pid"),
        (changed(("pid",), 2**70), "pid: expected a pid"),
        (changed(("steps",), {}), "steps: expected a list"),
        (changed(("steps",), []), "steps: expected a list"),
        (changed(("steps",), [{}] * 100_001), "steps: expected a list"),
        (changed(("steps", 3), 7), "steps[3]: expected a table"),
        (changed(("steps", 3, "asm"), "x" * 201), "steps[3].asm: expected a string"),
        (changed(("steps", 3, "bytes"), "zz"), "steps[3].bytes: not of the form"),
        (changed(("steps", 3, "asm"), "0\n0"), "steps[3].asm: a control character"),
        (changed(("steps", 3, "sym"), "x\x1b[31m"), "steps[3].sym: a control character"),
        (changed(("steps", 3, "regs", "rax"), "0x" + "f" * 17), "steps[3].regs.rax"),
        (changed(("steps", 3, "regs", "rax"), 5), "steps[3].regs.rax"),
        (changed(("steps", 3, "regs"), KeyError), "steps[3].regs"),
        (changed(("pt_regs", "elsewhere"), {}), "pt_regs: expected a table with"),
        (changed(("pt_regs", "at call do_syscall_64", "ax"), "-1"), "pt_regs.at call"),
    ]


def test_a_bad_trace_file_is_one_line_naming_what_is_wrong(tmp_path: Path) -> None:
    for data, said in _bad(tmp_path):
        path = tmp_path / "bad.json.gz"
        path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
        with pytest.raises(RealTraceError) as err:
            load_real_trace(path)
        text = str(err.value)
        assert said in text and "\n" not in text, (said, text)


def test_a_missing_or_huge_file_is_refused_before_reading_it_all(tmp_path: Path) -> None:
    with pytest.raises(RealTraceError, match="cannot read it"):
        load_real_trace(tmp_path / "none.json.gz")
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate((8 << 20) + 1)  # sparse: nothing is written
    with pytest.raises(RealTraceError, match="larger than 8 MiB"):
        load_real_trace(huge)


def test_a_bad_file_on_the_command_line_exits_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad\x1b[31m.json"
    bad.write_bytes(b"{")
    code, out, err = cli(capsys, str(SCENARIOS / "getpid.toml"), "--against", str(bad))
    assert code == 2 and not out and err.count("\n") == 1 and "\x1b" not in err


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=30),
    st.sampled_from(["0x0", "0x33", "0xffffffffffffffff", "iretq", "v6.1", "none"]),
)  # fmt: skip
#: values that pass the checks, so that the differ itself meets odd traces
_hex = st.integers(0, 2**64 - 1).map(hex)
_asm = st.one_of(
    st.sampled_from(["", "iretq", "sysretq", "call   0xffffffff81000000", "push   %rax",
                     "mov    %gs:0x6014,%rsp", "jmp    0x1"]),
    st.text(max_size=40),
)  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_mutated_real_trace_is_a_report_or_one_line_error(data: st.DataObject) -> None:
    """Any change to a real trace's values, keys or lengths ends in a report or in
    RealTraceError, never in another exception."""
    doc = copy.deepcopy(getpid_doc())
    steps = doc["steps"]
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.sampled_from(["top", "asm", "regs", "pt_regs", "cut", "leaf"]))
        step = data.draw(st.sampled_from(steps)) if steps else {}
        if where == "top":
            doc[data.draw(st.sampled_from(sorted(doc)))] = data.draw(_leaf)
        elif where == "cut":
            del steps[data.draw(st.integers(0, len(steps))) :]
        elif where == "asm" and step:
            step["asm"] = data.draw(_asm)
        elif where == "regs" and step and isinstance(step.get("regs"), dict) and step["regs"]:
            # (a "leaf" draw may already have put a leaf where the registers were)
            step["regs"][data.draw(st.sampled_from(sorted(step["regs"])))] = data.draw(_hex)
        elif where == "pt_regs" and isinstance(doc["pt_regs"], dict) and doc["pt_regs"]:
            # (a "top" draw may already have put a leaf where the pt_regs table was)
            slots = doc["pt_regs"][data.draw(st.sampled_from(sorted(doc["pt_regs"])))]
            if isinstance(slots, dict) and slots:
                slots[data.draw(st.sampled_from(sorted(slots)))] = data.draw(_hex)
        elif step:
            step[data.draw(st.sampled_from(sorted(step)))] = data.draw(_leaf)
    try:
        real = load_real_trace(write_tmp(doc))
    except RealTraceError as exc:
        assert "\n" not in str(exc)
        return
    sc = on_the_real_machine(load_scenario(SCENARIOS / "getpid.toml"), real)
    report = against(real, trace_for(sc.kernel, sc.machine.cpu_model, sc.machine.flavour, sc.pid))
    assert all("\n" not in d for d in report.differences)
    engine = kernel_steps(trace_for(sc.kernel, sc.machine.cpu_model, sc.machine.flavour, sc.pid))
    assert len(report.rows) == max(len(engine), sum(bool(x["asm"]) for x in real["steps"]))


_TMP: list[Path] = []


def write_tmp(doc: object) -> Path:
    import tempfile

    if not _TMP:
        _TMP.append(Path(tempfile.mkdtemp(prefix="against-")))
    return write(_TMP[0], doc)


@cache
def trace_for(kernel: str, model: str, flavour: str, pid: int):  # type: ignore[no-untyped-def]
    real = {"kernel": kernel, "pid": pid, "package": f"-{flavour}-" if flavour == "cloud" else "x",
            "cpu": "Skylake-Client" if model == "skylake-client" else "max"}  # fmt: skip
    return run_scenario(on_the_real_machine(load_scenario(SCENARIOS / "getpid.toml"), real))
