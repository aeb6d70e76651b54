"""Mutations of the shipped scenarios, and the one harness every fuzzed case goes through.

Shared by tests/engine/test_fuzz.py (hypothesis draws the choices, and shrinks a
failure to a small case) and bench/fuzz.py (a seeded ``random.Random`` draws them,
for long runs).  The mutations follow what a hostile or careless file does: keys
deleted, duplicated and retyped, huge and negative numbers, control characters and
markup in strings, deep nesting, random assembly text with every directive and the
statement shapes that hang Keystone.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from engine import ScenarioError, parse_scenario, run_scenario
from engine.errors import unsafe_characters
from engine.views.json import trace_json

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SHIPPED: tuple[tuple[str, str], ...] = tuple(
    (p.name, p.read_text()) for p in sorted(SCENARIOS.glob("*.toml"))
)

T = TypeVar("T")


class Chooser(Protocol):
    """Where the random choices come from (hypothesis or random.Random)."""

    def integer(self, lo: int, hi: int) -> int: ...


def pick(c: Chooser, seq: Sequence[T]) -> T:
    return seq[c.integer(0, len(seq) - 1)]


DIRECTIVES = (
    ".incbin", ".include", ".space", ".skip", ".fill", ".zero", ".rept", ".endr", ".irp",
    ".section", ".text", ".data", ".bss", ".org", ".align", ".p2align", ".balign", ".set",
    ".equ", ".globl", ".macro", ".endm", ".if", ".endif", ".err", ".error", ".code16",
    ".code32", ".intel_syntax", ".att_syntax", ".file", ".loc", ".cfi_startproc", ".type",
    ".size", ".comm", ".lcomm", ".weak", ".byte", ".word", ".short", ".long", ".int",
    ".quad", ".ascii", ".asciz", ".string", ".octa", ".float", ".double", ".nops", ".",
)  # fmt: skip
ARGS = (
    "", "0", "1", "-1", "0x1000000", "0x7fffffff,1,0x90", '"/etc/passwd"', '"/dev/zero"',
    '"x", 0', "3, 0x90", "0x0f, 0x05", '"[/x]"', "x", ".+0x1000000", "%rax", "(%rax)", "[1",
)  # fmt: skip
INSNS = (
    "syscall", "nop", "mov $39, %eax", "mov $15, %eax", "mov $60, %eax", "push %rax",
    "pop %rbx", "jmp 1f", "1:", "jne 1b", "int3", "ud2", "hlt", "cli", "iretq", "sysretq",
    "mov %rax, (%rax)", "movabs $0x0a6f6c6c6568, %rax", "mov %rsp, %rsi", "ret", "call 1f",
    "lea 8(%rax,%rbx,8), %r8", "mov %gs:0x10, %rax", "swapgs", "wrmsr", "rdmsr",
    "mov %rax, %cr3", "loop 1b", "xchg %rax, %rax", "rep movsb", "lock", "movq %rax, %bogus",
    "label:", "jmp label", "jmp .", "add $-38, %r15", "mov $-1, %rax", "h:", "ret",
)  # fmt: skip
# Statements starting with punctuation and then 1 made Keystone loop forever (#551).
PUNCT = "!%&()*+,-./:<=>[\\]^|~"
STRINGS = (
    "", "[/foo]", "[bold red]x[/]", "[/x]", "[link=file:///etc/passwd]x[/link]", "\x1b[2J",
    "\x07", "\x1b]0;title\x07", "a\nb", "\r", "\x00", "\u202e", "\x9b31m", "x" * 5000, "{",
    '"', "\\", "é", "🙂", "$(rm -rf /)", "NEED_RESCHED", "NOTIFY_RESUME", "label", "h",
)  # fmt: skip
NUMBERS = (
    0, 1, -1, 2, 7, 15, 39, 60, 0x1000, 0xFFF, 0x401000, 0x7FFFFFFFF000, 0x800000000000,
    1 << 47, (1 << 56) - 1, 1 << 63, (1 << 64) - 1, 1 << 64, -(1 << 63), -(1 << 64), 10**30,
    100_000, 100_001, 1_000_000, 0x1000000, 0x1000001, 0x33, 0x2B, 0x246, 0x10000, 0x20000,
)  # fmt: skip
KEYS = (
    "name", "description", "step_cap", "machine", "user", "handler", "expect", "sigframe",
    "memory", "kernel", "cpu", "paging", "pti", "pcid", "remove_checks", "rip", "code", "rsp",
    "rflags", "rax", "rcx", "r11", "fs_base", "gs_base", "set", "pid", "ip", "cx", "cs", "ss",
    "flags", "sp", "address", "size", "access", "exit", "failed_check", "fault", "fault_cpl",
    "eflags", "uc_flags", "task", "signal", "kstack_offset", "tsc", "number", "handler",
    "restorer", "siginfo", "a\nb", "\x1b[2J", "[/x]", "",
)  # fmt: skip
TABLES = ("[machine]", "[user]", "[handler]", "[handler.set]", "[sigframe]", "[expect]",
          "[[memory]]", "[memory]", "[[user]]", "[user.code]", "[[x]]", "[task]", "[signal]",
          "[[signal]]")  # fmt: skip


def toml_string(s: str) -> str:
    """*s* as a TOML basic string (json's escapes are TOML's, except \\u for controls)."""
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def random_value(c: Chooser) -> str:
    kind = c.integer(0, 9)
    if kind <= 2:
        n = pick(c, NUMBERS)
        return hex(n) if c.integer(0, 1) and n >= 0 else str(n)
    if kind == 3:
        return toml_string(pick(c, STRINGS))
    if kind == 4:
        return pick(c, ("true", "false", "1.5", "inf", "nan", "1979-05-27", "07:32:00"))
    if kind == 5:
        depth = pick(c, (2, 50, 600, 1200, 5000))
        return "[" * depth + "]" * depth
    if kind == 6:
        return "{ a = " + "{ a = " * 5 + "1" + " }" * 6
    if kind == 7:
        return toml_string(random_code(c))
    if kind == 8:
        return "[" + ", ".join(toml_string(pick(c, STRINGS)) for _ in range(c.integer(0, 3))) + "]"
    return str(c.integer(-(1 << 70), 1 << 70))


def random_code(c: Chooser) -> str:
    out = []
    for _ in range(c.integer(0, 6)):
        kind = c.integer(0, 5)
        if kind <= 2:
            out.append(pick(c, INSNS))
        elif kind == 3:
            out.append(f"{pick(c, DIRECTIVES)} {pick(c, ARGS)}".strip())
        elif kind == 4:
            out.append(pick(c, PUNCT) + pick(c, ("1", "1:", "1]", "rax]", " 1")))
        else:
            out.append(pick(c, STRINGS)[:20])
    if c.integer(0, 2):
        out.append("syscall")
    return pick(c, ("\n", "; ")).join(out)


def _line_key(line: str) -> str | None:
    m = re.match(r"\s*([\w\"]+)\s*=", line)
    return m.group(1) if m else None


def with_code(lines: list[str], code: str) -> list[str]:
    """*lines* with [user] code replaced by *code* (a TOML value)."""
    text = "\n".join(lines)
    text = re.sub(r'(?m)^code\s*=\s*"""[\s\S]*?"""[^\n]*$|^code\s*=.*$', "", text)
    if "[user]" in text:
        text = text.replace("[user]", f"[user]\ncode = {code}", 1)
    else:
        text += f"\n[user]\ncode = {code}"
    return text.split("\n")


def mutate(c: Chooser, text: str) -> str:
    """One to four mutations of scenario *text*, applied line-wise."""
    lines = text.splitlines()
    for _ in range(c.integer(1, 4)):
        op = c.integer(0, 11)
        i = c.integer(0, max(len(lines) - 1, 0))
        if not lines:
            lines.append("")
        line = lines[i]
        key = _line_key(line)
        if op == 0:  # delete a line
            del lines[i]
        elif op == 1:  # duplicate a line (duplicate key or table)
            lines.insert(i, line)
        elif op == 2 and key:  # retype a value
            lines[i] = f"{key} = {random_value(c)}"
        elif op == 3:  # a new key/value somewhere
            lines.insert(i, f"{toml_string(pick(c, KEYS))} = {random_value(c)}")
        elif op == 4:  # a new or moved table
            lines.insert(i, pick(c, TABLES))
        elif op == 5:  # hostile user code
            lines = with_code(lines, toml_string(random_code(c)))
        elif op == 6:  # a [[memory]] table, sometimes many, far apart
            n = pick(c, (1, 2, 30, 40))
            for k in range(n):
                addr = pick(c, (0x10000000, 0x800000000000, k << 39, 0x7FFFFFFFF000, 0x401000))
                size = pick(c, (0x1000, 0x1000000, 0x1000001, 0, 1 << 30))
                access = pick(c, ("rw", "rx", "r", "rwx", "w", ""))
                lines += ["[[memory]]", f"address = {addr:#x}", f"size = {size:#x}",
                          f'access = "{access}"']  # fmt: skip
        elif op == 7:  # a step cap
            lines.insert(0, f"step_cap = {pick(c, NUMBERS)}")
        elif op == 8:  # flip bytes in a line
            if line:
                j = c.integer(0, len(line) - 1)
                lines[i] = (
                    line[:j]
                    + chr(pick(c, (0, 7, 10, 13, 27, 34, 39, 91, 93, 0x85)))
                    + line[j + 1 :]
                )
        elif op == 9:  # a hostile name or description
            lines.insert(0, f"{pick(c, ('name', 'description'))} = {toml_string(pick(c, STRINGS))}")
        elif op == 10:  # a loop in user code (a run that ends at the step cap)
            loop = pick(c, ("1: jmp 1b", "1: nop; jmp 1b", "mov $39, %eax; syscall; 1: jmp 1b"))
            lines = with_code(lines, toml_string(loop))
        else:  # truncate the file
            lines = lines[: i + 1]
    return "\n".join(lines) + "\n"


# Characters for noise: the TOML syntax, the line breaks str.splitlines knows and TOML
# does not, controls, a C1 CSI, bidi overrides, wide and combining text.
NOISE = (
    "[", "]", "{", "}", "=", ".", ",", '"', "'", "\\", "#", "\n", "\r", "\t", " ", "\x00",
    "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u2066", "\ufeff",
    "日", "é", "\u0301", "🙂", "0", "9", "-", "_", "a", "x", '"""', "'" * 3, "\\u", "[[", "]]",
)  # fmt: skip
# Names a key part may have: bare, quoted with hostile contents, the classes that once
# looped or blew up the line finder.
KEY_PARTS = (
    "a", "user", "code", "name", "set", "rip", "memory", '"a["', '"a\u2028["', '"a\\n["',
    '"]"', "'x.y'", '"日本"', '""', '"\\u001b"', "0", "-", "a-b",
)  # fmt: skip


def noise(c: Chooser, text: str) -> str:
    """*text* with a few characters inserted, deleted or replaced anywhere."""
    chars = list(text)
    for _ in range(c.integer(1, 8)):
        i = c.integer(0, len(chars))
        op = c.integer(0, 2)
        if op == 0 or not chars:
            chars.insert(i, pick(c, NOISE))
        elif op == 1:
            del chars[min(i, len(chars) - 1)]
        else:
            chars[min(i, len(chars) - 1)] = pick(c, NOISE)
    return "".join(chars)


def random_key(c: Chooser) -> str:
    """A key of one to many parts (sometimes past the prescan's bound, or far past it)."""
    n = pick(c, (1, 1, 1, 2, 3, 16, 17, 40, 3000))
    sep = pick(c, (".", " . ", "."))
    return sep.join(pick(c, KEY_PARTS) for _ in range(n))


def toml_document(c: Chooser) -> str:
    """A TOML document written from scratch: tables (plain, arrays, dotted, deep), keys
    of many shapes and the values of :func:`random_value`, often with a name."""
    lines = []
    if c.integer(0, 3):
        lines.append(f"name = {toml_string(pick(c, STRINGS))}")
    for _ in range(c.integer(0, 8)):
        kind = c.integer(0, 5)
        if kind == 0:
            lines.append(f"[{random_key(c)}]")
        elif kind == 1:
            lines.append(f"[[{random_key(c)}]]")
        elif kind == 2:
            lines.append(pick(c, TABLES))
        elif kind == 3:
            pairs = (f"{random_key(c)} = {random_value(c)}" for _ in range(c.integer(0, 3)))
            lines.append(f"{random_key(c)} = {{ {', '.join(pairs)} }}")
        elif kind == 4:
            lines.append(f"{pick(c, KEYS[:40])} = {random_value(c)}")
        else:
            lines.append(f"{random_key(c)} = {random_value(c)}")
    return "\n".join(lines) + "\n"


# The numbers and text that once escaped the parser as internal errors: more digits than
# int() converts, characters the assembler cannot read.
CODE_HAZARDS = (
    "mov $" + "9" * 5000 + ", %eax", "mov $0x" + "f" * 60 + ", %rax", ".quad " + "1" * 4400,
    "mov $1, %eax；", "nop\u3000syscall", "mov $١, %eax", "jmp ラベル", "\x1b[2J", "nop # 日本語",
)  # fmt: skip


def case(c: Chooser) -> str:
    """A scenario file: a mutated shipped one, a document from scratch, noise in either."""
    kind = c.integer(0, 19)
    if kind == 0:
        return "\n".join(f"{toml_string(pick(c, KEYS))} = {random_value(c)}" for _ in range(3))
    if kind <= 3:
        text = toml_document(c)
    elif kind == 4:
        lines = with_code(pick(c, SHIPPED)[1].splitlines(), toml_string(pick(c, CODE_HAZARDS)))
        text = "\n".join(lines) + "\n"
    else:
        text = mutate(c, pick(c, SHIPPED)[1])
    if c.integer(0, 3) == 0:
        text = noise(c, text)
    return text


@dataclass(frozen=True)
class Outcome:
    kind: str  # "run" | "error"
    text: str  # the error line, or the run's stop reason


class RawControl(AssertionError):
    """An output held a control character raw (what would reach the terminal)."""


def raw_controls(text: str, keep: str = "\n") -> str:
    """The characters of *text* that engine.errors.escape would have escaped."""
    return "".join(sorted(unsafe_characters(text) - set(keep)))


def check_case(text: str, step_cap: int | None = None, outputs: bool = True) -> Outcome:
    """Parse and run *text* through the engine's entry points, as ``trace`` does.

    Returns a clean outcome; anything else (a traceback) propagates to the caller.  A
    clean error is one line without a raw control; a run is written in every ``trace
    --format`` (with *outputs*) and none may hold a raw control (:class:`RawControl`).
    A *step_cap* lowers the scenario's own.
    """
    try:
        sc = parse_scenario(text, "fuzz.toml")
    except ScenarioError as exc:
        line = str(exc)
        if bad := raw_controls(line, keep=""):
            raise RawControl(f"error line holds {bad!r}: {line[:200]!r}") from None
        return Outcome("error", line)
    if step_cap is not None:
        sc = dataclasses.replace(sc, step_cap=min(sc.step_cap, step_cap))
    trace = run_scenario(sc)
    json.dumps(trace_json(trace))
    if outputs:
        from tui.cli import TRACE_FORMATS  # the writers `trace --format` uses

        for name, writer in TRACE_FORMATS.items():
            out = io.StringIO()
            writer(trace, out, "en")
            if bad := raw_controls(out.getvalue()):
                raise RawControl(f"trace --format {name} holds {bad!r}")
    return Outcome("run", trace.stopped or "")
