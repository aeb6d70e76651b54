"""The six SYSRET-eligibility checks as values: what each compared, and that in words.

Both functions are pure: :func:`evaluate` takes what the CPU held at the check's
``jne``/``jnz`` (ZF, the registers, the pt_regs words at RSP) and :func:`describe`
turns the resulting :class:`CheckState` into one line for the CLI and the JSON.
The TUI formats the operands itself.

The compares, as v5.8.13 entry_SYSCALL_64 makes them (RSP points at pt_regs):

    movq RCX(%rsp), %rcx; movq RIP(%rsp), %r11; cmpq %rcx, %r11; jne     rcx_eq_rip
    shl/sar $(64 - (__VIRTUAL_MASK_SHIFT+1)), %rcx; cmpq %rcx, %r11; jne  canonical_rip
    cmpq $__USER_CS, CS(%rsp); jne                                        cs_user
    movq R11(%rsp), %r11; cmpq %r11, EFLAGS(%rsp); jne                    r11_eq_rflags
    testq $(X86_EFLAGS_RF|X86_EFLAGS_TF), %r11; jnz                       no_rf_tf
    cmpq $__USER_DS, SS(%rsp); jne                                        ss_user
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.constants import CHECK_NAMES, RF, TF, USER_CS, USER_DS, VM, ZF
from engine.i18n import N_, Msg, msg
from engine.trace import CheckName, CheckResult, CheckState, ExitPath, Operand, Regs, Relation

#: The bits ``testq $(X86_EFLAGS_RF|X86_EFLAGS_TF), %r11`` looks at.
RF_TF = RF | TF

_IF_CX_R11 = "if (unlikely(regs->cx != regs->ip || regs->r11 != regs->flags))"
_IF_CS_SS = "if (unlikely(regs->cs != __USER_CS || regs->ss != __USER_DS))"


@dataclass(frozen=True, slots=True)
class CheckFacts:
    """What is known of one check, in one place: its words in the entry code, why SYSRET
    cannot be used when it fails and, for 6.12's C checks, the C."""

    title: str  # what the check compares, in the entry code's words (a msgid where words)
    reason: str  # why SYSRET cannot be used when the check fails: one line (a msgid)
    c_test: str = ""  # 6.12: what do_syscall_64 requires for SYSRET
    c_condition: str = ""  # 6.12: the condition that sends the exit to IRET, as compiled
    c_source: str = ""  # 6.12: the source line (arch/x86/entry/common.c) it comes from


FACTS: dict[CheckName, CheckFacts] = {
    CheckName.RCX_EQ_RIP: CheckFacts(
        "RCX == RIP",
        N_("SYSRET jumps to RCX, so RCX must hold the saved RIP."),
        "regs->cx == regs->ip",
        "regs->cx != regs->ip",
        _IF_CX_R11,
    ),
    CheckName.CANONICAL_RIP: CheckFacts(
        N_("RIP canonical"),
        N_(
            "On Intel, SYSRET to a non-canonical RCX raises #GP at CPL 0 with the user's RSP "
            "already loaded (CVE-2012-0217)."
        ),
    ),
    CheckName.CS_USER: CheckFacts(
        "CS == __USER_CS",
        N_("SYSRET always loads CS 0x33; any other CS must return through IRET."),
        "regs->cs == __USER_CS",
        "regs->cs != __USER_CS",
        _IF_CS_SS,
    ),
    CheckName.R11_EQ_RFLAGS: CheckFacts(
        "R11 == RFLAGS",
        N_("SYSRET loads RFLAGS from R11, so R11 must hold the saved flags."),
        "regs->r11 == regs->flags",
        "regs->r11 != regs->flags",
        _IF_CX_R11,
    ),
    CheckName.NO_RF_TF: CheckFacts(
        N_("no RF, no TF"),
        N_("SYSRET always clears RF, and a TF it loads traps right after SYSRET (a #DB loop)."),
        "!(regs->flags & (RF | TF))",
        "regs->flags & (X86_EFLAGS_RF | X86_EFLAGS_TF)",
        "if (unlikely(regs->flags & (X86_EFLAGS_RF | X86_EFLAGS_TF)))",
    ),
    CheckName.SS_USER: CheckFacts(
        "SS == __USER_DS",
        N_("SYSRET always loads SS 0x2b; any other SS must return through IRET."),
        "regs->ss == __USER_DS",
        "regs->ss != __USER_DS",
        _IF_CS_SS,
    ),
    CheckName.RIP_BELOW_TASK_SIZE_MAX: CheckFacts(
        "RIP < TASK_SIZE_MAX",
        N_(
            "6.12 sends every RIP that is not a user address (>= TASK_SIZE_MAX) to IRET: on "
            "Intel a non-canonical one would make SYSRET #GP at CPL 0 (CVE-2012-0217), and "
            "TASK_SIZE_MAX itself, the page just below the hole that no task can map, goes too."
        ),
        "regs->ip < TASK_SIZE_MAX",
        "regs->ip >= TASK_SIZE_MAX",
        "if (unlikely(regs->ip >= TASK_SIZE_MAX))",
    ),
    CheckName.IP_LANDING_PAD: CheckFacts(
        "EIP == landing pad",
        N_(
            "SYSRETL returns to ECX, which the entry loads from regs->ip; do_fast_syscall_32 "
            "set it to the vDSO's int80_landing_pad, so anything else (ptrace, a signal) "
            "must return through IRET."
        ),
        "regs->ip == landing_pad",
        "regs->ip != landing_pad",
        "if (unlikely(regs->ip != landing_pad))",
    ),
    CheckName.CS_USER32: CheckFacts(
        "CS == __USER32_CS",
        N_("SYSRETL always loads CS 0x23 (STAR[63:48]); any other CS must return through IRET."),
        "regs->cs == __USER32_CS",
        "regs->cs != __USER32_CS",
        "if (unlikely(regs->cs != __USER32_CS || regs->ss != __USER_DS))",
    ),
    CheckName.NO_RF_TF_VM: CheckFacts(
        N_("no RF, TF or VM"),
        N_(
            "SYSRETL always clears RF and VM, and a TF it loads traps right after it; 6.12 "
            "sends all three to IRET."
        ),
        "!(regs->flags & (RF | TF | VM))",
        "regs->flags & (X86_EFLAGS_RF | X86_EFLAGS_TF | X86_EFLAGS_VM)",
        "if (unlikely(regs->flags & (X86_EFLAGS_RF | X86_EFLAGS_TF | X86_EFLAGS_VM)))",
    ),
}


def facts(name: str) -> CheckFacts | None:
    """The facts of the check named *name* (None for a name no kernel has)."""
    try:
        return FACTS[CheckName(name)]
    except ValueError:
        return None


def initial_states(
    removed: tuple[str, ...], names: tuple[str, ...] = CHECK_NAMES
) -> list[CheckState]:
    """The kernel's six checks (*names*, in its order) before the first one runs;
    *removed* ones are not in this kernel."""
    return [
        CheckState(CheckName(n), CheckResult.REMOVED if n in removed else CheckResult.NOT_REACHED)
        for n in names
    ]


def evaluate(name: str, rflags: int, regs: Regs, pt_regs: Mapping[str, int]) -> CheckState:
    """The check *name* at its branch: *rflags* decides (every check is a jne/jnz, taken
    when ZF is clear); the operands are read from *regs* and the *pt_regs* words."""
    check = CheckName(name)
    result = CheckResult.PASS if rflags & ZF else CheckResult.FAIL
    if check is CheckName.RCX_EQ_RIP:
        left, right, rel = Operand("RCX", regs.rcx), Operand("RIP", regs.r11), Relation.EQUAL
    elif check is CheckName.CANONICAL_RIP:
        # R11 holds the saved RIP, RCX its sign-extended copy.
        left, right = Operand("RIP", regs.r11), Operand(N_("sign-extended"), regs.rcx)
        rel = Relation.CANONICAL
    elif check is CheckName.CS_USER:
        left, right = Operand("CS", pt_regs["cs"]), Operand("__USER_CS", USER_CS)
        rel = Relation.EQUAL
    elif check is CheckName.R11_EQ_RFLAGS:
        left, right = Operand("R11", regs.r11), Operand("RFLAGS", pt_regs["flags"])
        rel = Relation.EQUAL
    elif check is CheckName.NO_RF_TF:
        left, right, rel = Operand("R11", regs.r11), Operand("RF|TF", RF_TF), Relation.BITS_CLEAR
    else:
        left, right = Operand("SS", pt_regs["ss"]), Operand("__USER_DS", USER_DS)
        rel = Relation.EQUAL
    return CheckState(check, result, left, right, rel)


def describe(state: CheckState, compact: bool = False) -> str:
    """The comparison in words, e.g. ``SS 0x23 ≠ __USER_DS 0x2b`` (English; a message
    that engine.i18n.tr() shows translated).

    The trace and the listing pad RIP-sized values to 16 digits so columns line up;
    *compact* (the checklist panel) writes every value without padding so a comparison
    fits one line, and says nothing for a check not reached yet."""
    if state.result is CheckResult.REMOVED:
        return N_("not in this kernel (what-if: machine.remove_checks)")
    left, right = state.left, state.right
    if left is None or right is None:
        return ""
    if compact and state.result is CheckResult.NOT_REACHED:
        return ""
    ok = state.result is CheckResult.PASS
    wide = not compact and (
        state.relation in (Relation.CANONICAL, Relation.BELOW) or state.name is CheckName.RCX_EQ_RIP
    )
    fmt = "#018x" if wide else "#x"
    lvalue, rvalue = format(left.value, fmt), format(right.value, fmt)
    if state.relation is Relation.CANONICAL:
        if ok:
            return msg("{label} {value} is canonical", label=left.label, value=lvalue)
        return msg(
            "{left} {lvalue} ≠ {right} {rvalue}: not canonical",
            left=left.label, lvalue=lvalue, right=right.label, rvalue=rvalue,
        )  # fmt: skip
    if state.relation is Relation.BITS_CLEAR:
        bits = [n for n, b in (("RF", RF), ("TF", TF), ("VM", VM)) if left.value & b & right.value]
        if bits:
            return msg(
                "{label} {value:#x} has {bits}",
                label=left.label, value=left.value, bits="+".join(bits),
            )  # fmt: skip
        if right.value & VM:
            return msg(
                "{label} {value:#x}: RF, TF and VM clear", label=left.label, value=left.value
            )
        return msg("{label} {value:#x}: RF and TF clear", label=left.label, value=left.value)
    # No words here, only names and values: glue that is not a message.
    rel = ("<" if ok else "≥") if state.relation is Relation.BELOW else ("==" if ok else "≠")
    return Msg(
        "{left} {lvalue} {rel} {right} {rvalue}",
        left=left.label, lvalue=lvalue, rel=rel, right=right.label, rvalue=rvalue,
    )  # fmt: skip


__all__ = [
    "FACTS", "RF_TF", "CheckFacts", "describe", "evaluate", "facts", "initial_states",
]  # fmt: skip


def decided_exit(checks: Sequence[CheckState]) -> ExitPath | None:
    """The exit the checks have decided on: IRET once one failed, SYSRET once all passed (or
    were removed), None before that.  The one definition: trace, compare and the UI ask it."""
    results = [c.result for c in checks]
    if CheckResult.FAIL in results:
        return ExitPath.IRET
    if results and all(r in (CheckResult.PASS, CheckResult.REMOVED) for r in results):
        return ExitPath.SYSRET
    return None
