"""The JSON form of a trace (the contract of ``syscall-tui trace --json``) and [expect] checks."""

from __future__ import annotations

import operator
from typing import Any

from engine.checks import describe
from engine.constants import PT_REGS_FIELDS
from engine.mitigations import mitigation_costs
from engine.scenario.model import Scenario
from engine.trace import CStatement, Regs, Step, Trace

FINAL_REGS = (
    "rip", "rsp", "rflags", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9",
    "r10", "r11", "r12", "r13", "r14", "r15", "cs", "ss", "fs_base", "gs_base",
    "kernel_gs_base", "cr3",
)  # fmt: skip


def hx(value: int) -> str:
    return f"{value:#x}"


_FINAL_VALUES = operator.attrgetter(*FINAL_REGS)


def regs_json(regs: Regs, names: tuple[str, ...] = FINAL_REGS) -> dict[str, str]:
    # hex() is f"{v:#x}" for the non-negative values registers hold, and one attrgetter
    # call reads them all: this runs for every step of a 100,000-step trace
    if names is FINAL_REGS:
        return dict(zip(FINAL_REGS, map(hex, _FINAL_VALUES(regs)), strict=True))
    return {n: hx(getattr(regs, n)) for n in names}


def pt_regs_json(values: dict[str, int]) -> dict[str, str]:
    return {f: hx(values[f]) for f in PT_REGS_FIELDS if f in values}


def step_json(step: Step) -> dict[str, Any]:
    return {
        # Numbered as the app and the table number it: step 1 is the first instruction.
        "step": step.number,
        "rip": hx(step.rip),
        "bytes": step.code.hex(),
        "text": step.text,
        "source_line": step.source_line,
        "source": step.source,
        "macro": step.macro,
        "label": step.label,
        "cpl": step.cpl,
        "regs": regs_json(step.regs),
        "changed": list(step.changed),
        "stack": [
            {"address": hx(s.address), "value": hx(s.value), "slot": s.slot} for s in step.stack
        ],
        "entry_stack": [
            {"address": hx(s.address), "value": hx(s.value), "slot": s.slot}
            for s in step.entry_stack
        ],
        "checks": [
            {"name": c.name, "result": c.result, "detail": describe(c)} for c in step.checks
        ],
        "events": [{"kind": e.kind, "text": e.text, "modelled": e.modelled} for e in step.events],
        "modelled": step.modelled,
        "stack_name": step.stack_name,
        "rewritten": [
            {"slot": name, "old": hx(old), "new": hx(new)} for name, old, new in step.rewritten
        ],
        "cr3_written": None if step.cr3_written is None else hx(step.cr3_written),
        "c": c_json(step.c),
    }


def c_json(c: CStatement | None) -> dict[str, Any] | None:
    """A C statement's place in the kernel's source and its values (null: not C)."""
    if c is None:
        return None
    return {
        "key": c.key,
        "file": c.file,
        "line": c.line,
        "stack": list(c.stack),
        "values": [{"name": n, "value": hx(v)} for n, v in c.values],
    }


def trace_json(trace: Trace, steps: bool = True) -> dict[str, Any]:
    """The whole trace as plain JSON data: hex strings for values, lowercase names.

    Without *steps*, ``"steps"`` is an empty list, for a writer that streams them
    (:func:`step_json` each) instead of holding 100,000 of them at once."""
    fault = None
    if trace.fault is not None:
        f = trace.fault
        fault = {
            "vector": f.vector,
            "name": f.name,
            "cpl": f.cpl,
            "rip": hx(f.rip),
            "address": None if f.address is None else hx(f.address),
            "modelled": f.modelled,
            "reason": f.reason,
            "error_code": None if f.error_code is None else hx(f.error_code),
        }
    final = trace.final or trace.initial
    return {
        "scenario": trace.scenario,
        "kernel": trace.kernel,
        "cpu": trace.cpu,
        "machine": {
            "paging": trace.paging,
            "pti": trace.pti,
            "pcid": trace.pcid,
            **({"fred": True} if trace.fred else {}),  # only FRED runs carry the key
        },
        "door": trace.door,
        "exit": trace.exit,
        "failed_check": trace.failed_check,
        "checks": [{"name": c.name, "result": c.result} for c in trace.checks],
        "fault": fault,
        "pt_regs": {
            "at_call": pt_regs_json(trace.pt_regs_at_call),
            "after_call": pt_regs_json(trace.pt_regs_after_call),
        },
        "handler": list(trace.handler),
        "output": trace.output.decode("utf-8", "backslashreplace"),
        "stopped": trace.stopped,
        # the scenario's code as written: labels, instructions and data (bytes, never decoded)
        "user_code": [
            {
                "address": hx(line.address),
                "kind": line.kind,
                "text": line.text,
                "bytes": line.code.hex(),
                "line": line.line,
            }
            for line in trace.user_code
        ],
        # what each mitigation macro executed on this CPU model (engine.mitigations)
        "mitigations": [
            {
                "macro": c.macro,
                "answers": c.answers,
                "instructions": c.instructions,
                "patched_out": c.patched_out,
            }
            for c in mitigation_costs(trace)
        ],
        # the round trips after the first (a delivered signal's rt_sigreturn)
        "trips": [
            {
                "first_step": t.first_step + 1,
                "exit": t.exit,
                "failed_check": t.failed_check,
                "checks": [
                    {"name": c.name, "result": c.result, "detail": describe(c)} for c in t.checks
                ],
                "pt_regs": {
                    "at_call": pt_regs_json(t.pt_regs_at_call),
                    "after_call": pt_regs_json(t.pt_regs_after_call),
                },
                "handler": list(t.handler),
            }
            for t in trace.trips
        ],
        "steps": [step_json(s) for s in trace.steps] if steps else [],
        "final": {"cpl": trace.final_cpl, "regs": regs_json(final)},
    }


def expectation_mismatches(sc: Scenario, trace: Trace) -> list[str]:
    """What of the scenario's [expect] the trace does not bear out (empty: all good)."""
    e = sc.expect
    out = []
    fault = trace.fault.name if trace.fault else None
    for key, want, got in (
        ("exit", e.exit, trace.exit),
        ("failed_check", e.failed_check, trace.failed_check),
        ("fault", e.fault, fault),
    ):
        if key in e.given and got != want:
            out.append(f"{key}: expected {want or 'none'}, got {got or 'none'}")
    if e.fault_cpl is not None:
        got_cpl = trace.fault.cpl if trace.fault else None
        if got_cpl != e.fault_cpl:
            out.append(f"fault_cpl: expected {e.fault_cpl}, got {got_cpl}")
    return out
