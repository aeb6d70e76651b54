"""Expansion of the entry_64.S renditions into the instructions each kernel runs.

Configuration: non-paravirt, CONFIG_PAGE_TABLE_ISOLATION, CONFIG_X86_5LEVEL, no
CONFIG_GCC_PLUGIN_STACKLEAK, no CONFIG_DEBUG_ENTRY; v5.8.13 with CONFIG_X86_ESPFIX64,
6.1 and 6.12 as Debian's cloud kernels (no ESPFIX64, which Debian's default amd64
kernels have; 6.12 with IBT's ENDBR).  What the
kernel patches at boot with ALTERNATIVE depends on the CPU features the scenario
gives (PTI, PCID, LA57): a feature that is present puts the "new" code in place; an
absent one keeps the "old" code; either is padded with NOPs to the longer length,
as apply_alternatives() does (P6 NOPs: 66 90, 0f 1f 44 00 00, 0f 1f 80 00 00 00 00;
6.12 replaces padding longer than 8 bytes by a jmp over INT3s).

The mitigation sites of 6.1 and 6.12 (IBRS_ENTER/EXIT, UNTRAIN_RET,
CLEAR_BRANCH_HISTORY, CLEAR_CPU_BUFFERS) are expanded as the traced kernels patched
them on a CPU that needs none of them (QEMU's TCG "max" CPU): jmps over the IBRS and
VERW sequences, NOPs for the calls.  Xen PV is never present.

Sources: arch/x86/entry/calling.h (SWITCH_TO_*_CR3, PUSH_AND_CLEAR_REGS,
POP_REGS, IBRS_*), arch/x86/include/asm/nospec-branch.h (UNTRAIN_RET,
CLEAR_BRANCH_HISTORY, CLEAR_CPU_BUFFERS), arch/x86/include/asm/irqflags.h (SWAPGS,
USERGS_SYSRET64, INTERRUPT_RETURN), arch/x86/include/asm/nops.h, for each version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import count

from engine.asm import Item, Label, hexify_decimals
from engine.constants import (
    AC,
    ENOSYS,
    NT,
    PT_REGS_OFFSET,
    PTI_USER_PCID_MASK,
    PTI_USER_PGTABLE_AND_PCID_MASK,
    PTI_USER_PGTABLE_MASK,
    RF,
    TF,
    USER32_CS,
    USER_CS,
    USER_DS,
    X86_CR3_PCID_NOFLUSH_BIT,
)
from engine.kernel.variants import KernelSpec, spec
from engine.layout import X86_VERW_SEL

# P6 NOPs (arch/x86/include/asm/nops.h), given as bytes: Keystone gets the 5-byte one wrong.
_NOPS: dict[int, Item] = {
    1: Item("nop"),
    2: Item("nop", asm="xchg %ax, %ax"),
    3: Item("nopl (%rax)", asm=".byte 0x0f, 0x1f, 0x00"),
    5: Item("nopl (%rax, %rax)", asm=".byte 0x0f, 0x1f, 0x44, 0x00, 0x00"),
    7: Item("nopl (%rax)", asm=".byte 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00"),
}


# MSR_IA32_SPEC_CTRL and its IBRS bit (msr-index.h), for the IBRS_ENTER/EXIT bodies.
MSR_IA32_SPEC_CTRL = 0x48
SPEC_CTRL_IBRS = 0x1


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
    kernel: str = "v5.8.13"  # one of engine.kernel.KERNELS
    #: FRED on (6.12 only): the image is entry_64_fred.S's asm_fred_entrypoint_user
    fred: bool = False
    #: CONFIG_X86_ESPFIX64: the LDT-stack test before IRETQ (v5.8's rendition always has
    #: it; on 6.1 and 6.12 Debian's generic amd64 kernel has it, its cloud kernel not)
    espfix64: bool = False
    #: X86_BUG_SRSO with the safe-RET mitigation (AMD Zen 1/2): X86_FEATURE_UNRET and
    #: X86_FEATURE_SRSO are set (bugs.c, srso_select_mitigation), so UNTRAIN_RET calls
    #: entry_untrain_ret, which jumps to srso_untrain_ret
    srso: bool = False
    #: 6.12 booted with ia32_emulation=off: MSR_CSTAR is entry_SYSCALL32_ignore
    ia32: bool = True
    #: X86_BUG_MDS: the CPU model has MDS, so X86_FEATURE_CLEAR_CPU_BUF is set and
    #: CLEAR_CPU_BUFFERS runs VERW (arch/x86/kernel/cpu/bugs.c, mds_select_mitigation)
    mds: bool = False


# Per-CPU symbols of v5.8.13, as offsets from the per-CPU base that GS points at in the
# kernel (each kernel's are in its KernelSpec).
PERCPU_SYMBOLS: dict[str, int] = spec("v5.8.13").percpu

# Assembler-level constants (asm-offsets, segment.h, errno.h, processor-flags.h).
CONSTANTS: dict[str, int] = {
    "__USER_DS": USER_DS,
    "__USER_CS": USER_CS,
    "__USER32_CS": USER32_CS,
    "__USER32_DS": USER_DS,  # segment.h: #define __USER32_DS __USER_DS
    "ENOSYS": ENOSYS,
    "X86_EFLAGS_RF": RF,
    "X86_EFLAGS_TF": TF,
    "X86_EFLAGS_NT": NT,
    "X86_EFLAGS_AC": AC,
    "X86_EFLAGS_FIXED": 0x2,  # processor-flags.h: bit 1, always set
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


def resolve_operands(text: str, kernel: KernelSpec | None = None) -> str:
    """Replace the kernel's symbolic operands by numbers, in hex.

    ``PER_CPU_VAR(cpu_tss_rw + TSS_sp2)`` becomes ``%gs:0x6014`` (6.12:
    ``%gs:[0x6014](%rip)``, a RIP-relative reference the assembler resolves),
    ``RCX(%rsp)`` becomes ``0x58(%rsp)``, ``$(64 - 48)`` becomes ``$0x10``,
    ``$__USER_CS`` becomes ``$0x33``.
    """
    k = kernel or spec("v5.8.13")

    def percpu(m: re.Match[str]) -> str:
        off = _eval(m.group(1), k.percpu)
        return f"%gs:[{off:#x}](%rip)" if k.percpu_rip_relative else f"%gs:{off:#x}"

    text = re.sub(r"PER_CPU_VAR\(([^)]*)\)", percpu, text)
    text = text.replace("%_ASM_SP", "%rsp")  # asm.h: the stack pointer, 64-bit
    text = re.sub(r"\$\(([^()]*)\)", lambda m: f"${_eval(m.group(1), CONSTANTS):#x}", text)
    # an unparenthesised OR of names: $X86_EFLAGS_NT|X86_EFLAGS_AC|X86_EFLAGS_TF
    text = re.sub(
        r"\$([A-Za-z_]\w*(?:\|[A-Za-z_]\w*)+)",
        lambda m: f"${_eval(m.group(1), CONSTANTS):#x}",
        text,
    )
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


class _Base:
    """What every expansion needs: the features, the kernel, fresh local labels."""

    def __init__(self, features: Features):
        self.f = features
        self.k = spec(features.kernel)
        self._ids = count()

    def _ops(self, text: str) -> str:
        return resolve_operands(text, self.k)

    def _label(self, stem: str) -> str:
        return f".L{stem}_{next(self._ids)}"


class _Mitigations(_Base):
    """The mitigation macros of 6.1 and 6.12, as the CPU models' kernels patched them."""

    def ibrs(self, exit: bool) -> list[Item | Label]:
        """IBRS_ENTER / IBRS_EXIT: X86_FEATURE_KERNEL_IBRS absent, so a jmp over the body."""
        end = self._label("end")
        body = [
            Item(f"movl ${MSR_IA32_SPEC_CTRL:#x}, %ecx"),
            Item(f"movq {self._ops('PER_CPU_VAR(x86_spec_ctrl_current)')}, %rdx"),
        ]
        if exit:
            body.append(Item(f"andl ${~SPEC_CTRL_IBRS & 0xFFFFFFFF:#x}, %edx"))
        body += [Item("movl %edx, %eax"), Item("shrq $0x20, %rdx"), Item("wrmsr")]
        return [Item(f"jmp {end}"), *body, Label(end)]

    def untrain_ret(self, from_call: bool = False) -> list[Item | Label]:
        # 6.1: ANNOTATE_UNRET_END's nop, then CALL_UNTRAIN_RET and the entry-IBPB call as
        # NOPs. 6.12: CALL_UNTRAIN_RET a NOP; the ALTERNATIVE_2 after it (call entry_ibpb or
        # RESET_CALL_DEPTH, 15 bytes) is padding longer than a NOP: a jmp over INT3s.
        out: list[Item | Label] = []
        call_site = self.k.untrain_ret.index("nop5")  # CALL_UNTRAIN_RET's 5 bytes
        for n, site in enumerate(self.k.untrain_ret):
            if n == call_site and self.f.srso:
                # X86_FEATURE_UNRET: the NOP is patched to the call (the real 6.1 and 6.12
                # on QEMU's EPYC-Rome: e8 rel32 to entry_untrain_ret)
                out.append(Item("call entry_untrain_ret"))
            elif site.startswith("skip"):
                # 6.12's UNTRAIN_RET_FROM_CALL (nospec-branch.h) pads for
                # RESET_CALL_DEPTH_FROM_CALL (movb, shl, movq: 14 bytes), one byte less than
                # RESET_CALL_DEPTH: add_nop() jumps over one INT3 fewer
                end = self._label("end")
                pad = int(site[4:]) - (1 if from_call else 0)
                out += [Item(f"jmp {end}"), *[Item("int3")] * pad, Label(end)]
            else:
                out.append(_NOPS[int(site[3:])])
        return out

    def fence_swapgs_user_entry(self) -> list[Item | Label]:
        """calling.h: ALTERNATIVE "", "lfence", X86_FEATURE_FENCE_SWAPGS_USER, which bugs.c
        (spectre_v1_select_mitigation) sets for a CPU with X86_BUG_SWAPGS when PTI is off
        (with PTI the CR3 write serializes).  Of the CPU models, Skylake-Client has the bug
        (an Intel core not on the NO_SWAPGS whitelist); EPYC-Rome is AMD (NO_SWAPGS); QEMU's
        max model is taken as unaffected, as its traced kernels take it for MDS (the two
        share the whitelist)."""
        if self.f.mds and not self.f.pti:
            return [Item("lfence")]
        return [_NOPS[3]]

    def clear_cpu_buffers(self) -> list[Item | Label]:
        verw = Item(f"verw [{X86_VERW_SEL:#x}](%rip)")
        if self.k.clear_cpu_buffers == "skip_verw":  # 6.1: ALTERNATIVE "jmp .Lskip_verw", ""
            if self.f.mds:
                # X86_FEATURE_CLEAR_CPU_BUF: the jmp is patched to a 2-byte NOP and VERW
                # runs (the real 6.1 on QEMU's Skylake-Client: 66 90, then 0f 00 2d)
                return [_NOPS[2], verw]
            skip = self._label("skip_verw")
            return [Item(f"jmp {skip}"), verw, Label(skip)]
        # 6.12: ALTERNATIVE "", "verw x86_verw_sel(%rip)": the 7-byte VERW itself on a
        # CPU with MDS (the real 6.12 on QEMU's Skylake-Client: 0f 00 2d + rel32), else
        # a 7-byte NOP
        return [verw] if self.f.mds else [_NOPS[7]]


class Expander(_Mitigations):
    """Expands one macro-level source line into :class:`Item` and :class:`Label` objects."""

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

    def switch_to_user_cr3(self, scratch_reg: str, scratch_reg2: str) -> list[Item | Label]:
        """SWITCH_TO_USER_CR3 (6.12's name for the body; v5.8 and 6.1 inline it)."""
        wrcr3, noflush, wrcr3_pcid = (
            self._label("wrcr3"),
            self._label("noflush"),
            self._label("wrcr3_pcid"),
        )
        flush_mask = self._ops("PER_CPU_VAR(cpu_tlbstate + TLB_STATE_user_pcid_flush_mask)")
        return [
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
        ]

    def switch_to_user_cr3_nostack(self, scratch_reg: str, scratch_reg2: str) -> list[Item | Label]:
        end = self._label("end")
        return [
            _NOPS[2] if self.f.pti else Item(f"jmp {end}"),
            *self.switch_to_user_cr3(scratch_reg, scratch_reg2),
            Label(end),
        ]

    def switch_to_user_cr3_stack(self, scratch_reg: str) -> list[Item | Label]:
        if self.k.user_cr3_stack_pti_outside:
            # 6.12: the PTI ALTERNATIVE jumps over the push and pop as well.
            end = self._label("end")
            return [
                _NOPS[2] if self.f.pti else Item(f"jmp {end}"),
                Item("pushq %rax"),
                *self.switch_to_user_cr3(scratch_reg, "%rax"),
                Item("popq %rax"),
                Label(end),
            ]
        return [
            Item("pushq %rax"),
            *self.switch_to_user_cr3_nostack(scratch_reg, "%rax"),
            Item("popq %rax"),
        ]

    # -- registers -------------------------------------------------------------------
    def push_and_clear_regs(
        self, rdx: str = "%rdx", rax: str = "%rax", save_ret: str = "0", rcx: str = "%rcx"
    ) -> list[Item | Label]:
        rax = self._ops(rax)
        if self.k.split_push_clear:
            # PUSH_REGS, then CLEAR_REGS: all the pushes first, then the xors.
            pushes = ["%rdi", "%rsi", rdx, rcx, rax, "%r8", "%r9", "%r10", "%r11",
                      "%rbx", "%rbp", "%r12", "%r13", "%r14", "%r15"]  # fmt: skip
            clears = ["%esi", "%edx", "%ecx", "%r8d", "%r9d", "%r10d", "%r11d", "%ebx",
                      "%ebp", "%r12d", "%r13d", "%r14d", "%r15d"]  # fmt: skip
            split: list[Item | Label] = [Item(f"pushq {r}") for r in pushes]
            if save_ret == "1":
                # error_entry's form: the return address of its call is where pt_regs->di
                # goes; RSI carries it below pt_regs (calling.h, PUSH_REGS save_ret=1)
                split = [
                    Item("pushq %rsi"),
                    Item("movq 8(%rsp), %rsi"),
                    Item("movq %rdi, 8(%rsp)"),
                    *split[2:],
                    Item("pushq %rsi"),
                ]
            return split + [Item(f"xorl {r}, {r}") for r in clears]
        # v5.8 interleaves each push with the xor that clears the register (nospec).
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
        skip = skip_r11rcx == "1" and self.k.pop_skip_r11rcx
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
            "X86_FEATURE_XENPV": False,  # bare metal, never a Xen PV guest
            "X86_FEATURE_SRSO": self.f.srso,
        }[feature]
        chosen, other = (new, old) if present else (old, new)
        out: list[Item | Label] = [
            Item(self._ops(re.sub(r"\s+", " ", s.strip()))) for s in chosen.split(";") if s.strip()
        ]
        if not out and other.strip():
            # an empty side is NOP-padded to the other's length: a 5-byte call or jmp
            assert re.match(r"\s*(jmp|call)\b", other), other
            out.append(_NOPS[5])
        elif not other.strip() and [getattr(i, "text", "")[:6] for i in out] == ["jmp .L"]:
            # a jmp patched over an empty original: apply_alternatives() makes it a
            # 2-byte jmp and NOPs the rest of the 5-byte slot (never executed)
            out.append(_NOPS[3])
        return out

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
        if name == "ASM_CLAC":
            # smap.h: ALTERNATIVE "", __ASM_CLAC, X86_FEATURE_SMAP.  The emulated CPU runs
            # with CR4.SMAP clear (engine.machine.boot), so the 3-byte CLAC is NOP-padded.
            return [_NOPS[3]]
        if name == "INTERRUPT_RETURN":
            return [Item("jmp native_iret")]
        if name == "FENCE_SWAPGS_USER_ENTRY":
            return self.fence_swapgs_user_entry()
        if name == "RET":
            # linkage.h: jmp __x86_return_thunk (CONFIG_RETHUNK); apply_returns() makes it
            # ret and INT3s where X86_FEATURE_RETHUNK is clear (no SRSO, no retbleed thunk)
            return [Item("retq"), *[Item("int3")] * 4]
        if name == "SWITCH_TO_USER_CR3_NOSTACK":
            return self.switch_to_user_cr3_nostack(kw["scratch_reg"], kw["scratch_reg2"])
        if name == "SWITCH_TO_USER_CR3":
            return self.switch_to_user_cr3(kw["scratch_reg"], kw["scratch_reg2"])
        if name in ("IBRS_ENTER", "IBRS_EXIT"):
            return self.ibrs(exit=name == "IBRS_EXIT")
        if name == "UNTRAIN_RET":
            return self.untrain_ret()
        if name == "UNTRAIN_RET_FROM_CALL":
            return self.untrain_ret(from_call=True)
        if name == "CLEAR_BRANCH_HISTORY":
            return [_NOPS[5]]  # ALTERNATIVE "", "call clear_bhb_loop"
        if name == "CLEAR_CPU_BUFFERS":
            return self.clear_cpu_buffers()
        if name == "ENDBR":
            # IBT: 6.12 is built with it (ENDBR64 runs as a NOP without CET); 6.1 is not.
            if self.k.endbr:
                return [Item("endbr64", asm=".byte 0xf3, 0x0f, 0x1e, 0xfa")]
            return []
        if name == "FRED_ENTER":  # entry_64_fred.S; ENCODE_FRAME_POINTER is empty (ORC)
            return [*self.push_and_clear_regs(), Item("movq %rsp, %rdi")]
        if name == "FRED_EXIT":
            return self.pop_regs()
        if name == "ERETU":
            # asm/fred.h: _ASM_BYTES(0xf3,0x0f,0x01,0xca); Keystone does not know it
            return [Item("eretu", asm=".byte 0xf3, 0x0f, 0x01, 0xca")]
        if name == "ALTERNATIVE":
            parts = re.findall(r'"([^"]*)"', args)
            feature = args.rsplit(",", 1)[1].strip()
            return self.alternative(parts[0], parts[1], feature)
        if name in _EMPTY:
            return []
        raise KeyError(name)


# Annotations for objtool and the unwinder, and STACKLEAK (not configured): no code.
_EMPTY = frozenset(
    {
        "STACKLEAK_ERASE", "STACKLEAK_ERASE_NOCLOBBER", "UNWIND_HINT_EMPTY",
        "UNWIND_HINT_REGS", "UNWIND_HINT_IRET_REGS", "UNWIND_HINT_ENTRY",
        "UNWIND_HINT_END_OF_STACK", "ANNOTATE_NOENDBR", "UNWIND_HINT_FUNC",
        "ENCODE_FRAME_POINTER", "REACHABLE", "DEBUG_ENTRY_ASSERT_IRQS_OFF",
        "UNWIND_HINT_IRET_ENTRY",
    }
)  # fmt: skip

MACROS = frozenset(
    {
        "SWITCH_TO_KERNEL_CR3", "SWITCH_TO_USER_CR3_STACK", "SWITCH_TO_USER_CR3",
        "SWITCH_TO_USER_CR3_NOSTACK",
        "PUSH_AND_CLEAR_REGS", "POP_REGS", "USERGS_SYSRET64", "SWAPGS", "INTERRUPT_RETURN",
        "ALTERNATIVE", "ASM_CLAC", "FENCE_SWAPGS_USER_ENTRY", "RET", "IBRS_ENTER", "IBRS_EXIT",
        "UNTRAIN_RET", "UNTRAIN_RET_FROM_CALL", "CLEAR_BRANCH_HISTORY",
        "CLEAR_CPU_BUFFERS", "ENDBR", "FRED_ENTER", "FRED_EXIT", "ERETU", *_EMPTY,
    }
)  # fmt: skip
