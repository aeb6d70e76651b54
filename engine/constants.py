"""Constants of the x86-64 SYSCALL path in Linux v5.8.13, each with its source.

See arch/x86/include/asm/segment.h, msr-index.h, processor-flags.h, ptrace.h and
arch/x86/entry/calling.h.
"""

from __future__ import annotations

# Segment selectors (arch/x86/include/asm/segment.h, 64-bit).
KERNEL32_CS = 0x08
KERNEL_CS = 0x10
KERNEL_DS = 0x18
USER32_CS = 0x23
USER_DS = 0x2B
USER_CS = 0x33
GDT_ENTRY_TSS = 8

# MSR numbers (arch/x86/include/asm/msr-index.h).
MSR_EFER = 0xC0000080
MSR_STAR = 0xC0000081
MSR_LSTAR = 0xC0000082
MSR_CSTAR = 0xC0000083
MSR_SYSCALL_MASK = 0xC0000084
MSR_FS_BASE = 0xC0000100
MSR_GS_BASE = 0xC0000101
MSR_KERNEL_GS_BASE = 0xC0000102
MSR_IA32_SYSENTER_CS = 0x174
MSR_IA32_SYSENTER_ESP = 0x175
MSR_IA32_SYSENTER_EIP = 0x176
# FRED MSRs (arch/x86/include/asm/msr-index.h, 6.12); SSP0 is MSR_IA32_PL0_SSP
MSR_IA32_FRED_RSP0 = 0x1CC
MSR_IA32_FRED_RSP1 = 0x1CD
MSR_IA32_FRED_RSP2 = 0x1CE
MSR_IA32_FRED_RSP3 = 0x1CF
MSR_IA32_FRED_STKLVLS = 0x1D0
MSR_IA32_FRED_SSP0 = 0x6A4
MSR_IA32_FRED_SSP1 = 0x1D1
MSR_IA32_FRED_SSP2 = 0x1D2
MSR_IA32_FRED_SSP3 = 0x1D3
MSR_IA32_FRED_CONFIG = 0x1D4
#: asm/fred.h: FRED_CONFIG_REDZONE (one 64-byte line for CALL emulation)
FRED_CONFIG_REDZONE = 1 << 6

EFER_SCE = 1 << 0
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
EFER_NXE = 1 << 11

# syscall_init() in arch/x86/kernel/cpu/common.c:
#   wrmsr(MSR_STAR, 0, (__USER32_CS << 16) | __KERNEL_CS)
STAR_VALUE = (USER32_CS << 48) | (KERNEL_CS << 32)

# RFLAGS bits (arch/x86/include/uapi/asm/processor-flags.h).
CF, PF, AF, ZF, SF = 0x1, 0x4, 0x10, 0x40, 0x80
TF, IF, DF, OF = 0x100, 0x200, 0x400, 0x800
IOPL = 0x3000
NT = 0x4000
RF = 0x10000
VM = 0x20000
AC = 0x40000
ID = 0x200000
RFLAGS_FIXED = 0x2

RFLAGS_BITS: tuple[tuple[str, int], ...] = (
    ("CF", CF), ("PF", PF), ("AF", AF), ("ZF", ZF), ("SF", SF), ("TF", TF), ("IF", IF),
    ("DF", DF), ("OF", OF), ("IOPL", IOPL), ("NT", NT), ("RF", RF), ("VM", VM), ("AC", AC),
    ("ID", ID),
)  # fmt: skip

# v5.8 syscall_init(): X86_EFLAGS_TF | X86_EFLAGS_DF | X86_EFLAGS_IF | X86_EFLAGS_IOPL |
# X86_EFLAGS_NT | X86_EFLAGS_AC
SYSCALL_MASK_V58 = TF | DF | IF | IOPL | NT | AC  # 0x47700

# SYSRET loads RFLAGS from R11 & 0x3C7FD7 | 2 (Intel SDM vol. 2B, SYSRET): RF and VM clear.
SYSRET_RFLAGS_KEEP = 0x3C7FD7

# FIX_EFLAGS (arch/x86/include/asm/sighandling.h): the flags sigreturn may change.
FIX_EFLAGS = AC | OF | DF | TF | SF | ZF | AF | PF | CF | RF

# Control-register bits.
CR0_PE = 1 << 0
CR0_MP = 1 << 1
CR0_ET = 1 << 4
CR0_NE = 1 << 5
CR0_WP = 1 << 16
CR0_PG = 1 << 31
CR4_PAE = 1 << 5
#: FXSAVE/SSE enabled and SIMD exceptions delivered as #XM: fpu__init_cpu_generic()
#: (arch/x86/kernel/fpu/init.c) sets both on every CPU of v5.8, 6.1 and 6.12, so user
#: code may use SSE (without them every SSE instruction is #UD).
CR4_OSFXSR = 1 << 9
CR4_OSXMMEXCPT = 1 << 10
CR4_LA57 = 1 << 12
CR4_PCIDE = 1 << 17
CR4_FRED = 1 << 32  # X86_CR4_FRED (uapi/asm/processor-flags.h, 6.12)

# KPTI (arch/x86/entry/calling.h).
PTI_USER_PGTABLE_BIT = 12
PTI_USER_PGTABLE_MASK = 1 << PTI_USER_PGTABLE_BIT
PTI_USER_PCID_BIT = 11
PTI_USER_PCID_MASK = 1 << PTI_USER_PCID_BIT
PTI_USER_PGTABLE_AND_PCID_MASK = PTI_USER_PCID_MASK | PTI_USER_PGTABLE_MASK
X86_CR3_PCID_NOFLUSH_BIT = 63
X86_CR3_PCID_NOFLUSH = 1 << X86_CR3_PCID_NOFLUSH_BIT
CR3_PCID_MASK = 0xFFF
KERNEL_ASID = 0
KERNEL_PCID = KERNEL_ASID + 1  # kern_pcid(asid) = asid + 1

# struct pt_regs (arch/x86/include/asm/ptrace.h); offsets from the pt_regs base.
PT_REGS_FIELDS: tuple[str, ...] = (
    "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
    "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
)  # fmt: skip
PT_REGS_OFFSET: dict[str, int] = {name: 8 * i for i, name in enumerate(PT_REGS_FIELDS)}
PT_REGS_SIZE = 8 * len(PT_REGS_FIELDS)  # 168

# Per-CPU TSS (struct x86_hw_tss, arch/x86/include/asm/processor.h).
TSS_sp0 = 4
TSS_sp1 = 12  # v5.8: cpu_current_top_of_stack
TSS_sp2 = 20
TSS_io_bitmap_base = 102
TSS_SIZE = 104
# v5.8 points io_bitmap_base past the TSS limit (IO_BITMAP_OFFSET_INVALID) until a task
# uses ioperm(): IN/OUT at CPL > IOPL then raise #GP(0).  This machine's TSS is the
# hardware part alone, so "past the limit" is its size.
IO_BITMAP_OFFSET_INVALID = TSS_SIZE
GDT_ENTRIES = 16  # arch/x86/include/asm/segment.h (64-bit)
TSS_SELECTOR = GDT_ENTRY_TSS * 8

# struct tlb_state: loaded_mm 0, last_user_mm 8, loaded_mm_asid 16, next_asid 18,
# is_lazy 20, invalidate_other 21, user_pcid_flush_mask 22 (v5.8).
TLB_STATE_user_pcid_flush_mask = 22

ENOSYS = 38
EFAULT = 14
EINVAL = 22
EPERM = 1

# Syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
NR_write = 1
NR_rt_sigreturn = 15
NR_getpid = 39
NR_exit = 60
NR_arch_prctl = 158
NR_exit_group = 231
NR_syscalls_v58 = 440  # __NR_syscall_max 439 in v5.8

ARCH_SET_GS = 0x1001
ARCH_SET_FS = 0x1002
ARCH_GET_FS = 0x1003
ARCH_GET_GS = 0x1004

UC_SIGCONTEXT_SS = 0x2
UC_STRICT_RESTORE_SS = 0x4

# The v5.8.13 SYSRET checks, in the order entry_SYSCALL_64 tests them.
CHECK_NAMES: tuple[str, ...] = (
    "rcx_eq_rip", "canonical_rip", "cs_user", "r11_eq_rflags", "no_rf_tf", "ss_user",
)  # fmt: skip

# Exception vectors (Intel SDM vol. 3A, table 6-1) the engine names in code.
VEC_DB, VEC_BP, VEC_UD, VEC_DF, VEC_GP, VEC_PF, VEC_AC = 1, 3, 6, 8, 13, 14, 17
VEC_NP, VEC_SS = 11, 12  # segment not present, stack-segment fault

# The requested privilege level in a selector's low bits (= CPL for CS in long mode).
SELECTOR_RPL_MASK = 3

EXCEPTION_NAMES: dict[int, str] = {
    0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM",
    8: "#DF", 10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF",
    17: "#AC", 18: "#MC", 19: "#XM",
}  # fmt: skip

MASK64 = (1 << 64) - 1

# Virtual-address bits: 48 with 4-level paging, 57 with 5-level (LA57).
VA_BITS = {4: 48, 5: 57}


def user_space_top(paging: int = 4) -> int:
    """One past the highest user address: 2^47, or 2^56 with 5-level paging."""
    return 1 << (VA_BITS[paging] - 1)


def is_canonical(addr: int, paging: int = 4) -> bool:
    """True when bits 63..(47 or 56) of *addr* are all equal."""
    bits = VA_BITS[paging]
    top = addr >> (bits - 1)
    return top == 0 or top == (MASK64 >> (bits - 1))


def sign_extend(addr: int, paging: int = 4) -> int:
    """What `shl $(64-bits); sar $(64-bits)` makes of *addr*."""
    bits = VA_BITS[paging]
    addr &= (1 << bits) - 1
    if addr >> (bits - 1):
        addr |= MASK64 ^ ((1 << bits) - 1)
    return addr


def flag_names(value: int) -> list[str]:
    """Names of the RFLAGS bits set in *value* (IOPL shown as IOPL=n)."""
    out = []
    for name, bit in RFLAGS_BITS:
        if name == "IOPL":
            if value & IOPL:
                out.append(f"IOPL={(value & IOPL) >> 12}")
        elif value & bit:
            out.append(name)
    return out
