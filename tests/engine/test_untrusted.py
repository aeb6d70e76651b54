"""Untrusted input at the engine's edges: Keystone in a child, files read safely, messages."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from engine import ScenarioError, load_scenario, parse_scenario
from engine.asm import TOO_LARGE, AssemblerFailed, assemble_untrusted
from engine.errors import escape
from engine.scenario.model import MAX_FILE_SIZE, MAX_STEP_CAP
from engine.scenario.reader import read_scenario_text


def test_untrusted_assembly_returns_bytes_and_keystone_errors() -> None:
    ok, bad = assemble_untrusted(["mov $0x27, %eax\nsyscall", "foo %rax"], 0x401000)
    assert ok == bytes.fromhex("b8270000000f05")
    assert isinstance(bad, str) and "KS_ERR" in bad


def test_a_keystone_hang_is_stopped() -> None:
    # keystone#551: "-1" loops forever in Keystone's statement parser.
    with pytest.raises(AssemblerFailed, match="did not finish"):
        assemble_untrusted(["-1"], 0x401000)


def test_a_keystone_crash_does_not_take_the_process() -> None:
    # keystone#288: ".text" segfaults.
    with pytest.raises(AssemblerFailed, match="crashed"):
        assemble_untrusted([".text"], 0x401000)


def test_the_child_opens_no_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"TOPSECRT")
    (result,) = assemble_untrusted([f'.incbin "{secret}"'], 0x401000)
    assert result == b""  # Keystone could not open it: no file descriptors left


def test_the_size_cap() -> None:
    (result,) = assemble_untrusted([".space 0x20000"], 0x401000)
    assert result == TOO_LARGE


def test_results_are_cached_by_text() -> None:
    with pytest.raises(AssemblerFailed):
        assemble_untrusted(["~1"], 0x401000)
    pid = os.getpid()
    with pytest.raises(AssemblerFailed):  # the cached answer: no second 2 s wait
        assemble_untrusted(["~1"], 0x401000)
    assert os.getpid() == pid


def test_untrusted_assembly_from_worker_threads() -> None:
    results: list[bytes | str] = []

    def work(n: int) -> None:
        results.append(assemble_untrusted([f"mov ${n:#x}, %eax"], 0x401000)[0])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(200, 206)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(bytes([0xB8, n, 0, 0, 0]) for n in range(200, 206))


# -- reading files ------------------------------------------------------------------------


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError, match="FIFO"):
        load_scenario(fifo)


def test_a_device_is_refused_even_through_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "zero.toml"
    link.symlink_to("/dev/zero")
    with pytest.raises(ScenarioError, match="character device"):
        load_scenario(link)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="directory"):
        load_scenario(tmp_path)


def test_a_large_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    with big.open("wb") as f:
        f.truncate(MAX_FILE_SIZE + 1)  # sparse: the size alone must refuse it
    with pytest.raises(ScenarioError, match="at most 1 MiB"):
        read_scenario_text(big)


def test_not_utf8_says_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ScenarioError, match="not UTF-8 text"):
        load_scenario(bad)


# -- messages -----------------------------------------------------------------------------


def test_escape_shows_control_characters() -> None:
    assert escape("a\nb\x1b[2J\x07\x9b\u202e") == "a\\nb\\x1b[2J\\x07\\x9b\\u202e"
    assert escape("plain [markup] é") == "plain [markup] é"


def error_of(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    return info.value


def test_the_line_is_the_key_named_not_a_key_of_the_same_name() -> None:
    err = error_of('name = "x"\n[user]\nrip = 0x401000\n\n[sigframe]\nrip = "x"\n')
    assert (err.key, err.line) == ("sigframe.rip", 6)


def test_a_dotted_key_has_its_line() -> None:
    err = error_of('name = "x"\n\nsigframe.rip = "x"\n')
    assert (err.key, err.line) == ("sigframe.rip", 3)


def test_a_key_inside_a_multiline_string_is_not_a_key() -> None:
    err = error_of('name = "x"\ndescription = """\nrip = 1\n"""\n[sigframe]\nrip = "x"\n')
    assert err.line == 6


def test_the_nth_memory_table() -> None:
    err = error_of('name = "x"\n[[memory]]\naddress = 0x1000\n[[memory]]\naddress = "x"\n')
    assert (err.key, err.line) == ("memory[1].address", 5)


def test_types_are_named_in_toml_words() -> None:
    assert "got a date" in str(error_of('name = "x"\n[user]\nrax = 1979-05-27\n'))
    assert "got a table" in str(error_of('name = "x"\n[user]\nrax = { a = 1 }\n'))
    assert "NoneType" not in str(error_of('name = "x"\n[[memory]]\nsize = 0x1000\n'))


def test_step_cap_maximum() -> None:
    assert parse_scenario(f'name = "x"\nstep_cap = {MAX_STEP_CAP}\n').step_cap == MAX_STEP_CAP
    assert error_of(f'name = "x"\nstep_cap = {MAX_STEP_CAP + 1}\n').key == "step_cap"


def test_errors_are_one_escaped_line() -> None:
    text = str(error_of('name = "x"\n"\\u001b]0;x\\u0007\\n" = 1\n'))
    assert "\n" not in text and "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;x\\x07\\n" in text
