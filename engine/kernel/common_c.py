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

from dataclasses import dataclass

from engine.constants import RF, TF, USER_CS, USER_DS
from engine.kernel.variants import C_CHECK_SOURCE


def task_size_max(paging: int) -> int:
    """TASK_SIZE_MAX: (1 << __VIRTUAL_MASK_SHIFT) - PAGE_SIZE, 47 or 56 bits."""
    return (1 << (56 if paging == 5 else 47)) - 0x1000


#: The condition each check tests in C, as the compiled code evaluates it.
C_CONDITION: dict[str, str] = {
    "rcx_eq_rip": "regs->cx != regs->ip",
    "r11_eq_rflags": "regs->r11 != regs->flags",
    "cs_user": "regs->cs != __USER_CS",
    "ss_user": "regs->ss != __USER_DS",
    "rip_below_task_size_max": "regs->ip >= TASK_SIZE_MAX",
    "no_rf_tf": "regs->flags & (X86_EFLAGS_RF | X86_EFLAGS_TF)",
}


@dataclass(frozen=True, slots=True)
class CCheck:
    """One SYSRET condition as evaluated: the values it compared and its verdict."""

    name: str
    passed: bool
    detail: str  # the compared values, e.g. "regs->cx 0x401720 == regs->ip 0x401720"
    source: str  # the C source line it comes from
    condition: str  # the condition that sends the exit to IRET when it holds


def _detail(name: str, pt: dict[str, int], paging: int) -> tuple[bool, str]:
    if name == "rcx_eq_rip":
        ok = pt["cx"] == pt["ip"]
        return ok, f"regs->cx {pt['cx']:#x} {'==' if ok else '!='} regs->ip {pt['ip']:#x}"
    if name == "r11_eq_rflags":
        ok = pt["r11"] == pt["flags"]
        return ok, f"regs->r11 {pt['r11']:#x} {'==' if ok else '!='} regs->flags {pt['flags']:#x}"
    if name in ("cs_user", "ss_user"):
        field, want, sym = ("cs", USER_CS, "__USER_CS") if name == "cs_user" else (
            "ss", USER_DS, "__USER_DS")  # fmt: skip
        low = pt[field] & 0xFFFF
        ok = low == want
        return ok, f"(u16) regs->{field} {low:#x} {'==' if ok else '!='} {sym} {want:#x}"
    if name == "rip_below_task_size_max":
        top = task_size_max(paging)
        ok = pt["ip"] < top
        return ok, f"regs->ip {pt['ip']:#x} {'<' if ok else '>='} TASK_SIZE_MAX {top:#x}"
    if name == "no_rf_tf":
        bits = [n for n, b in (("RF", RF), ("TF", TF)) if pt["flags"] & b]
        if bits:
            return False, f"regs->flags {pt['flags']:#x} has {'+'.join(bits)}"
        return True, f"regs->flags {pt['flags']:#x}: RF and TF clear"
    raise KeyError(name)


def sysret_conditions(
    order: tuple[str, ...], pt: dict[str, int], paging: int, removed: tuple[str, ...] = ()
) -> list[CCheck]:
    """Evaluate the C checks in *order* up to the first that fails (what-if: skip *removed*)."""
    out: list[CCheck] = []
    for name in order:
        if name in removed:
            continue
        ok, detail = _detail(name, pt, paging)
        out.append(CCheck(name, ok, detail, C_CHECK_SOURCE[name], C_CONDITION[name]))
        if not ok:
            break
    return out


__all__ = ["C_CONDITION", "CCheck", "sysret_conditions", "task_size_max"]
