"""The user side's models: what the CPU does at CPL 3 that Unicorn does not do.

Port I/O against the TSS I/O bitmap, SYSENTER in 64-bit mode, and the SYSCALL ring
transition itself (Intel SDM vol. 2B), each from engine.machine.modelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import x86_const as X

from engine.constants import (
    MSR_FS_BASE,
    MSR_GS_BASE,
    MSR_KERNEL_GS_BASE,
    MSR_LSTAR,
    MSR_STAR,
    MSR_SYSCALL_MASK,
    VEC_GP,
    VEC_UD,
    TSS_io_bitmap_base,
)
from engine.i18n import msg
from engine.machine.modelled import io_faults, syscall_transition, sysenter_faults
from engine.trace import Event, EventKind

if TYPE_CHECKING:
    from engine.run.roundtrip import Run

#: Bytes of a ``syscall`` instruction (0f 05).
SYSCALL_SIZE = 2


class UserActions:
    """The models of one run on the user side."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def port_io(self, address: int) -> None:
        run = self.run
        """model: IN/OUT at CPL > IOPL with no port allowed in the TSS raise #GP(0)."""
        tr = run.uc.reg_read(X.UC_X86_REG_TR)
        base = run.m.read_virt(run.m.kernel_cr3, tr[1] + TSS_io_bitmap_base, 2) or b"\0\0"
        rflags = int(run.uc.reg_read(X.UC_X86_REG_RFLAGS))
        if io_faults(run.cpl(), rflags, int.from_bytes(base, "little"), tr[2]):
            run.model_fault(
                VEC_GP,
                address,
                "port I/O at CPL 3 with IOPL 0, and the TSS I/O bitmap allows no port "
                "(it starts past the TSS limit)",
            )

    def sysenter(self, address: int) -> None:
        """SYSENTER in 64-bit mode: #UD on AMD (modelled); on Intel the other entry point.

        Unicorn 2.1 treats SYSENTER as a hook call and goes on with the next bytes, which
        neither vendor does, so the run stops here either way.
        """
        run = self.run
        if sysenter_faults(run.sc.machine.cpu):
            run.model_fault(
                VEC_UD, address, "SYSENTER is invalid in long mode on AMD (APM vol. 3, SYSENTER)"
            )
        run.event(
            Event(
                EventKind.UNSUPPORTED,
                "SYSENTER enters entry_SYSENTER_compat (MSR_IA32_SYSENTER_EIP), which is not "
                "emulated: only entry_SYSCALL_64 is",
            )
        )
        run.stop("stopped at SYSENTER (entry_SYSENTER_compat is not emulated)")

    def syscall(self) -> None:
        """model: the SYSCALL ring transition (Intel SDM vol. 2B), which Unicorn skips."""
        run = self.run
        m, uc = run.m, run.uc
        assert run.syscall_hit is not None
        before = run.rec.read_regs()
        gprs = m.gprs.read()
        fs, gs, kgs = (m.read_msr(x) for x in (MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE))
        eff = syscall_transition(
            run.syscall_hit + SYSCALL_SIZE,
            before.rflags,
            m.read_msr(MSR_SYSCALL_MASK),
            m.read_msr(MSR_LSTAR),
            m.read_msr(MSR_STAR),
        )
        # Back to the saved CPL-0 context (CS/SS with kernel attributes), then put back
        # everything SYSCALL leaves alone.
        m.restore_kernel_context()
        m.gprs.write(gprs)
        uc.reg_write(X.UC_X86_REG_CR3, before.cr3)
        m.write_msr(MSR_FS_BASE, fs)
        m.write_msr(MSR_GS_BASE, gs)
        m.write_msr(MSR_KERNEL_GS_BASE, kgs)
        m.transition_regs.write((eff.rcx, eff.r11, eff.rflags, eff.rip))
        run.event(
            Event(
                EventKind.SYSCALL,
                msg(
                    "SYSCALL: CPL 3 → 0, RCX ← {rcx:#x}, R11 ← {r11:#x}, "
                    "RFLAGS ← {rflags:#x}, RIP ← LSTAR {rip:#x}",
                    rcx=eff.rcx,
                    r11=eff.r11,
                    rflags=eff.rflags,
                    rip=eff.rip,
                ),
                modelled=True,
            )
        )
        run.sink.finish()


__all__ = ["SYSCALL_SIZE", "UserActions"]
