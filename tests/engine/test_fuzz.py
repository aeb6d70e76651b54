"""Hostile scenario files: every outcome is a clean one-line error or a run.

The hypothesis test mutates the shipped scenarios (tests/engine/fuzzing.py); the
corpus below keeps every reproducer found so far as a regression test.  Each case
has a wall-clock limit (SIGALRM in the main thread: the engine's Python hooks give
it a chance to fire; Keystone, which it could not interrupt, runs in a child with
its own limit).  `python bench/fuzz.py --minutes 10` is the long run.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Session, parse_scenario
from engine.asm import UNTRUSTED_TIMEOUT
from tests.engine.fuzzing import (
    SHIPPED,
    Outcome,
    case,
    check_case,
    noise,
    toml_document,
    toml_string,
)

#: Per case: the assembler's own limit plus a run of the capped steps below.
CASE_LIMIT = UNTRUSTED_TIMEOUT + 8.0
#: Runs in the suite stop at this many steps (bench/fuzz.py runs the full caps).
SUITE_STEP_CAP = 300


class DataChooser:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expired(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"case took more than {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def checked(text: str, step_cap: int | None = SUITE_STEP_CAP) -> Outcome:
    """:func:`check_case` (every output checked for raw controls), with the suite's step
    cap and time limit."""
    with time_limit(CASE_LIMIT):
        return check_case(text, step_cap=step_cap)


FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@FUZZ_SETTINGS
@given(st.data())
def test_mutated_scenarios_end_in_an_error_or_a_run(data: st.DataObject) -> None:
    outcome = checked(case(DataChooser(data)))
    assert outcome.kind in ("error", "run")


#: The bound on any file's answer (issue 15), with room for a loaded machine; the
#: assembler's own time limit is the longest thing an answer can wait for.
ANSWER_SECONDS = UNTRUSTED_TIMEOUT + 2.0


@pytest.mark.slow
@FUZZ_SETTINGS
@given(st.data())
def test_toml_documents_and_noise_end_in_an_error_or_a_run_in_time(data: st.DataObject) -> None:
    c = DataChooser(data)
    text = noise(c, toml_document(c)) if c.integer(0, 1) else toml_document(c)
    start = time.process_time()
    outcome = checked(text)
    assert outcome.kind in ("error", "run")
    assert time.process_time() - start < ANSWER_SECONDS, text[:300]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.sampled_from([s for _, s in SHIPPED[:8]]))
def test_byte_noise_ends_in_an_error_or_a_run(noise_bytes: bytes, shipped: str) -> None:
    # bytes as the reader sees them: invalid UTF-8 is the reader's one-line error
    raw = shipped.encode()[: len(noise_bytes) * 3] + noise_bytes
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    assert checked(text).kind in ("error", "run")


# -- the corpus: every reproducer reported so far -------------------------------------

HANG = [
    "-1", "[rax]", '.incbin "x", 0', "!1", "%1", "&1", "(1", ")1", "*1", "+1", ",1", "-1",
    ".1", "/1", ":1", "<1", "=1", ">1", "[1", "\\\\1", "]1", "^1", "|1", "~1",
    ".quad )", ".quad %rax",  # pass the statement grammar: the child's time limit stops them
]  # fmt: skip
SEGFAULT = [".text", ".section .data", ".data", ".section .text", "nop; .text; syscall"]
MEMORY = [".space 0x1000000", ".fill 0x7fffffff,1,0x90", '.incbin "/dev/zero"', ".skip 1<<30"]
FILE_READ = ['.incbin "/etc/passwd"', '.include "/etc/passwd"']
DIRECTIVES = [".rept 3", ".org 0x1000", ".align 0x100000", ".set x, 1", ".equ x, 1", ".zero 9"]


def _code(code: str) -> str:
    return f'name = "x"\n[user]\ncode = {toml_string(code)}\n'


@pytest.mark.parametrize("code", HANG + SEGFAULT + MEMORY + FILE_READ + DIRECTIVES)
def test_hostile_user_code_is_a_one_line_error(code: str) -> None:
    outcome = checked(_code(code))  # within the case limit, or TimeoutError
    assert outcome.kind == "error", outcome
    assert "user.code" in outcome.text


@pytest.mark.parametrize("code", SEGFAULT + MEMORY + FILE_READ + DIRECTIVES)
def test_every_refused_directive_is_named(code: str) -> None:
    directive = next(word for word in code.replace(";", " ").split() if word.startswith("."))
    outcome = checked(_code(code))
    assert f"directive '{directive}' is not allowed" in outcome.text


CORPUS: list[tuple[str, str, str]] = [
    # (id, scenario text, what the one line must say)
    ("recursion", "x = " + "[" * 1000 + "]" * 1000 + "\n", "nested too deep"),
    ("recursion-table", "x = " + "{a=" * 1000 + "1" + "}" * 1000 + "\n", "not valid TOML"),
    ("long-int", "name = 'x'\nstep_cap = " + "9" * 5000 + "\n", "not valid TOML"),
    ("newline-key", 'name = "x"\n"a\\nb" = 1\n', "a\\nb: unknown key"),
    ("escape-key", 'name = "x"\n"\\u001b[2J\\u0007" = 1\n', "\\x1b[2J\\x07: unknown key"),
    ("osc-key", 'name = "x"\n"\\u001b]0;pwned\\u0007" = 1\n', "\\x1b]0;pwned\\x07"),
    ("c1-csi", 'name = "x"\n[machine]\ncpu = "\\u009b2J"\n', "\\x9b2J"),
    (
        "sigframe-line",
        'name = "x"\n[user]\nrip = 0x401000\n[sigframe]\nrip = "x"\n',
        ":5: sigframe.rip: expected an integer, got a string",
    ),
    (
        "missing-address",
        'name = "x"\n[[memory]]\nsize = 0x1000\n',
        ":2: memory[0].address: required key missing",
    ),
    ("none-words", 'name = "x"\n[user]\nrax = [1]\n', "expected an integer, got an array"),
    (
        "task-flag-escape",
        'name = "x"\n[task]\nflags = ["\\u001b[2J"]\n',
        "task.flags[0]: expected one of 'NOTIFY_RESUME', 'NEED_RESCHED', got '\\x1b[2J'",
    ),
    (
        "signal-array",
        'name = "x"\n[[signal]]\nnumber = 14\n',
        "expected a table [signal], got an array",
    ),
    (
        "signal-label-escape",
        'name = "x"\n[user]\ncode = "syscall\\nh:\\nret"\n[signal]\nnumber = 14\n'
        'handler = "\\u001b]0;t\\u0007"\nrestorer = "h"\n',
        "no label '\\x1b]0;t\\x07' in the code",
    ),
    ("table-words", 'name = "x"\nuser = 1\n', "expected a table [user], got an integer"),
    ("step-cap-max", 'name = "x"\nstep_cap = 1000000\n', "value 1000000 out of range 1..100000"),
    (
        "pool",
        'name = "x"\n' + "".join(f"[[memory]]\naddress = {i << 39:#x}\n" for i in range(40)),
        "memory: 40",
    ),
    (
        "pool-tables",
        'name = "x"\n' + "".join(f"[[memory]]\naddress = {i << 39:#x}\n" for i in range(1, 33)),
        "page tables",
    ),
    (
        "memory-total",
        'name = "x"\n'
        + "".join(
            f"[[memory]]\naddress = {0x10000000 + i * 0x1000000:#x}\nsize = 0x1000000\n"
            for i in range(3)
        ),
        "bytes in all",
    ),
    (
        "code-size",
        'name = "x"\n[user]\ncode = "' + ".quad 0, 0, 0, 0; " * 2100 + 'syscall"\n',
        "more than 64 KiB",
    ),
    ("statements", 'name = "x"\n[user]\ncode = "' + "nop; " * 20001 + '"\n', "statements"),
    ("assignment", 'name = "x"\n[user]\ncode = ". = 0x1000000"\n', "not allowed"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_corpus_errors(text: str, expected: str) -> None:
    outcome = checked(text)
    assert outcome.kind == "error", outcome
    assert expected in outcome.text


RUNS: list[tuple[str, str]] = [
    ("markup-name", 'name = "[/foo] [bold]x[/bold] \\u001b[2J"\n'),
    (
        "markup-output",
        'name = "w"\n[user]\ncode = """\nmovabs $0x0a5d782f5b, %rax\npush %rax\n'
        'mov %rsp, %rsi\nmov $5, %edx\nmov $1, %edi\nmov $1, %eax\nsyscall\n"""\n',
    ),
    ("memory-16mib", 'name = "m"\n[[memory]]\naddress = 0x10000000\nsize = 0x1000000\n'),
    (
        "pool-30",
        'name = "x"\n' + "".join(f"[[memory]]\naddress = {i << 39:#x}\n" for i in range(30)),
    ),
    ("local-labels", 'name = "l"\n[user]\ncode = "jmp 1f; 1: jmp 2f; 1: nop; 2: syscall"\n'),
    ("data", 'name = "d"\n[user]\ncode = ".byte 0x0f, 0x05"\n'),
]


@pytest.mark.parametrize("text", [r[1] for r in RUNS], ids=[r[0] for r in RUNS])
def test_corpus_runs(text: str) -> None:
    assert checked(text).kind == "run"


@pytest.mark.parametrize(
    "text",
    [
        'name = "x"\nstep_cap = 1\n',
        'name = "x"\nstep_cap = 2\n[user]\ncode = "mov $39, %eax; syscall"\n',
    ],
    ids=["step-cap-1", "cap-on-syscall"],
)
def test_corpus_cap_on_any_step(text: str) -> None:
    outcome = checked(text, step_cap=None)
    assert outcome.kind == "run" and "step cap" in outcome.text


def test_sixteen_mib_memory_is_one_unicorn_region() -> None:
    # 4096 one-page Unicorn regions took seconds to map (mem_map grows with the count).
    session = Session(parse_scenario(RUNS[2][1]))
    regions = [(lo, hi) for lo, hi, _ in session.machine.uc.mem_regions()]
    assert any(hi - lo + 1 >= 0x1000000 for lo, hi in regions)
    assert len(regions) < 12
