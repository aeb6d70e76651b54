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
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.constants import (
    RF,
    X86_CR3_PCID_NOFLUSH,
    is_canonical,
)


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
    new_flags = (rflags & ~fmask & ~RF) | 0x2
    cs = (star >> 32) & 0xFFFC
    return SyscallEffect(rcx=next_rip, r11=r11, rflags=new_flags, rip=lstar, cs=cs, ss=cs + 8)


def sysret_faults(cpu: str, rcx: int, paging: int) -> bool:
    """True when SYSRETQ raises #GP(0) at CPL 0: Intel, with a non-canonical RCX."""
    return cpu == "intel" and not is_canonical(rcx, paging)


def iret_faults(rip: int, paging: int) -> bool:
    """True when IRETQ raises #GP(0) at CPL 0 because the frame's RIP is non-canonical."""
    return not is_canonical(rip, paging)


def cr3_as_stored(value: int, pcide: bool) -> int:
    """The CR3 a real CPU keeps after MOV to CR3: bit 63 dropped when CR4.PCIDE = 1."""
    return value & ~X86_CR3_PCID_NOFLUSH if pcide else value


__all__ = [
    "SyscallEffect",
    "cr3_as_stored",
    "iret_faults",
    "syscall_transition",
    "sysret_faults",
]
