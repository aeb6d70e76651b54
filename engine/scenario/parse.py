"""Parsing scenario files (TOML): what machine to build, what user code to run, what to expect.

The format is documented in docs/scenarios.md.  Every problem is reported as a
:class:`ScenarioError` naming the file, the key and what was expected.
"""

from __future__ import annotations

import bisect
import datetime
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.asm import (
    MAX_USER_CODE,
    TOO_LARGE,
    AsmResult,
    AssemblerFailed,
    assemble_untrusted,
    capstone,
    hexify_decimals,
)
from engine.constants import EXCEPTION_NAMES, MASK64, PT_REGS_FIELDS, is_canonical
from engine.errors import ScenarioError, escape
from engine.kernel.variants import DEFAULT_KERNEL, KERNELS, spec
from engine.layout import tables_needed
from engine.scenario.model import (
    CPUS,
    DATA_DIRECTIVES,
    DEFAULT_PID,
    DEFAULT_RAX,
    DEFAULT_RFLAGS,
    DEFAULT_RIP,
    DEFAULT_RSP,
    DEFAULT_STEP_CAP,
    MAX_MEMORY_ENTRIES,
    MAX_MEMORY_TABLES,
    MAX_MEMORY_TOTAL,
    MAX_STATEMENTS,
    MAX_STEP_CAP,
    SIGFRAME_FIELDS,
    USER_REGS,
    Expect,
    MachineConfig,
    MemoryRange,
    Scenario,
    UserCode,
)
from engine.scenario.prescan import prescan
from engine.scenario.reader import read_scenario_text


class _Reader:
    """Pulls typed values out of the TOML tables, with errors that name the key."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text

    def line_of(self, key: str) -> int | None:
        """The line of *key* (``sigframe.rip``, ``memory[1].size``), else of its table."""
        lines = _key_lines(self.text)
        for name in _ancestors(key):
            if name in lines:
                return lines[name]
        return None

    def fail(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(self.path, key, message, self.line_of(key))

    def table(self, data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table [{key}], got {_kind(value)}")
        for k in value:
            if k not in allowed:
                raise self.fail(f"{key}.{k}", f"unknown key; expected one of: {', '.join(allowed)}")
        return value

    def integer(self, value: Any, key: str, lo: int = 0, hi: int = MASK64) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_kind(value)}")
        if value < 0 and lo >= 0 and value >= -(1 << 63) and hi == MASK64:
            value &= MASK64  # two's complement, as a 64-bit register holds it
        if not lo <= value <= hi:
            shown = f"{value:#x}" if abs(value) < 1 << 80 else "with more than 80 bits"
            raise self.fail(key, f"value {shown} out of range {lo:#x}..{hi:#x}")
        return value

    def string(self, value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_kind(value)}")
        if choices is not None and value not in choices:
            raise self.fail(
                key, f"expected one of {', '.join(map(repr, choices))}, got {_show(value)}"
            )
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_kind(value)}")
        return value


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
    (list, "an array"), (dict, "a table"), (datetime.datetime, "a date-time"),
    (datetime.date, "a date"), (datetime.time, "a time"),
)  # fmt: skip


def _kind(value: Any) -> str:
    """The TOML word for *value*'s type; a key left out reads as a missing value."""
    if value is None:
        return "a missing value"
    for t, word in _KINDS:
        if isinstance(value, t):
            return word
    return "a value of another kind"


def _show(value: str) -> str:
    """A user string quoted for a message, cut to a readable length."""
    return repr(value if len(value) <= 60 else value[:60] + "…")


# One key of a line: bare, "basic" or 'literal'; dotted keys are several.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_KEY_LINE = re.compile(rf"\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_HEADER_LINE = re.compile(rf"\s*(\[\[?)\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*\]")


def _ancestors(key: str) -> list[str]:
    """*key* and the names of the tables holding it, longest first.

    ``memory[1].size`` → itself, ``memory[1]``, ``memory``.  A key's own name may hold
    any character (``"a["``, a newline): only the ``.name`` and ``[N]`` the parser adds
    are cut, each cut shortens the name, so this always ends.
    """
    out = [key]
    while m := re.search(r"(\[\d+\]|\.[A-Za-z0-9_]*)$", key):
        if not m.start():
            break
        key = key[: m.start()]
        out.append(key)
    if "." in key:  # a dotted key the user wrote, parts of any spelling: its first part
        out.append(key.split(".", 1)[0])
    return out


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+(?:[ \t]*\.[ \t]*[A-Za-z0-9_-]+)*")


def _key_path(text: str) -> list[str]:
    """The parts of a (dotted, maybe quoted) TOML key, decoded as TOML decodes them."""
    if _BARE_KEY.fullmatch(text):  # most keys: no parser needed (a file may have 100,000)
        return [part.strip() for part in text.split(".")]
    try:
        data: Any = tomllib.loads(f"{text} = 0")
    except (ValueError, RecursionError):
        return []
    parts = []
    while isinstance(data, dict) and len(data) == 1:
        name, data = next(iter(data.items()))
        parts.append(name)
    return parts


def _key_lines(text: str) -> dict[str, int]:
    """Where each key and table is first written, by the names errors use.

    ``[[memory]]`` tables are ``memory[0]``, ``memory[1]``...; a key under a table
    header is named with the table's path (``sigframe.rip``, not ``rip``).
    """
    found: dict[str, int] = {}
    table = ""
    arrays: dict[str, int] = {}
    in_string: str | None = None  # the delimiter of the multi-line string being read
    # split on \n alone: TOML's lines (str.splitlines also breaks at U+2028, \x85...)
    for number, line in enumerate(text.split("\n"), 1):
        if in_string is not None:
            if in_string in line:
                in_string = None
            continue
        for quotes in ('"""', "'''"):
            if line.count(quotes) % 2:
                in_string = quotes
        if m := _HEADER_LINE.match(line):
            path = ".".join(_key_path(m.group(2)))
            if m.group(1) == "[[":
                arrays[path] = arrays.get(path, -1) + 1
                found.setdefault(path, number)
                path = f"{path}[{arrays[path]}]"
            table = path
            found.setdefault(table, number)
        elif m := _KEY_LINE.match(line):
            name = table
            # each prefix built from the last (prescan bounds the parts to MAX_KEY_PARTS)
            for part in _key_path(m.group(1)):
                name = f"{name}.{part}" if name else part
                found.setdefault(name, number)
    return found


def _split_statements(code: str) -> list[str]:
    """One statement per line or `;`, comments dropped, ``label: insn`` split in two."""
    out = []
    for line in code.replace(";", "\n").splitlines():
        line = line.split("#", 1)[0].strip()
        while m := re.match(r"^([\w.$]+):\s*(.*)$", line):
            out.append(m.group(1) + ":")
            line = m.group(2).strip()
        if line:
            out.append(line)
    return out


def _rename_local_labels(statements: list[str]) -> list[str]:
    """GNU as numeric local labels (``1:``, ``jmp 1f``, ``jne 1b``) as names Keystone knows."""
    defs: dict[str, list[int]] = {}  # label number -> statement indexes defining it, in order
    for i, st in enumerate(statements):
        if re.fullmatch(r"\d+:", st):
            defs.setdefault(st[:-1], []).append(i)
    if not defs:
        return statements

    out = []
    for i, st in enumerate(statements):
        if re.fullmatch(r"\d+:", st):
            out.append(f"local_{st[:-1]}_{i}:")
            continue

        def ref(m: re.Match[str], i: int = i) -> str:
            places = defs.get(m.group(1), [])
            k = bisect.bisect_left(places, i)
            if m.group(2) == "b":
                return f"local_{m.group(1)}_{places[k - 1]}" if k > 0 else m.group(0)
            k = bisect.bisect_right(places, i)
            return f"local_{m.group(1)}_{places[k]}" if k < len(places) else m.group(0)

        out.append(re.sub(r"(?<![\w$])(\d+)([bf])\b", ref, st))
    return out


_LABEL = re.compile(r"[A-Za-z_.$][\w.$]*:|\d+:")
_ASSIGNMENT = re.compile(r"[\w.$]+\s*=")
#: Digits in one number of user code: 2**64 has 20 (Python refuses to convert > 4,300).
MAX_DIGITS = 40
_LONG_NUMBER = re.compile(
    rf"(?<!\w)(?:0[xX][0-9A-Fa-f]{{{MAX_DIGITS + 1},}}|\d{{{MAX_DIGITS + 1},}})"
)


def _check_statements(statements: list[str], reader: _Reader) -> None:
    """Only instructions, labels and data directives reach the assembler (see engine/asm.py)."""
    if len(statements) > MAX_STATEMENTS:
        raise reader.fail("user.code", f"more than {MAX_STATEMENTS} statements")
    for st in statements:
        if not st.isascii():
            ch = next(c for c in st if not c.isascii())
            raise reader.fail(
                "user.code",
                f"character {escape(ch)!r} (U+{ord(ch):04X}) is not ASCII; the assembler reads "
                "ASCII only (comments after # may hold any text)",
            )
        if m := _LONG_NUMBER.search(st):
            raise reader.fail(
                "user.code",
                f"a number of {len(m.group(0))} characters; at most {MAX_DIGITS} digits",
            )
        if st.endswith(":") and _LABEL.fullmatch(st):
            continue
        if _ASSIGNMENT.match(st):
            raise reader.fail("user.code", f"symbol assignment is not allowed: {_show(st)}")
        if st.startswith("."):
            directive = st.split(None, 1)[0].split(",", 1)[0]
            if directive.lower() not in DATA_DIRECTIVES:
                raise reader.fail(
                    "user.code",
                    f"directive {_show(directive)} is not allowed; user code may use "
                    f"instructions, labels and the data directives {' '.join(DATA_DIRECTIVES)}",
                )
            continue
        if not re.match(r"[A-Za-z]", st):
            raise reader.fail(
                "user.code",
                f"expected an instruction, a label or a data directive, got {_show(st)}",
            )


def _assemble(texts: list[str], address: int, reader: _Reader) -> tuple[AsmResult, ...]:
    try:
        return assemble_untrusted(texts, address)
    except AssemblerFailed as exc:
        raise reader.fail("user.code", str(exc)) from None


def assemble_user_code(source: str, address: int, path: str, reader: _Reader) -> UserCode:
    """Assemble the user's AT&T code at *address* and check it with Capstone.

    Only instructions, labels and data directives are accepted, and Keystone runs
    in a child process with limits (engine.asm.assemble_untrusted).  Decimal
    numbers are rewritten as hex first (keystone#569); afterwards every number the
    user wrote must appear in Capstone's reading of the instruction.
    """
    split = _split_statements(source)
    _check_statements(split, reader)
    statements = _rename_local_labels(split)
    if not statements:
        raise reader.fail("user.code", "expected at least one instruction")
    hexed = [hexify_decimals(s) for s in statements]
    (result,) = _assemble(["\n".join(hexed)], address, reader)
    if result == TOO_LARGE:
        raise reader.fail("user.code", TOO_LARGE)
    if isinstance(result, str):  # KsError: the message says what Keystone disliked
        raise reader.fail("user.code", f"does not assemble: {result}")
    code = result
    assert len(code) <= MAX_USER_CODE
    insns = list(capstone().disasm(code, address))
    # orig: the statement as the user wrote it (``jnz 1b``, not the renamed label), to show
    real = [(s, orig) for s, orig in zip(hexed, split, strict=True) if not s.endswith(":")]
    if any(s.startswith(".") for s, _ in real):
        # Data directives (.byte 0x0f, 0x05): no statement-to-instruction mapping to check.
        if not insns or sum(i.size for i in insns) != len(code):
            raise reader.fail("user.code", "the bytes given do not decode as instructions")
        decoded = []
        for i in insns:
            text = f"{i.mnemonic} {i.op_str}".strip()
            decoded.append((i.address, text, text))
        return UserCode(source, address, code, tuple(decoded))
    if sum(i.size for i in insns) != len(code) or len(insns) != len(real):
        # Keystone can also fail silently, returning no bytes (``movq %rax, %bogus``):
        # find the statement it dropped (a label reference fails alone: judged with the
        # whole block).
        singles = _assemble([s for s, _ in real], address, reader)
        for (_, orig), single in zip(real, singles, strict=True):
            if single == b"":
                # the statement as the user wrote it ($39), not the hex rewrite ($0x27)
                raise reader.fail("user.code", f"does not assemble: {_show(orig)}")
        raise reader.fail(
            "user.code",
            f"{len(real)} statements assembled to {len(insns)} instructions; "
            "one instruction per statement expected",
        )
    lines: list[tuple[int, str, str]] = []
    # a number, not the digits of a name (foo7, the renamed local_1_3) or register (%r8)
    num = re.compile(r"(?<![\w.])(?:-?0x[0-9a-fA-F]+|-?\d+)")
    for (stmt, orig), insn in zip(real, insns, strict=True):
        text = f"{insn.mnemonic} {insn.op_str}".strip()
        wanted = [int(n, 0) for n in num.findall(stmt.split(" ", 1)[-1])]
        got = {int(n, 0) & MASK64 for n in num.findall(insn.op_str)}
        is_branch = insn.mnemonic.startswith(("j", "call", "loop"))
        # Sign-extended immediates read back as 64-bit; compare the low parts too.
        got |= {g & 0xFFFFFFFF for g in got} | {g & 0xFF for g in got} | {1, 2, 4, 8}
        if not is_branch and " " in stmt and not all(_encoded(w, got) for w in wanted):
            raise reader.fail(
                "user.code",
                f"Keystone assembled {_show(orig)} as {text!r}; refusing a silent wrong byte",
            )
        lines.append((insn.address, orig, text))
    return UserCode(source, address, code, tuple(lines))


def _encoded(number: int, got: set[int]) -> bool:
    """Whether *number* as the user wrote it is among Capstone's operands *got*.

    A negative immediate comes back at its operand's width (``movl $-1, %eax`` reads
    ``$0xffffffff``): it matches its two's complement at any width it fits in.
    """
    if number >= 0:
        return number & MASK64 in got
    return any(
        number & ((1 << bits) - 1) in got
        for bits in (64, 32, 16, 8)
        if number >= -(1 << (bits - 1))
    )


TOP_KEYS = ("name", "description", "machine", "user", "handler", "expect", "sigframe", "memory",
            "step_cap")  # fmt: skip
MACHINE_KEYS = ("kernel", "cpu", "paging", "pti", "pcid", "remove_checks")
USER_KEYS = ("rip", "code", "rsp", "rflags", "fs_base", "gs_base", *USER_REGS)
HANDLER_KEYS = ("set", "pid")
EXPECT_KEYS = ("exit", "failed_check", "fault", "fault_cpl")


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    """Parse and validate scenario TOML *text* (named *path* in errors)."""
    r = _Reader(path, text)
    prescan(text, path)  # before tomllib, whose work grows with the square of a key's parts
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ScenarioError(
            path, None, "not valid TOML: arrays or tables nested too deep"
        ) from None
    except ValueError as exc:  # TOMLDecodeError, or an integer too long to convert
        m = re.search(r"line (\d+)", str(exc))
        raise ScenarioError(
            path, None, f"not valid TOML: {exc}", int(m.group(1)) if m else None
        ) from None
    for k in data:
        if k not in TOP_KEYS:
            raise r.fail(k, f"unknown key; expected one of: {', '.join(TOP_KEYS)}")
    if "name" not in data:
        raise ScenarioError(path, "name", "required key missing (a string naming the scenario)")
    name = r.string(data["name"], "name")
    description = r.string(data.get("description", ""), "description")

    mt = r.table(data, "machine", MACHINE_KEYS)
    kernel = r.string(mt.get("kernel", DEFAULT_KERNEL), "machine.kernel", KERNELS)
    checks = spec(kernel).checks
    config = MachineConfig(
        kernel=kernel,
        cpu=r.string(mt.get("cpu", CPUS[0]), "machine.cpu", CPUS),
        paging=_paging(r, mt.get("paging", 4)),
        pti=r.boolean(mt.get("pti", True), "machine.pti"),
        pcid=r.boolean(mt.get("pcid", True), "machine.pcid"),
        removed_checks=_check_names(r, mt.get("remove_checks", []), checks),
    )
    user_top = (1 << (56 if config.paging == 5 else 47)) - 1

    u = r.table(data, "user", USER_KEYS)
    regs = {reg: r.integer(u[reg], f"user.{reg}") for reg in USER_REGS if reg in u}
    regs.setdefault("rax", DEFAULT_RAX)
    rip = r.integer(u.get("rip", DEFAULT_RIP), "user.rip", 0, user_top)
    # Any value: RSP is not checked by IRET or SYSRET (a what-if may want a bad one);
    # only a canonical user address gets stack pages.
    rsp = r.integer(u.get("rsp", DEFAULT_RSP), "user.rsp")
    rflags = r.integer(u.get("rflags", DEFAULT_RFLAGS), "user.rflags", 0, 0x3FFFFF)
    if rflags & 0x20000:
        raise r.fail("user.rflags", "VM (bit 17) cannot be set in 64-bit mode")
    fs_base = r.integer(u.get("fs_base", 0), "user.fs_base")
    gs_base = r.integer(u.get("gs_base", 0), "user.gs_base")
    for key, val in (("user.fs_base", fs_base), ("user.gs_base", gs_base)):
        if not is_canonical(val, config.paging):
            raise r.fail(key, f"expected a canonical address, got {val:#x}")
    code_src = r.string(u.get("code", "syscall"), "user.code")
    code = assemble_user_code(code_src, rip, path, r)

    h = r.table(data, "handler", HANDLER_KEYS)
    hs = r.table(h, "handler.set", PT_REGS_FIELDS)
    handler_set = {k: r.integer(v, f"handler.set.{k}") for k, v in hs.items()}
    pid = r.integer(h.get("pid", DEFAULT_PID), "handler.pid", 1, 4194304)

    sf = r.table(data, "sigframe", SIGFRAME_FIELDS)
    sigframe = {k: r.integer(v, f"sigframe.{k}") for k, v in sf.items()}

    memory = []
    mem = data.get("memory", [])
    if not isinstance(mem, list):
        raise r.fail("memory", f"expected an array of tables [[memory]], got {_kind(mem)}")
    if len(mem) > MAX_MEMORY_ENTRIES:
        raise r.fail("memory", f"{len(mem)} [[memory]] tables; at most {MAX_MEMORY_ENTRIES}")
    for i, entry in enumerate(mem):
        key = f"memory[{i}]"
        if not isinstance(entry, dict):
            raise r.fail(key, "expected a table with address, size, access")
        for k in entry:
            if k not in ("address", "size", "access"):
                raise r.fail(f"{key}.{k}", "unknown key; expected one of: address, size, access")
        if "address" not in entry:
            raise r.fail(f"{key}.address", "required key missing (the range's first address)")
        addr = r.integer(entry["address"], f"{key}.address", 0, user_top)
        size = r.integer(entry.get("size", 0x1000), f"{key}.size", 1, 1 << 24)
        if addr & 0xFFF or size & 0xFFF:
            raise r.fail(key, "address and size must be multiples of 0x1000")
        if addr + size - 1 > user_top:
            raise r.fail(f"{key}.size", "range reaches past the top of user space")
        access = r.string(entry.get("access", "rw"), f"{key}.access", ("r", "rw", "rx", "rwx"))
        memory.append(MemoryRange(addr, size, access))
    _check_memory(r, memory, rip, code, rsp, config.paging)

    e = r.table(data, "expect", EXPECT_KEYS)
    fault_names = (*EXCEPTION_NAMES.values(), "none")
    expect = Expect(
        exit=r.string(e["exit"], "expect.exit", ("sysret", "iret", "none"))
        if "exit" in e
        else None,
        failed_check=r.string(e["failed_check"], "expect.failed_check", (*checks, "none"))
        if "failed_check" in e
        else None,
        fault=r.string(e["fault"], "expect.fault", fault_names) if "fault" in e else None,
        fault_cpl=r.integer(e["fault_cpl"], "expect.fault_cpl", 0, 3) if "fault_cpl" in e else None,
        given=tuple(e),
    )
    step_cap = r.integer(data.get("step_cap", DEFAULT_STEP_CAP), "step_cap", 1, MAX_STEP_CAP)
    return Scenario(
        name=name, path=path, description=description, kernel=kernel, machine=config,
        regs=regs, rip=rip, rsp=rsp, rflags=rflags | 0x2, fs_base=fs_base, gs_base=gs_base,
        code=code, memory=tuple(memory), handler_set=handler_set, pid=pid, sigframe=sigframe,
        expect=expect, step_cap=step_cap,
    )  # fmt: skip


def _check_memory(
    r: _Reader, memory: list[MemoryRange], rip: int, code: UserCode, rsp: int, paging: int
) -> None:
    """Refuse [[memory]] the machine cannot hold: too large, or too scattered for its tables."""
    total = sum(m.size for m in memory)
    if total > MAX_MEMORY_TOTAL:
        raise r.fail("memory", f"{total:#x} bytes in all; at most {MAX_MEMORY_TOTAL:#x}")
    ranges = [(m.address, m.address + m.size) for m in memory]
    ranges.append((rip, rip + len(code.code)))
    ranges.append((max(rsp - 0x4000, 0), rsp + 0x1000))  # the stack pages (engine.run.session)
    tables = tables_needed(ranges, paging)
    if tables > MAX_MEMORY_TABLES:
        raise r.fail(
            "memory",
            f"the ranges are spread over {tables} page tables; at most {MAX_MEMORY_TABLES} "
            "(put them closer together)",
        )


def with_kernel(sc: Scenario, kernel: str) -> Scenario:
    """*sc* on another kernel (one of KERNELS), e.g. to compare two runs.

    What only makes sense on the original kernel is dropped: a ``remove_checks`` name or
    an expected ``failed_check`` the other kernel does not have.  A dropped name is kept
    in ``not_removed`` and the scenario is renamed after its file, because its own name
    may describe the what-if ("what-if: no canonical_rip check") that is no longer in force.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    checks = spec(kernel).checks
    dropped = tuple(n for n in sc.machine.removed_checks if n not in checks)
    if dropped:
        sc = replace(
            sc,
            name=f"{Path(sc.path).stem}: {', '.join(dropped)} not in {kernel}, so not removed",
            not_removed=dropped,
        )
    machine = replace(
        sc.machine,
        kernel=kernel,
        removed_checks=tuple(n for n in sc.machine.removed_checks if n in checks),
    )
    expect = sc.expect
    if expect.failed_check not in (None, "none", *checks):
        expect = replace(
            expect,
            failed_check=None,
            given=tuple(k for k in expect.given if k != "failed_check"),
        )
    return replace(sc, kernel=kernel, machine=machine, expect=expect)


def _check_names(r: _Reader, value: Any, checks: tuple[str, ...]) -> tuple[str, ...]:
    key = "machine.remove_checks"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise r.fail(key, f"expected a list of check names, got {_kind(value)}")
    for v in value:
        if v not in checks:
            raise r.fail(key, f"expected check names from {', '.join(checks)}, got {_show(v)}")
    return tuple(sorted(set(value)))


def _paging(r: _Reader, value: Any) -> int:
    v = r.integer(value, "machine.paging", 4, 5)
    return v


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file; every problem is a :class:`ScenarioError`."""
    return parse_scenario(read_scenario_text(path), str(path))
