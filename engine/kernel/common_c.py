"""6.12's SYSRET decision, the C at the end of do_syscall_64 (arch/x86/entry/common.c).

Modelled, not executed: the engine does not run compiled C.  Each condition is
evaluated on the pt_regs words read from emulated memory, in the order the compiled
code of the traced kernel tests them (Debian 6.12.117, do_syscall_64+0xb5..0xf8):

    mov 0x80(%rbx),%rax; cmp %rax,0x58(%rbx); jne   regs->cx != regs->ip
    mov 0x90(%rbx),%rdx; cmp %rdx,0x30(%rbx); jne   regs->r11 != regs->flags
    cmpw $0x33,0x88(%rbx); jne                      regs->cs != __USER_CS   (16 bits)
    cmpw $0x2b,0xa0(%rbx); jne                      regs->ss != __USER_DS   (16 bits)
    movabs $0x7ffffffff000,%rcx; cmp %rcx,%rax; jae regs->ip >= TASK_SIZE_MAX
    test $0x10100,%edx; sete %al                    regs->flags & (RF | TF)

The first condition that holds makes the function return false (IRET); the rest
are not reached.  cs and ss are u16 in 6.12's struct pt_regs, so only their low 16
bits are compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.checks import FACTS
from engine.constants import RF, TF, USER32_CS, USER_CS, USER_DS, VM
from engine.trace import CheckName, CheckResult, CheckState, Operand, Relation


def task_size_max(paging: int) -> int:
    """TASK_SIZE_MAX: (1 << __VIRTUAL_MASK_SHIFT) - PAGE_SIZE, 47 or 56 bits."""
    return (1 << (56 if paging == 5 else 47)) - 0x1000


@dataclass(frozen=True, slots=True)
class CCheck:
    """One SYSRET condition as evaluated: its state (the operands compared, the
    verdict), the C source line and the condition that sends the exit to IRET."""

    state: CheckState
    source: str
    condition: str

    @property
    def name(self) -> str:
        return str(self.state.name)

    @property
    def passed(self) -> bool:
        return self.state.result is CheckResult.PASS


def evaluate_c(name: str, pt: Mapping[str, int], paging: int) -> CheckState:
    """The C condition *name* on the pt_regs words *pt* (operands as the C names them)."""
    check = CheckName(name)
    if check is CheckName.RCX_EQ_RIP:
        left, right, rel = (
            Operand("regs->cx", pt["cx"]),
            Operand("regs->ip", pt["ip"]),
            Relation.EQUAL,
        )
        ok = left.value == right.value
    elif check is CheckName.R11_EQ_RFLAGS:
        left, right = Operand("regs->r11", pt["r11"]), Operand("regs->flags", pt["flags"])
        rel, ok = Relation.EQUAL, pt["r11"] == pt["flags"]
    elif check in (CheckName.CS_USER, CheckName.SS_USER):
        field, want, sym = (
            ("cs", USER_CS, "__USER_CS")
            if check is CheckName.CS_USER
            else ("ss", USER_DS, "__USER_DS")
        )
        low = pt[field] & 0xFFFF  # u16 in 6.12's struct pt_regs
        left, right, rel = Operand(f"(u16) regs->{field}", low), Operand(sym, want), Relation.EQUAL
        ok = low == want
    elif check is CheckName.RIP_BELOW_TASK_SIZE_MAX:
        top = task_size_max(paging)
        left, right = Operand("regs->ip", pt["ip"]), Operand("TASK_SIZE_MAX", top)
        rel, ok = Relation.BELOW, pt["ip"] < top
    elif check is CheckName.NO_RF_TF:
        left, right = Operand("regs->flags", pt["flags"]), Operand("RF|TF", RF | TF)
        rel, ok = Relation.BITS_CLEAR, not pt["flags"] & (RF | TF)
    else:
        raise KeyError(name)
    result = CheckResult.PASS if ok else CheckResult.FAIL
    return CheckState(check, result, left, right, rel)


def sysret_conditions(
    order: tuple[str, ...], pt: Mapping[str, int], paging: int, removed: tuple[str, ...] = ()
) -> list[CCheck]:
    """Evaluate the C checks in *order* up to the first that fails (what-if: skip *removed*)."""
    out: list[CCheck] = []
    for name in order:
        if name in removed:
            continue
        state = evaluate_c(name, pt, paging)
        known = FACTS[CheckName(name)]
        out.append(CCheck(state, known.c_source, known.c_condition))
        if state.result is CheckResult.FAIL:
            break
    return out


#: do_fast_syscall_32's return on v5.8.13 and 6.1: one expression, tested left to right.
_FAST32_RETURN = (
    "return regs->cs == __USER32_CS && regs->ss == __USER_DS && regs->ip == landing_pad && "
    "(regs->flags & (X86_EFLAGS_RF | X86_EFLAGS_TF)) == 0;"
)


def compat_conditions(
    order: tuple[str, ...], pt: Mapping[str, int], landing_pad: int, u16_segments: bool
) -> list[CCheck]:
    """do_fast_syscall_32's SYSRETL conditions (arch/x86/entry/common.c) in *order*, up to
    the first that fails, on the pt_regs words *pt*.  v5.8.13 and 6.1 test them in one
    ``return`` expression (cs, ss, ip, flags); 6.12 in separate ``if``s (ip, cs and ss,
    flags with VM).  *u16_segments*: 6.12's struct pt_regs has cs and ss as u16."""
    out: list[CCheck] = []
    for name in order:
        check = CheckName(name)
        if check is CheckName.IP_LANDING_PAD:
            left, right = Operand("regs->ip", pt["ip"]), Operand("landing_pad", landing_pad)
            rel, ok = Relation.EQUAL, pt["ip"] == landing_pad
        elif check in (CheckName.CS_USER32, CheckName.SS_USER):
            field, want, sym = (
                ("cs", USER32_CS, "__USER32_CS")
                if check is CheckName.CS_USER32
                else ("ss", USER_DS, "__USER_DS")
            )
            value = pt[field] & 0xFFFF if u16_segments else pt[field]
            label = f"(u16) regs->{field}" if u16_segments else f"regs->{field}"
            left, right, rel = Operand(label, value), Operand(sym, want), Relation.EQUAL
            ok = value == want
        else:
            bits = RF | TF | (VM if check is CheckName.NO_RF_TF_VM else 0)
            left = Operand("regs->flags", pt["flags"])
            right = Operand("RF|TF|VM" if bits & VM else "RF|TF", bits)
            rel, ok = Relation.BITS_CLEAR, not pt["flags"] & bits
        state = CheckState(check, CheckResult.PASS if ok else CheckResult.FAIL, left, right, rel)
        known = FACTS[check]
        source = known.c_source if u16_segments else _FAST32_RETURN
        if u16_segments and check is CheckName.SS_USER:
            source = FACTS[CheckName.CS_USER32].c_source
        out.append(CCheck(state, source, known.c_condition))
        if not ok:
            break
    return out


__all__ = [
    "CCheck", "compat_conditions", "evaluate_c", "sysret_conditions", "task_size_max",
]  # fmt: skip
