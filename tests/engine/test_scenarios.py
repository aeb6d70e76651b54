"""Every shipped scenario is a test, and broken scenarios give one clear line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine import ScenarioError, load_scenario, parse_scenario, run_scenario
from engine.constants import MASK64
from engine.trace import EventKind
from engine.views.json import expectation_mismatches
from tests.conftest import ROOT, SCENARIOS

SHIPPED = sorted(SCENARIOS.glob("*.toml"))


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenario_meets_its_expectations(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.expect.given, "every shipped scenario says what it expects"
    assert expectation_mismatches(sc, run_scenario(sc)) == []


def test_enough_scenarios_ship() -> None:
    assert len(SHIPPED) >= 15


@pytest.mark.slow
def test_check_command_passes_on_shipped_scenarios() -> None:
    r = cli("check", "scenarios")
    assert r.returncode == 0, r.stdout + r.stderr
    every = sorted(SCENARIOS.rglob("*.toml"))  # scenarios/selftests/ too
    assert len(every) > len(SHIPPED)
    assert f"{len(every)} passed, 0 failed" in r.stdout


def test_check_command_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('name = "w"\n[expect]\nexit = "iret"\n')
    r = cli("check", str(wrong))
    assert r.returncode == 1
    assert "FAIL" in r.stdout and "exit: expected iret, got sysret" in r.stdout


def test_trace_json_contract() -> None:
    r = cli("trace", "scenarios/sigreturn-noncanonical.toml", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    for key in ("scenario", "kernel", "cpu", "exit", "failed_check", "checks", "fault", "pt_regs",
                "steps", "final"):  # fmt: skip
        assert key in doc
    assert doc["exit"] == "iret" and doc["failed_check"] == "canonical_rip"
    assert doc["kernel"] == "v5.8.13" and doc["cpu"] == "intel"
    assert [c["name"] for c in doc["checks"]] == [
        "rcx_eq_rip", "canonical_rip", "cs_user", "r11_eq_rflags", "no_rf_tf", "ss_user",
    ]  # fmt: skip
    assert [c["result"] for c in doc["checks"]] == ["pass", "fail"] + ["not_reached"] * 4
    assert (
        doc["fault"]["name"] == "#GP" and doc["fault"]["vector"] == 13 and doc["fault"]["cpl"] == 0
    )
    assert doc["fault"]["rip"].startswith("0xffffffff81")
    assert len(doc["pt_regs"]["at_call"]) == 21 and len(doc["pt_regs"]["after_call"]) == 21
    assert doc["pt_regs"]["after_call"]["ip"] == "0x800000000000"
    assert doc["final"]["cpl"] == 0
    regs = doc["final"]["regs"]
    assert set(regs) >= {"rip", "rsp", "rflags", "rax", "r15", "cs", "ss", "fs_base", "gs_base",
                         "kernel_gs_base", "cr3"}  # fmt: skip
    for value in regs.values():
        assert value.startswith("0x") and value == value.lower()
    step = doc["steps"][0]
    assert step["step"] == 1
    for key in ("step", "rip", "bytes", "text", "source_line", "macro", "label", "cpl", "regs",
                "changed", "stack", "checks", "events", "modelled"):  # fmt: skip
        assert key in step


def test_trace_table_prints_the_verdict() -> None:
    r = cli("trace", "scenarios/getpid.toml")
    assert r.returncode == 0, r.stderr
    assert "exit path:    sysret" in r.stdout and "entry_SYSCALL_64" not in r.stderr


BROKEN = [
    ("bad.toml", "name = \n", "not valid TOML", None),
    ("unknown-top.toml", 'name = "x"\ncolour = 1\n', "colour: unknown key", "colour"),
    ("unknown-user.toml", 'name = "x"\n[user]\nraz = 1\n', "user.raz: unknown key", "raz"),
    ("type.toml", 'name = "x"\n[user]\nrax = "39"\n', "user.rax: expected an integer", None),
    ("range.toml", 'name = "x"\n[user]\nrip = 0x800000000000\n', "user.rip: value", None),
    ("cpu.toml", 'name = "x"\n[machine]\ncpu = "arm"\n', "machine.cpu: expected one of", None),
    ("paging.toml", 'name = "x"\n[machine]\npaging = 3\n', "machine.paging", None),
    (
        "asm.toml",
        'name = "x"\n[user]\ncode = "movq %rax, %bogus"\n',
        "user.code: 'movq %rax, %bogus' does not assemble",
        None,
    ),
    ("noname.toml", "[user]\nrax = 1\n", "name: required key missing", None),
    ("field.toml", 'name = "x"\n[handler.set]\nrip = 1\n', "handler.set.rip: unknown key", None),
    (
        "expect.toml",
        'name = "x"\n[expect]\nexit = "sysretq"\n',
        "expect.exit: expected one of",
        None,
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("fname", "text", "message", "_"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_scenario_is_one_clear_line(
    tmp_path: Path, fname: str, text: str, message: str, _: object
) -> None:
    path = tmp_path / fname
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and message in str(info.value)
    for args in (("trace", str(path)), ("check", str(path)), (str(path),)):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr + r.stdout
        out = (r.stderr + r.stdout).strip().splitlines()
        assert any(str(path) in line and message in line for line in out)


def test_error_names_the_line() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario('name = "x"\n\n[user]\nrax = "no"\n', "s.toml")
    assert info.value.line == 4 and str(info.value).startswith("s.toml:4: user.rax")


def test_missing_file() -> None:
    r = cli("trace", "no/such/file.toml")
    assert r.returncode == 2 and "no/such/file.toml: no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_misassembled_user_code_is_refused() -> None:
    # A decimal displacement goes through the hex rewrite; the result is verified.
    sc = parse_scenario('name = "x"\n[user]\ncode = "movq $12, 8(%rsp); mov $39, %eax; syscall"')
    assert sc.code is not None
    assert sc.code.lines[0][2] == "movq $0xc, 8(%rsp)"


def test_defaults() -> None:
    sc = parse_scenario('name = "plain"')
    assert (sc.rip, sc.rsp, sc.rflags, sc.regs["rax"]) == (0x401000, 0x7FFC0000F000, 0x246, 39)
    assert (
        sc.machine.cpu == "intel" and sc.machine.pti and sc.machine.pcid and sc.machine.paging == 4
    )
    assert sc.code is not None and sc.code.code == b"\x0f\x05"


def test_engine_imports_no_ui() -> None:
    code = (
        "import sys, engine\n"
        "engine.run_scenario(engine.load_scenario(engine.default_scenario_path()))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'tui')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


LOOP_TWICE = ["movl $2, %ecx", "decl %ecx", "jne 0x401005", "decl %ecx", "jne 0x401005"]
LOOP_TWICE += ["movl $0x27, %eax", "syscall"]


@pytest.mark.parametrize(
    ("code", "user_texts"),
    [
        (".byte 0x0f, 0x05", ["syscall"]),
        ("jmp 1f; 1: syscall", ["jmp 0x401002", "syscall"]),
        ("jmp there\nthere: syscall", ["jmp 0x401002", "syscall"]),
        (
            "mov $2, %ecx\n1: dec %ecx\njnz 1b\nmov $39, %eax\nsyscall",
            LOOP_TWICE,
        ),
    ],
)
def test_user_code_forms(code: str, user_texts: list[str]) -> None:
    t = run_scenario(parse_scenario(f'name = "forms"\n[user]\ncode = """{code}"""'))
    assert [s.text for s in t.steps if s.label == "user"] == user_texts
    assert t.exit == "sysret"


def test_keystone_silent_drop_is_an_error() -> None:
    # Keystone returns no bytes, without an error, for an unknown register.
    with pytest.raises(ScenarioError, match="'movq %rax, %bogus' does not assemble"):
        parse_scenario('name = "x"\n[user]\ncode = "movq %rax, %bogus; syscall"')


def test_any_rsp_value_is_allowed_and_returned() -> None:
    t = run_scenario(parse_scenario('name = "x"\n[user]\nrsp = 0xffffffffffffffff'))
    assert t.exit == "sysret" and t.final is not None and t.final.rsp == MASK64


def test_int80_on_a_kernel_without_its_rendition_stops_saying_so() -> None:
    # 6.1's asm_int80_emulation is not rendered on a CPU with SRSO (its error_entry
    # returns through srso_return_thunk): the run stops at the int with a note, and no
    # exception is reported.
    for machine in ('kernel = "v6.1"\ncpu = "amd"\ncpu_model = "epyc-rome"',):
        t = run_scenario(
            parse_scenario(f'name = "x"\n[machine]\n{machine}\n[user]\ncode = "int $0x80"')
        )
        assert t.fault is None and t.exit is None
        assert t.stopped == "stopped at int $0x80 (asm_int80_emulation is not modelled yet)"
        assert t.final is not None and t.final.rip == 0x401002 and t.final_cpl == 3
        assert any(
            e.kind == EventKind.UNSUPPORTED and "32-bit system-call entry" in e.text
            for s in t.steps
            for e in s.events
        )

    # under FRED the int is a FRED event into the ring-3 entry, and fred_int80_emulation
    # is modelled: it returns with ERETU
    fred = run_scenario(
        parse_scenario(
            'name = "x"\n[machine]\nkernel = "v6.12"\nfred = true\n[user]\ncode = "int $0x80"'
        )
    )
    assert fred.exit == "eretu" and fred.c_entry == "fred_int80_emulation"


def test_trace_table_aligns_the_check_values_under_long_check_names() -> None:
    """6.12's rip_below_task_size_max is longer than the other names: the compared values
    still start in one column, not glued to that name."""
    r = cli("trace", "scenarios/v6.12-fallthrough-to-task-size-max.toml")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    start = lines.index(next(x for x in lines if x.startswith("failed check:"))) + 1
    columns = set()
    for line in lines[start : start + 6]:
        m = re.match(r"  (pass|FAIL|skipped|REMOVED) +(\w+)( +\S)?", line)
        assert m is not None, line
        if m.group(3):  # a check not reached compared nothing
            columns.add(m.end() - 1)
    assert len(columns) == 1, lines[start : start + 6]


def test_user_source_shows_local_labels_as_written() -> None:
    """`1:` / `jnz 1b` are renamed for Keystone; the source a step shows is the user's."""
    code = "mov $3, %ecx\n1: dec %ecx\njnz 1b\njmp 2f\nnop\n2: syscall"
    t = run_scenario(parse_scenario(f'name = "x"\n[user]\ncode = """\n{code}\n"""\n'))
    sources = [s.source for s in t.steps if s.cpl == 3]
    assert sources[:4] == ["mov $3, %ecx", "dec %ecx", "jnz 1b", "dec %ecx"]
    assert "jmp 2f" in sources
    assert not any("local_" in s for s in sources)


@pytest.mark.parametrize("label", ["foo7", "1f"])
def test_a_digit_in_a_label_is_not_taken_for_a_number_keystone_dropped(label: str) -> None:
    """`lea foo7(%rip)` and `lea 1f(%rip)` assemble: the 7 (or the renamed label's
    numbers) are part of a name, not a displacement Capstone must read back."""
    target = label.rstrip("f") if label == "1f" else label
    code = f"nop\nnop\nlea {label}(%rip), %rax\n{target}: syscall"
    t = run_scenario(parse_scenario(f'name = "x"\n[user]\ncode = """\n{code}\n"""\n'))
    assert t.exit == "sysret"
    assert t.steps[2].text == "leaq (%rip), %rax"  # the label is the next instruction
