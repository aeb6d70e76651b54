"""Expansion of the entry_64.S rendition into the instructions a v5.8.13 kernel runs.

Configuration: non-paravirt, CONFIG_PAGE_TABLE_ISOLATION, CONFIG_X86_5LEVEL,
CONFIG_X86_ESPFIX64, no CONFIG_GCC_PLUGIN_STACKLEAK, no CONFIG_DEBUG_ENTRY.  What the
kernel patches at boot with ALTERNATIVE depends on the CPU features the scenario
gives (PTI, PCID, LA57): a feature that is present puts the "new" code in place; an
absent one keeps the "old" code; either is padded with NOPs to the longer length,
as apply_alternatives() does (P6 NOPs: 66 90, 0f 1f 44 00 00).

Sources: arch/x86/entry/calling.h (SWITCH_TO_*_CR3, PUSH_AND_CLEAR_REGS,
POP_REGS), arch/x86/include/asm/irqflags.h (SWAPGS, USERGS_SYSRET64,
INTERRUPT_RETURN), arch/x86/include/asm/nops.h.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import count

from engine.asm import Item, Label, hexify_decimals
from engine.constants import (
    ENOSYS,
    PT_REGS_OFFSET,
    PTI_USER_PCID_MASK,
    PTI_USER_PGTABLE_AND_PCID_MASK,
    PTI_USER_PGTABLE_MASK,
    RF,
    TF,
    USER_CS,
    USER_DS,
    X86_CR3_PCID_NOFLUSH_BIT,
    TLB_STATE_user_pcid_flush_mask,
    TSS_sp0,
    TSS_sp1,
    TSS_sp2,
)
from engine.layout import PERCPU_TLBSTATE, PERCPU_TSS

# P6 NOPs (arch/x86/include/asm/nops.h), given as bytes: Keystone gets the 5-byte one wrong.
_NOPS: dict[int, Item] = {
    2: Item("nop", asm="xchg %ax, %ax"),
    5: Item("nopl (%rax, %rax)", asm=".byte 0x0f, 0x1f, 0x44, 0x00, 0x00"),
}


@dataclass(frozen=True, slots=True)
class Features:
    """The CPU features that decide which ALTERNATIVE is live."""

    pti: bool
    pcid: bool
    la57: bool
    #: What-if: SYSRET checks the kernel is built without (their compare and branch are
    #: left out): without canonical_rip it is a kernel that returns with SYSRET without
    #: checking RIP, as several other kernels and hypervisors did before the 2012
    #: advisory (Linux was not affected: it has checked since the opportunistic SYSRET
    #: arrived in v3.19).  Not a CPU feature, but it changes the image the same way.
    removed_checks: tuple[str, ...] = ()


# Per-CPU symbols, as offsets from the per-CPU base that GS points at in the kernel.
PERCPU_SYMBOLS: dict[str, int] = {
    "cpu_tss_rw": PERCPU_TSS,
    "cpu_current_top_of_stack": PERCPU_TSS + TSS_sp1,  # v5.8: #define as cpu_tss_rw + TSS_sp1
    "cpu_tlbstate": PERCPU_TLBSTATE,
    "TSS_sp0": TSS_sp0,
    "TSS_sp1": TSS_sp1,
    "TSS_sp2": TSS_sp2,
    "TLB_STATE_user_pcid_flush_mask": TLB_STATE_user_pcid_flush_mask,
}

# Assembler-level constants (asm-offsets, segment.h, errno.h, processor-flags.h).
CONSTANTS: dict[str, int] = {
    "__USER_DS": USER_DS,
    "__USER_CS": USER_CS,
    "ENOSYS": ENOSYS,
    "X86_EFLAGS_RF": RF,
    "X86_EFLAGS_TF": TF,
    # pt_regs offsets as asm-offsets names them (calling.h)
    **{
        name: PT_REGS_OFFSET[field]
        for name, field in {
            "R15": "r15", "R14": "r14", "R13": "r13", "R12": "r12", "RBP": "bp",
            "RBX": "bx", "R11": "r11", "R10": "r10", "R9": "r9", "R8": "r8", "RAX": "ax",
            "RCX": "cx", "RDX": "dx", "RSI": "si", "RDI": "di", "ORIG_RAX": "orig_ax",
            "RIP": "ip", "CS": "cs", "EFLAGS": "flags", "RSP": "sp", "SS": "ss",
        }.items()
    },
}  # fmt: skip

_SAFE_EXPR = re.compile(r"^[0-9a-fA-Fx+\-*|() ]+$")


def _eval(expr: str, names: dict[str, int]) -> int:
    """Evaluate an assembler constant expression over *names* (integers and + - * |)."""
    text = re.sub(r"[A-Za-z_]\w*", lambda m: str(names[m.group(0)]), expr)
    if not _SAFE_EXPR.match(text):
        raise ValueError(f"not a constant expression: {expr!r}")
    return int(eval(text, {"__builtins__": {}}, {}))


def resolve_operands(text: str) -> str:
    """Replace the kernel's symbolic operands by numbers, in hex.

    ``PER_CPU_VAR(cpu_tss_rw + TSS_sp2)`` becomes ``%gs:0x6014``, ``RCX(%rsp)``
    becomes ``0x58(%rsp)``, ``$(64 - 48)`` becomes ``$0x10``, ``$__USER_CS`` becomes
    ``$0x33``.
    """
    text = re.sub(
        r"PER_CPU_VAR\(([^)]*)\)",
        lambda m: f"%gs:{_eval(m.group(1), PERCPU_SYMBOLS):#x}",
        text,
    )
    text = re.sub(r"\$\(([^()]*)\)", lambda m: f"${_eval(m.group(1), CONSTANTS):#x}", text)
    text = re.sub(
        r"\$(-?)([A-Za-z_]\w*)",
        lambda m: f"${m.group(1)}{CONSTANTS[m.group(2)]:#x}" if m.group(2) in CONSTANTS else m[0],
        text,
    )

    def disp(m: re.Match[str]) -> str:
        expr = m.group(1)
        if not re.search(r"[A-Z*]", expr):
            return m.group(0)
        return f"{_eval(expr.strip('()'), CONSTANTS):#x}({m.group(2)})"

    text = re.sub(r"(\([A-Z0-9_*+\- ]+\)|[A-Z0-9_*+\-]+)\((%\w+)\)", disp, text)
    return hexify_decimals(text)


class Expander:
    """Expands one macro-level source line into :class:`Item` and :class:`Label` objects."""

    def __init__(self, features: Features):
        self.f = features
        self._ids = count()

    def _label(self, stem: str) -> str:
        return f".L{stem}_{next(self._ids)}"

    # -- KPTI ------------------------------------------------------------------------
    def switch_to_kernel_cr3(self, scratch_reg: str) -> list[Item | Label]:
        end = self._label("end")
        out: list[Item | Label] = []
        # ALTERNATIVE "jmp .Lend_\@", "", X86_FEATURE_PTI
        out.append(_NOPS[2] if self.f.pti else Item(f"jmp {end}"))
        out.append(Item(f"movq %cr3, {scratch_reg}"))
        # ADJUST_KERNEL_CR3: ALTERNATIVE "", "SET_NOFLUSH_BIT \reg", X86_FEATURE_PCID
        if self.f.pcid:
            out.append(Item(f"btsq ${X86_CR3_PCID_NOFLUSH_BIT:#x}, {scratch_reg}"))
        else:
            out.append(_NOPS[5])
        mask = ~PTI_USER_PGTABLE_AND_PCID_MASK & ((1 << 64) - 1)
        out.append(Item(f"andq ${mask:#x}, {scratch_reg}"))
        out.append(Item(f"movq {scratch_reg}, %cr3"))
        out.append(Label(end))
        return out

    def switch_to_user_cr3_nostack(self, scratch_reg: str, scratch_reg2: str) -> list[Item | Label]:
        end, wrcr3, noflush, wrcr3_pcid = (
            self._label("end"),
            self._label("wrcr3"),
            self._label("noflush"),
            self._label("wrcr3_pcid"),
        )
        flush_mask = f"%gs:{PERCPU_TLBSTATE + TLB_STATE_user_pcid_flush_mask:#x}"
        out: list[Item | Label] = [
            _NOPS[2] if self.f.pti else Item(f"jmp {end}"),
            Item(f"movq %cr3, {scratch_reg}"),
            _NOPS[2] if self.f.pcid else Item(f"jmp {wrcr3}"),
            # Test if the ASID needs a flush.
            Item(f"movq {scratch_reg}, {scratch_reg2}"),
            Item(f"andq $0x7ff, {scratch_reg}"),
            Item(f"btq {scratch_reg}, {flush_mask}"),
            Item(f"jae {noflush}"),  # jnc
            # Flush needed, clear the bit
            Item(f"btrq {scratch_reg}, {flush_mask}"),
            Item(f"movq {scratch_reg2}, {scratch_reg}"),
            Item(f"jmp {wrcr3_pcid}"),
            Label(noflush),
            Item(f"movq {scratch_reg2}, {scratch_reg}"),
            Item(f"btsq ${X86_CR3_PCID_NOFLUSH_BIT:#x}, {scratch_reg}"),  # SET_NOFLUSH_BIT
            Label(wrcr3_pcid),
            Item(f"orq ${PTI_USER_PCID_MASK:#x}, {scratch_reg}"),
            Label(wrcr3),
            Item(f"orq ${PTI_USER_PGTABLE_MASK:#x}, {scratch_reg}"),
            Item(f"movq {scratch_reg}, %cr3"),
            Label(end),
        ]
        return out

    def switch_to_user_cr3_stack(self, scratch_reg: str) -> list[Item | Label]:
        return [
            Item("pushq %rax"),
            *self.switch_to_user_cr3_nostack(scratch_reg, "%rax"),
            Item("popq %rax"),
        ]

    # -- registers -------------------------------------------------------------------
    def push_and_clear_regs(self, rdx: str = "%rdx", rax: str = "%rax") -> list[Item | Label]:
        # v5.8 interleaves each push with the xor that clears the register (nospec).
        rax = resolve_operands(rax)
        seq = [
            ("pushq %rdi", None),
            ("pushq %rsi", None),
            (f"pushq {rdx}", "xorl %edx, %edx"),
            ("pushq %rcx", "xorl %ecx, %ecx"),
            (f"pushq {rax}", None),
            ("pushq %r8", "xorl %r8d, %r8d"),
            ("pushq %r9", "xorl %r9d, %r9d"),
            ("pushq %r10", "xorl %r10d, %r10d"),
            ("pushq %r11", "xorl %r11d, %r11d"),
            ("pushq %rbx", "xorl %ebx, %ebx"),
            ("pushq %rbp", "xorl %ebp, %ebp"),
            ("pushq %r12", "xorl %r12d, %r12d"),
            ("pushq %r13", "xorl %r13d, %r13d"),
            ("pushq %r14", "xorl %r14d, %r14d"),
            ("pushq %r15", "xorl %r15d, %r15d"),
        ]
        out: list[Item | Label] = []
        for push, clear in seq:
            out.append(Item(push))
            if clear:
                out.append(Item(clear))
        return out

    def pop_regs(self, pop_rdi: str = "1", skip_r11rcx: str = "0") -> list[Item | Label]:
        skip = skip_r11rcx == "1"
        regs = ["%r15", "%r14", "%r13", "%r12", "%rbp", "%rbx"]
        regs.append("%rsi" if skip else "%r11")
        regs += ["%r10", "%r9", "%r8", "%rax"]
        regs.append("%rsi" if skip else "%rcx")
        regs += ["%rdx", "%rsi"]
        if pop_rdi == "1":
            regs.append("%rdi")
        return [Item(f"popq {r}") for r in regs]

    # -- ALTERNATIVE ----------------------------------------------------------------
    def alternative(self, old: str, new: str, feature: str) -> list[Item | Label]:
        present = {
            "X86_FEATURE_LA57": self.f.la57,
            "X86_FEATURE_PTI": self.f.pti,
            "X86_FEATURE_PCID": self.f.pcid,
        }[feature]
        chosen = new if present else old
        return [Item(resolve_operands(s.strip())) for s in chosen.split(";") if s.strip()]

    def expand(self, name: str, args: str) -> list[Item | Label]:
        """Expand macro *name* with its argument text (``scratch_reg=%rsp``)."""
        kw = dict(a.split("=", 1) for a in args.replace(",", " ").split() if "=" in a)
        if name == "SWITCH_TO_KERNEL_CR3":
            return self.switch_to_kernel_cr3(kw["scratch_reg"])
        if name == "SWITCH_TO_USER_CR3_STACK":
            return self.switch_to_user_cr3_stack(kw["scratch_reg"])
        if name == "PUSH_AND_CLEAR_REGS":
            return self.push_and_clear_regs(**kw)
        if name == "POP_REGS":
            return self.pop_regs(**kw)
        if name == "USERGS_SYSRET64":
            return [Item("swapgs"), Item("sysretq")]
        if name == "SWAPGS":
            return [Item("swapgs")]
        if name == "INTERRUPT_RETURN":
            return [Item("jmp native_iret")]
        if name == "ALTERNATIVE":
            parts = re.findall(r'"([^"]*)"', args)
            feature = args.rsplit(",", 1)[1].strip()
            return self.alternative(parts[0], parts[1], feature)
        if name in ("STACKLEAK_ERASE_NOCLOBBER", "UNWIND_HINT_EMPTY", "UNWIND_HINT_REGS",
                    "UNWIND_HINT_IRET_REGS"):  # fmt: skip
            return []
        raise KeyError(name)


MACROS = frozenset(
    {
        "SWITCH_TO_KERNEL_CR3", "SWITCH_TO_USER_CR3_STACK", "PUSH_AND_CLEAR_REGS", "POP_REGS",
        "USERGS_SYSRET64", "SWAPGS", "INTERRUPT_RETURN", "ALTERNATIVE",
        "STACKLEAK_ERASE_NOCLOBBER", "UNWIND_HINT_EMPTY", "UNWIND_HINT_REGS",
        "UNWIND_HINT_IRET_REGS",
    }
)  # fmt: skip
