"""The annotated Markdown listing: every value from the trace, valid GFM, no injection."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from engine import load_scenario, run_scenario
from engine.checks import describe
from engine.trace import Trace
from engine.views.markdown import ExportError, code, esc, fenced, trace_markdown
from tests.conftest import SCENARIOS, trace_of
from tui.cli import main

SHIPPED = sorted(p.name for p in SCENARIOS.glob("*.toml"))
HAS_CATALOGUES = importlib.util.find_spec("engine.i18n") is not None


def html(markdown: str) -> str:
    """Rendered as GitHub would: GFM tables, raw HTML allowed (GitHub sanitizes it)."""
    return MarkdownIt("gfm-like", {"html": True}).render(markdown)


def listed_steps(doc: str) -> set[int]:
    """Step numbers of the listing's rows and lines ("12", or "4–3000" for a run)."""
    listing = doc.split("## Listing", 1)[1]
    out: set[int] = set()
    for first, last in re.findall(r"^(?:\| |\*\*)(\d+)(?:–(\d+))?(?: \||\*\*)", listing, re.M):
        out.update(range(int(first), int(last or first) + 1))
    return out


@pytest.mark.parametrize("name", SHIPPED)
def test_every_step_is_listed_once_with_its_register_changes(name: str) -> None:
    trace = trace_of(name)
    doc = trace_markdown(trace)
    assert listed_steps(doc) == set(range(1, len(trace.steps) + 1))
    executed = [(s.rip, s.text) for s in trace.steps if not s.modelled]
    if len(set(executed)) == len(executed):  # nothing ran twice: a row for every step
        assert "run again" not in doc
    seen: set[tuple[int, str]] = set()
    for step in trace.steps:
        before = trace.steps[step.index - 1].regs if step.index else trace.initial
        if not step.modelled and (step.rip, step.text) in seen:
            continue  # run again (a loop, a second round trip): a row says what the run did
        seen.add((step.rip, step.text))
        for reg in step.changed:
            if reg != "rip":
                old, new = getattr(before, reg), getattr(step.regs, reg)
                assert f"`{reg} {old:#x} → {new:#x}`" in doc, (step.index, reg)


@pytest.mark.parametrize("name", SHIPPED)
def test_checks_verdict_and_events_come_from_the_trace(name: str) -> None:
    trace = trace_of(name)
    doc = trace_markdown(trace)
    checks = doc.split("## SYSRET checks", 1)[1].split("## Moments", 1)[0]
    for number, check in enumerate(trace.checks, start=1):
        row = next(line for line in checks.splitlines() if line.startswith(f"| {number} |"))
        assert f"`{check.name}`" in row
        assert esc(describe(check)) in row
    exit_line = next(line for line in doc.splitlines() if line.startswith("- **exit path**"))
    assert exit_line.endswith({"sysret": "SYSRET", "iret": "IRET"}.get(trace.exit or "", "none"))
    for event in trace.events:
        assert esc(event.text) in doc, event


def test_pt_regs_slots_written_and_read_are_named_with_their_values() -> None:
    doc = trace_markdown(trace_of("check-rcx-eq-rip.toml"))
    assert "wrote **pt_regs->ss** `0x2b`" in doc
    assert "wrote **pt_regs->orig_ax** `0x27`" in doc
    # after do_syscall_64 the IRET path pops what the C code left there
    assert "read **pt_regs->ip** `0x401020`" in doc
    assert "read **pt_regs->ax** `0x4d2`" in doc
    assert "wrote **entry stack ip** `0x401020`" in doc
    # the modelled C code's own writes, on its step
    assert "rewrote **pt_regs->ip** `0x401007 → 0x401020`" in doc


def test_stack_and_cr3_switches_are_marked_on_their_step() -> None:
    trace = trace_of("getpid.toml")
    doc = trace_markdown(trace)
    for step in trace.steps:
        for event in step.events:
            if event.kind in ("stack_switch", "cr3_switch"):
                line = next(
                    ln
                    for ln in doc.split("## Listing", 1)[1].splitlines()
                    if ln.startswith((f"| {step.index + 1} |", f"**{step.index + 1}** "))
                )
                assert esc(event.text) in line


def test_the_entry_code_is_shown_at_macro_level_with_its_notes() -> None:
    trace = trace_of("getpid.toml")
    doc = trace_markdown(trace)
    executed = {s.source_line for s in trace.steps if s.source_line is not None}
    lines = {s.number: s for s in trace.source}
    for number in executed:
        assert f"{number:4}  {lines[number].text}".rstrip() in doc
        if lines[number].note:
            assert esc(lines[number].note) in doc
    assert "PUSH_AND_CLEAR_REGS rax=$-ENOSYS" in doc
    assert "### entry_SYSCALL_64" in doc and "### syscall_return_via_sysret" in doc


def test_the_markdown_renders_as_tables_and_code_blocks() -> None:
    doc = trace_markdown(trace_of("check-rcx-eq-rip.toml"))
    page = html(doc)
    assert page.count("<table>") >= 5
    assert '<code class="language-asm">' in page
    assert "| ---" not in page  # every table was recognised as one
    for block in re.findall(r"^\|.*\|$(?:\n^\|.*\|$)*", doc, re.M):
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in block.splitlines()}
        assert len(widths) == 1, block


def scenario(tmp_path: Path, text: str) -> Trace:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return run_scenario(load_scenario(path))


def test_the_c_conditions_of_6_12_each_get_a_row() -> None:
    # the modelled C steps share do_syscall_64's address; they are not a loop
    trace = trace_of("v6.12-sigreturn-noncanonical.toml")
    doc = trace_markdown(trace)
    for step in trace.steps:
        if step.modelled and step.text.startswith("(C)"):
            # a statement also names its file:line and the calls it is inside
            assert f"| {step.index + 1} | `{step.rip:016x}` | {code(step.text)}" in doc
    assert (
        "`(C) add_random_kstack_offset();` `arch/x86/entry/common.c:73`<br>do_syscall_64 |" in doc
    )
    assert "`if (unlikely(regs->ip >= TASK_SIZE_MAX))` *(C, modelled)*" in doc


def test_a_loop_up_to_the_step_cap_is_one_row(tmp_path: Path) -> None:
    trace = scenario(
        tmp_path, 'name = "spin"\nstep_cap = 3000\n[user]\ncode = "1: inc %rax; jmp 1b"\n'
    )
    assert len(trace.steps) == 3000
    doc = trace_markdown(trace)
    assert len(doc.splitlines()) < 100
    assert "| 3–3000 |" in doc and "2998 instructions listed above, run again" in doc
    assert f"`rax {trace.steps[1].regs.rax:#x} → {trace.steps[-1].regs.rax:#x}`" in doc
    assert "step cap of 3000 reached" in doc


def test_a_countdown_loop_then_the_syscall(tmp_path: Path) -> None:
    trace = scenario(
        tmp_path,
        'name = "countdown"\n[user]\n'
        'code = "mov $500, %ecx; 1: dec %ecx; jnz 1b; mov $39, %eax; syscall"\n',
    )
    doc = trace_markdown(trace)
    assert listed_steps(doc) == set(range(1, len(trace.steps) + 1))
    assert "`rcx 0x1f3 → 0x0`" in doc  # the loop's net effect
    assert "**exit path**: SYSRET" in doc


def test_a_scenario_cannot_inject_markup(tmp_path: Path) -> None:
    trace = scenario(
        tmp_path,
        'name = "<script>alert(1)</script> [x](http://e.test) ![i](y) **b** `t` | c"\n'
        '[user]\ncode = "mov $39, %eax; syscall"\n',
    )
    page = html(trace_markdown(trace))
    title = page.split("</h1>", 1)[0]
    assert "<script" not in page and "<a " not in page and "<img" not in page
    assert "<strong>" not in title and "<code>" not in title
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in title


def test_escaping_helpers() -> None:
    assert code("a`b|c") == "``a`b\\|c``"
    assert code("a|b", cell=False) == "`a|b`"
    assert fenced(["x ``` y"], "asm") == ["````asm", "x ``` y", "````"]
    assert esc("rcx_eq_rip") == "rcx_eq_rip"
    assert esc("__USER_CS") == "\\_\\_USER_CS"
    assert esc("# not a heading") == "\\# not a heading"


def test_cli_writes_markdown_and_keeps_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(SCENARIOS / "getpid.toml")
    assert main(["trace", path, "--format", "markdown"]) == 0
    assert capsys.readouterr().out == trace_markdown(trace_of("getpid.toml"))
    assert main(["trace", path, "--json"]) == 0
    assert capsys.readouterr().out.startswith("{")


def test_lang_ja(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(SCENARIOS / "getpid.toml")
    status = main(["trace", path, "--format", "markdown", "--lang", "ja"])
    out, err = capsys.readouterr()
    if HAS_CATALOGUES:
        assert status == 0 and re.search(r"[\u3040-\u30ff]", out)
    else:
        assert status == 2 and err.startswith("syscall-tui: --lang ja: ")
        with pytest.raises(ExportError):
            trace_markdown(trace_of("getpid.toml"), "ja")
    # the language is put back: English again by default
    assert trace_markdown(trace_of("getpid.toml")).startswith("# getpid")


@pytest.mark.parametrize(("name", "entry"), [
    ("getpid.toml", "do_syscall_64"),
    ("int80-getpid.toml", "do_int80_syscall_32"),
    ("v6.12-int80-getpid.toml", "do_int80_emulation"),
    ("compat-syscall-amd.toml", "do_fast_syscall_32"),
    ("v6.12-compat-sysenter-intel.toml", "do_SYSENTER_32"),
    ("fred-int80-getpid.toml", "fred_int80_emulation"),
])  # fmt: skip
def test_the_pt_regs_table_is_named_after_the_run_s_own_c_side(name: str, entry: str) -> None:
    doc = trace_markdown(trace_of(name))
    assert f"## pt_regs around {entry}\n" in doc
    assert doc.count("## pt_regs around") == 1
