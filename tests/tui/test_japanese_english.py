"""Under --lang ja no English is left in what the tools print, except identifiers.

The outputs walked: the trace table's events and its verdict, the Markdown listing's
prose, compare --summary and check.  What is not the project's text is taken out first:
the kernel's own source and comments (the table's source column, code in Markdown), the
scenario's name and description (data), disassembly.  Every ASCII word left must be an
identifier of the allow-list below.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from engine import i18n
from tests.conftest import SCENARIOS
from tui.cli import main

#: Words that are names, not English: registers, instructions, symbols, fields, units.
_IDENTIFIER_WORDS = """
    rax rbx rcx rdx rsi rdi rbp rsp rip r8 r9 r10 r11 r12 r13 r14 r15 eax edi ax cx dx si di
    bp bx sp ip cs ss ds fs gs flags orig_ax rflags eflags cr2 cr3 cr4 efer star lstar cstar
    syscall sysret sysretq iret iretq swapgs getpid write exit exit_group arch_prctl read
    rt_sigreturn ucontext uc_flags pt_regs regs nr do_syscall_64 do_exit entry_SYSCALL_64
    intel amd jne jmp retq pushq popq movq testb
    handler check sysret iret fault cap unsupported swapgs cr3 syscall return
    pcid pgd kpti pti wrmsr
    hello world
    cpl cpu cve linux debian sdm apm tlb tss gdt ldt ibrs ibpb ibt bhi cet nop rpl sev xen
    alternative kpti msr nmi mds true false bool int struct call xor untrain ring ptrace
    sigreturn endbr64 endbr mov verw qemu
    meltdown spectre retbleed srso taa mmio lfence
    expect
"""
IDENTIFIERS = frozenset(_IDENTIFIER_WORDS.split())
WORD = re.compile(r"(?<![\w.$%#/@>:-])[A-Za-z][A-Za-z]{2,}(?![\w(.-])")


def cli(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(list(args))
    i18n.set_language("en")
    return out.getvalue()


def english_words(text: str) -> list[str]:
    return sorted({w for w in WORD.findall(text) if w.lower() not in IDENTIFIERS})


def markdown_prose(text: str) -> str:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    lines = text.splitlines()
    return "\n".join(lines[1:])  # the H1 is the scenario's name


SCENARIO_FILES = ["getpid.toml", "exit.toml", "sigreturn-noncanonical.toml",
                  "v6.12-fallthrough-to-task-size-max.toml", "cve-2012-0217-amd.toml"]  # fmt: skip


def _description_free(text: str, name: str) -> str:
    from engine import load_scenario

    sc = load_scenario(SCENARIOS / name)
    for data in (sc.name, *sc.description.split("\n")):
        if data.strip():
            text = text.replace(data.strip(), "")
    return text


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_the_trace_table_has_no_english_under_ja(name: str) -> None:
    """The header, the verdict below the table and every event of the events column (as
    the table renders it: tr() of the event's text)."""
    from tests.conftest import trace_of

    text = cli("trace", str(SCENARIOS / name), "--lang", "ja")
    lines = text.splitlines()
    verdict = [line for line in lines[2:] if not re.match(r"\s*\d+\s+[03]\s+[0-9a-f]{16}\s", line)]
    events = [i18n.tr(e.text, "ja") for s in trace_of(name).steps for e in s.events]
    flat = " ".join(text.split())  # long events are wrapped under their row
    assert all(" ".join(event.split()) in flat for event in events)  # what the table printed
    assert english_words("\n".join([lines[1], *verdict, *events])) == []


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_the_markdown_listing_has_no_english_under_ja(name: str) -> None:
    text = cli("trace", str(SCENARIOS / name), "--lang", "ja", "--format", "markdown")
    assert english_words(_description_free(markdown_prose(text), name)) == []


def test_compare_summary_has_no_english_under_ja() -> None:
    text = cli(
        "compare", str(SCENARIOS / "getpid.toml"), str(SCENARIOS / "check-rcx-eq-rip.toml"),
        "--summary", "--lang", "ja",
    )  # fmt: skip
    lines = text.splitlines()
    # the two run labels are scenario names (data); step lines quote kernel source
    prose = [re.sub(r"（\d+ 行目: .*?）", "", line) for line in lines[2:]]
    prose = [re.sub(r"ステップ \d+ \S+ 0x[0-9a-f]+|ステップ \d+ \S+", "", p) for p in prose]
    assert english_words("\n".join(prose)) == []


def test_the_walker_sees_english_where_there_is_some() -> None:
    """The same walk in English finds words: it would find an untranslated message."""
    text = cli("trace", str(SCENARIOS / "getpid.toml"), "--lang", "en")
    assert "stopped" in english_words(text.replace("events", "イベント", 1))


def test_check_has_no_english_under_ja(tmp_path: object) -> None:
    """Each verdict and the summary: only the tags (ok FAIL SKIP ERROR), paths and names
    stay; every kind of line is made (a fault after SYSRET, no exit, no [expect])."""
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "ud.toml").write_text('name = "ud"\n[user]\ncode = "ud2"\n[expect]\nexit = "none"\n')
    (folder / "plain.toml").write_text('name = "plain"\n[user]\ncode = "mov $39, %eax; syscall"\n')
    for name in ("cve-2012-0217-intel.toml", "sigreturn-noncanonical.toml", "exit.toml"):
        (folder / name).write_bytes((SCENARIOS / name).read_bytes())
    text = cli("check", str(folder), "--lang", "ja")
    lines = text.splitlines()
    assert len(lines) == 6 and lines[-1].startswith("合格 4、不合格 0、対象外 1"), lines
    prose = [line.split(": ", 1)[-1] for line in lines]  # the tag and the file's path go
    assert english_words("\n".join(prose)) == [], prose
    assert english_words(cli("check", str(folder)).replace(str(folder), "")) != []
