"""The engine's run of a scenario against a real kernel's single-step trace of it.

Used by ``syscall-tui compare SCENARIO --against TRACE`` (:func:`load_real_trace` reads
the file, untrusted: bounded and checked key by key, each fault one line), by
scripts/oracle (which makes the real traces) and by the gate's test_oracle_fixtures.py
(which replays every stored one offline).  A real trace is the JSON (gzip-compressed or
not) of tests/engine/oracle/fixtures/ (:func:`cut` makes it from the script's fuller
record):
{case, exit, steps:[{sym, bytes, asm, regs}], pt_regs:{where: {field: hex}}}; a step's
regs are the state before it, the last step is the user state after SYSRETQ/IRETQ.

:func:`compare` returns the differences as one line each (empty: equal), comparing
* the kernel-mode instruction sequence: mnemonic, registers and immediates in order
  (addresses, branch targets and per-CPU displacements differ by construction: the
  engine's kernel is linked elsewhere);
* RSP after each kernel instruction, except while RSP holds a CR3 value (a physical
  address of that machine's own page tables);
* every general register and RFLAGS after each instruction, except the scratch registers
  the real C function (stepped over) left clobbered, until the exit path reloads them;
* pt_regs at the call to do_syscall_64 and after it, the exit path, the user registers
  after the return (unless the engine ends in a ring-0 fault: QEMU completes an IRETQ to a
  non-canonical RIP at CPL 3, where real CPUs raise #GP inside IRETQ at CPL 0).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.errors import ScenarioError
from engine.kernel.variants import KERNELS
from engine.layout import ENTRY_TEXT, ENTRY_TEXT_SIZE
from engine.scenario.model import CPU_MODEL_VENDORS, CPU_MODELS, Scenario
from engine.scenario.parse import with_kernel
from engine.trace import Trace

GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15")  # fmt: skip
#: The registers kept per step in a stored trace.
KEEP = (*GPRS, "rip", "eflags", "cs", "ss", "fs_base", "gs_base", "k_gs_base", "cr3")
#: What the System V ABI lets a called C function clobber.
CALLER_SAVED = frozenset({"rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"})
_SUFFIXED = {"mov", "push", "pop", "cmp", "test", "xor", "and", "or", "shl", "sar", "shr",
             "add", "sub", "call", "ret", "bt", "bts", "btr", "nop", "jmp", "movabs",
             "lea"}  # fmt: skip
_ALIAS = {"jnz": "jne", "jz": "je", "jnc": "jae", "jc": "jb"}


#: /init's pid: what getpid returns in the real run.
REAL_PID = 1


#: The QEMU CPU models that have an engine [machine] cpu_model of their own; any other
#: (max, and those whose patching the engine does not model yet) runs as "qemu-max".
QEMU_CPU_MODELS = {"Skylake-Client": "skylake-client", "EPYC-Rome": "epyc-rome"}


def qemu_cpu_of(sc: Scenario, default: str) -> str | None:
    """The QEMU CPU model a scenario's own cpu_model needs (None: *default* will do)."""
    wanted = {v: k for k, v in QEMU_CPU_MODELS.items()}.get(sc.machine.cpu_model)
    return wanted if wanted and not default.startswith(wanted) else None


def on_real_machine(
    sc: Scenario,
    kernel: str,
    pid: int = REAL_PID,
    flavour: str | None = None,
    qemu_cpu: str | None = None,
) -> Scenario:
    """*sc* as the oracle's machine runs it: that kernel (and Debian *flavour*, when
    given), on the engine's CPU model for *qemu_cpu* (when given), no PCID (QEMU's TCG
    has none), the real task's pid (/init's, or its child's under a ptrace parent).
    Everything else (PTI, paging, the user state) is the scenario's."""
    sc = with_kernel(sc, kernel)
    machine = replace(sc.machine, pcid=False)
    if flavour is not None:
        machine = replace(machine, flavour=flavour)
    if qemu_cpu is not None:
        # the engine's model of that CPU, and its vendor (an EPYC is an AMD CPU; QEMU's
        # TCG runs SYSCALL and SYSRET one way for both, which getpid-like runs do not see)
        model = QEMU_CPU_MODELS.get(qemu_cpu.split(",")[0], "qemu-max")
        if kernel not in CPU_MODELS[model]:
            model = "qemu-max"
        vendor = CPU_MODEL_VENDORS.get(model, machine.cpu)
        machine = replace(machine, cpu_model=model, cpu=vendor)
    return replace(sc, machine=machine, pid=pid)


def flavour_of(package: str) -> str:
    """cloud or generic, from a Debian kernel package's name."""
    return "cloud" if "-cloud-" in package else "generic"


def cut(doc: dict) -> dict:
    """A fuller real trace cut down to what :func:`compare` reads (and a fixture keeps)."""
    steps = [
        {"sym": s["sym"], "bytes": s["bytes"], "asm": s["asm"],
         "regs": {k: s["regs"][k] for k in KEEP}}
        for s in doc["steps"]
    ]  # fmt: skip
    keep = ("case", "scenario", "pid", "kernel", "package", "cpu", "cmdline", "exit", "exception")
    out = {k: doc[k] for k in keep if k in doc}
    return {**out, "steps": steps, "pt_regs": doc["pt_regs"]}


def is_user_state(step: dict) -> bool:
    """The step after SYSRETQ/IRETQ: no instruction recorded, CPL 3."""
    return not step["asm"] and int(step["regs"]["cs"], 16) & 3 == 3


def canonical(text: str) -> tuple[str, tuple[str, ...], tuple[int, ...]]:
    """(mnemonic, registers, immediates) of one AT&T instruction, gdb's, objdump's or
    Capstone's (the handed-in traces in test_oracle.py and the fixtures use it alike)."""
    text = text.split("#")[0].split("<")[0].strip()
    mnem, _, ops = text.partition(" ")
    mnem = _ALIAS.get(mnem, mnem)
    if mnem[-1:] in "bwlq" and mnem[:-1] in _SUFFIXED:
        mnem = mnem[:-1]
    regs = tuple(re.findall(r"%(\w+)", ops))
    if mnem == "xchg" and regs == ("ax", "ax"):  # the 2-byte NOP, as objdump prints it
        mnem, regs = "nop", ()
    imms = tuple(int(v, 0) & (2**64 - 1) for v in re.findall(r"\$(-?(?:0x)?[0-9a-f]+)", ops))
    return mnem, regs, imms


def destination(text: str) -> str | None:
    """The register an instruction writes, when its last operand is one (AT&T order)."""
    mnem, _, ops = text.partition(" ")
    regs = re.findall(r"%(\w+)", ops)
    if not regs or not re.search(r"%\w+\s*$", ops) or mnem.startswith(("push", "cmp", "test")):
        return None
    return regs[-1]


def kernel_steps(trace: Trace) -> list:
    """The engine's steps in the entry text (its C function is modelled, and the real
    trace steps over the real one)."""
    return [s for s in trace.steps if ENTRY_TEXT <= s.rip < ENTRY_TEXT + ENTRY_TEXT_SIZE]


MASK64 = (1 << 64) - 1
#: The kernel's entry point of each exception the engine can end in.
EXCEPTION_ENTRY = {
    "#DB": "asm_exc_debug", "#GP": "asm_exc_general_protection", "#PF": "asm_exc_page_fault",
    "#SS": "asm_exc_stack_segment", "#NP": "asm_exc_segment_not_present",
    "#UD": "asm_exc_invalid_op", "#DF": "asm_exc_double_fault",
}  # fmt: skip
#: What QEMU's gdbstub reports as 0 while CS is not a 64-bit segment (target/i386/
#: gdbstub.c: outside HF_CS64 it sends the low 32 bits of the eight legacy registers
#: and zeros for R8-R15), so the real trace does not show them after an IRETQ to
#: 32-bit code.
HIDDEN_IN_COMPAT = frozenset({"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"})
#: Selectors of 64-bit code segments in Linux's GDT: __KERNEL_CS and __USER_CS.
LONG_MODE_CS = frozenset({0x10, 0x33})


def _long_mode_cs(step: dict) -> bool:
    return int(step["regs"]["cs"], 16) in LONG_MODE_CS


def _hex(d: dict) -> dict[str, int]:
    return {k: int(v, 16) for k, v in d.items()}


#: THREAD_SIZE on x86-64 (16 KiB, 32 KiB with KASAN): the task stack below its top.
THREAD_SIZE = 0x8000


def _task_stack_shift(kinstr: list[dict], steps: list[dict], ours: list) -> Callable[[int], int]:
    """Engine values on the task stack, moved to where the real task's stack is.

    The task stack is per task: the engine's sits where /init's does; under a ptrace
    parent the real scenario runs in a child whose stack is elsewhere.  Its top is what
    the entry loads with ``mov %gs:cpu_current_top_of_stack, %rsp``, on both sides."""
    for i, s in enumerate(kinstr):
        text = s["asm"].split("#")[0].replace(" ", "")
        if "%gs:" in text and text.endswith(",%rsp") and i < len(ours) and i + 1 < len(steps):
            real_top, our_top = int(steps[i + 1]["regs"]["rsp"], 16), ours[i].regs.rsp
            delta = real_top - our_top
            return lambda v: v + delta if our_top - THREAD_SIZE <= v <= our_top else v
    return lambda v: v


def compare(real: dict, trace: Trace) -> list[str]:
    """Where *trace* (the engine) parts from *real*; [] when it does not."""
    out: list[str] = []
    steps = real["steps"]
    kinstr = [s for s in steps if s["asm"]]
    ours = kernel_steps(trace)
    for i, (r, o) in enumerate(zip(kinstr, ours, strict=False)):
        if canonical(r["asm"]) != canonical(o.text):
            out.append(f"instruction {i}: real `{r['asm'].strip()}` vs engine `{o.text}`")
            return out  # everything after a different instruction differs too
    if len(ours) != len(kinstr):
        out.append(f"instructions: real {len(kinstr)} vs engine {len(ours)}")
        return out
    cr3s = {int(s["regs"]["cr3"], 16) for s in steps}

    def is_cr3(value: int) -> bool:
        return value in cr3s or value & ~0x1800 in cr3s

    def stepped_over(i: int) -> bool:  # the C call: gdb's nexti lands right after it
        rip, after = (int(kinstr[j]["regs"]["rip"], 16) for j in (i, i + 1))
        return kinstr[i]["asm"].startswith("call") and after == rip + len(kinstr[i]["bytes"]) // 2

    call = next((i for i in range(len(kinstr) - 1) if stepped_over(i)), None)
    # The engine's run ends in a ring-0 fault (IRETQ to a non-canonical RIP, or to a bad
    # SS): QEMU completed that IRETQ, so what the real trace shows after it is no ground
    # truth (TCG's helper_iret does not check the RIP it loads).
    ring0_fault = trace.fault is not None and trace.fault.cpl == 0
    shift = _task_stack_shift(kinstr, steps, ours)
    clobbered: set[str] = set()
    for i, o in enumerate(ours):
        if i + 1 >= len(steps) or (ring0_fault and i == len(ours) - 1):
            break
        compat = i + 2 == len(steps) and not _long_mode_cs(steps[i + 1])
        after = _hex(steps[i + 1]["regs"])
        if i == call:
            before = _hex(steps[i]["regs"])
            clobbered = {r for r in GPRS if after[r] != before[r] and r != "rsp"}
            if not clobbered <= CALLER_SAVED:
                out.append(f"step {i}: the real C changed callee-saved {clobbered - CALLER_SAVED}")
            continue  # the engine's modelled C function ends elsewhere
        clobbered.discard(destination(o.text) or "")
        for r in GPRS:
            if r in clobbered or is_cr3(after[r]) or (compat and r in HIDDEN_IN_COMPAT):
                continue
            mask = 0xFFFFFFFF if compat else MASK64
            if shift(getattr(o.regs, r)) & mask != after[r]:
                out.append(f"step {i} `{o.text}`: {r} engine {getattr(o.regs, r):#x} "
                           f"vs real {after[r]:#x}")  # fmt: skip
        if o.regs.rflags != after["eflags"]:
            out.append(f"step {i} `{o.text}`: RFLAGS engine {o.regs.rflags:#x} "
                       f"vs real {after['eflags']:#x}")  # fmt: skip
    if clobbered and trace.exit is not None:
        out.append(f"registers the real C clobbered and the exit never reloaded: {clobbered}")
    for where, got in (("at call do_syscall_64", trace.pt_regs_at_call),
                       ("after do_syscall_64 returned", trace.pt_regs_after_call)):  # fmt: skip
        if where not in real["pt_regs"] and trace.exit is None and real["exit"] == "none":
            continue  # the task exited: the real do_syscall_64 never returned
        want = _hex(real["pt_regs"].get(where, {}))
        for k in sorted(set(want) | set(got)):
            if want.get(k) != got.get(k):
                w, g = (("-" if v is None else hex(v)) for v in (want.get(k), got.get(k)))
                out.append(f"pt_regs {where}: {k} engine {g} vs real {w}")
    # A ring-0 fault: the real kernel must have entered that exception's handler (after
    # an IRETQ to a non-canonical RIP QEMU enters none; see ring0_fault above).
    handler = EXCEPTION_ENTRY.get(trace.fault.name, "?") if ring0_fault and trace.fault else ""
    if real.get("exception", "") and real["exception"] != handler:
        out.append(f"exception: real {real['exception']} vs engine {handler or 'none'}")
    exit_path = str(trace.exit) if trace.exit is not None else "none"
    if exit_path != real["exit"]:
        out.append(f"exit: engine {exit_path} vs real {real['exit']}")
    if steps and is_user_state(steps[-1]) and not ring0_fault and trace.final is not None:
        want = _hex(steps[-1]["regs"])
        final = trace.final
        compat = not _long_mode_cs(steps[-1])
        for r in (*GPRS, "rip", "cs", "ss", "fs_base", "gs_base"):
            if compat and r in HIDDEN_IN_COMPAT:
                continue
            mask = 0xFFFFFFFF if compat and r in (*GPRS, "rip") else MASK64
            if getattr(final, r) & mask != want[r]:
                out.append(f"user state: {r} engine {getattr(final, r):#x} vs real {want[r]:#x}")
        if final.rflags != want["eflags"]:
            out.append(f"user state: RFLAGS engine {final.rflags:#x} vs real {want['eflags']:#x}")
        if final.kernel_gs_base != want["k_gs_base"]:
            out.append(f"user state: KERNEL_GS_BASE engine {final.kernel_gs_base:#x} "
                       f"vs real {want['k_gs_base']:#x}")  # fmt: skip
    return out


# -- a real trace read from a file (untrusted) ----------------------------------------

#: Bounds on a real trace file: its size on disk, once decompressed, and its steps (a real
#: entry-and-exit is about a hundred; the engine's own step cap is 100,000).
MAX_FILE_BYTES = 8 << 20
MAX_JSON_BYTES = 64 << 20
MAX_STEPS = 100_000
MAX_TEXT = 200  # an instruction's text, a symbol, a package name
_HEX = re.compile(r"0x[0-9a-f]{1,16}")
_BYTES = re.compile(r"(?:[0-9a-f]{2}){0,15}")
_EXITS = ("sysret", "iret", "eretu", "none")
PT_REGS_WHERE = ("at call do_syscall_64", "after do_syscall_64 returned")


class RealTraceError(ScenarioError):
    """A real trace file that cannot be used; one line naming the key."""


def load_real_trace(path: str | Path) -> dict[str, Any]:
    """The real trace in *path* (JSON, gzip-compressed or not), checked: every key the
    differ reads is there with its type and range, nothing is unbounded.  Raises
    RealTraceError with one line otherwise."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RealTraceError(name, None, f"cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise RealTraceError(name, None, f"larger than {MAX_FILE_BYTES >> 20} MiB")
    if raw[:2] == b"\x1f\x8b":
        unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            # at most MAX_JSON_BYTES + 1 decompressed: a small file that inflates to
            # gigabytes stops there
            raw = unpack.decompress(raw, MAX_JSON_BYTES + 1)
        except zlib.error as exc:
            raise RealTraceError(name, None, f"not a gzip file: {exc}") from None
        if len(raw) > MAX_JSON_BYTES:
            raise RealTraceError(name, None, f"larger than {MAX_JSON_BYTES >> 20} MiB unpacked")
        if not unpack.eof:
            raise RealTraceError(name, None, "not a gzip file: it ends before its data does")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RealTraceError(name, None, f"not JSON: {str(exc)[:80]}") from None
    _check(name, doc)
    return doc


def _check(name: str, doc: object) -> None:
    def fail(key: str, why: str) -> RealTraceError:
        return RealTraceError(name, key, why)

    def text(node: dict, key: str, where: str, pattern: re.Pattern[str] | None = None) -> str:
        value = node.get(key)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise fail(f"{where}{key}", f"expected a string of at most {MAX_TEXT} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise fail(f"{where}{key}", f"not of the form {pattern.pattern}: {value[:40]!r}")
        if not value.isprintable():
            # a line break or escape would reach the report's one-line differences
            raise fail(f"{where}{key}", f"a control character in {value[:40]!r}")
        return value

    def registers(node: object, where: str, keys: tuple[str, ...] | None) -> None:
        if not isinstance(node, dict) or len(node) > 64:
            raise fail(where.rstrip("."), "expected a table of hex values")
        for key in keys or tuple(node):
            if not isinstance(key, str):
                raise fail(where.rstrip("."), "expected a table of hex values")
            text(node, key, where, _HEX)

    if not isinstance(doc, dict):
        raise fail("", "expected a JSON object (a real trace)")
    kernel = text(doc, "kernel", "")
    if kernel not in KERNELS:
        raise fail("kernel", f"expected one of {', '.join(KERNELS)}, got {kernel[:20]!r}")
    for key in ("case", "package", "cpu"):
        text(doc, key, "")
    if text(doc, "exit", "") not in _EXITS:
        raise fail("exit", f"expected one of {', '.join(_EXITS)}")
    if "exception" in doc:
        text(doc, "exception", "")
    pid = doc.get("pid", REAL_PID)
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 1 << 22:
        raise fail("pid", "expected a pid (1 to 4194303)")
    steps = doc.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise fail("steps", f"expected a list of 1 to {MAX_STEPS} steps")
    for i, step in enumerate(steps):
        where = f"steps[{i}]."
        if not isinstance(step, dict):
            raise fail(where.rstrip("."), "expected a table")
        text(step, "sym", where)
        text(step, "asm", where)
        text(step, "bytes", where, _BYTES)
        registers(step.get("regs"), f"{where}regs.", KEEP)
    pt_regs = doc.get("pt_regs")
    if not isinstance(pt_regs, dict) or not set(pt_regs) <= set(PT_REGS_WHERE):
        raise fail("pt_regs", f"expected a table with {' and '.join(PT_REGS_WHERE)}")
    for where, slots in pt_regs.items():
        registers(slots, f"pt_regs.{where}.", None)


@dataclass(frozen=True, slots=True)
class AgainstRow:
    """One kernel instruction of the real trace beside the engine's at the same place."""

    index: int
    real: str | None  # the real instruction (gdb's text), None past its end
    real_at: str  # its symbol+offset
    engine: str | None  # the engine's instruction, None past its end
    same: bool  # the same mnemonic, registers and immediates


@dataclass(frozen=True, slots=True)
class Against:
    """A scenario's engine run against a real trace of it."""

    kernel: str
    package: str
    cpu: str
    rows: tuple[AgainstRow, ...]
    differences: tuple[str, ...]  # one line each, empty when the two agree

    @property
    def equal(self) -> bool:
        return not self.differences


def on_the_real_machine(sc: Scenario, real: dict[str, Any]) -> Scenario:
    """*sc* on the machine *real* was traced on (kernel, flavour, CPU model, the task's
    pid; no PCID, as under QEMU's TCG)."""
    return on_real_machine(
        sc, real["kernel"], real.get("pid", REAL_PID), flavour_of(real["package"]), real["cpu"]
    )


def against(real: dict[str, Any], trace: Trace) -> Against:
    """The engine's *trace* beside *real* (as :func:`load_real_trace` returns it),
    instruction by instruction, with :func:`compare`'s differences."""
    kinstr = [s for s in real["steps"] if s["asm"]]
    ours = kernel_steps(trace)
    rows = []
    for i in range(max(len(kinstr), len(ours))):
        r = kinstr[i] if i < len(kinstr) else None
        o = ours[i] if i < len(ours) else None
        same = r is not None and o is not None and canonical(r["asm"]) == canonical(o.text)
        rows.append(
            AgainstRow(
                i,
                r["asm"].strip() if r else None,
                r["sym"] if r else "",
                o.text if o else None,
                same,
            )
        )
    return Against(
        real["kernel"], real["package"], real["cpu"], tuple(rows), tuple(compare(real, trace))
    )
