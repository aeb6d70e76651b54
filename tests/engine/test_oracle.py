"""The 6.1 and 6.12 kernels against single-step traces of the real ones.

tests/engine/oracle/ holds the traces (see extract.py there): Debian's 6.1.192 and
6.12.117 kernels stepped under QEMU TCG with PTI on and no PCID, for getpid with
every register patterned (case a, SYSRET) and the same with TF set (case b, IRET);
every ``<kernel>_<case>.json`` there is a case.  Each is replayed as a scenario on
the same machine (pcid = false): the user registers SYSCALL found (RFLAGS from R11),
then ``syscall``; whatever the C side wrote into pt_regs besides getpid's return
value is given as ``[handler.set]``, as ptrace would.  For each kernel the run must
match the real one:

* the kernel-mode instruction sequence: mnemonics, registers and immediates, in
  order (addresses and displacements may differ; the C function is modelled, as
  the real trace steps over it);
* RSP before every kernel instruction (the task stack and the trampoline stack sit
  where the real kernel has them), except while RSP holds a CR3 value, which is a
  physical address of this machine's page tables;
* every general register and RFLAGS after each instruction, except the scratch
  registers the real C function left clobbered, until the exit path reloads them;
* pt_regs at the call and after it, the exit path, the final user registers.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

from engine import Session, parse_scenario
from engine.checks import FACTS
from engine.compare.real import canonical, destination
from engine.kernel.variants import C_CHECKS, KERNELS, spec
from engine.layout import ENTRY_TEXT, ENTRY_TEXT_SIZE
from engine.trace import Trace

ORACLE = Path(__file__).parent / "oracle"
#: (kernel, case, CPU model): QEMU's default model here, its Skylake-Client (MDS: 6.1
#: runs CLEAR_CPU_BUFFERS' VERW) under skylake-client/
MODEL_DIRS = {"qemu-max": ORACLE, "skylake-client": ORACLE / "skylake-client"}
CASES = [
    (*p.stem.split("_"), model)
    for model, folder in MODEL_DIRS.items()
    for p in sorted(folder.glob("v*_*.json"))
]
#: What each traced case is about, where the exit alone does not say it.
FAILED_CHECK = {"a": None, "b": "no_rf_tf"}
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15")  # fmt: skip


@cache
def oracle(kernel: str, case: str, model: str = "qemu-max") -> dict:
    return json.loads((MODEL_DIRS[model] / f"{kernel}_{case}.json").read_text())


def scenario_text(kernel: str, case: str, model: str = "qemu-max") -> str:
    """The traced user state as a scenario: the registers SYSCALL found, then syscall."""
    doc = oracle(kernel, case, model)
    entry = {k: int(v, 16) for k, v in doc["steps"][0]["regs"].items()}
    at, after = (
        {k: int(v, 16) for k, v in doc["pt_regs"][w].items()}
        for w in ("at call do_syscall_64", "after do_syscall_64 returned")
    )
    regs = "\n".join(f"{r} = {entry[r]:#x}" for r in GPRS if r not in ("rcx", "r11", "rsp"))
    handler = f"pid = {after['ax']:#x}\n" if at["orig_ax"] == 39 else ""
    writes = {k: v for k, v in after.items() if v != at[k] and not (handler and k == "ax")}
    if writes:
        handler += "[handler.set]\n" + "".join(f"{k} = {v:#x}\n" for k, v in writes.items())
    # SYSCALL's R11 is the user RFLAGS (TF included: the engine models SYSCALL masking it)
    return (
        f'name = "oracle {kernel} case {case}"\n[machine]\nkernel = "{kernel}"\npcid = false\n'
        f'cpu_model = "{model}"\n'
        f'[user]\nrip = {entry["rcx"] - 2:#x}\ncode = "syscall"\nrsp = {entry["rsp"]:#x}\n'
        f"rflags = {entry['r11']:#x}\nfs_base = {entry['fs_base']:#x}\n{regs}\n"
        f"[handler]\n{handler}"
    )


@cache
def replay(kernel: str, case: str, model: str = "qemu-max") -> Trace:
    return Session(parse_scenario(scenario_text(kernel, case, model), "oracle.toml")).run()


def kernel_steps(trace: Trace) -> list:
    """Steps that ran an instruction of the entry text (the C function is modelled)."""
    return [s for s in trace.steps if ENTRY_TEXT <= s.rip < ENTRY_TEXT + ENTRY_TEXT_SIZE]


@pytest.mark.parametrize(("kernel", "case", "model"), CASES)
def test_instruction_sequence_matches_the_real_kernel(kernel: str, case: str, model: str) -> None:
    real = [canonical(s["asm"]) for s in oracle(kernel, case, model)["steps"][:-1]]
    ours = [canonical(s.text) for s in kernel_steps(replay(kernel, case, model))]
    for i, (r, o) in enumerate(zip(real, ours, strict=False)):
        assert r == o, f"step {i}: real {r} vs ours {o}"
    assert len(ours) == len(real)


@pytest.mark.parametrize(("kernel", "case", "model"), CASES)
def test_rsp_and_stack_layout_match(kernel: str, case: str, model: str) -> None:
    steps = oracle(kernel, case, model)["steps"]
    trace = replay(kernel, case, model)
    ours = kernel_steps(trace)
    cr3s = {int(s["regs"]["cr3"], 16) for s in steps}
    for i, s in enumerate(ours):
        if s.text.startswith("call"):
            continue  # ours stops inside the C function; the real trace stepped over it
        real = int(steps[i + 1]["regs"]["rsp"], 16)  # before the next = after this one
        if real in cr3s or real & ~0x1800 in cr3s:
            continue  # RSP holds a CR3 value (SWITCH_TO_KERNEL_CR3's scratch register)
        assert s.regs.rsp == real, f"step {i} {s.text}: RSP {s.regs.rsp:#x} vs real {real:#x}"


@pytest.mark.parametrize(("kernel", "case", "model"), CASES)
def test_registers_before_the_call_match(kernel: str, case: str, model: str) -> None:
    steps = oracle(kernel, case, model)["steps"]
    ours = kernel_steps(replay(kernel, case, model))
    call = next(i for i, s in enumerate(steps) if s["asm"] and s["asm"].startswith("call"))
    cr3s = {int(s["regs"]["cr3"], 16) for s in steps}
    for i in range(call):
        real = {k: int(v, 16) for k, v in steps[i + 1]["regs"].items()}
        got = ours[i].regs
        for r in GPRS:
            if r == "rsp" and (real[r] in cr3s or real[r] & ~0x1800 in cr3s):
                continue
            assert getattr(got, r) == real[r], f"step {i} {ours[i].text}: {r}"
        assert got.rflags == real["eflags"], f"step {i} {ours[i].text}: RFLAGS"


@pytest.mark.parametrize(("kernel", "case", "model"), CASES)
def test_registers_after_the_call_match_once_reloaded(kernel: str, case: str, model: str) -> None:
    """After do_syscall_64 (modelled: the real C leaves scratch registers clobbered), every
    register and RFLAGS matches the real one again from the instruction that reloads it."""
    steps = oracle(kernel, case, model)["steps"]
    ours = kernel_steps(replay(kernel, case, model))
    call = next(i for i, s in enumerate(steps) if s["asm"] and s["asm"].startswith("call"))
    cr3s = {int(s["regs"]["cr3"], 16) for s in steps}
    after_call = {k: int(v, 16) for k, v in steps[call + 1]["regs"].items()}
    before_call = {k: int(v, 16) for k, v in steps[call]["regs"].items()}
    clobbered = {r for r in GPRS if after_call[r] != before_call[r] and r != "rsp"}
    assert clobbered <= {"rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"}
    for i in range(call + 1, len(ours)):
        dest = destination(ours[i].text)
        clobbered.discard(dest or "")
        real = {k: int(v, 16) for k, v in steps[i + 1]["regs"].items()}
        for r in GPRS:
            if r in clobbered or real[r] in cr3s or real[r] & ~0x1800 in cr3s:
                continue  # not reloaded yet, or a CR3 value (this machine's own)
            assert getattr(ours[i].regs, r) == real[r], f"step {i} {ours[i].text}: {r}"
        assert ours[i].regs.rflags == real["eflags"], f"step {i} {ours[i].text}: RFLAGS"
    assert not clobbered, f"never reloaded: {clobbered}"


@pytest.mark.parametrize(("kernel", "case", "model"), CASES)
def test_pt_regs_exit_and_final_user_registers_match(kernel: str, case: str, model: str) -> None:
    doc = oracle(kernel, case, model)
    trace = replay(kernel, case, model)
    at, after = (
        {k: int(v, 16) for k, v in doc["pt_regs"][w].items()}
        for w in ("at call do_syscall_64", "after do_syscall_64 returned")
    )
    assert trace.pt_regs_at_call == at
    assert trace.pt_regs_after_call == after
    assert trace.exit == doc["exit"]
    if case in FAILED_CHECK:
        assert trace.failed_check == FAILED_CHECK[case]
    real = {k: int(v, 16) for k, v in doc["steps"][-1]["regs"].items()}
    final = trace.final
    assert final is not None
    for r in (*GPRS, "rip", "cs", "ss", "fs_base", "gs_base"):
        assert getattr(final, r) == real[r], r
    assert final.rflags == real["eflags"]
    assert final.kernel_gs_base == real["k_gs_base"]


def test_c_checks_follow_the_compiled_order() -> None:
    """6.12's compiled do_syscall_64 tests the conditions in the order the model does."""
    reads = {  # what each compiled compare reads or tests, and the condition it is
        r"0x58\(%rbx\)": "rcx_eq_rip",
        r"0x30\(%rbx\)": "r11_eq_rflags",
        r"cmpw\s+\$0x33,0x88\(%rbx\)": "cs_user",
        r"cmpw\s+\$0x2b,0xa0\(%rbx\)": "ss_user",
        r"cmp\s+%rcx,%rax": "rip_below_task_size_max",
        r"test\s+\$0x10100": "no_rf_tf",
    }
    cases = [c for k, c, _ in CASES if k == "v6.12" and "compiled_checks" in oracle(k, c)]
    assert cases
    for case in cases:
        compiled = oracle("v6.12", case)["compiled_checks"]
        order = [n for line in compiled for pat, n in reads.items() if re.search(pat, line)]
        assert tuple(order) == C_CHECKS
        assert "movabs $0x7ffffffff000,%rcx" in compiled  # TASK_SIZE_MAX, 4-level
    # every C condition is do_syscall_64's or do_fast_syscall_32's
    compat = {n for k in KERNELS for n in spec(k).compat_checks}
    assert {str(n) for n, f in FACTS.items() if f.c_condition} == set(C_CHECKS) | compat


@pytest.mark.parametrize(("kernel", "case", "model"), CASES)
def test_bytes_match_but_for_relative_displacements(kernel: str, case: str, model: str) -> None:
    """The patched bytes are the real ones; only where code sits differs (branch and
    call targets, RIP-relative per-CPU operands): same length, same opcode bytes."""
    real = oracle(kernel, case, model)["steps"][:-1]
    for i, (r, s) in enumerate(zip(real, kernel_steps(replay(kernel, case, model)), strict=True)):
        want = bytes.fromhex(r["bytes"])
        if want == s.code:
            continue
        rel = 1 if len(want) == 2 and want[0] in (0xEB, *range(0x70, 0x80)) else 4
        assert len(want) == len(s.code) and want[:-rel] == s.code[:-rel], (i, r["asm"], s.text)
        assert s.text.startswith(("j", "call")) or "(%rip)" in s.text, (i, s.text)
