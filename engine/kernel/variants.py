"""The kernels the debugger can run, each described once.

Everything that differs between the kernel versions lives in one :class:`KernelSpec`:
which rendition of entry_64.S runs, the per-CPU offsets it uses, what the SYSCALL
mask is, how do_syscall_64 is called, and which SYSRET checks are made where (in
assembly for v5.8.13 and 6.1, in C for 6.12).  The engine and the UI ask the spec
instead of testing the version.

The 6.1 and 6.12 values are those of Debian's cloud kernels that were single-stepped
under QEMU (see the oracle traces the tests replay); where the traces do not show a
value (a per-CPU variable no traced instruction touched) the spec says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.constants import (
    AC,
    AF,
    CF,
    CHECK_NAMES,
    DF,
    IF,
    IOPL,
    NT,
    OF,
    PF,
    RF,
    SF,
    SYSCALL_MASK_V58,
    TF,
    ZF,
    TLB_STATE_user_pcid_flush_mask,
    TSS_sp0,
    TSS_sp1,
    TSS_sp2,
)

ID = 0x200000

#: The v5.8.13 SYSRET checks (and 6.1's), in the order entry_SYSCALL_64 tests them.
ASM_CHECKS: tuple[str, ...] = CHECK_NAMES

#: 6.12's SYSRET conditions, in the order the compiled do_syscall_64 tests them.
C_CHECKS: tuple[str, ...] = (
    "rcx_eq_rip", "r11_eq_rflags", "cs_user", "ss_user", "rip_below_task_size_max", "no_rf_tf",
)  # fmt: skip

# 5.12+ syscall_init(): every arithmetic flag is cleared on entry as well.
SYSCALL_MASK_V512 = CF | PF | AF | ZF | SF | TF | IF | DF | OF | IOPL | NT | RF | AC | ID

PERCPU_TSS = 0x6000  # cpu_tss_rw: the same offset in all three (traced for 6.1 and 6.12)
PERCPU_TLBSTATE = 0x2C00  # cpu_tlbstate: not in the traces (no PCID, never read there)


@dataclass(frozen=True, slots=True)
class KernelSpec:
    """One kernel version, as the engine and the UI need to know it."""

    name: str  # "v5.8.13" | "v6.1" | "v6.12"
    source_file: str  # the rendition, in engine/kernel/
    summary: str  # one line for help texts
    #: SYSRET checks made by jne branches in entry_SYSCALL_64, in code order.
    asm_checks: tuple[str, ...]
    #: SYSRET conditions tested in C at the end of do_syscall_64, in compiled order.
    c_checks: tuple[str, ...]
    syscall_mask: int  # MSR_SYSCALL_MASK as syscall_init() writes it
    #: per-CPU symbols (offsets from the GS base) and asm-offsets the rendition uses
    percpu: dict[str, int] = field(default_factory=dict)
    #: per-CPU offset of the word holding the top of the task stack
    top_of_stack: int = 0
    #: bytes of per-CPU area to build (covers every symbol above)
    percpu_size: int = 0x8000
    #: per-CPU operands are RIP-relative (%gs:sym(%rip)), as 6.12 compiles them
    percpu_rip_relative: bool = False
    #: do_syscall_64's arguments in (RDI, RSI): ("nr", "regs") or ("regs", "nr")
    c_args: tuple[str, str] = ("nr", "regs")
    c_call: str = ""  # how the C call reads in the source panel
    #: arch/x86/lib/retpoline.S's SRSO untraining, appended on a CPU with SRSO ("": none)
    srso_source_file: str = ""
    #: arch/x86/entry/entry_64_compat.S's int $0x80 entry, listed after the entry code
    #: ("": not rendered yet)
    compat_source_file: str = ""
    #: do_fast_syscall_32's SYSRETL conditions (the compat SYSCALL and SYSENTER entries),
    #: in the order its C tests them
    compat_checks: tuple[str, ...] = ("cs_user32", "ss_user", "ip_landing_pad", "no_rf_tf")
    #: struct pt_regs has cs and ss as u16 (6.12: the FRED fields share their words)
    u16_segments: bool = False
    #: the ESPFIX64 LDT-stack test before IRETQ is built in (not in Debian's cloud kernels)
    espfix64: bool = True
    nr_syscalls: int = 440
    #: IA32_NR_syscalls: the i386 table's size (syscall_32.tbl's last number + 1)
    ia32_nr_syscalls: int = 440
    #: user space may set its FS/GS base with WRFSBASE/WRGSBASE (CR4.FSGSBASE, Linux 5.9+);
    #: before that only arch_prctl(), which refuses a base at or above TASK_SIZE_MAX
    fsgsbase: bool = True
    # -- how its macros expand (engine/kernel/macros.py) ------------------------------
    #: PUSH_AND_CLEAR_REGS is PUSH_REGS then CLEAR_REGS (v5.8 interleaves push and xor)
    split_push_clear: bool = False
    #: POP_REGS knows skip_r11rcx=1 (pops RCX and R11 into RSI on the SYSRET path)
    pop_skip_r11rcx: bool = True
    #: SWITCH_TO_USER_CR3_STACK's PTI ALTERNATIVE jumps over the push/pop of RAX too
    user_cr3_stack_pti_outside: bool = False
    #: the FRED entry's rendition (entry_64_fred.S), for kernels that have FRED
    fred_source_file: str = ""
    #: ENDBR assembles to ENDBR64 (built with IBT)
    endbr: bool = False
    #: UNTRAIN_RET as patched on the traced CPU: "nop1", "nop5", or "skip13" (a jmp
    #: over 13 bytes of INT3 padding, 6.12's form for padding longer than a NOP)
    untrain_ret: tuple[str, ...] = ()
    #: CLEAR_CPU_BUFFERS as patched: "skip_verw" (a jmp over VERW) or "nop7"
    clear_cpu_buffers: str = ""

    @property
    def checks(self) -> tuple[str, ...]:
        """Every SYSRET check of this kernel, in the order it makes them."""
        return self.asm_checks + self.c_checks

    @property
    def checks_in_c(self) -> bool:
        return bool(self.c_checks)


_V58_PERCPU = {
    "cpu_tss_rw": PERCPU_TSS,
    "cpu_current_top_of_stack": PERCPU_TSS + TSS_sp1,  # v5.8: #define as cpu_tss_rw + TSS_sp1
    "cpu_tlbstate": PERCPU_TLBSTATE,
    "TSS_sp0": TSS_sp0,
    "TSS_sp1": TSS_sp1,
    "TSS_sp2": TSS_sp2,
    "TLB_STATE_user_pcid_flush_mask": TLB_STATE_user_pcid_flush_mask,
}

SPECS: dict[str, KernelSpec] = {
    "v5.8.13": KernelSpec(
        name="v5.8.13",
        source_file="entry_64.S",
        compat_source_file="entry_64_compat.S",
        summary="2020: six SYSRET checks in assembly, canonical RIP",
        asm_checks=ASM_CHECKS,
        c_checks=(),
        syscall_mask=SYSCALL_MASK_V58,
        percpu=_V58_PERCPU,
        top_of_stack=PERCPU_TSS + TSS_sp1,
        c_args=("nr", "regs"),
        c_call="do_syscall_64(nr, regs)",
        espfix64=True,
        nr_syscalls=440,
        fsgsbase=False,  # FSGSBASE for user space came in 5.9
    ),
    "v6.1": KernelSpec(
        name="v6.1",
        source_file="entry_64_v6.1.S",
        srso_source_file="retpoline_v6.1.S",
        compat_source_file="entry_64_compat_v6.1.S",
        summary="LTS 2022: the same six checks in assembly, plus mitigation sites",
        asm_checks=ASM_CHECKS,
        c_checks=(),
        syscall_mask=SYSCALL_MASK_V512,
        percpu={
            **_V58_PERCPU,
            "cpu_current_top_of_stack": 0x1FB50,  # traced: mov %gs:0x1fb50,%rsp
            "x86_spec_ctrl_current": 0x1FB58,  # not traced (IBRS sites are jumped over)
        },
        top_of_stack=0x1FB50,
        percpu_size=0x20000,
        c_args=("regs", "nr"),
        c_call="do_syscall_64(regs, nr)",
        espfix64=False,
        nr_syscalls=451,
        ia32_nr_syscalls=451,  # 450 set_mempolicy_home_node
        split_push_clear=True,
        pop_skip_r11rcx=False,
        untrain_ret=("nop1", "nop5", "nop5"),  # ANNOTATE_UNRET_END's nop, two call sites
        clear_cpu_buffers="skip_verw",
    ),
    "v6.12": KernelSpec(
        name="v6.12",
        source_file="entry_64_v6.12.S",
        srso_source_file="retpoline_v6.12.S",
        fred_source_file="entry_64_fred_v6.12.S",
        compat_source_file="entry_64_compat_v6.12.S",
        compat_checks=("ip_landing_pad", "cs_user32", "ss_user", "no_rf_tf_vm"),
        u16_segments=True,
        summary="LTS 2024: the SYSRET decision in C, RIP < TASK_SIZE_MAX",
        asm_checks=(),
        c_checks=C_CHECKS,
        syscall_mask=SYSCALL_MASK_V512,
        percpu={
            **_V58_PERCPU,
            "pcpu_hot": 0x35000,  # traced: %gs:...(%rip) # 0x35018 <pcpu_hot+24>
            "X86_top_of_stack": 24,
            "x86_spec_ctrl_current": 0x35040,  # not traced (IBRS sites are jumped over)
        },
        top_of_stack=0x35018,
        percpu_size=0x36000,
        percpu_rip_relative=True,
        c_args=("regs", "nr"),
        c_call="bool do_syscall_64(regs, nr)",
        espfix64=False,
        nr_syscalls=463,  # traced: cmp $0x1cf,%r12d
        ia32_nr_syscalls=463,  # 462 mseal
        split_push_clear=True,
        pop_skip_r11rcx=False,
        user_cr3_stack_pti_outside=True,
        endbr=True,
        untrain_ret=("nop5", "skip13"),  # CALL_UNTRAIN_RET, then the 15-byte ALTERNATIVE_2
        clear_cpu_buffers="nop7",
    ),
}

#: The kernel names a scenario's ``[machine] kernel`` may give, oldest first.
KERNELS: tuple[str, ...] = tuple(SPECS)
DEFAULT_KERNEL = "v5.8.13"


def spec(name: str) -> KernelSpec:
    """The description of kernel *name* (one of :data:`KERNELS`)."""
    return SPECS[name]


def all_check_names() -> tuple[str, ...]:
    """Every check name any kernel uses, each once."""
    return tuple(dict.fromkeys(n for s in SPECS.values() for n in s.checks))


__all__ = [
    "ASM_CHECKS",
    "C_CHECKS",
    "DEFAULT_KERNEL",
    "KERNELS",
    "SPECS",
    "KernelSpec",
    "all_check_names",
    "spec",
]
