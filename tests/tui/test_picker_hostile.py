"""A folder of hostile files in the picker: every file a row, none can end the app.

The picker once parsed titles itself (tomllib on the first 64 KiB), so a file nested
deep enough for RecursionError or holding a 5,000-digit integer (ValueError) ended the
app with a traceback, and names, descriptions and file names reached the terminal raw.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import OptionList

from engine.errors import unsafe
from tests.tui.helpers import make_app, run_async
from tui.screens.picker import Entry, ScenarioPicker

HOSTILE: dict[str, str | bytes] = {
    "deep.toml": 'name = "d"\nx = ' + "[" * 3000 + "]" * 3000 + "\n",
    "deep-table.toml": 'name = "d"\nx = ' + "{a=" * 3000 + "1" + "}" * 3000 + "\n",
    "digits.toml": 'name = "n"\nstep_cap = ' + "9" * 5000 + "\n",
    "dotted.toml": 'name = "k"\n' + ".".join(["a"] * 20000) + " = 1\n",
    "not-utf8.toml": b'name = "\xff"\n',
    "huge.toml": 'name = "h"\n#' + "x" * (1 << 20) + "\n",
    "title.toml": 'name = "\\u001b]2;owned\\u0007\\u001bc\\u009b2J\\u202eabc"\n'
    'description = "\\u001b(0\\u0007 \\u2066x\\u2069"\n',
    "\x1b[2J\x9b31m\u202ename.toml": 'name = ""\n',
    "日本語.toml": 'name = "システムコール"\ndescription = "説明"\n',
    "broken.toml": "name = \n",
}


def folder(tmp_path: Path) -> Path:
    for name, body in HOSTILE.items():
        path = tmp_path / name
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8")
    os.mkfifo(tmp_path / "fifo.toml")  # not a regular file: not listed, never opened
    os.symlink("/dev/zero", tmp_path / "zero.toml")
    (tmp_path / "dir.toml").mkdir()
    return tmp_path


def test_every_hostile_file_is_an_entry_with_its_reason(tmp_path: Path) -> None:
    entries = {p.name: Entry.read(p) for p in folder(tmp_path).glob("*.toml") if p.is_file()}
    assert set(entries) == set(HOSTILE)
    assert "nested too deep" in entries["deep.toml"].description
    assert "nested too deep" in entries["deep-table.toml"].description
    assert "4300 digits" in entries["digits.toml"].description
    assert "more than 16 parts" in entries["dotted.toml"].description
    assert "not UTF-8" in entries["not-utf8.toml"].description
    assert "at most 1 MiB" in entries["huge.toml"].description
    assert entries["title.toml"].title == "\\x1b]2;owned\\x07\\x1bc\\x9b2J\\u202eabc"
    assert entries["title.toml"].description == "\\x1b(0\\x07 \\u2066x\\u2069"
    assert entries["日本語.toml"].title == "システムコール"  # valid text unchanged
    assert entries["日本語.toml"].description == "説明"
    for entry in entries.values():
        assert not any(unsafe(ch) for ch in entry.title + entry.description)
        if not entry.title:
            assert entry.note or entry.path.name.startswith("\x1b")


@run_async
async def test_the_picker_lists_a_hostile_folder_and_the_app_lives(tmp_path: Path) -> None:
    app = make_app(scenario_dirs=(folder(tmp_path),))
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.press("o")
        await pilot.pause()
        picker = app.screen
        assert isinstance(picker, ScenarioPicker)
        assert app.is_running
        assert {p.name for p in picker._paths.values()} == set(HOSTILE)
        options = picker.query_one(OptionList)
        shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        text = "\n".join(shown)
        assert not any(unsafe(ch) for ch in text.replace("\n", "")), repr(text)
        assert "\\x1b[2J\\x9b31m\\u202ename.toml" in text  # the file name, escaped
        assert "システムコール" in text
        # each broken file's row says why (cut to the dialog's width)
        assert "deep.toml\n    (cannot be used) line 2: not valid TOML: arrays" in text
        assert "digits.toml\n    (cannot be used) not valid TOML: Exceeds the limit" in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
