"""The parts of the CPU that Unicorn does not do the way hardware does, modelled per the SDM.

Everything here is labelled "modelled" in the trace and on screen.

* SYSCALL: Unicorn's ``syscall`` only calls the UC_HOOK_INSN hook and moves on to
  the next instruction, at CPL 3.  :func:`syscall_transition` performs the ring
  transition of Intel SDM vol. 2B "SYSCALL" instead.
* SYSRET to a non-canonical RCX: Intel CPUs raise #GP(0) in ring 0, after the
  kernel has already loaded the user RSP and GS base (CVE-2012-0217); AMD CPUs
  complete it and fault at CPL 3 on the fetch.  Unicorn behaves like AMD.
  :func:`sysret_faults` says when the Intel behaviour applies.
* IRETQ to a non-canonical RIP: real CPUs raise #GP(0) on the IRET itself, at
  CPL 0; QEMU (and so Unicorn) completes it and faults later in user mode.
* MOV to CR3 with CR4.PCIDE=1: bit 63 (no-flush) is a hint and is not stored;
  Unicorn stores it.  :func:`cr3_as_stored` gives what a real CPU keeps.
* SYSRET's RFLAGS: the CPU loads RFLAGS from R11 with RF and VM cleared (Intel SDM
  vol. 2B "SYSRET": RFLAGS ← (R11 & 3C7FD7H) | 2; AMD APM vol. 3 "SYSRET": RFLAGS ←
  R11, with RF, VM and the reserved bits cleared and bit 1 set).  Unicorn copies R11
  whole.  :func:`sysret_rflags` gives what the CPU loads.
* IN/OUT/INS/OUTS at CPL > IOPL: the CPU consults the TSS I/O-permission bitmap and
  raises #GP(0) when the port is not allowed (v5.8 points the bitmap past the TSS
  limit, so no port is).  Unicorn 2.1 performs the access without the check.
  :func:`io_faults` says when the CPU would fault.
* SYSENTER in 64-bit mode: AMD CPUs raise #UD (AMD APM vol. 3, SYSENTER: not
  supported in long mode); Intel CPUs enter the kernel at MSR_IA32_SYSENTER_EIP.
  Unicorn 2.1 does neither: it goes on with the next instruction.
  :func:`sysenter_faults` says when #UD applies.
* SYSCALL outside 64-bit mode (compatibility mode, CS.L = 0, e.g. CS 0x23 after a far
  return): Intel CPUs raise #UD (SDM vol. 2B, SYSCALL: "IF (CS.L ≠ 1) ... THEN #UD");
  AMD CPUs enter the kernel at MSR_CSTAR, entry_SYSCALL_compat (APM vol. 3, SYSCALL).
  Unicorn 2.1 does neither: it calls the SYSCALL hook as in 64-bit mode.
  :func:`syscall_compat_faults` says when #UD applies.
* Error codes: Unicorn 2.1 hands an exception to the UC_HOOK_INTR hook instead of
  delivering it through the IDT, so no error code is ever pushed where it could be
  read.  :func:`error_code` gives the one the CPU pushes where the SDM fixes it, and
  :func:`iret_fault` the selector (or 0) an IRETQ to CPL 3 names when it refuses
  the CS or SS of its frame; :func:`return_cs_fault` and :func:`far_jump_fault` the
  same for the CS a far RET, JMP or CALL loads.
* FRED (6.12 with ``[machine] fred = true``): Unicorn 2.1 has no FRED, so a SYSCALL
  at CPL 3 is delivered as a FRED event by :func:`fred_syscall_delivery` and ERETU
  (which Unicorn decodes as CLAC) is :func:`eretu_return`; the FRED MSRs are held by
  the machine, as Unicorn drops them.  Where each rule comes from is in the FRED block
  below and in docs/scenarios.md.
* INT n (``int $0x80``): Unicorn 2.1 hands every interrupt to the UC_HOOK_INTR hook
  and never delivers it through the IDT.  :func:`software_interrupt_delivery` performs
  the delivery of Intel SDM vol. 3A 6.12 and 6.14 (AMD APM vol. 2, 8.9) from the gate
  the emulated IDT holds: the limit, type, DPL and present checks (#GP or #NP with the
  error code vector·8+2), the stack switch to TSS.RSP0 (or the gate's IST), RSP
  aligned down to 16, SS, RSP, RFLAGS, CS and RIP pushed, TF, NT, RF and VM cleared
  and IF too through an interrupt gate, CS:RIP from the gate.
* A non-canonical stack address: Unicorn raises #GP(0) for every non-canonical data
  address; the SDM raises #SS(0) when the access goes through SS (PUSH, POP, RSP- or
  RBP-based operands).  :func:`stack_fault` says when #SS applies.

Exceptions themselves (vector, CPL, RIP, CR2) are Unicorn's: the engine always gives
``emu_start`` an instruction count, because without one Unicorn 2.1 reports the
first exception at CPL 3 as #DF (vector 8) rather than its own vector (the
exception bookkeeping of unicorn-engine/unicorn#1883).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.constants import (
    IF,
    IOPL,
    NT,
    RF,
    RFLAGS_FIXED,
    SYSRET_RFLAGS_KEEP,
    TF,
    VEC_AC,
    VEC_DF,
    VEC_GP,
    VEC_NP,
    VEC_PF,
    VEC_SS,
    VM,
    X86_CR3_PCID_NOFLUSH,
    is_canonical,
)
from engine.i18n import N_

#: SYSRET takes bits 0-21 of R11 without RF, VM and the reserved bits 3, 5 and 15
#: (bit 1 is set anyway): Intel's 3C7FD7H, on either vendor.
_RESERVED_ZERO = 0x8028
assert SYSRET_RFLAGS_KEEP == 0x3FFFFF & ~(RF | VM) & ~_RESERVED_ZERO

#: IOPL's position in RFLAGS.
IOPL_SHIFT = 12


#: #PF error-code bits (Intel SDM vol. 3A, 4.7).
PF_PRESENT, PF_WRITE, PF_USER, PF_FETCH = 0x1, 0x2, 0x4, 0x10


@dataclass(frozen=True, slots=True)
class SyscallEffect:
    """What SYSCALL writes, computed from the user state it saw."""

    rcx: int
    r11: int
    rflags: int
    rip: int
    cs: int
    ss: int


def syscall_transition(
    next_rip: int, rflags: int, fmask: int, lstar: int, star: int
) -> SyscallEffect:
    """Intel SDM vol. 2B, SYSCALL (64-bit mode, EFER.SCE = 1).

    RCX ← RIP of the next instruction; R11 ← RFLAGS with RF clear; RFLAGS ← RFLAGS
    AND NOT FMASK (RF clear as well); CS ← STAR[47:32] & 0xFFFC, SS ← that + 8, both
    with fixed flat DPL-0 attributes; CPL ← 0; RIP ← LSTAR.  RSP, the GS base and
    CR3 are left alone.
    """
    r11 = rflags & ~RF
    new_flags = (rflags & ~fmask & ~RF) | RFLAGS_FIXED
    cs = (star >> 32) & 0xFFFC
    return SyscallEffect(rcx=next_rip, r11=r11, rflags=new_flags, rip=lstar, cs=cs, ss=cs + 8)


@dataclass(frozen=True, slots=True)
class SysenterEffect:
    """What SYSENTER loads, from its three MSRs and the RFLAGS it saw."""

    cs: int
    ss: int
    rsp: int
    rip: int
    rflags: int


def sysenter_gp(sysenter_cs: int) -> bool:
    """SDM vol. 2B, SYSENTER: #GP(0) if IA32_SYSENTER_CS[15:2] = 0 (a null selector)."""
    return not sysenter_cs & 0xFFFC


def sysenter_transition(
    sysenter_cs: int, sysenter_esp: int, sysenter_eip: int, rflags: int
) -> SysenterEffect:
    """Intel SDM vol. 2B, SYSENTER, in IA-32e mode (from 64-bit or compatibility mode):
    RFLAGS.VM, IF and RF ← 0 (TF and the rest stay: SYSENTER masks nothing else);
    CS ← IA32_SYSENTER_CS & 0xFFFC with flat 64-bit DPL-0 attributes, SS ← that + 8, flat;
    CPL ← 0; RSP ← IA32_SYSENTER_ESP; RIP ← IA32_SYSENTER_EIP (both 64 bits wide in
    IA-32e mode).  Nothing is saved: not RIP, not RSP, not RFLAGS."""
    cs = sysenter_cs & 0xFFFC
    new_flags = (rflags & ~(VM | IF | RF)) | RFLAGS_FIXED
    return SysenterEffect(cs=cs, ss=cs + 8, rsp=sysenter_esp, rip=sysenter_eip, rflags=new_flags)


def sysret_faults(cpu: str, rcx: int, paging: int) -> bool:
    """True when SYSRETQ raises #GP(0) at CPL 0: Intel, with a non-canonical RCX."""
    return cpu == "intel" and not is_canonical(rcx, paging)


def sysenter_faults(cpu: str) -> bool:
    """True when SYSENTER in 64-bit mode raises #UD: AMD (APM vol. 3, SYSENTER)."""
    return cpu == "amd"


def syscall_compat_faults(cpu: str) -> bool:
    """True when SYSCALL in compatibility mode raises #UD: Intel (SDM vol. 2B, SYSCALL).
    AMD takes it, through MSR_CSTAR (APM vol. 3, SYSCALL)."""
    return cpu == "intel"


def iret_faults(rip: int, paging: int) -> bool:
    """True when IRETQ raises #GP(0) at CPL 0 because the frame's RIP is non-canonical."""
    return not is_canonical(rip, paging)


def sysret_rflags(cpu: str, r11: int) -> int:
    """RFLAGS after SYSRET to 64-bit mode, from R11.

    Intel SDM vol. 2B, SYSRET: ``RFLAGS ← (R11 & 3C7FD7H) | 2`` (RF and VM clear, the
    reserved bits as fixed).  AMD APM vol. 3, SYSRET operation: ``RFLAGS.q = R11``
    with ``RF = 0, VM = 0``; bit 1 reads as 1 and the other reserved bits as 0 on
    both.  The two vendors agree on every bit, so *cpu* does not change the result;
    it is taken so that a difference, if one is found, has its place.
    """
    del cpu  # same rule on Intel and AMD
    return (r11 & SYSRET_RFLAGS_KEEP) | RFLAGS_FIXED


def io_faults(cpl: int, rflags: int, io_bitmap_base: int, tss_limit: int) -> bool:
    """True when IN/OUT/INS/OUTS raise #GP(0): CPL > IOPL and the TSS's I/O bitmap
    starts past its limit, so no port is allowed (Intel SDM vol. 1, 19.5.2)."""
    iopl = (rflags & IOPL) >> IOPL_SHIFT
    return cpl > iopl and io_bitmap_base > tss_limit


def error_code(
    vector: int, *, present: bool = False, write: bool = False, user: bool = False,
    fetch: bool = False,
) -> int | None:  # fmt: skip
    """The error code the CPU pushes for *vector*, where the SDM fixes it; None when
    the vector pushes none or the code depends on a selector Unicorn does not report.

    #GP from a privileged instruction, from I/O and from SYSRET/IRET to a
    non-canonical RIP is #GP(0).  A #PF's code says whether the page was present
    (P), the access a write (W), made at CPL 3 (U) or an instruction fetch (I/D).
    """
    if vector == VEC_PF:
        return (
            (PF_PRESENT if present else 0)
            | (PF_WRITE if write else 0)
            | (PF_USER if user else 0)
            | (PF_FETCH if fetch else 0)
        )
    if vector in (VEC_DF, VEC_GP, VEC_AC):
        return 0
    return None


#: Descriptor access-byte bits (Intel SDM vol. 3A, 3.4.5).
_P, _S, _CODE, _CONFORMING, _WRITABLE = 0x80, 0x10, 0x08, 0x04, 0x02


def iret_fault(
    cs: int, ss: int, descriptor: Callable[[int], int | None], cpl: int = 0
) -> tuple[int, int]:
    """(vector, error code) of the fault an IRETQ at *cpl* raises on the CS and SS of
    its frame, in the order Intel SDM vol. 2A "IRET" checks them; (0, 0) when both pass.
    (User code may run IRETQ too: at CPL 3 a CS of RPL < 3 is refused.)

    *descriptor* gives the 8-byte descriptor a selector names, or None when it lies past
    its table's limit.  Returning to CPL 3 (RPL of CS): CS must be a present code segment
    of that DPL (conforming: DPL <= RPL); SS must not be null, must have the same RPL and
    be a present, writable data segment of that DPL.  A refused selector is the error
    code (#GP, or #NP / #SS when only its P bit is clear); a null one gives 0.
    """
    refused = return_cs_fault(cs, descriptor, cpl)
    if refused != (0, 0):
        return refused
    rpl = cs & 3
    if ss & ~3 == 0:
        # 64-bit mode allows a null SS only for a return to CPL 0-2
        return (VEC_GP, 0) if rpl == 3 else (0, 0)
    desc = descriptor(ss)
    if desc is None or ss & 3 != rpl:
        return VEC_GP, ss & ~3
    access = (desc >> 40) & 0xFF
    writable_data = access & _S and not access & _CODE and access & _WRITABLE
    if not writable_data or (access >> 5) & 3 != rpl:
        return VEC_GP, ss & ~3
    if not access & _P:
        return VEC_SS, ss & ~3
    return 0, 0


def return_cs_fault(cs: int, descriptor: Callable[[int], int | None], cpl: int) -> tuple[int, int]:
    """(vector, error code) of the fault a far return (RETF, IRETQ) at *cpl* raises on
    the CS it pops, (0, 0) when the CS passes (Intel SDM vol. 2A "RET", "IRET"): null
    is #GP(0); past the table limit, not a code segment, RPL < CPL, or a DPL that does
    not match the RPL (conforming: DPL > RPL) is #GP(selector); not present #NP(selector).
    """
    if cs & ~3 == 0:
        return VEC_GP, 0
    rpl = cs & 3
    desc = descriptor(cs)
    if desc is None:
        return VEC_GP, cs & ~3
    access = (desc >> 40) & 0xFF
    dpl = (access >> 5) & 3
    if not access & _S or not access & _CODE or rpl < cpl:
        return VEC_GP, cs & ~3
    if (dpl > rpl) if access & _CONFORMING else (dpl != rpl):
        return VEC_GP, cs & ~3
    if not access & _P:
        return VEC_NP, cs & ~3
    return 0, 0


#: A 64-bit call gate's descriptor type: a far JMP/CALL through one is not modelled.
_CALL_GATE = 0xC


def far_jump_fault(
    cs: int, descriptor: Callable[[int], int | None], cpl: int
) -> tuple[int, int] | None:
    """(vector, error code) of the fault a far JMP or CALL at *cpl* raises on the CS
    selector it loads, (0, 0) when the CS passes (Intel SDM vol. 2A "JMP", "CALL",
    64-bit mode): null is #GP(0); past the limit, a TSS, LDT or task gate, a code
    segment with RPL > CPL or DPL != CPL (conforming: DPL > CPL) or a data segment is
    #GP(selector); not present #NP(selector).  None for a call gate (not modelled).
    """
    if cs & ~3 == 0:
        return VEC_GP, 0
    desc = descriptor(cs)
    if desc is None:
        return VEC_GP, cs & ~3
    access = (desc >> 40) & 0xFF
    if not access & _S:
        return None if access & 0xF == _CALL_GATE else (VEC_GP, cs & ~3)
    dpl = (access >> 5) & 3
    if not access & _CODE:
        return VEC_GP, cs & ~3
    if (dpl > cpl) if access & _CONFORMING else (cs & 3 > cpl or dpl != cpl):
        return VEC_GP, cs & ~3
    if not access & _P:
        return VEC_NP, cs & ~3
    return 0, 0


def stack_fault(stack: list[tuple[int, int]], other: list[tuple[int, int]], paging: int) -> bool:
    """True when a #GP(0) Unicorn raised is in fact #SS(0): an access through SS
    (push, pop, or a memory operand based on RSP or RBP without a segment override)
    has a byte at a non-canonical address and no other access of the instruction does
    (Intel SDM vol. 2A, 64-bit mode exceptions: "#SS(0) If a memory address referencing
    the SS segment is in a non-canonical form").  Unicorn raises #GP(0) for either.
    *stack* and *other* are (address, size) pairs.
    """

    def bad(accesses: list[tuple[int, int]]) -> bool:
        return any(
            not is_canonical(a, paging) or not is_canonical((a + n - 1) % 2**64, paging)
            for a, n in accesses
        )

    return bad(stack) and not bad(other)


def segment_load_error_code(register: str, selector: int) -> int:
    """The error code of the #GP, #NP or #SS a MOV or POP into *register* (ds, es, fs,
    gs, ss) raises on *selector* (Intel SDM vol. 2A "MOV", "POP"): the selector with its
    RPL cleared, whatever the reason (past the table limit, the wrong type, DPL or RPL,
    not present); 0 for a null selector, which only SS refuses.  Unicorn raises the
    fault; the code is not reported by it.
    """
    return 0 if selector & ~3 == 0 else selector & ~3


def cr3_as_stored(value: int, pcide: bool) -> int:
    """The CR3 a real CPU keeps after MOV to CR3: bit 63 dropped when CR4.PCIDE = 1."""
    return value & ~X86_CR3_PCID_NOFLUSH if pcide else value


# -- FRED (Flexible Return and Event Delivery) ------------------------------------------
#
# Unicorn 2.1 (QEMU 5) has no FRED: the FRED MSRs read as 0 whatever is written, SYSCALL
# is the legacy one, and ERETU (f3 0f 01 ca) decodes as CLAC.  With CR4.FRED = 1 the
# model performs the ring-3 SYSCALL event delivery and ERETU.  FRED is SDM Vol. 3
# Chapter 8 (the 2021 specification, document 346446): delivery is Section 8.3 (the
# SYSCALL page: "See Section 8.3, "FRED Event Delivery" ... The event is delivered using
# event type 7 and vector 1"), ERETU Section 8.4.2.  The chapter's prose could not be
# read here, so each rule is taken from what could be, and cited where it is used: the
# SDM's SYSCALL page (under CR4.FRED it is event delivery, in a branch apart from the
# one that writes RCX, R11 and masks with IA32_FMASK) and ERETU page (its Operation:
# #UD unless FRED and CPL 0, the checks of the popped state, the CS/SS forms, the GS
# swap, the pending single-step #DB); Linux 6.12, which runs on FRED hardware: the frame
# from arch/x86/include/asm/ptrace.h (struct fred_cs, struct fred_ss, pt_regs) and
# asm/fred.h (struct fred_frame, the 64-byte RSP alignment), the entry RIP from
# entry_64_fred.S, the GS swap from Documentation/arch/x86/x86_64/fred.rst ("FRED event
# delivery from ring 3 and ERETU both swap the value of the GS base address and that of
# the IA32_KERNEL_GS_BASE MSR"), CS/SS from IA32_STAR (syscall_init(): "Except the
# IA32_STAR MSR, there is NO need to setup SYSCALL ... MSRs for FRED"); and Bochs' FRED
# (bochs/cpu/fred.cc) for the RFLAGS delivery establishes and, alike, ERETU's checks of the
# return state.  docs/scenarios.md gives each rule with its source.

#: arch/x86/include/asm/trapnr.h, arch/x86/entry/entry_fred.c
EVENT_TYPE_OTHER = 7
EVENT_TYPE_SWINT = 4  # INT n (asm/fred.h)
FRED_SYSCALL = 1
#: asm/fred.h: FRED_STACK_FRAME_RSP_MASK
FRED_STACK_FRAME_RSP_MASK = ~0x3F & (2**64 - 1)
#: the frame, low address first: pt_regs from orig_ax up, then struct fred_info
FRED_FRAME_FIELDS = ("orig_ax", "ip", "fred_cs", "flags", "sp", "fred_ss", "edata", "resv")
FRED_FRAME_SIZE = 8 * len(FRED_FRAME_FIELDS)  # 64 bytes
#: RFLAGS after FRED event delivery: every flag clear but the fixed bit 1 (Bochs,
#: FRED_EventDelivery: "Clear EFLAGS, bit1 is always set")
FRED_DELIVERY_RFLAGS = RFLAGS_FIXED


def fred_ss_word(ss: int, vector: int, event_type: int, insnlen: int, *, swevent: bool,
                 sti: bool = False, nmi: bool = False, lm: bool = True) -> int:  # fmt: skip
    """The frame's SS word, bit for bit as struct fred_ss (asm/ptrace.h) lays it out:
    selector 15:0, STI 16, swevent 17 ("set if syscall, sysenter or INT n"), NMI 18,
    vector 39:32, type 51:48, enclave 56, lm 57 (long mode), nested 58, insnlen 63:60."""
    return (
        (ss & 0xFFFF) | int(sti) << 16 | int(swevent) << 17 | int(nmi) << 18
        | (vector & 0xFF) << 32 | (event_type & 0xF) << 48 | int(lm) << 57
        | (insnlen & 0xF) << 60
    )  # fmt: skip


def fred_cs_word(cs: int, stack_level: int = 0, wfe: bool = False) -> int:
    """The frame's CS word as struct fred_cs: selector 15:0, the stack level at the time
    of the event 17:16, IBT's WAIT_FOR_ENDBRANCH 18."""
    return (cs & 0xFFFF) | (stack_level & 3) << 16 | int(wfe) << 18


@dataclass(frozen=True, slots=True)
class FredDelivery:
    """What FRED event delivery of a ring-3 SYSCALL writes."""

    rsp: int  # the new RSP: the frame's lowest word (its error code)
    frame: tuple[int, ...]  # FRED_FRAME_FIELDS' values, low address first
    rip: int
    rflags: int
    cs: int
    ss: int


def fred_swint_delivery(
    vector: int, next_rip: int, rflags: int, user_rsp: int, user_cs: int, user_ss: int,
    fred_config: int, fred_rsp0: int, star: int, lm: bool, insnlen: int = 2,
) -> FredDelivery:  # fmt: skip
    """INT n at CPL 3 with CR4.FRED = 1: a FRED event of type software interrupt (4),
    vector n, with no IDT and so no gate DPL check (Linux's fred_intx() sends a vector it
    does not serve to #GP itself).  Delivered as a SYSCALL is (:func:`fred_syscall_delivery`):
    the 64-byte frame on IA32_FRED_RSP0 & ~3FH, error code and event data 0, the return
    RIP after the instruction, its length and the swevent bit in the SS word, and *lm*:
    whether the event came from 64-bit code (not from compatibility mode)."""
    return _fred_ring3_delivery(
        next_rip, rflags, user_rsp, user_cs,
        fred_ss_word(user_ss, vector, EVENT_TYPE_SWINT, insnlen, swevent=True, lm=lm),
        fred_config, fred_rsp0, star,
    )  # fmt: skip


def _fred_ring3_delivery(
    next_rip: int, rflags: int, user_rsp: int, user_cs: int, ss_word: int,
    fred_config: int, fred_rsp0: int, star: int,
) -> FredDelivery:  # fmt: skip
    """A FRED event at ring 3 with no error code or event data: the stack, the frame
    and what is loaded (the steps :func:`fred_syscall_delivery` lists)."""
    top = fred_rsp0 & FRED_STACK_FRAME_RSP_MASK
    cs = (star >> 32) & 0xFFFC
    frame = (0, next_rip, fred_cs_word(user_cs), rflags, user_rsp, ss_word, 0, 0)
    return FredDelivery(
        rsp=top - FRED_FRAME_SIZE,
        frame=frame,
        rip=fred_config & ~0xFFF,
        rflags=FRED_DELIVERY_RFLAGS,
        cs=cs,
        ss=cs + 8,
    )


def fred_syscall_delivery(
    next_rip: int, rflags: int, user_rsp: int, user_cs: int, user_ss: int,
    fred_config: int, fred_rsp0: int, star: int, insnlen: int = 2,
) -> FredDelivery:  # fmt: skip
    """A SYSCALL at CPL 3 with CR4.FRED = 1, delivered as a FRED event of type "other"
    (7), vector 1 (entry_fred.c: FRED_SYSCALL).  The event is at ring 3, so the stack is
    level 0: RSP ← IA32_FRED_RSP0 aligned down to 64 bytes; the 64-byte frame is pushed
    (error code 0, the return RIP, the CS word, RFLAGS, RSP, the SS word with the event
    information, event data 0, a reserved word); RIP ← IA32_FRED_CONFIG & ~FFFH (the
    ring-3 entry, entry_64_fred.S); CS ← IA32_STAR[47:32] & FFFCH, SS ← that + 8.
    RCX and R11 are not written: the return state is in the frame.
    """
    # error code and event data: none for SYSCALL
    return _fred_ring3_delivery(
        next_rip, rflags, user_rsp, user_cs,
        fred_ss_word(user_ss, FRED_SYSCALL, EVENT_TYPE_OTHER, insnlen, swevent=True),
        fred_config, fred_rsp0, star,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EretuReturn:
    """What ERETU loads from the frame at RSP (cs_word, ss_word: the whole words)."""

    rip: int
    cs: int
    rflags: int
    rsp: int
    ss: int
    cs_word: int = 0
    ss_word: int = 0

    @property
    def pends_single_step(self) -> bool:
        """ERETU pends a single-step #DB, delivered after it and before any instruction
        at the RIP it returns to: the SS word's bit 17 (set by the delivery of a SYSCALL,
        SYSENTER or INT n, "swevent" in Linux's struct fred_ss) with TF set in the popped
        RFLAGS.  The SDM's ERETU Operation: "pend_DB := tempSS[17]" ... "IF pend_DB = 1
        AND RFLAGS.TF = 1 THEN pend a single-step debug exception (#DB) to be delivered
        after ERETU": the trap that reports the single-stepped SYSCALL itself."""
        return bool(self.ss_word >> 17 & 1) and bool(self.rflags & TF)


#: ERETU's checks of the popped return state, before anything is loaded (#GP(0) at
#: CPL 0 when one fails), from the SDM's ERETU Operation (Vol. 2A; Vol. 3 Section 8.4.2)
#: and alike in Bochs (bochs/cpu/fred.cc, BX_CPU_C::ERETU): "tempCS & FFFFFFFF_FFFF0003H
#: != 3" (RPL 3, nothing above bit 15), "newRFLAGS & FFFFFFFF_FFC2B02AH != 2" (bit 1
#: set; none of bits 3, 5, 15 (reserved), 12-13 (IOPL), 17 (VM), 22-63), "tempSS &
#: FFF80003H != 3" (RPL 3, nothing in bits 19-31; "do not check bits 63:32", the event
#: information).  The RIP's canonical check comes after them, once CS is chosen.
ERETU_CS_CHECK = (0xFFFFFFFFFFFF0003, 3)
ERETU_RFLAGS_CHECK = (0xFFFFFFFFFFC2B02A, 2)
ERETU_SS_CHECK = (0xFFF80003, 3)


def eretu_state_fault(back: EretuReturn) -> str | None:
    """Which of ERETU's checks of the popped CS, RFLAGS and SS words fails (None: all
    pass).  The RIP's canonical check is the caller's: it depends on the paging mode."""
    for word, (mask, want), what in (
        (back.cs_word, ERETU_CS_CHECK, N_("the CS word is not a ring-3 selector alone")),
        (back.rflags, ERETU_RFLAGS_CHECK, N_("RFLAGS sets IOPL, VM or a reserved bit")),
        (back.ss_word, ERETU_SS_CHECK, N_("the SS word is not a ring-3 selector")),
    ):
        if word & mask != want:
            return what
    return None


def eretu_return(frame: tuple[int, ...]) -> EretuReturn:
    """ERETU at CPL 0: the frame at RSP starts with the error code, which is skipped;
    RIP, CS (the selector of the CS word), RFLAGS, RSP and SS (the selector of the SS
    word) are loaded from the words after it, and the GS base is swapped with
    IA32_KERNEL_GS_BASE (fred.rst).  No general register is written: RCX and R11 keep
    what POP_REGS loaded from pt_regs, the user's own values unless the kernel changed
    them (SYSRET would load RIP from RCX and RFLAGS from R11 instead)."""
    _, rip, cs, rflags, rsp, ss = frame[:6]
    return EretuReturn(
        rip=rip, cs=cs & 0xFFFF, rflags=rflags, rsp=rsp, ss=ss & 0xFFFF, cs_word=cs, ss_word=ss
    )


# -- INT n through the IDT ------------------------------------------------------------
#: 64-bit IDT gate types (Intel SDM vol. 3A, 6.14.1): interrupt gates clear IF.
GATE_INTERRUPT, GATE_TRAP = 0xE, 0xF
#: The words interrupt delivery pushes, from the highest address down.
HW_FRAME_FIELDS = ("ss", "sp", "flags", "cs", "ip")


@dataclass(frozen=True, slots=True)
class IdtGate:
    """One 16-byte 64-bit IDT descriptor, decoded (Intel SDM vol. 3A, Figure 6-8)."""

    offset: int
    selector: int
    ist: int
    gate_type: int
    dpl: int
    present: bool

    @classmethod
    def decode(cls, raw: bytes) -> IdtGate:
        low, high = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:16], "little")
        attr = (low >> 40) & 0xFF
        offset = (low & 0xFFFF) | ((low >> 48) & 0xFFFF) << 16 | (high & 0xFFFFFFFF) << 32
        return cls(
            offset=offset,
            selector=(low >> 16) & 0xFFFF,
            ist=(low >> 32) & 7,
            gate_type=attr & 0xF,
            dpl=(attr >> 5) & 3,
            present=bool(attr & 0x80),
        )


@dataclass(frozen=True, slots=True)
class InterruptDelivery:
    """What delivering a software interrupt from a lower privilege level writes."""

    gate: IdtGate
    rsp: int  # the new RSP: the lowest word of the frame (the pushed RIP)
    frame: tuple[int, ...]  # HW_FRAME_FIELDS' values, highest address first
    rflags: int
    cs: int
    ss: int
    cpl: int


@dataclass(frozen=True, slots=True)
class InterruptFault:
    """The exception delivery raises instead, and the rule it broke."""

    vector: int
    error_code: int
    why: str


def software_interrupt_delivery(
    vector: int, gate_raw: bytes | None, idt_limit: int, cpl: int, rflags: int,
    rsp: int, cs: int, ss: int, next_rip: int, stack_for: Callable[[int, int], int | None],
    paging: int = 4,
) -> InterruptDelivery | InterruptFault:  # fmt: skip
    """INT *vector* at *cpl* in 64-bit mode (Intel SDM vol. 3A 6.12.1, 6.14; vol. 2A
    "INT n", IA-32e mode).  *gate_raw* is the descriptor the IDT holds (None when its
    memory is not readable); *stack_for(ist, dpl)* reads TSS.IST[ist] or TSS.RSP[dpl].

    The gate must be inside the IDT limit and be a 64-bit interrupt or trap gate, else
    #GP(vector·8+2); a software interrupt needs gate DPL ≥ CPL, else #GP(vector·8+2); a
    gate not present is #NP(vector·8+2).  To a more privileged level the CPU loads RSP
    from the IST slot (IST ≠ 0) or TSS.RSP[DPL] and SS with a null selector whose RPL
    is the new CPL; in 64-bit mode RSP is then aligned down to 16 bytes.  It pushes the
    old SS, RSP, RFLAGS, CS and the RIP of the next instruction (INT n pushes no error
    code), clears TF, NT, RF and VM (and IF through an interrupt gate), and loads CS:RIP
    from the gate.  A non-canonical new RSP is #SS(0), a non-canonical gate offset #GP(0).
    The gate's code segment is __KERNEL_CS in every gate this machine builds: its
    descriptor checks are not modelled, and the new CPL is its RPL (the descriptor's DPL,
    0, in the SDM).  The IDT and the TSS are mapped in both roots here, so the #PF or #TS
    a real CPU raises when it cannot read them never happens; should a read fail, the run
    stops with a #GP(0) that says so.
    """
    error = vector << 3 | 2  # IDT bit set, EXT clear: the gate itself is at fault
    if 16 * vector + 15 > idt_limit:
        return InterruptFault(VEC_GP, error, N_("the vector is past the IDT limit"))
    if gate_raw is None:
        return InterruptFault(VEC_GP, 0, N_("the IDT entry is not readable (not modelled)"))
    gate = IdtGate.decode(gate_raw)
    if gate.gate_type not in (GATE_INTERRUPT, GATE_TRAP):
        return InterruptFault(VEC_GP, error, N_("the IDT entry is not an interrupt or trap gate"))
    if gate.dpl < cpl:
        return InterruptFault(VEC_GP, error, N_("the gate's DPL is below the CPL of INT n"))
    if not gate.present:
        return InterruptFault(VEC_NP, error, N_("the gate is not present"))
    new_cpl = gate.selector & 3
    if new_cpl < cpl:
        top = stack_for(gate.ist, new_cpl)
        new_ss = new_cpl  # a null selector with RPL = the new CPL
    else:
        top = stack_for(gate.ist, new_cpl) if gate.ist else rsp
        new_ss = ss
    if top is None:
        return InterruptFault(
            VEC_GP, 0, N_("the TSS's stack pointer is not readable (not modelled)")
        )
    if not is_canonical(top, paging):
        return InterruptFault(VEC_SS, 0, N_("the new stack pointer is not canonical"))
    if not is_canonical(gate.offset, paging):
        return InterruptFault(VEC_GP, 0, N_("the gate's target RIP is not canonical"))
    frame = (ss, rsp, rflags, cs, next_rip)
    cleared = TF | NT | RF | VM | (IF if gate.gate_type == GATE_INTERRUPT else 0)
    return InterruptDelivery(
        gate=gate,
        rsp=(top & ~0xF) - 8 * len(frame),
        frame=frame,
        rflags=(rflags & ~cleared) | RFLAGS_FIXED,
        cs=gate.selector,
        ss=new_ss,
        cpl=new_cpl,
    )


__all__ = [
    "EVENT_TYPE_OTHER",
    "EVENT_TYPE_SWINT",
    "FRED_FRAME_FIELDS",
    "FRED_FRAME_SIZE",
    "FRED_SYSCALL",
    "HW_FRAME_FIELDS",
    "EretuReturn",
    "FredDelivery",
    "IdtGate",
    "InterruptDelivery",
    "InterruptFault",
    "SyscallEffect",
    "cr3_as_stored",
    "eretu_return",
    "eretu_state_fault",
    "error_code",
    "far_jump_fault",
    "fred_cs_word",
    "fred_ss_word",
    "fred_swint_delivery",
    "fred_syscall_delivery",
    "io_faults",
    "iret_fault",
    "iret_faults",
    "return_cs_fault",
    "segment_load_error_code",
    "software_interrupt_delivery",
    "stack_fault",
    "syscall_compat_faults",
    "syscall_transition",
    "sysenter_faults",
    "sysret_faults",
    "sysret_rflags",
]
