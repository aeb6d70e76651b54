"""Bounded work on any scenario file: each case once took seconds, gigabytes or forever.

Every case is timed (SIGALRM, see test_fuzz.time_limit): a regression is a failure, not
a suite that never ends.  bench/bounds.py measures the same cases with memory limits.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest

from engine import ScenarioError, load_scenario, parse_scenario, run_scenario
from engine.scenario.prescan import MAX_ITEMS, MAX_KEY_PARTS, MAX_NESTING
from engine.views.json import trace_json
from tests.engine.test_fuzz import time_limit
from tui import cli


def error_of(text: str, seconds: float = 2.0) -> str:
    start = time.perf_counter()
    with time_limit(seconds * 3), pytest.raises(ScenarioError) as info:
        parse_scenario(text, "b.toml")
    assert time.perf_counter() - start < seconds, "over the time bound"
    line = str(info.value)
    assert "\n" not in line
    return line


@pytest.mark.parametrize(
    "key", ['"a["', '"a\u2028["', '"a\\n["', '"a.b["', '"["', '"]"', '"a[0]"', '"x[1]["']
)
def test_an_unknown_key_the_line_finder_cannot_place_still_ends(key: str) -> None:
    # The line finder cut the key's tail with a pattern that matched nothing after `[`.
    line = error_of(f'name = "x"\nuser = {{ {key} = 1 }}\n')
    assert "b.toml:2: user." in line and "unknown key" in line


def test_line_numbers_count_only_toml_newlines() -> None:
    # U+2028 inside a string is no line break for TOML (str.splitlines made it one).
    line = error_of('name = "a\u2028b"\n[user]\nrax = "x"\n')
    assert line.startswith("b.toml:3: user.rax")


@pytest.mark.parametrize(
    "text",
    [
        ".".join(["a"] * 20000) + " = 1\n",
        ".".join(['"a"'] * 20000) + " = 1\n",
        ".".join(["'a'"] * 20000) + " = 1\n",
        "[" + ".".join(["a"] * 30000) + "]\n",
        "[[" + " . ".join(["a"] * 30000) + "]]\n",
        "x = { " + ".".join(["a"] * 20000) + " = 1 }\n",
    ],
    ids=["bare", "basic", "literal", "header", "array-header", "inline"],
)
def test_a_key_of_many_parts_is_refused_before_parsing(text: str) -> None:
    # tomllib's work grows with the square of the parts (9 s and 1.6 GB for 20,000).
    line = error_of('name = "x"\n' + text, 0.5)
    assert f"b.toml:2: a dotted key or table header of more than {MAX_KEY_PARTS} parts" in line


def test_keys_of_the_allowed_parts_and_dots_in_strings_pass() -> None:
    parts = ".".join(["a"] * MAX_KEY_PARTS)
    text = f'name = "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r"\n{parts} = 1\nx = 1.5\n'
    assert "unknown key" in error_of(text)  # got past the prescan to the parser's own check


@pytest.mark.parametrize("opener", ["[", "{a="])
def test_deep_nesting_is_refused_before_parsing(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = 'name = "x"\nx = ' + opener * 5000 + "1" + closer * 5000 + "\n"
    assert f"nested too deep (more than {MAX_NESTING})" in error_of(text, 0.5)


def test_brackets_in_strings_and_comments_do_not_count() -> None:
    text = 'name = "' + "[" * 100 + '"  # ' + "{" * 100 + "\n[user]\nrax = 'x'\n"
    assert "user.rax: expected an integer" in error_of(text)


def test_a_file_of_very_many_keys_is_refused_in_time() -> None:
    # 90,000 keys (1 MiB) took tomllib over a second, and the line finder as long again.
    text = 'name = "x"\n' + "".join(f"k{i} = {i}\n" for i in range(90000))
    assert f"keys, tables, values and comments; at most {MAX_ITEMS}" in error_of(text, 1.0)


def test_a_decimal_of_thousands_of_digits_in_user_code_is_one_line() -> None:
    # int() refuses more than 4,300 digits: that was "internal error: ValueError".
    text = 'name = "x"\n[user]\ncode = "mov $' + "9" * 5000 + ', %eax; syscall"\n'
    line = error_of(text)
    # the one line quotes the statement it is about, as every user-code error does
    assert line.startswith("b.toml:3: user.code: 'mov $999")
    assert "a number of 5000 characters; at most 40 digits" in line


def test_a_non_ascii_character_in_user_code_is_named() -> None:
    # Keystone's child died on it: "the assembler failed (it exited without an answer)".
    line = error_of('name = "x"\n[user]\ncode = "mov $1, %eax；syscall"\n')
    assert line.startswith("b.toml:3: user.code: 'mov $1, %eax；syscall'")
    assert "character '；' (U+FF1B) is not ASCII" in line


def test_a_comment_in_user_code_may_be_japanese() -> None:
    sc = parse_scenario('name = "x"\n[user]\ncode = "mov $39, %eax  # getpid の番号\\nsyscall"\n')
    assert sc.code is not None and sc.code.code


def test_trace_json_is_written_in_pieces_and_is_the_trace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 100,000 steps were held as dicts and then as one string: 800 MB.  Now each step is
    # encoded as it is written, and the output reaches stdout in 64 KiB pieces.
    path = tmp_path / "loop.toml"
    path.write_text('name = "loop"\nstep_cap = 3000\n[user]\ncode = "1: nop; jmp 1b"\n')
    pieces: list[int] = []

    class Target(io.StringIO):
        def write(self, text: str) -> int:
            pieces.append(len(text))
            return super().write(text)

    target = Target()
    monkeypatch.setattr(sys, "stdout", target)
    assert cli.cmd_trace(str(path), "json") == 0
    doc = json.loads(target.getvalue())
    assert doc == trace_json(run_scenario(load_scenario(path)))
    assert len(pieces) > 10 and max(pieces) < (1 << 16) + 4096
