"""What the run spent on mitigations: the instructions each mitigation macro of the entry
code executed on this machine (its CPU model's patching: a NOP or a jmp over the
alternative where the CPU needs nothing, the real sequence where it does), and what each
answers.  Counted from the steps, so a mitigation the run never reached counts nothing.

The macros are the kernels' own (arch/x86/entry/calling.h, nospec-branch.h); the return
thunk's untraining (retpoline.S: srso_untrain_ret, srso_safe_ret, entry_untrain_ret) counts
with UNTRAIN_RET, which calls it.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.i18n import N_
from engine.trace import Trace

_PTI = N_("Meltdown: KPTI's page-table switch")
_IBRS = N_("Spectre v2 and Retbleed: IBRS while in the kernel (IA32_SPEC_CTRL)")
_UNTRAIN = N_("Retbleed and SRSO: return-predictor untraining, and IBPB on entry")

#: The mitigation macros of the entry code, and what each answers (a msgid).
MITIGATIONS: dict[str, str] = {
    "SWITCH_TO_KERNEL_CR3": _PTI,
    "SWITCH_TO_USER_CR3": _PTI,
    "SWITCH_TO_USER_CR3_STACK": _PTI,
    "SWITCH_TO_USER_CR3_NOSTACK": _PTI,
    "IBRS_ENTER": _IBRS,
    "IBRS_EXIT": _IBRS,
    "UNTRAIN_RET": _UNTRAIN,
    "UNTRAIN_RET_FROM_CALL": _UNTRAIN,
    "CLEAR_BRANCH_HISTORY": N_("BHI: the branch-history clearing loop (clear_bhb_loop)"),
    "CLEAR_CPU_BUFFERS": N_("MDS, TAA, MMIO stale data: VERW flushes the CPU buffers"),
    "FENCE_SWAPGS_USER_ENTRY": N_("Spectre v1 (SWAPGS): LFENCE after SWAPGS"),
}

#: Labels of the return-thunk untraining code UNTRAIN_RET calls (retpoline.S).
UNTRAINING_LABELS = frozenset({"srso_untrain_ret", "srso_safe_ret", "entry_untrain_ret"})


@dataclass(frozen=True, slots=True)
class MitigationCost:
    """One mitigation macro: what it answers, the instructions it executed in this run, and
    whether all of them were the alternative's filler (NOPs, or a jmp over the sequence):
    patched out on this CPU."""

    macro: str
    answers: str  # a msgid
    instructions: int
    patched_out: bool


def _filler(text: str) -> bool:
    """A NOP, or the jmp an ALTERNATIVE leaves over a sequence the CPU does not need."""
    mnemonic = text.split(maxsplit=1)[0] if text else ""
    return mnemonic.startswith("nop") or mnemonic == "jmp"


def mitigation_costs(trace: Trace) -> tuple[MitigationCost, ...]:
    """Each mitigation macro the run executed, in the order it first ran."""
    counts: dict[str, int] = {}
    working: set[str] = set()
    for step in trace.steps:
        if step.is_c:
            continue
        macro = step.macro
        if macro not in MITIGATIONS and step.label in UNTRAINING_LABELS:
            macro = "UNTRAIN_RET"
        if macro in MITIGATIONS:
            counts[macro] = counts.get(macro, 0) + 1
            if not _filler(step.text):
                working.add(macro)
    return tuple(MitigationCost(m, MITIGATIONS[m], n, m not in working) for m, n in counts.items())


__all__ = ["MITIGATIONS", "MitigationCost", "mitigation_costs"]
