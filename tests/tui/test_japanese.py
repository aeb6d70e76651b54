"""The debugger in Japanese: choosing the language, switching it live, and laying out
double-width text in every panel at 80x24 and 160x50."""

from __future__ import annotations

import itertools

import pytest
from rich.cells import cell_len
from textual.binding import Binding
from textual.content import Content
from textual.widgets import Tab

from engine.i18n import get_language, set_language
from tests.tui.helpers import has_event, make_app, position_after, run_async, scenario_trace
from tui import cli
from tui.app import SyscallTuiApp
from tui.screens.debugger import HELP_EXTRA, PANELS, DebuggerScreen
from tui.screens.help import HelpScreen, keys_markdown, legend_markdown
from tui.screens.timeline import Timeline
from tui.text import fit, pad, wrap
from tui.widgets.checks import VerdictBar
from tui.widgets.keybar import KeyBar
from tui.widgets.note import NotePanel
from tui.widgets.panel import LinePanel
from tui.widgets.status import StatusLine

WIDE = (160, 50)
NARROW = (80, 24)


def debugger(app: SyscallTuiApp) -> DebuggerScreen:
    screen = app.screen
    assert isinstance(screen, DebuggerScreen)
    return screen


def has_kana(text: str) -> bool:
    """Japanese script: kana or kanji."""
    return any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)


# -- wrapping in cells ----------------------------------------------------------------


def test_wrap_is_textwrap_for_english() -> None:
    import textwrap

    text = "SYSCALL saves the next RIP in RCX and RFLAGS in R11, then jumps to LSTAR at CPL 0."
    for width in (12, 20, 33, 80):
        assert wrap(text, width, "• ", "  ") == textwrap.wrap(
            text, width, initial_indent="• ", subsequent_indent="  "
        )


@pytest.mark.parametrize("width", [10, 17, 24, 31, 58])
def test_wrap_breaks_japanese_between_characters_within_the_width(width: int) -> None:
    text = (
        "SYSCALL は次の RIP を RCX に、RFLAGS を R11 に退避し、CPL 0 で LSTAR にジャンプする。"
        "（swapgs_restore_regs_and_return_to_usermode）"
    )
    lines = wrap(text, width, "• ", "  ")
    assert all(cell_len(line) <= width for line in lines)
    # Nothing lost but the spaces at the breaks.
    assert "".join(lines).replace(" ", "").replace("•", "") == text.replace(" ", "")
    # Kinsoku: no line starts with closing punctuation or ends with an opening bracket.
    assert all(line.strip() for line in lines)
    assert not any(line.strip()[0] in "、。）」" for line in lines[1:])
    assert not any(line.rstrip()[-1] in "（「" for line in lines)


def test_pad_and_fit_count_cells() -> None:
    assert pad("戻り番地", 10) == "戻り番地  "
    assert cell_len(fit("タスクのカーネルスタック", 9)) == 9
    assert fit("タスクのカーネルスタック", 9).endswith("…")


# -- choosing the language -------------------------------------------------------------


def test_cli_lang_flag_and_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen: list[str] = []

    def run_app(path: str | None) -> int:
        chosen.append(get_language())
        return 0

    monkeypatch.setattr("tui.launch.run_app", run_app)
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main(["--lang", "ja"]) == 0
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    assert cli.main([]) == 0
    assert cli.main(["--lang", "en"]) == 0
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert cli.main([]) == 0
    assert chosen == ["ja", "ja", "en", "en"]


def test_cli_refuses_an_unknown_language(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--lang", "fr"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "invalid choice" in err[0]


def test_trace_in_japanese(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.tui.helpers import SCENARIOS

    monkeypatch.setenv("COLUMNS", "400")  # no folding inside the table
    assert cli.main(["trace", str(SCENARIOS / "sigreturn-noncanonical.toml"), "--lang", "ja"]) == 0
    out = capsys.readouterr().out
    assert "非カノニカル" in out and "ページテーブルのルートを切り替え" in out


def test_broken_scenarios_are_reported_in_english(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    broken = tmp_path / "broken.toml"
    broken.write_text("[user]\ncode = 42\n", encoding="utf-8")
    assert cli.main(["trace", str(broken), "--lang", "ja"]) == 2
    err = capsys.readouterr().err
    assert not has_kana(err) and "broken.toml" in err


# -- the app in Japanese -------------------------------------------------------------


@run_async
async def test_everything_on_screen_is_japanese() -> None:
    trace = scenario_trace("getpid.toml")
    app = make_app(lang="ja")
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        screen.position = position_after(trace, has_event("handler"))
        await pilot.pause()
        status = app.query_one(StatusLine).render().plain
        assert "ステップ" in status and "復帰経路" in status
        note = app.query_one(NotePanel).plain
        assert has_kana(note) and "pt_regs" in note
        titles = [w.border_title for w in screen.query(LinePanel) if w.border_title]
        assert all(has_kana(str(t)) or str(t) in ("MSR",) for t in titles), titles
        footer_keys = [b.description for _, b, _, _ in screen.active_bindings.values()]
        assert "進む" in footer_keys and "終了" in footer_keys
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "1 命令を実行する" in keys_markdown(DebuggerScreen.BINDINGS, HELP_EXTRA)
        assert "画面の見方" in legend_markdown()


@run_async
async def test_switching_language_from_the_command_palette() -> None:
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = debugger(app)
        screen.position = 10
        await pilot.pause()
        assert "step 10/" in app.query_one(StatusLine).render().plain
        note_en = app.query_one(NotePanel).plain
        await pilot.press("ctrl+p", *"language")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert get_language() == "ja"
        assert "ステップ 10/" in app.query_one(StatusLine).render().plain
        assert has_kana(app.query_one(NotePanel).plain) and not has_kana(note_en)
        assert screen.position == 10  # the session stays where it was
        # Back to English, found by its own name.
        await pilot.press("ctrl+p", *"English")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert get_language() == "en"
        assert app.query_one(NotePanel).plain == note_en


# -- layout of double-width text -------------------------------------------------------

LAYOUT_SCENARIOS = (
    "getpid.toml",
    "sigreturn-noncanonical.toml",
    "cve-2012-0217-intel.toml",
    "v6.12-fallthrough-to-task-size-max.toml",
    "v6.1-tf-single-step.toml",
)


def overflowing(app: SyscallTuiApp, widths: dict[str, int]) -> list[str]:
    """Lines wider than the panel (or one-line widget) that shows them.

    Each panel in *widths* is built at its width there, shown or not: a hidden tab keeps
    its view up to date, so one refresh per position checks every tab's lines.
    """
    bad = []
    for panel in app.screen.query(LinePanel):
        width = widths.get(panel.id or "", 0)
        # The expansion lists instructions, which scroll sideways like the listing rather
        # than wrap (a crop there replaces half a wide character with a space).
        if not width or panel.id == "expansion":
            continue
        lines = panel.lines if panel.display and panel.size.width else panel.build(width)
        for line in lines:
            if line.cell_length > width:
                bad.append(f"{panel.id}: {line.plain!r} ({line.cell_length} > {width})")
    for widget in (app.query_one(StatusLine), app.query_one(VerdictBar)):
        width = widget.content_size.width
        if widget.display and width and widget.render().cell_length > width:
            bad.append(f"{widget.id}: {widget.render().plain!r}")
    return bad


def shown_widths(app: SyscallTuiApp) -> dict[str, int]:
    """The content width of every panel on screen now, by id."""
    return {
        panel.id: panel.scrollable_content_region.width
        for panel in app.screen.query(LinePanel)
        if panel.id and panel.display and panel.scrollable_content_region.width
    }


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "160x50"])
@pytest.mark.parametrize("name", LAYOUT_SCENARIOS)
def test_japanese_fits_every_panel(name: str, size: tuple[int, int]) -> None:
    """At every stop of the run, in every panel (each tab when narrow), no line is wider
    than its panel: nothing is cut, wide characters included."""

    @run_async
    async def check() -> None:
        trace = scenario_trace(name)
        app = make_app(name, lang="ja")
        async with app.run_test(size=size) as pilot:
            screen = debugger(app)
            positions = (0, *Timeline(trace).stops, len(trace.steps))
            # Each tab shown once, for its width; nothing is pinned to the memory and walk
            # panels, so their hint (the same at every position) is checked there.
            widths: dict[str, int] = {}
            bad: list[str] = []
            for panel in [p for p, _ in PANELS] if size == NARROW else ["code"]:
                screen.panel = panel
                await pilot.pause()
                shown = shown_widths(app)
                widths.update(shown)
                bad.extend(f"@0 {b}" for b in overflowing(app, shown))
            for pinned in ("memory", "walk"):
                widths.pop(pinned, None)
            for position in positions:
                screen.position = position
                await pilot.pause()
                bad.extend(f"@{position} {b}" for b in overflowing(app, widths))
            assert not bad, "\n".join(bad[:20])
            tabs = sum(cell_len(str(t.label)) + 2 for t in screen.query(Tab))
            assert tabs <= size[0]
            # The key bar keeps every key in view, with its Japanese word where it fits.
            bar = app.query_one(KeyBar)
            drawn = bar.render()
            assert drawn.cell_length <= bar.content_size.width
            assert "終了" in drawn.plain or size == NARROW

    check()


def test_language_is_reset_between_tests() -> None:
    assert get_language() == "en"
    set_language("ja")  # the autouse fixture puts English back


def test_every_binding_of_every_screen_is_a_translated_message() -> None:
    """Footer, help and palette show binding descriptions and tooltips translated: each
    one must be a msgid with a Japanese translation (a new screen's keys included)."""
    import importlib
    import pkgutil

    from textual.app import App
    from textual.binding import Binding
    from textual.dom import DOMNode

    import tui
    import tui.screens
    from engine.i18n import catalogue

    for info in [*pkgutil.iter_modules(tui.__path__, "tui."),
                 *pkgutil.iter_modules(tui.screens.__path__, "tui.screens.")]:  # fmt: skip
        if info.name not in ("tui.__main__", "tui.screenshots"):
            importlib.import_module(info.name)

    def subclasses(cls: type) -> list[type]:
        out: list[type] = [cls]
        sub: type
        for sub in cls.__subclasses__():
            out.extend(subclasses(sub))
        return out

    translated = catalogue("ja")._catalog  # type: ignore[attr-defined]
    bad = []
    for cls in subclasses(DOMNode):
        if not cls.__module__.startswith("tui.") or (issubclass(cls, App) and cls is App):
            continue
        for binding in cls.__dict__.get("BINDINGS", []):
            if not isinstance(binding, Binding):
                continue
            for text in (binding.description, binding.tooltip):
                if text and not translated.get(text):
                    bad.append(f"{cls.__module__}.{cls.__name__} {binding.key}: {text!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_80x24_key_bar_keeps_its_labels_in_both_languages(lang: str) -> None:
    """At 80 columns the English bar shows every essential key with its label; the
    Japanese one must too (the labels are short words: 最初へ, not a longer phrase)."""
    from engine import i18n
    from tui.screens.debugger import DebuggerScreen
    from tui.widgets.keybar import KeyBar, keys_of

    i18n.set_language(lang)
    try:
        bar = KeyBar(keys_of([b for b in DebuggerScreen.BINDINGS if isinstance(b, Binding)]))
        form = bar._layout(80)
        assert all(text for _key, _shown, text in form), form
        assert bar._width(form, bar._gap) <= 80
        if lang == "ja":
            assert [t for _k, _d, t in form][:2] == ["進む", "戻る"]
    finally:
        i18n.set_language("en")


@run_async
async def test_the_command_palette_placeholder_is_japanese() -> None:
    from textual.command import CommandInput

    app = make_app(lang="ja")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen.query_one(CommandInput).placeholder == "コマンドを検索…"


def test_the_listing_shows_the_renditions_opening_paragraph_in_the_ui_language() -> None:
    """Lines 3–7 of entry_64.S are the project's words: Japanese under ja, English again
    after a switch; the kernel's own lines and comments stay as written."""
    from tui.widgets.source import SourceListing

    @run_async
    async def check() -> None:
        app = make_app(lang="ja")
        async with app.run_test(size=WIDE) as pilot:
            listing = app.query_one(SourceListing)
            rows = listing._rows
            prose = [r for r in rows if r.prose is not None]
            assert [r.number for r in prose] == [3, 4, 5, 6, 7]
            shown = [SourceListing._row_text(r) for r in prose]
            assert all(has_kana(s) for s in shown) and "syscall-tui" in "".join(shown)
            kernel = [r for r in rows if r.prose is None and r.kind == "source"]
            assert all(SourceListing._row_text(r) == r.text.expandtabs(8) for r in kernel)
            debugger(app).set_language("en")
            await pilot.pause()
            assert [SourceListing._row_text(r) for r in prose] == [
                r.text.expandtabs(8) for r in prose
            ]

    check()


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "160x50"])
def test_the_help_breaks_japanese_as_the_panels_do(size: tuple[int, int]) -> None:
    """Textual's Markdown breaks only at spaces, which in Japanese sit around names and
    numbers: 「CR3 / に書き込むと」.  Each paragraph of the help is broken by tui.text.wrap
    at its width instead: no line starts with the particle after a name."""
    from textual.widgets._markdown import MarkdownParagraph, MarkdownTableCellContents

    @run_async
    async def check() -> None:
        app = make_app(lang="ja")
        async with app.run_test(size=size) as pilot:
            await pilot.press("question_mark")
            for _ in range(3):
                await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            paragraphs = list(app.screen.query(MarkdownParagraph))
            cells = list(app.screen.query(MarkdownTableCellContents))
            assert len(paragraphs) >= 8 and len(cells) >= 20
            originals = app.screen._cells
            for p in [*paragraphs, *cells]:
                width = p.content_region.width
                shown = [p.render_line(y).text.rstrip() for y in range(p.size.height)]
                while shown and not shown[-1]:
                    shown.pop()  # a cell is as tall as its row
                source: object = (
                    p._content if isinstance(p, MarkdownParagraph) else originals[p]  # type: ignore[index]
                )
                assert isinstance(source, Content)
                plain = " ".join(source.plain.split())
                assert "…" not in "".join(shown) or "…" in plain  # no cell cut short
                if has_kana(plain):
                    assert shown == wrap(plain, width), (shown, width)
                for a, b in itertools.pairwise(shown):
                    assert not (
                        a[-1:].isascii() and a[-1:].isalnum() and "\u3041" <= b[:1] <= "\u309f"
                    ), (a, b)

    check()


@pytest.mark.parametrize("width", range(8, 30))
def test_a_number_stays_with_cpl_ring_and_bit(width: int) -> None:
    """「CPL / 3 に降りる」「ring / 0 で #GP」: the space before a number after CPL, ring or
    ビット is not a break point (the pair moves to the next line whole when it fits)."""
    text = "ユーザモードの CPL 3 に降りる。ring 0 で #GP になる。ビット 63 を立てる。bit 12"
    lines = wrap(text, width)
    for a, b in itertools.pairwise(lines):
        assert not (a.endswith(("CPL", "ring", "ビット", "bit")) and b[:1].isdigit()), (a, b)
    assert all(cell_len(line) <= width for line in lines)
