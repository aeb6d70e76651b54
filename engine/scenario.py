"""Scenario files (TOML): what machine to build, what user code to run, what to expect.

The format is documented in docs/scenarios.md.  Every problem is reported as a
:class:`ScenarioError` naming the file, the key and what was expected.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.asm import capstone, hexify_decimals, keystone
from engine.constants import EXCEPTION_NAMES, MASK64, PT_REGS_FIELDS, is_canonical
from engine.errors import ScenarioError
from engine.kernel.variants import DEFAULT_KERNEL, KERNELS, spec
from engine.machine import MachineConfig

# Re-exported: they used to live here.
from engine.paths import bundled_scenarios_dir as bundled_scenarios_dir
from engine.paths import default_scenario_path as default_scenario_path

USER_REGS = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12",
    "r13", "r14", "r15",
)  # fmt: skip

SIGFRAME_FIELDS = (
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
    "rdx", "rax", "rcx", "rsp", "rip", "eflags", "cs", "gs", "fs", "ss", "uc_flags",
)  # fmt: skip

DEFAULT_RIP = 0x401000
DEFAULT_RSP = 0x7FFC0000F000
DEFAULT_RFLAGS = 0x246
DEFAULT_RAX = 39  # getpid: the plainest round trip
DEFAULT_PID = 1234
DEFAULT_STEP_CAP = 10_000


@dataclass(frozen=True, slots=True)
class UserCode:
    """The user's program, assembled (and verified) at its address."""

    source: str
    address: int
    code: bytes
    lines: tuple[tuple[int, str, str], ...]  # (address, user's statement, Capstone text)

    def statement_at(self, address: int) -> str | None:
        for addr, stmt, _ in self.lines:
            if addr == address:
                return stmt
        return None

    @property
    def syscall_return(self) -> int:
        """Where the first ``syscall`` of the program returns to."""
        for addr, _, text in self.lines:
            if text.split()[0] == "syscall":
                return addr + 2
        return self.address


@dataclass(frozen=True, slots=True)
class MemoryRange:
    address: int
    size: int
    access: str  # "r" "rw" "rx" "rwx"


@dataclass(frozen=True, slots=True)
class Expect:
    exit: str | None = None  # "sysret" | "iret" | "none"
    failed_check: str | None = None  # a check name | "none"
    fault: str | None = None  # "#GP" ... | "none"
    fault_cpl: int | None = None
    given: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed, validated scenario."""

    name: str
    path: str
    description: str = ""
    kernel: str = "v5.8.13"
    machine: MachineConfig = field(default_factory=MachineConfig)
    regs: dict[str, int] = field(default_factory=dict)  # user GPRs (rax..r15)
    rip: int = DEFAULT_RIP
    rsp: int = DEFAULT_RSP
    rflags: int = DEFAULT_RFLAGS
    fs_base: int = 0
    gs_base: int = 0
    code: UserCode | None = None
    memory: tuple[MemoryRange, ...] = ()
    handler_set: dict[str, int] = field(default_factory=dict)
    pid: int = DEFAULT_PID
    sigframe: dict[str, int] = field(default_factory=dict)
    expect: Expect = Expect()
    step_cap: int = DEFAULT_STEP_CAP


class _Reader:
    """Pulls typed values out of the TOML tables, with errors that name the key."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text

    def line_of(self, key: str) -> int | None:
        leaf = key.rsplit(".", 1)[-1]
        for i, line in enumerate(self.text.splitlines(), 1):
            if re.match(rf"\s*\"?{re.escape(leaf)}\"?\s*=", line):
                return i
        return None

    def fail(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(self.path, key, message, self.line_of(key))

    def table(self, data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table [{key}], got {type(value).__name__}")
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
            raise self.fail(key, f"value {value:#x} out of range {lo:#x}..{hi:#x}")
        return value

    def string(self, value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_kind(value)}")
        if choices is not None and value not in choices:
            raise self.fail(key, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a float"}.get(
        type(value), type(value).__name__
    )


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
    defs = [(i, st[:-1]) for i, st in enumerate(statements) if re.fullmatch(r"\d+:", st)]
    if not defs:
        return statements

    def name(k: int, n: str) -> str:
        return f"local_{n}_{k}"

    out = []
    for i, st in enumerate(statements):
        if re.fullmatch(r"\d+:", st):
            k = next(k for k, (j, _) in enumerate(defs) if j == i)
            out.append(name(k, st[:-1]) + ":")
            continue

        def ref(m: re.Match[str], i: int = i) -> str:
            n, way = m.group(1), m.group(2)
            if way == "b":
                cands = [k for k, (j, d) in enumerate(defs) if d == n and j < i]
                return name(cands[-1], n) if cands else m.group(0)
            cands = [k for k, (j, d) in enumerate(defs) if d == n and j > i]
            return name(cands[0], n) if cands else m.group(0)

        out.append(re.sub(r"(?<![\w$])(\d+)([bf])\b", ref, st))
    return out


def assemble_user_code(source: str, address: int, path: str, reader: _Reader) -> UserCode:
    """Assemble the user's AT&T code at *address* and check it with Capstone.

    Decimal numbers are rewritten as hex first (keystone#569); afterwards every
    number the user wrote must appear in Capstone's reading of the instruction.
    """
    statements = _rename_local_labels(_split_statements(source))
    if not statements:
        raise reader.fail("user.code", "expected at least one instruction")
    hexed = [hexify_decimals(s) for s in statements]
    # Errors quote what the user wrote ($39), not the rewrite Keystone was given ($0x27).
    written = dict(zip(hexed, statements, strict=True))
    try:
        encoding, _ = keystone().asm("\n".join(hexed), address)
    except Exception as exc:  # KsError: the message says what Keystone disliked
        raise reader.fail("user.code", f"does not assemble: {exc}") from None
    code = bytes(encoding or b"")
    insns = list(capstone().disasm(code, address))
    real = [s for s in hexed if not s.endswith(":")]
    if any(s.startswith(".") for s in real):
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
        # find the statement it dropped.
        for stmt in real:
            try:
                enc, _ = keystone().asm(stmt, address)
            except Exception:  # a label reference: judged with the whole block
                continue
            if not enc:
                raise reader.fail("user.code", f"does not assemble: {written[stmt]!r}")
        raise reader.fail(
            "user.code",
            f"{len(real)} statements assembled to {len(insns)} instructions; "
            "one instruction per statement expected",
        )
    lines: list[tuple[int, str, str]] = []
    num = re.compile(r"-?0x[0-9a-fA-F]+|-?\d+")
    for stmt, insn in zip(real, insns, strict=True):
        text = f"{insn.mnemonic} {insn.op_str}".strip()
        wanted = {int(n, 0) & MASK64 for n in num.findall(stmt.split(" ", 1)[-1])}
        got = {int(n, 0) & MASK64 for n in num.findall(insn.op_str)}
        is_branch = insn.mnemonic.startswith(("j", "call", "loop"))
        # Sign-extended immediates read back as 64-bit; compare the low parts too.
        got |= {g & 0xFFFFFFFF for g in got} | {g & 0xFF for g in got}
        if not is_branch and " " in stmt and not wanted <= got | {1, 2, 4, 8}:
            raise reader.fail(
                "user.code",
                f"Keystone assembled {written[stmt]!r} as {text!r}; refusing a silent wrong byte",
            )
        lines.append((insn.address, written[stmt], text))
    return UserCode(source, address, code, tuple(lines))


TOP_KEYS = ("name", "description", "machine", "user", "handler", "expect", "sigframe", "memory",
            "step_cap")  # fmt: skip
MACHINE_KEYS = ("kernel", "cpu", "paging", "pti", "pcid", "remove_checks")
USER_KEYS = ("rip", "code", "rsp", "rflags", "fs_base", "gs_base", *USER_REGS)
HANDLER_KEYS = ("set", "pid")
EXPECT_KEYS = ("exit", "failed_check", "fault", "fault_cpl")


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    """Parse and validate scenario TOML *text* (named *path* in errors)."""
    r = _Reader(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
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
        cpu=r.string(mt.get("cpu", "intel"), "machine.cpu", ("intel", "amd")),
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
        raise r.fail("memory", "expected an array of tables [[memory]]")
    for i, entry in enumerate(mem):
        key = f"memory[{i}]"
        if not isinstance(entry, dict):
            raise r.fail(key, "expected a table with address, size, access")
        for k in entry:
            if k not in ("address", "size", "access"):
                raise r.fail(f"{key}.{k}", "unknown key; expected one of: address, size, access")
        addr = r.integer(entry.get("address"), f"{key}.address", 0, user_top)
        size = r.integer(entry.get("size", 0x1000), f"{key}.size", 1, 1 << 24)
        if addr & 0xFFF or size & 0xFFF:
            raise r.fail(key, "address and size must be multiples of 0x1000")
        if addr + size - 1 > user_top:
            raise r.fail(f"{key}.size", "range reaches past the top of user space")
        access = r.string(entry.get("access", "rw"), f"{key}.access", ("r", "rw", "rx", "rwx"))
        memory.append(MemoryRange(addr, size, access))

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
    step_cap = r.integer(data.get("step_cap", DEFAULT_STEP_CAP), "step_cap", 1, 1_000_000)
    return Scenario(
        name=name, path=path, description=description, kernel=kernel, machine=config,
        regs=regs, rip=rip, rsp=rsp, rflags=rflags | 0x2, fs_base=fs_base, gs_base=gs_base,
        code=code, memory=tuple(memory), handler_set=handler_set, pid=pid, sigframe=sigframe,
        expect=expect, step_cap=step_cap,
    )  # fmt: skip


def with_kernel(sc: Scenario, kernel: str) -> Scenario:
    """*sc* on another kernel (one of KERNELS), e.g. to compare two runs.

    What only makes sense on the original kernel is dropped: a ``remove_checks`` name or
    an expected ``failed_check`` the other kernel does not have.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    checks = spec(kernel).checks
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
            raise r.fail(key, f"expected check names from {', '.join(checks)}, got {v!r}")
    return tuple(sorted(set(value)))


def _paging(r: _Reader, value: Any) -> int:
    v = r.integer(value, "machine.paging", 4, 5)
    return v


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file; every problem is a :class:`ScenarioError`."""
    p = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(p, None, "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(p, None, "is a directory, expected a .toml file") from None
    except UnicodeDecodeError:
        raise ScenarioError(p, None, "not UTF-8 text") from None
    except OSError as exc:
        raise ScenarioError(p, None, f"cannot read: {exc.strerror}") from None
    return parse_scenario(text, p)
