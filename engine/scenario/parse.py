"""Parsing scenario files (TOML): what machine to build, what user code to run, what to expect.

The format is documented in docs/scenarios.md.  Every problem is reported as a
:class:`ScenarioError` naming the file, the key and what was expected.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.constants import (
    EXCEPTION_NAMES,
    IOPL,
    MASK64,
    PT_REGS_FIELDS,
    is_canonical,
    user_space_top,
)
from engine.errors import ScenarioError
from engine.kernel.c_source import TIF_BITS
from engine.kernel.variants import DEFAULT_KERNEL, KERNELS, spec
from engine.kernel.vdso32 import vdso32
from engine.layout import VDSO32_BASE, tables_needed
from engine.scenario import usercode
from engine.scenario.model import (
    CPU_MODEL_VENDORS,
    CPU_MODELS,
    CPUS,
    DEFAULT_KSTACK_OFFSET,
    DEFAULT_PID,
    DEFAULT_RAX,
    DEFAULT_RFLAGS,
    DEFAULT_RIP,
    DEFAULT_RSP,
    DEFAULT_STEP_CAP,
    DEFAULT_TSC,
    FLAVOURED_KERNELS,
    FLAVOURS,
    MAX_MEMORY_ENTRIES,
    MAX_MEMORY_TABLES,
    MAX_MEMORY_TOTAL,
    MAX_STEP_CAP,
    SIGFRAME_FIELDS,
    USER_REGS,
    DebugSettings,
    Expect,
    MachineConfig,
    MemoryRange,
    Scenario,
    SignalConfig,
    TaskState,
    UserCode,
)
from engine.scenario.prescan import prescan
from engine.scenario.reader import read_scenario_text
from engine.trace import CheckName, ExitPath


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

    def integer(
        self,
        value: Any,
        key: str,
        lo: int = 0,
        hi: int = MASK64,
        *,
        negative: bool = True,
        decimal: bool = False,
    ) -> int:
        """*value* as an integer in lo..hi.  A negative one is taken as a 64-bit register
        holds it (two's complement) only where *negative* (a register's value, ``ax =
        -14``), never for an address, flags or a selector (``ip = -1`` is a mistake, not
        0xffffffffffffffff).  A count (*decimal*) is shown in decimal."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_kind(value)}")
        if value < 0 and lo >= 0 and value >= -(1 << 63) and hi == MASK64:
            if not negative:
                raise self.fail(
                    key,
                    f"value {value} is negative; expected {lo:#x}..{hi:#x} "
                    "(an address, flags or a selector)",
                )
            value &= MASK64
        if not lo <= value <= hi:
            if abs(value) >= 1 << 80:
                shown = "with more than 80 bits"
            else:
                shown = str(value) if decimal else f"{value:#x}"
            bounds = f"{lo}..{hi}" if decimal else f"{lo:#x}..{hi:#x}"
            raise self.fail(key, f"value {shown} out of range {bounds}")
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


def assemble_user_code(
    source: str,
    address: int,
    path: str,
    reader: _Reader,
    bits: int = 64,
    symbols: dict[str, int] | None = None,
) -> UserCode:
    """Assemble the user's AT&T code at *address* (engine.scenario.usercode), every problem a
    one-line error on the line of the statement it quotes."""
    try:
        return usercode.assemble_user_code(source, address, bits, symbols)
    except usercode.UserCodeError as exc:
        message = exc.message
        if exc.broken_string and _basic_string(reader):
            message += f": {BROKEN_BY_ESCAPE}"
        if exc.line is None:
            raise reader.fail("user.code", message) from None
        line = _statement_line(reader, source, exc.line)
        raise ScenarioError(reader.path, "user.code", message, line) from None


#: The hint for a string split by a TOML escape (``"""`` strings decode ``\n``).
BROKEN_BY_ESCAPE = (
    'the string was broken by a TOML escape (in "…" and """…""", \\n is a newline); '
    "use '''…''' for code"
)


def _basic_string(reader: _Reader) -> bool:
    """Whether ``code`` is written as a basic TOML string, whose escapes are decoded."""
    line = reader.line_of("user.code")
    if line is None:
        return False
    m = re.search(r"=\s*(['\"])", reader.text.splitlines()[line - 1])
    return m is not None and m.group(1) == '"'


def _statement_line(reader: _Reader, source: str, number: int) -> int | None:
    """The file line of line *number* of the code string.

    Without escapes it is *number* lines on from ``code =`` (one more when the string opens
    with a line break, which TOML drops); an escaped newline puts several code lines on
    one file line, so otherwise the first line from ``code =`` on that holds its text.
    """
    start = reader.line_of("user.code")
    if start is None:
        return None
    wanted = source.split("\n")[number - 1].strip()
    lines = reader.text.splitlines()
    opening = re.search(r"=\s*('''|\"\"\")\s*$", lines[start - 1])
    expected = start + number - (0 if opening else 1)
    if wanted and expected <= len(lines) and wanted in lines[expected - 1]:
        return expected
    for i in range(start - 1, len(lines)):
        if wanted and wanted in lines[i]:
            return i + 1
    return start


#: What [expect] says for "no exit", "no failed check", "no fault".
NONE = "none"

TOP_KEYS = ("name", "description", "machine", "user", "handler", "expect", "sigframe", "memory",
            "step_cap", "debug", "task", "signal")  # fmt: skip
TASK_KEYS = ("flags", "kstack_offset", "tsc")
SIGNAL_KEYS = ("number", "handler", "restorer", "siginfo")
#: Signals no handler can catch (the kernel never delivers them to one)
UNCATCHABLE = {9: "SIGKILL", 19: "SIGSTOP"}
DEBUG_KEYS = ("break", "watch", "show")
#: Entries one [debug] array may hold, and characters one entry may have (a command line).
MAX_DEBUG_ENTRIES = 16
MAX_DEBUG_TEXT = 256
MACHINE_KEYS = (
    "kernel", "cpu", "paging", "pti", "pcid", "remove_checks", "fred", "cpu_model", "flavour",
    "ia32_emulation",
)  # fmt: skip
USER_KEYS = ("rip", "code", "rsp", "rflags", "fs_base", "gs_base", "mode", *USER_REGS)
#: [user] mode: 64-bit code (CS __USER_CS), or 32-bit code in compatibility mode (CS
#: __USER32_CS, as a 32-bit program runs under a 64-bit kernel)
USER_MODES = ("64", "compat")
HANDLER_KEYS = ("set", "pid")
#: pt_regs and sigframe fields that hold an address, flags or a selector: no negative value
NOT_NEGATIVE = frozenset(("ip", "sp", "flags", "cs", "ss", "rip", "rsp", "eflags", "gs", "fs",
                          "uc_flags"))  # fmt: skip
EXPECT_KEYS = ("exit", "failed_check", "fault", "fault_cpl")


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    """Parse and validate scenario TOML *text* (named *path* in errors), table by table in
    the order the file format lists them (the first error found is the one reported)."""
    r = _Reader(path, text)
    data = _toml(text, path)
    for k in data:
        if k not in TOP_KEYS:
            raise r.fail(k, f"unknown key; expected one of: {', '.join(TOP_KEYS)}")
    if "name" not in data:
        raise ScenarioError(path, "name", "required key missing (a string naming the scenario)")
    name = r.string(data["name"], "name")
    description = r.string(data.get("description", ""), "description")
    config = _machine(r, data)
    user = _user(r, data, config)
    handler_set, pid, sigframe = _handler(r, data)
    memory = _memory(r, data, config, user)
    ks = spec(config.kernel)
    # the entry_SYSCALL_compat conditions too: a 32-bit SYSCALL decides with them
    compat = tuple(c for c in ks.compat_checks if c not in ks.checks)
    expect = _expect(r, data, (*ks.checks, *compat))
    step_cap = r.integer(
        data.get("step_cap", DEFAULT_STEP_CAP), "step_cap", 1, MAX_STEP_CAP, decimal=True
    )
    debug = _debug(r, data)
    task = _task(r, data)
    signal = _signal(r, data, user)
    return Scenario(
        name=name, path=path, description=description, kernel=config.kernel, machine=config,
        regs=user.regs, rip=user.rip, rsp=user.rsp, rflags=user.rflags | 0x2, mode=user.mode,
        fs_base=user.fs_base, gs_base=user.gs_base, code=user.code, memory=memory,
        handler_set=handler_set, pid=pid, sigframe=sigframe, expect=expect,
        step_cap=step_cap, debug=debug, task=task, signal=signal,
    )  # fmt: skip


def _toml(text: str, path: str) -> dict[str, Any]:
    """The TOML document, after the bounds on keys and nesting are checked."""
    prescan(text, path)  # before tomllib, whose work grows with the square of a key's parts
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ScenarioError(
            path, None, "not valid TOML: arrays or tables nested too deep"
        ) from None
    except ValueError as exc:  # TOMLDecodeError, or an integer too long to convert
        m = re.search(r"line (\d+)", str(exc))
        raise ScenarioError(
            path, None, f"not valid TOML: {exc}", int(m.group(1)) if m else None
        ) from None


def _machine(r: _Reader, data: dict[str, Any]) -> MachineConfig:
    mt = r.table(data, "machine", MACHINE_KEYS)
    kernel = r.string(mt.get("kernel", DEFAULT_KERNEL), "machine.kernel", KERNELS)
    checks = spec(kernel).checks
    fred = _fred(r, mt, kernel)
    return MachineConfig(
        kernel=kernel,
        cpu=r.string(mt.get("cpu", CPUS[0]), "machine.cpu", CPUS),
        paging=_paging(r, mt.get("paging", 4)),
        # 6.12 turns FRED off when PTI is on (pti_init(), arch/x86/mm/pti.c), so a FRED
        # machine has no PTI unless the file asks for it (and _fred refuses that)
        pti=r.boolean(mt.get("pti", not fred), "machine.pti"),
        pcid=r.boolean(mt.get("pcid", True), "machine.pcid"),
        removed_checks=_check_names(r, mt.get("remove_checks", []), checks),
        fred=fred,
        cpu_model=_cpu_model(r, mt, kernel),
        flavour=_flavour(r, mt, kernel),
        ia32_emulation=_ia32_emulation(r, mt, kernel),
    )


def _ia32_emulation(r: _Reader, mt: dict[str, Any], kernel: str) -> bool:
    """``[machine] ia32_emulation``: the boot switch 6.7 added (arch/x86/entry/common.c,
    ``early_param("ia32_emulation", ...)``), so false only on 6.12."""
    on = r.boolean(mt.get("ia32_emulation", True), "machine.ia32_emulation")
    if not on and kernel != "v6.12":
        raise r.fail(
            "machine.ia32_emulation",
            f'ia32_emulation = false needs kernel = "v6.12" (the switch came in 6.7); '
            f"this is {kernel}",
        )
    return on


def _flavour(r: _Reader, mt: dict[str, Any], kernel: str) -> str:
    """``[machine] flavour``: Debian's cloud or generic build, on the kernels it ships."""
    flavour = r.string(mt.get("flavour", FLAVOURS[0]), "machine.flavour", FLAVOURS)
    if "flavour" in mt and kernel not in FLAVOURED_KERNELS:
        raise r.fail(
            "machine.flavour",
            f"{kernel} has one build (with ESPFIX64); flavour is for "
            f"{' and '.join(FLAVOURED_KERNELS)}",
        )
    return flavour


def _cpu_model(r: _Reader, mt: dict[str, Any], kernel: str) -> str:
    """``[machine] cpu_model``: a model only on the kernels its patching is checked on
    (against a real trace of that kernel on that QEMU CPU model), and Intel's only."""
    model = r.string(mt.get("cpu_model", "qemu-max"), "machine.cpu_model", tuple(CPU_MODELS))
    if kernel not in CPU_MODELS[model]:
        raise r.fail(
            "machine.cpu_model",
            f'cpu_model = "{model}" is checked against a real trace of '
            f"{' and '.join(CPU_MODELS[model])} only; this is {kernel}",
        )
    vendor = CPU_MODEL_VENDORS.get(model)
    if vendor is not None and mt.get("cpu", CPUS[0]) != vendor:
        name = {"intel": "an Intel", "amd": "an AMD"}[vendor]
        raise r.fail("machine.cpu_model", f'cpu_model = "{model}" is {name} CPU: cpu = "{vendor}"')
    return model


@dataclass(frozen=True, slots=True)
class _User:
    """The [user] table, checked."""

    regs: dict[str, int]
    rip: int
    rsp: int
    rflags: int
    fs_base: int
    gs_base: int
    code: UserCode
    mode: str = "64"


def _user(r: _Reader, data: dict[str, Any], config: MachineConfig) -> _User:
    kernel = config.kernel
    user_top = (1 << (56 if config.paging == 5 else 47)) - 1
    u = r.table(data, "user", USER_KEYS)
    regs = {reg: r.integer(u[reg], f"user.{reg}") for reg in USER_REGS if reg in u}
    regs.setdefault("rax", DEFAULT_RAX)
    rip = r.integer(u.get("rip", DEFAULT_RIP), "user.rip", 0, user_top)
    # Any value: RSP is not checked by IRET or SYSRET (a what-if may want a bad one);
    # only a canonical user address gets stack pages.
    rsp = r.integer(u.get("rsp", DEFAULT_RSP), "user.rsp", negative=False)
    rflags = r.integer(u.get("rflags", DEFAULT_RFLAGS), "user.rflags", 0, 0x3FFFFF)
    if rflags & 0x20000:
        raise r.fail("user.rflags", "VM (bit 17) cannot be set in 64-bit mode")
    if rflags & IOPL:
        # Since Linux 5.5 iopl(3) sets thread.iopl_emul and opens the I/O bitmap
        # (arch/x86/kernel/ioport.c); sigreturn (FIX_EFLAGS) and ptrace (FLAG_MASK) cannot
        # set IOPL either, so no task of v5.8, 6.1 or 6.12 runs with RFLAGS.IOPL != 0.
        raise r.fail(
            "user.rflags",
            f"IOPL (bits 12-13) is {(rflags & IOPL) >> 12}, but no task of these kernels runs "
            "with IOPL != 0: since Linux 5.5 iopl() opens the TSS I/O bitmap instead",
        )
    fs_base = r.integer(u.get("fs_base", 0), "user.fs_base", negative=False)
    gs_base = r.integer(u.get("gs_base", 0), "user.gs_base", negative=False)
    for key, val in (("user.fs_base", fs_base), ("user.gs_base", gs_base)):
        if not is_canonical(val, config.paging):
            raise r.fail(key, f"expected a canonical address, got {val:#x}")
        why = _unreachable_base(kernel, val, config.paging)
        if why:
            raise r.fail(key, why)
    mode = r.string(u.get("mode", "64"), "user.mode", USER_MODES)
    if mode == "compat" and not config.ia32_emulation:
        raise r.fail(
            "user.mode",
            "no 32-bit program starts on 6.12 with ia32_emulation = false: execve refuses "
            "an i386 ELF file (compat_elf_check_arch); a far jump to __USER32_CS still works",
        )
    code_src = r.string(u.get("code", "syscall"), "user.code")
    # a 32-bit task has the vDSO's __kernel_vsyscall to call (AT_SYSINFO)
    vdso = vdso32(config.cpu) if mode == "compat" else None
    symbols = {"__kernel_vsyscall": vdso.symbols["__kernel_vsyscall"]} if vdso else None
    code = assemble_user_code(code_src, rip, r.path, r, 32 if mode == "compat" else 64, symbols)
    if vdso is not None:
        # the stack mapping reaches 0x4000 below RSP and a page above (engine.run.launch)
        for key, lo, hi in (
            ("user.rip", rip, rip + len(code.code)),
            ("user.rsp", rsp - 0x4000, rsp + 0x1000),
        ):
            _off_vdso(r, key, lo, hi)
    if mode == "compat":
        # 32-bit code addresses 4 GiB: its instructions and stack must sit below it
        if rip + len(code.code) > 1 << 32:
            raise r.fail("user.rip", f"compat mode runs 32-bit code below 4 GiB, got {rip:#x}")
        if rsp > 1 << 32:
            raise r.fail("user.rsp", f"compat mode has a 32-bit stack below 4 GiB, got {rsp:#x}")
    return _User(regs, rip, rsp, rflags, fs_base, gs_base, code, mode)


def _handler(r: _Reader, data: dict[str, Any]) -> tuple[dict[str, int], int, dict[str, int]]:
    """[handler.set], [handler] pid and [sigframe]."""
    h = r.table(data, "handler", HANDLER_KEYS)
    hs = r.table(h, "handler.set", PT_REGS_FIELDS)
    handler_set = {
        k: r.integer(v, f"handler.set.{k}", negative=k not in NOT_NEGATIVE) for k, v in hs.items()
    }
    pid = r.integer(h.get("pid", DEFAULT_PID), "handler.pid", 1, 4194304, decimal=True)

    sf = r.table(data, "sigframe", SIGFRAME_FIELDS)
    sigframe = {
        k: r.integer(v, f"sigframe.{k}", negative=k not in NOT_NEGATIVE) for k, v in sf.items()
    }

    return handler_set, pid, sigframe


def _memory(
    r: _Reader, data: dict[str, Any], config: MachineConfig, user: _User
) -> tuple[MemoryRange, ...]:
    user_top = (1 << (56 if config.paging == 5 else 47)) - 1
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
    _check_memory(r, memory, user.rip, user.code, user.rsp, config.paging)
    if user.mode == "compat":
        for i, m in enumerate(memory):
            _off_vdso(r, f"memory[{i}]", m.address, m.address + m.size)
    return tuple(memory)


def _off_vdso(r: _Reader, key: str, lo: int, hi: int) -> None:
    """A 32-bit task's vDSO page is the machine's: nothing the scenario maps may cover it."""
    if lo < VDSO32_BASE + 0x1000 and hi > VDSO32_BASE:
        raise r.fail(
            key, f"overlaps the vDSO page at {VDSO32_BASE:#x}, which a 32-bit task has mapped"
        )


def _expect(r: _Reader, data: dict[str, Any], checks: tuple[str, ...]) -> Expect:
    e = r.table(data, "expect", EXPECT_KEYS)
    fault_names = (*EXCEPTION_NAMES.values(), NONE)

    def named(key: str, choices: tuple[str, ...]) -> str | None:
        """The value of expect.*key*, one of *choices*; None for "none" or no key."""
        value = r.string(e[key], f"expect.{key}", (*choices, NONE)) if key in e else NONE
        return None if value == NONE else value

    exit_path = named("exit", tuple(p.value for p in ExitPath))
    failed_check = named("failed_check", checks)
    return Expect(
        exit=ExitPath(exit_path) if exit_path is not None else None,
        failed_check=CheckName(failed_check) if failed_check is not None else None,
        fault=named("fault", fault_names),
        fault_cpl=r.integer(e["fault_cpl"], "expect.fault_cpl", 0, 3, decimal=True)
        if "fault_cpl" in e
        else None,
        given=tuple(e),
    )


def _task(r: _Reader, data: dict[str, Any]) -> TaskState:
    """[task]: the thread_info flags set when the system call enters (each names a TIF
    bit the modelled exit work handles), current->kstack_offset and what RDTSC returns."""
    t = r.table(data, "task", TASK_KEYS)
    names = t.get("flags", [])
    if not isinstance(names, list):
        raise r.fail("task.flags", f"expected an array of strings, got {_kind(names)}")
    flags: list[str] = []
    for i, name in enumerate(names):
        flag = r.string(name, f"task.flags[{i}]", tuple(TIF_BITS))
        if flag in flags:
            raise r.fail(f"task.flags[{i}]", f"{flag} is already set")
        flags.append(flag)
    return TaskState(
        flags=tuple(flags),
        kstack_offset=r.integer(
            t.get("kstack_offset", DEFAULT_KSTACK_OFFSET), "task.kstack_offset", 0, 0xFFFFFFFF
        ),
        tsc=r.integer(t.get("tsc", DEFAULT_TSC), "task.tsc", negative=False),
    )


def _signal(r: _Reader, data: dict[str, Any], user: _User) -> SignalConfig | None:
    """[signal]: a signal pending when the system call returns, caught by a handler of the
    user's code with an sa_restorer (x86-64's __setup_rt_frame refuses a handler without
    SA_RESTORER), delivered by the modelled exit work (engine.run.signal)."""
    if "signal" not in data:
        return None
    t = r.table(data, "signal", SIGNAL_KEYS)
    for key in ("number", "handler", "restorer"):
        if key not in t:
            raise r.fail(f"signal.{key}", "required key missing")
    number = r.integer(t["number"], "signal.number", 1, 64, decimal=True)
    if number in UNCATCHABLE:
        raise r.fail("signal.number", f"{UNCATCHABLE[number]} ({number}) cannot be caught")
    if user.mode == "compat":
        raise r.fail("signal", "a 32-bit task's signal frame (ia32_setup_rt_frame) is not modelled")
    labels = {
        line.text.removesuffix(":"): line.address
        for line in user.code.listing
        if line.kind == "label"
    }

    def label(key: str) -> tuple[str, int]:
        name = r.string(t[key], f"signal.{key}")
        if name not in labels:
            known = ", ".join(sorted(labels)) or "none"
            raise r.fail(f"signal.{key}", f"no label {_show(name)} in the code (labels: {known})")
        return name, labels[name]

    (handler_name, handler), (restorer_name, restorer) = label("handler"), label("restorer")
    siginfo = r.boolean(t.get("siginfo", True), "signal.siginfo")
    return SignalConfig(number, handler, restorer, handler_name, restorer_name, siginfo)


def _debug(r: _Reader, data: dict[str, Any]) -> DebugSettings:
    """The [debug] table: what the debugger sets up when it opens the file (a lesson's
    breakpoints, watchpoints and pinned x/walk commands).  Checked here for its shape;
    what each entry names (a label, a slot, a line) is checked against the run by the
    debugger, which reports a bad one with its key."""
    d = r.table(data, "debug", DEBUG_KEYS)
    out: dict[str, tuple[str, ...]] = {}
    for key in DEBUG_KEYS:
        value = d.get(key, [])
        if not isinstance(value, list):
            raise r.fail(f"debug.{key}", f"expected an array of strings, got {_kind(value)}")
        if len(value) > MAX_DEBUG_ENTRIES:
            raise r.fail(f"debug.{key}", f"{len(value)} entries; at most {MAX_DEBUG_ENTRIES}")
        entries = []
        for i, entry in enumerate(value):
            name = f"debug.{key}[{i}]"
            text = r.string(entry, name).strip()
            if not text:
                raise r.fail(name, "empty entry")
            if len(text) > MAX_DEBUG_TEXT:
                raise r.fail(name, f"longer than {MAX_DEBUG_TEXT} characters")
            if not text.isprintable():
                raise r.fail(name, f"a control character in {_show(text)}")
            head = text.split()[0]
            if key == "show" and head != "walk" and not re.fullmatch(r"x(/\w*)?", head):
                raise r.fail(name, f"expected an x/N ADDR or walk ADDR command, got {_show(text)}")
            entries.append(text)
        out[key] = tuple(entries)
    return DebugSettings(out["break"], out["watch"], out["show"])


def read_debug(text: str, path: str) -> DebugSettings:
    """Only the [debug] table of scenario *text* (the debugger reads it from a file that
    has already run, without parsing the rest again)."""
    prescan(text, path)
    try:
        data = tomllib.loads(text)
    except (RecursionError, ValueError):
        raise ScenarioError(path, None, "not valid TOML") from None
    return _debug(_Reader(path, text), data)


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


def _unreachable_base(kernel: str, base: int, paging: int) -> str:
    """Why a task of *kernel* can never have the FS or GS base *base* ("" if it can).

    Without FSGSBASE (v5.8: user space got WRFSBASE/WRGSBASE in 5.9) the only way to set
    a base is arch_prctl(ARCH_SET_FS/GS), and do_arch_prctl_64() returns -EPERM for an
    address at or above TASK_SIZE_MAX.
    """
    task_size_max = user_space_top(paging) - 0x1000
    if spec(kernel).fsgsbase or base < task_size_max:
        return ""
    return (
        f"{base:#x} is at or above TASK_SIZE_MAX, and {kernel} has no FSGSBASE (5.9+): "
        "its only way to set a base, arch_prctl(), refuses such an address"
    )


#: The FRED kernel, as docs/scenarios.md and the error below describe it.
FRED_KERNEL = 'kernel = "v6.12" (a 6.12 built with CONFIG_X86_FRED=y, booted with fred=on)'


def _fred(r: _Reader, mt: dict[str, Any], kernel: str) -> bool:
    """``[machine] fred``: only on 6.12, without PTI and without removed SYSRET checks."""
    fred = r.boolean(mt.get("fred", False), "machine.fred")
    if not fred:
        return False
    if kernel != "v6.12":
        raise r.fail("machine.fred", f"fred = true needs {FRED_KERNEL}; this is {kernel}")
    if mt.get("pti") is True:
        raise r.fail(
            "machine.fred",
            "fred = true needs pti = false: 6.12 turns FRED off when PTI is on (pti_init)",
        )
    if mt.get("remove_checks"):
        raise r.fail(
            "machine.fred", "fred = true has no SYSRET checks to remove (ERETU is the only exit)"
        )
    return True


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
        fred=sc.machine.fred and kernel == "v6.12",  # FRED exists on 6.12 only
        ia32_emulation=sc.machine.ia32_emulation or kernel != "v6.12",  # so does the switch
        # a CPU model stays where its patching is checked; elsewhere QEMU's default
        cpu_model=sc.machine.cpu_model
        if kernel in CPU_MODELS[sc.machine.cpu_model]
        else "qemu-max",
        # a flavour stays on the kernels Debian builds in flavours
        flavour=sc.machine.flavour if kernel in FLAVOURED_KERNELS else FLAVOURS[0],
    )
    expect = sc.expect
    if expect.failed_check not in (None, *checks):
        expect = replace(
            expect,
            failed_check=None,
            given=tuple(k for k in expect.given if k != "failed_check"),
        )
    for key, base in (("user.fs_base", sc.fs_base), ("user.gs_base", sc.gs_base)):
        why = _unreachable_base(kernel, base, machine.paging)
        if why:
            raise ScenarioError(sc.path, key, why)
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
    v = r.integer(value, "machine.paging", 4, 5, decimal=True)
    return v


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file; every problem is a :class:`ScenarioError`."""
    return parse_scenario(read_scenario_text(path), str(path))
