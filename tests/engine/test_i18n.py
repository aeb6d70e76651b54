"""The Japanese catalogue against the source tree, and the translation seam (engine.i18n).

The msgids are extracted live from the tree (scripts/i18n.py: Babel over engine/ and
tui/, plus the ``///`` notes of engine/kernel/*.S), so a new or reworded English string
fails here until ja.po translates it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import string
from functools import cache
from types import ModuleType
from typing import Any

import pytest

from engine import i18n
from engine.checks import describe
from engine.i18n import Joined, Msg, joined, language_from_env, msg, tr
from engine.kernel.image import compat_text, source_text
from engine.trace import Trace
from tests.conftest import ROOT, SCENARIOS, trace_of


@cache
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("i18n_tool", ROOT / "scripts" / "i18n.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def ja_catalogue() -> Any:
    return tool().read("ja")


@cache
def msgids_and_translations() -> tuple[set[str], dict[str, str]]:
    """The source tree's msgids (a scan of every module) and ja's translations, once."""
    known = {m.id: m.string for m in ja_catalogue() if m.id and not m.fuzzy}
    return set(tool().msgids()), known


def fields(text: str) -> list[str]:
    """The str.format fields of *text*, with their format specs."""
    return sorted(f"{name}:{spec}" for _, name, spec, _ in string.Formatter().parse(text) if name)


def test_every_message_of_the_source_tree_has_a_japanese_translation() -> None:
    missing = tool().missing("ja")
    assert not missing, "untranslated (or fuzzy) in ja.po — run scripts/i18n.py update:\n" + (
        "\n".join(missing)
    )


def test_no_message_is_written_inside_an_f_string() -> None:
    """Babel's extractor reads an f-string as one token (Python < 3.12), so a literal
    message inside one is never extracted and the missing-translation test cannot see
    it: the listing's headings once stayed English under --lang ja that way."""
    import ast

    keywords = {"_", "N_", "gettext", "pgettext", "msg"}
    found = []
    for folder in ("engine", "tui"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.JoinedStr):
                    continue
                for call in ast.walk(node):
                    if (
                        isinstance(call, ast.Call)
                        and isinstance(call.func, ast.Name)
                        and call.func.id in keywords
                        and any(
                            isinstance(a, ast.Constant) and isinstance(a.value, str)
                            for a in call.args
                        )
                    ):
                        found.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert not found, found


def test_the_extraction_finds_all_kinds_of_source() -> None:
    ids = tool().msgids()
    assert len(ids) > 200
    assert "swapgs: GS_BASE ⇄ KERNEL_GS_BASE" in ids  # N_() in the engine
    assert "RSP {rsp:#x}: now on the {stack}" in ids  # msg() in the engine
    assert "Execute one instruction" in ids  # a binding's tooltip
    assert any(i.startswith("SWAPGS exchanges MSR_GS_BASE") for i in ids)  # a /// note


def test_translations_keep_every_placeholder_and_its_format() -> None:
    bad = [
        (m.id, m.string)
        for m in ja_catalogue()
        if m.id and m.string and fields(m.id) != fields(m.string)
    ]
    assert not bad


def test_translations_are_japanese_and_keep_the_identifiers() -> None:
    """Each translation is written in Japanese, unless it is nothing but identifiers and
    values; every register name and kernel symbol of the English stays as it is."""
    identifier = re.compile(
        r"\b(?:pt_regs|swapgs|SYSRET|SYSRETQ|IRETQ?|CR3|RSP|RCX|R11|RFLAGS|KPTI|PCID|"
        r"__USER_CS|__USER_DS|do_syscall_64|swapgs_restore_regs_and_return_to_usermode)\b"
    )
    for m in ja_catalogue():
        if not m.id:
            continue
        prose = identifier.sub(" ", re.sub(r"\{[^}]*\}|`[^`]*`|\w*_\w*", " ", m.id))
        english_words = re.sub(r"[^A-Za-z]+", " ", prose).split()
        if any(len(w) > 3 and w.islower() for w in english_words):
            assert any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in m.string), (
                m.id
            )
        for name in set(identifier.findall(m.id)):
            assert name in m.string, (m.id, name)


def test_the_seed_listings_terms_are_used() -> None:
    """The register of a Japanese kernel engineer: ユーザ (no long mark), スタック,
    ページテーブル, 割り込み, ユーザ空間, not a translation of the identifiers."""
    text = "\n".join(m.string for m in ja_catalogue() if m.id)
    for term in ("スタック", "ページテーブル", "割り込み", "ユーザ空間", "レジスタ"):
        assert term in text
    assert "ユーザー" not in text
    assert "スワップ" not in text  # swapgs is swapgs


def test_note_extraction_matches_the_notes_the_kernel_image_shows() -> None:
    shown = {line.note for line in trace_of("getpid.toml").source if line.note}
    listed = source_text() + "\n" + compat_text("v5.8.13")  # entry_64_compat.S follows
    extracted = {note for _, note in tool().note_lines(listed)}
    assert shown == extracted


def test_every_kernel_rendition_is_extracted() -> None:
    ids = tool().msgids()
    for path in sorted((ROOT / "engine" / "kernel").glob("*.S")):
        for _, note in tool().note_lines(path.read_text()):
            assert note in ids, (path.name, note)


# -- the seam -------------------------------------------------------------------------


def test_msg_is_the_english_sentence() -> None:
    m = msg("RSP {rsp:#x}: now on the {stack}", rsp=0x1000, stack="user stack")
    assert m == "RSP 0x1000: now on the user stack"
    assert isinstance(m, str)
    assert json.dumps({"t": m}) == '{"t": "RSP 0x1000: now on the user stack"}'
    assert hash(m) == hash("RSP 0x1000: now on the user stack")
    # Through the store's layout (engine.codec), a message stays one, template and all.
    from engine.codec import TEXT, Codec, Encoder

    def stored(text: str) -> str:
        enc = Encoder()
        TEXT.encode(enc, text)
        back: str = Codec().decode(json.loads(json.dumps(enc.pool)), TEXT)
        return back

    again = stored(m)
    assert isinstance(again, Msg) and again == m and again.template == m.template
    j = joined("; ", [m, "pass"])
    back = stored(j)
    assert isinstance(back, Joined) and back.parts == j.parts
    assert isinstance(back.parts[0], Msg)


def test_tr_formats_the_translated_template_and_translates_values() -> None:
    m = msg("RSP {rsp:#x}: now on the {stack}", rsp=0x1000, stack="user stack")
    assert tr(m, "ja") == "RSP 0x1000: ユーザスタックに切り替わった"
    assert tr(m, "en") == m
    assert tr(Joined("; ", [m, "pass"]), "ja") == "RSP 0x1000: ユーザスタックに切り替わった; 通過"
    assert tr("not a message", "ja") == "not a message"
    i18n.set_language("ja")
    assert i18n._("pass") == "通過" and tr(m) == tr(m, "ja")


def test_a_translation_with_broken_placeholders_falls_back_to_english(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken(i18n.gettext.NullTranslations):
        def gettext(self, message: str) -> str:
            return "{nope}"

    monkeypatch.setitem(i18n._catalogues, "ja", Broken())
    assert tr(msg("step cap of {cap} reached", cap=3), "ja") == "step cap of 3 reached"


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({"LANG": "ja_JP.UTF-8"}, "ja"),
        ({"LC_ALL": "ja_JP.UTF-8", "LANG": "en_US.UTF-8"}, "ja"),
        ({"LC_MESSAGES": "ja_JP.utf8"}, "ja"),
        ({"LANG": "ja"}, "ja"),
        ({"LANGUAGE": "en_GB:ja", "LANG": "ja_JP.UTF-8"}, "en"),
        ({"LC_ALL": "C", "LANG": "ja_JP.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_language_from_the_locale(env: dict[str, str], lang: str) -> None:
    assert language_from_env(env) == lang


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        i18n.set_language("xx")


def test_the_po_compiles_with_babel() -> None:
    """What the build hook (hatch_build.py) puts in the wheel, and a checkout uses."""
    catalogue = i18n.gettext.GNUTranslations(io.BytesIO(i18n.compile_po(i18n.po_path("ja"))))
    assert catalogue.gettext("SYSRET checks") == "SYSRET チェック"


# -- what the engine produces at run time -------------------------------------------------


def untranslated(text: str, ids: set[str], known: dict[str, str]) -> list[str]:
    """Parts of an engine text that the catalogue cannot render in Japanese."""
    if isinstance(text, Joined):
        return [bad for part in text.parts for bad in untranslated(part, ids, known)]
    if isinstance(text, Msg):
        if text.template in ids:
            return [] if known.get(text.template) else [text.template]
        # Glue (a Msg whose template is not a message): its values are what is shown.
        return [
            bad
            for value in text.values.values()
            if isinstance(value, Msg | Joined)
            for bad in untranslated(value, ids, known)
        ]
    return [] if not text or known.get(text) else [text]


def engine_texts(trace: Trace) -> list[str]:
    texts: list[str] = [trace.stopped]
    for step in trace.steps:
        texts.extend(event.text for event in step.events)
        texts.extend(describe(check) for check in step.checks)
    texts.extend(line for line in trace.handler if isinstance(line, Msg | Joined))
    if trace.fault is not None:
        texts.append(trace.fault.describe())
    for root in trace.roots:
        texts.append(root.name)
        # Region names that are words (not symbols such as cpu_tss_rw) are messages.
        texts.extend(r.name for r in root.regions if " " in r.name and "_" not in r.name)
    return texts


@pytest.mark.parametrize("name", sorted(p.name for p in SCENARIOS.glob("*.toml")))
def test_every_engine_text_of_every_scenario_is_a_translated_message(name: str) -> None:
    """An f-string slipped into the engine would show English in a Japanese UI."""
    ids, known = msgids_and_translations()
    bad = [b for text in engine_texts(trace_of(name)) for b in untranslated(text, ids, known)]
    assert not bad


def test_gettext_style_calls_on_engine_texts_translate_them_too() -> None:
    """Code that calls _() on an event's text gets what tr() gives."""
    i18n.set_language("ja")
    m = msg("IRETQ to RIP {rip:#x}", rip=0x401000)
    assert i18n._(m) == tr(m) == "IRETQ で RIP 0x401000 へ"


@pytest.mark.parametrize(
    ("nr", "name"), [(0, "read"), (2, "open"), (3, "close"), (60, "exit"), (231, "exit_group")]
)
def test_a_system_calls_name_is_never_translated(nr: int, name: str) -> None:
    """ "exit", "read", "open" and "close" are msgids too (UI words); a system call's name
    in a message is a name and must come out as it is (exit(0), not 終了(0))."""
    from engine import parse_scenario, run_scenario

    t = run_scenario(
        parse_scenario(f'name = "n"\n[user]\ncode = "mov ${nr}, %eax; xor %edi, %edi; syscall"')
    )
    lines = [tr(line, "ja") for line in t.handler]
    assert any(
        line.startswith(f"{name}(0)" if nr in (60, 231) else f"{name}（nr {nr}）") for line in lines
    ), lines
    # The catalogue does translate the bare word: the name is kept by Literal, not by luck.
    assert tr(i18n.literal("exit"), "ja") == "exit" and tr("exit", "ja") != "exit"


def test_the_step_column_and_the_step_key_are_two_messages() -> None:
    """The column header is a number (ステップ), the key an action (進む): one English word,
    two msgids told apart by msgctxt."""
    from tui.cli import main

    i18n.set_language("ja")
    assert i18n.pgettext("column", "step") == "ステップ"
    assert i18n._("step") == "進む"
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        main(["trace", str(SCENARIOS / "getpid.toml"), "--lang", "ja"])
    header = out.getvalue().splitlines()[1]
    assert header.split()[0] == "ステップ" and "進む" not in out.getvalue()
    md = io.StringIO()
    with contextlib.redirect_stdout(md):
        main(["trace", str(SCENARIOS / "getpid.toml"), "--lang", "ja", "--format", "markdown"])
    assert "ステップ" in md.getvalue() and "進む" not in md.getvalue()


#: One Japanese word per term (japanese.md §2), and the words it replaced.
TERMS = {
    "欄": "スロット (slot)",
    "モデル化": "模擬 (modelled)",
    "出口": "復帰経路 (exit path)",
    "遅い": "低速な復帰経路 (slow exit)",
    "継続": "続行 (continue)",
    "戻り番地": "戻り先アドレス (return address)",
    "戻りアドレス": "戻り先アドレス (return address)",
    "スタックの先頭": "スタックの最上位 / RSP の位置 (top of stack: two meanings)",
    "リスティング": "ソースと実行の記録 (Listing)",
    "。経由:": "{target} 経由で (via)",
}
JAPANESE = "[ぁ-んァ-ヶ一-龥ー]"


def test_the_catalogue_uses_one_word_per_term_and_full_width_parentheses() -> None:
    bad = []
    for m in ja_catalogue():
        if not m.id or not isinstance(m.string, str):
            continue
        bad += [f"{old} → {new}: {m.string[:60]}" for old, new in TERMS.items() if old in m.string]
        # Parentheses inside Japanese text are full-width: 「SYSRET（高速経路）」.
        if re.search(rf"{JAPANESE} ?\(|\({JAPANESE}|{JAPANESE}\)", m.string):
            bad.append(f"half-width parenthesis: {m.string[:60]}")
    assert not bad, bad
