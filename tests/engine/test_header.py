"""The renditions' opening paragraph (the project's words, not the kernel's) in Japanese:
over the same lines, wrapped to the English width by the line-breaking rules."""

from __future__ import annotations

import unicodedata

import pytest

from engine import load_scenario, run_scenario
from engine.compare.diff import variant
from engine.i18n import catalogue
from engine.trace import Trace
from engine.views.header import PREFIX, line_of, paragraph
from tests.conftest import SCENARIOS


def _cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _renditions() -> list[Trace]:
    sc = load_scenario(SCENARIOS / "getpid.toml")
    traces = [run_scenario(variant(sc, kernel=k)) for k in ("v5.8.13", "v6.1", "v6.12")]
    return [*traces, run_scenario(load_scenario(SCENARIOS / "fred-getpid.toml"))]


@pytest.mark.parametrize("trace", _renditions(), ids=["v5.8.13", "v6.1", "v6.12", "fred"])
def test_each_renditions_opening_paragraph_is_shown_in_japanese_over_its_own_lines(
    trace: Trace,
) -> None:
    p = paragraph(trace.source)
    assert p is not None and p.text.startswith("arch/x86/entry/entry_64")
    assert "Rendered for syscall-tui" in p.text
    translation = catalogue("ja").gettext(p.text)
    assert translation != p.text  # every rendition's paragraph has its translation
    lines = [line_of(p, n, "ja") for n in range(p.first, p.first + p.count)]
    assert all(line is not None and line.startswith(PREFIX.rstrip()) for line in lines)
    shown = [line[len(PREFIX) :] if line else "" for line in lines]
    # nothing lost or added: the lines read as the translation
    assert "".join(shown).replace(" ", "") == translation.replace(" ", "")
    # within the English width, but for the last line, which takes what does not fit
    assert all(_cells(PREFIX + s) <= p.width for s in shown[:-1])
    # kinsoku: no closing punctuation first, no opening bracket last
    for s in shown[1:]:
        assert not s or s[0] not in "、。）」：", shown
    for s in shown[:-1]:
        assert not s or s[-1] not in "（「", shown
    # the lines around it are the kernel's, untouched; English is the file as written
    assert line_of(p, p.first - 1, "ja") is None and line_of(p, p.first + p.count, "ja") is None
    assert line_of(p, p.first, "en") is None
