"""The stub driven by the real gdb binary in batch mode, compared with ``trace --json``.

Each test starts ``python -m tui gdb SCENARIO --port 0`` (an ephemeral port, read
back from its output, so tests can run in parallel), runs gdb with -batch against
it, and checks what gdb printed against the JSON form of the same trace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT, SCENARIOS

GDB = shutil.which("gdb")
TIMEOUT = 60

if GDB is None and not os.environ.get("CI"):
    pytest.skip("gdb is not installed (.ci/run installs it)", allow_module_level=True)

REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15", "rip", "cs", "ss", "fs_base", "gs_base", "cr3")  # fmt: skip
# trace --json name → gdb register name
GDB_NAME = {"rflags": "eflags", "kernel_gs_base": "k_gs_base"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@cache
def trace_json(scenario: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tui", "trace", str(SCENARIOS / scenario), "--json"],
        capture_output=True, text=True, timeout=TIMEOUT, env=_env(), check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout)


@contextmanager
def stub(scenario: str | Path, *options: str) -> Iterator[int]:
    """A running stub for *scenario* (with extra command-line *options*); yields its port."""
    path = scenario if isinstance(scenario, Path) else SCENARIOS / scenario
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "gdb", str(path), "--port", "0", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
    )  # fmt: skip
    # If the stub never says where it listens, the timer ends it and the read below ends.
    watchdog = threading.Timer(TIMEOUT, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        watchdog.cancel()
        assert port, proc.stderr.read() if proc.stderr else "no port"
        yield port
        assert proc.wait(timeout=TIMEOUT) == 0  # the stub ends when gdb leaves
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)


def gdb(port: int, *commands: str) -> str:
    """Run gdb -batch with *commands* after connecting; its stdout and stderr."""
    args = [GDB or "gdb", "-nx", "-q", "-batch", "-ex", "set pagination off",
            "-ex", f"target remote 127.0.0.1:{port}"]  # fmt: skip
    for c in commands:
        args += ["-ex", c]
    out = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    return out.stdout + out.stderr


def print_regs(tag: str) -> str:
    fmt = " ".join(f"{r}=%#lx" for r in (*REGS, "eflags", "k_gs_base"))
    # eflags has a flags type, which gdb will not cast but prints with %lx as it is
    vals = ", ".join(f"${r}" if r == "eflags" else f"(unsigned long)${r}"
                     for r in (*REGS, "eflags", "k_gs_base"))  # fmt: skip
    return f'printf "{tag} {fmt}\\n", {vals}'


def parse_regs(out: str, tag: str) -> list[dict[str, str]]:
    rows = []
    for line in out.splitlines():
        if line.startswith(tag + " "):
            pairs = (kv.split("=") for kv in line.split()[1:])
            rows.append({k: hex(int(v, 16)) for k, v in pairs})
    return rows


def json_regs(step: dict) -> dict[str, str]:
    return {GDB_NAME.get(k, k): v for k, v in step["regs"].items()}


def test_stepi_registers_match_the_trace_at_every_step() -> None:
    t = trace_json("getpid.toml")
    n = len(t["steps"])
    cmds = []
    for i in range(n):
        cmds += ["stepi", print_regs(f"STEP{i}")]
    with stub("getpid.toml") as port:
        out = gdb(port, *cmds)
    for i, step in enumerate(t["steps"]):
        got = parse_regs(out, f"STEP{i}")
        assert got, f"no registers for step {i}:\n{out[-2000:]}"
        assert got[0] == json_regs(step), f"step {i}"


def test_reverse_stepi_returns_to_earlier_steps_and_stops_at_the_start() -> None:
    t = trace_json("getpid.toml")
    with stub("getpid.toml") as port:
        out = gdb(
            port,
            "stepi 12", print_regs("FWD"),
            "reverse-stepi 3", print_regs("BACK"),
            "stepi", print_regs("AGAIN"),
            "reverse-stepi 20", print_regs("START"),
        )  # fmt: skip
    assert parse_regs(out, "FWD")[0] == json_regs(t["steps"][11])
    assert parse_regs(out, "BACK")[0] == json_regs(t["steps"][8])
    assert parse_regs(out, "AGAIN")[0] == json_regs(t["steps"][9])
    assert parse_regs(out, "START")[0]["rip"] == "0x401000"  # before the first instruction
    assert "No more reverse-execution history" in out


def test_pt_regs_in_memory_at_the_call_match_the_trace() -> None:
    t = trace_json("write-hello.toml")
    at_call = t["pt_regs"]["at_call"]
    with stub("write-hello.toml") as port:
        out = gdb(
            port, "break do_syscall_64", "continue",
            # do_syscall_64(nr, regs): RSI points at struct pt_regs (21 words), just
            # above the return address the call pushed
            'printf "REGSPTR %#lx\\n", $rsi', "x/22gx $rsp",
        )  # fmt: skip
    assert re.search(r"Breakpoint 1, 0x[0-9a-f]+ in do_syscall_64", out), out
    ptr = re.search(r"REGSPTR (0x[0-9a-f]+)", out)
    assert ptr, out
    base = int(ptr.group(1), 16)
    words: dict[int, int] = {}
    for m in re.finditer(r"^(0x[0-9a-f]+):\s+(.*)$", out, re.M):
        addr = int(m.group(1), 16)
        for i, v in enumerate(m.group(2).split()):
            words[addr + 8 * i] = int(v, 16)
    fields = list(at_call)  # pt_regs order, r15 first (lowest address)
    assert len(fields) == 21
    for i, name in enumerate(fields):
        assert hex(words[base + 8 * i]) == at_call[name], name
    # and the stack slots the trace shows at that step
    step = next(s for s in t["steps"] if s["label"] == "do_syscall_64")
    before = t["steps"][step["step"] - 2]  # steps are numbered from 1: the one before it
    for slot in before["stack"]:
        assert hex(words.get(int(slot["address"], 16), -1)) == slot["value"], slot


def test_label_breakpoint_and_reverse_continue() -> None:
    name = "swapgs_restore_regs_and_return_to_usermode"
    t = trace_json("check-rcx-eq-rip.toml")
    first = next(s for s in t["steps"] if s["label"] == name)
    at = t["steps"][first["step"] - 2]  # the state where the label's instruction is next
    with stub("check-rcx-eq-rip.toml") as port:
        out = gdb(
            port, f"break {name}", "continue", print_regs("HIT"), "info symbol $pc",
            "break entry_SYSCALL_64", "reverse-continue", print_regs("BACK"),
        )  # fmt: skip
    assert f"Breakpoint 1, {first['rip']} in {name} ()" in out, out
    assert parse_regs(out, "HIT")[0] == json_regs(at)
    assert f"{name} in section .text" in out
    syscall = next(s for s in t["steps"] if s["text"] == "syscall")
    assert parse_regs(out, "BACK")[0] == json_regs(syscall)


def test_run_ending_normally_exits() -> None:
    t = trace_json("getpid.toml")
    with stub("getpid.toml") as port:
        out = gdb(port, "continue", print_regs("END"), "continue")
    assert "No more reverse-execution history" in out
    assert parse_regs(out, "END")[0] == json_regs(t["steps"][-1])
    assert "exited normally" in out


def test_exit_status_reaches_gdb(tmp_path: Path) -> None:
    sc = tmp_path / "exit3.toml"
    sc.write_text('name = "exit(3)"\n[user]\ncode = "mov $3, %edi; mov $60, %eax; syscall"\n')
    with stub(sc) as port:
        out = gdb(port, "continue", "continue")
    assert "exited with code 03" in out, out


def test_fault_stops_with_its_signal() -> None:
    t = trace_json("cve-2012-0217-intel.toml")
    assert t["fault"]["name"] == "#GP"
    with stub("cve-2012-0217-intel.toml") as port:
        out = gdb(port, "continue", print_regs("FAULT"), "continue")
    assert "Program received signal SIGSEGV" in out, out
    assert parse_regs(out, "FAULT")[0]["rip"] == t["fault"]["rip"]
    assert "Program terminated with signal SIGSEGV" in out


def test_memory_through_each_steps_page_tables() -> None:
    t = trace_json("getpid.toml")
    steps = t["steps"]
    top = int(steps[-1]["stack"][0]["address"], 16)  # pt_regs->ss, the first word pushed
    user_rip = int(steps[0]["rip"], 16)
    # stepi N from the start runs steps 1..N (the JSON numbers steps from 1)
    cr3 = next(s["step"] for s in steps if any(e["kind"] == "cr3_switch" for e in s["events"]))
    pushed = next(s for s in steps if s["stack"])
    assert int(pushed["stack"][0]["address"], 16) == top and pushed["step"] > cr3 + 1
    with stub("getpid.toml") as port:
        out = gdb(
            port,
            f"x/gx {top:#x}",  # user CR3 at the start: the task stack is not mapped
            f"x/2bx {user_rip:#x}", "x/gx 0",  # the user's code is; page 0 is not
            f"stepi {cr3}", 'echo KERNEL-CR3\\n', f"x/gx {top:#x}",  # mapped, not yet written
            f"stepi {pushed['step'] - cr3}", 'echo PUSHED\\n', f"x/gx {top:#x}",
        )  # fmt: skip
    assert f"Cannot access memory at address {top:#x}" in out
    assert "Cannot access memory at address 0x0" in out
    assert re.search(rf"{user_rip:#x}:\s+0xb8\s+0x27", out), out
    assert re.search(rf"KERNEL-CR3\n{top:#x}:\s+0x0+\n", out), out
    m = re.search(rf"PUSHED\n{top:#x}:\s+(0x[0-9a-f]+)\n", out)
    assert m and hex(int(m.group(1), 16)) == pushed["stack"][0]["value"], out


def test_target_description_has_the_system_registers() -> None:
    with stub("getpid.toml") as port:
        out = gdb(port, "info registers cr0 cr3 cr4 efer fs_base gs_base k_gs_base ds es fs gs")
    for name in ("cr0", "cr3", "cr4", "efer", "fs_base", "gs_base", "k_gs_base", "ds", "gs"):
        assert re.search(rf"^{name}\s+0x[0-9a-f]+", out, re.M), name
    assert re.search(r"^efer\s+0xd01", out, re.M)  # SCE | LME | LMA | NXE, read from the CPU


def test_watch_on_a_pt_regs_slot_stops_where_it_is_written_both_ways() -> None:
    t = trace_json("getpid.toml")
    ax = next(s for s in t["steps"][-1]["stack"] if s["slot"] == "ax")["address"]
    at_call = int(t["pt_regs"]["at_call"]["ax"], 16) - (1 << 64)  # -ENOSYS, as gdb's long
    after = int(t["pt_regs"]["after_call"]["ax"], 16)  # what getpid returned
    with stub("getpid.toml") as port:
        out = gdb(
            port, f"watch *(long *){ax}", "continue", "continue", "continue",
            "reverse-continue",
        )  # fmt: skip
    changes = re.findall(r"Old value = (\S+)\nNew value = (\S+)", out)
    assert changes == [
        # PUSH_AND_CLEAR_REGS's pushq $-ENOSYS; gdb last read the slot under user CR3
        ("<unreadable>", str(at_call)),
        (str(at_call), str(after)),  # do_syscall_64's return value
        (str(after), str(at_call)),  # backwards: just before do_syscall_64 wrote it
    ], out
    assert "No more reverse-execution history" in out
