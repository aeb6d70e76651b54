"""One escaping function (engine.errors.escape) in every output: nothing a scenario file
or its program wrote reaches a terminal, a document or a browser as a control sequence.

Found raw before: the Markdown title and write() output (ESC c, ESC ( 0, BEL, U+009B),
``compare --json`` (U+009B: ``ensure_ascii=False``), the picker (tests/tui).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import parse_scenario, run_scenario
from engine.compare.diff import compare_traces
from engine.compare.render import comparison_json, summary_lines
from engine.errors import BIDI_CONTROLS, escape, json_safe, unsafe
from engine.trace import Trace
from tests.engine.fuzzing import toml_string
from tui import cli

CONTROLS = "\x00\x07\x08\x1b\x7f\x80\x9b\x9d\x9f\u2028\u2029" + "".join(sorted(BIDI_CONTROLS))
HOSTILE = "\x1bc\x1b(0\x07\x9b2J\x1b]2;title\x07\u202eabc\u2066"


def raw_controls(text: str, keep: str = "\n") -> list[str]:
    return [ch for ch in text if unsafe(ch) and ch not in keep]


def program(name: str, description: str, output: bytes) -> str:
    """A scenario named *name* whose program write()s *output* to fd 1, then exits."""
    padded = output + b"\0" * (-len(output) % 8)
    pushes = [
        f"movabs ${int.from_bytes(padded[i : i + 8], 'little'):#x}, %rax; push %rax"
        for i in range(len(padded) - 8, -8, -8)
    ]
    code = "; ".join(
        [*pushes, "mov %rsp, %rsi", f"mov ${len(output)}, %edx", "mov $1, %edi",
         "mov $1, %eax", "syscall"]
    )  # fmt: skip
    return (
        f"name = {toml_string(name)}\ndescription = {toml_string(description)}\n"
        f"[user]\ncode = {toml_string(code)}\n"
    )


def outputs(trace: Trace) -> dict[str, str]:
    """Everything `trace` (each format) and `compare` (JSON and summary) print for *trace*."""
    out = {}
    for fmt, writer in cli.TRACE_FORMATS.items():
        buffer = io.StringIO()
        writer(trace, buffer, "en")
        out[fmt] = buffer.getvalue()
    comparison = compare_traces(trace, trace)
    out["compare-json"] = json_safe(json.dumps(comparison_json(comparison), ensure_ascii=False))
    out["compare-summary"] = "\n".join(escape(line) for line in summary_lines(comparison))
    return out


# -- the function ------------------------------------------------------------------------


@pytest.mark.parametrize("ch", list(CONTROLS))
def test_every_control_is_a_visible_escape(ch: str) -> None:
    shown = escape(f"a{ch}b")
    assert not raw_controls(shown, keep="") and shown.startswith("a\\") and shown.endswith("b")


@pytest.mark.parametrize(
    "text", ["getpid: SYSRET の速い道", "é 🙂 [bold]x[/]", "a b\u3000c", "👩\u200d💻"]
)
def test_valid_text_is_unchanged(text: str) -> None:
    assert escape(text) == text


@given(st.text())
def test_no_escaped_text_holds_a_control(text: str) -> None:
    shown = escape(text)
    assert not raw_controls(shown, keep="")
    if not any(unsafe(ch) for ch in text):
        assert shown == text


@given(st.recursive(st.text(), lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids)))
def test_json_safe_is_the_same_data_with_nothing_raw(value: object) -> None:
    doc = json_safe(json.dumps(value, ensure_ascii=False, indent=1))
    assert not raw_controls(doc, keep="\n")
    assert json.loads(doc) == value


# -- every output ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_trace() -> Trace:
    return run_scenario(parse_scenario(program(HOSTILE, HOSTILE, HOSTILE.encode()), "h.toml"))


@pytest.mark.parametrize("output", ["table", "json", "markdown", "compare-json", "compare-summary"])
def test_each_output_escapes_name_description_and_write_output(
    hostile_trace: Trace, output: str
) -> None:
    text = outputs(hostile_trace)[output]
    assert not raw_controls(text), (output, sorted(set(raw_controls(text))))


def test_markdown_shows_the_name_and_output_escaped(hostile_trace: Trace) -> None:
    md = outputs(hostile_trace)["markdown"]
    # Markdown source: the escape's backslash is itself escaped, to render as \x1b
    assert md.startswith(r"# \\x1bc\\x1b(0\\x07\\x9b2J\\x1b\]2;title\\x07\\u202eabc\\u2066" "\n")
    assert r"`\x1bc\x1b(0\x07\x9b2J\x1b]2;title\x07\u202eabc\u2066`" in md  # the output


def test_compare_json_keeps_japanese_and_escapes_c1(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(program("速い道 \x9b2J", "", b"x"), encoding="utf-8")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = cli.main(["compare", str(path), "--kernel", "v6.1,v6.12", "--json"])
    assert status in (0, 1)
    assert "\x9b" not in buffer.getvalue() and "速い道 \\u009b2J" in buffer.getvalue()
    assert json.loads(buffer.getvalue())


def test_check_escapes_the_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "\x1b]2;x\x07\u202e.toml"
    path.write_text(program("n", "", b"y") + '[expect]\nexit = "sysret"\n', encoding="utf-8")
    assert cli.main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert not raw_controls(out) and "\\x1b]2;x\\x07\\u202e.toml" in out


TOML_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)  # no surrogates


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=TOML_TEXT, description=TOML_TEXT, output=st.binary(max_size=24))
def test_no_output_of_any_scenario_holds_a_raw_control(
    name: str, description: str, output: bytes
) -> None:
    trace = run_scenario(parse_scenario(program(name, description, output), "p.toml"))
    assert trace.output == output
    for kind, shown in outputs(trace).items():
        assert not raw_controls(shown), (kind, sorted(set(raw_controls(shown))))


def test_compare_summary_escapes_the_names(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(program("\x1b]2;x\x07 \u202e", "", b"x"), encoding="utf-8")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = cli.main(["compare", str(path), "--kernel", "v6.1,v6.12", "--summary"])
    assert status in (0, 1)
    assert not raw_controls(buffer.getvalue())
    assert "A  \\x1b]2;x\\x07 \\u202e · v6.1" in buffer.getvalue()
