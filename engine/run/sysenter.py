"""SYSENTER at CPL 3: #UD on AMD in long mode, #GP(0) with a null IA32_SYSENTER_CS, and on
Intel the transition into entry_SYSENTER_compat, modelled per the SDM
(engine.machine.modelled.sysenter_transition) because Unicorn 2.1 runs past the
instruction: the code hook stops a run that faults here (:meth:`SysenterDoor.at_sysenter`),
the SYSENTER hook stops Unicorn at it (Run.on_sysenter), and :meth:`sysenter_enter` then
performs it, as Int80Door does for int $0x80.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import x86_const as X

from engine.checks import initial_states
from engine.constants import (
    MSR_IA32_SYSENTER_CS,
    MSR_IA32_SYSENTER_EIP,
    MSR_IA32_SYSENTER_ESP,
    VEC_GP,
    VEC_UD,
)
from engine.i18n import N_, msg
from engine.machine.modelled import sysenter_faults, sysenter_gp, sysenter_transition
from engine.run.user import FAST32_UNDER_FRED
from engine.trace import Door, Event, EventKind

if TYPE_CHECKING:
    from engine.run.roundtrip import Run

#: Why a 64-bit task's SYSENTER is not followed into entry_SYSENTER_compat.
NO_VDSO32_SYSENTER = N_(
    "SYSENTER enters entry_SYSENTER_compat on Intel even from 64-bit code; "
    "do_fast_syscall_32 then returns to current->mm->context.vdso + the 32-bit vDSO's "
    "int80_landing_pad offset, which in a 64-bit task lies inside the 64-bit vDSO, not "
    'emulated here: a 32-bit task ([user] mode = "compat") has the 32-bit vDSO'
)


class SysenterDoor:
    """SYSENTER for one run."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def hit(self, address: int) -> None:
        """Unicorn reached the SYSENTER at *address* (the code hook let it through): the
        door is SYSENTER, decided by do_fast_syscall_32's conditions."""
        run = self.run
        run.sysenter_hit = address
        run.door = Door.SYSENTER
        run.checks = initial_states((), run.kernel.compat_checks)
        run.uc.emu_stop()

    def at_sysenter(self, address: int) -> None:
        """The code hook's part, before the SYSENTER runs: #UD on AMD (modelled), #GP(0)
        with a null IA32_SYSENTER_CS, a stop under FRED or in a 64-bit task (no 32-bit
        vDSO to return to); otherwise nothing, and the SYSENTER hook takes it (:meth:`hit`)."""
        run = self.run
        if run.fred:
            run.event(Event(EventKind.UNSUPPORTED, FAST32_UNDER_FRED))
            run.stop(N_("stopped at a 32-bit SYSCALL or SYSENTER under FRED (not modelled)"))
        if sysenter_faults(run.sc.machine.cpu):
            run.model_fault(
                VEC_UD,
                address,
                N_("SYSENTER is invalid in long mode on AMD (APM vol. 3, SYSENTER)"),
            )
        if sysenter_gp(run.m.read_msr(MSR_IA32_SYSENTER_CS)):
            run.model_fault(
                VEC_GP,
                address,
                N_(
                    "SYSENTER with IA32_SYSENTER_CS 0 raises #GP(0) (SDM vol. 2B, SYSENTER): "
                    "with ia32_emulation=off, 6.12 writes GDT_ENTRY_INVALID_SEG there "
                    "(idt_syscall_init)"
                ),
                0,
            )
        if run.landing_pad is None:
            # as for a compat SYSCALL: do_fast_syscall_32 would return into the 64-bit vDSO
            run.event(Event(EventKind.UNSUPPORTED, NO_VDSO32_SYSENTER))
            run.stop(N_("stopped at SYSENTER in a 64-bit task"))
        # else the SYSENTER hook (Run.on_sysenter) stops Unicorn at it, and
        # sysenter_enter() performs it

    def sysenter_enter(self) -> int:
        """model: SYSENTER in IA-32e mode on Intel (engine.machine.modelled), which Unicorn
        runs past; returns the RIP it loads (IA32_SYSENTER_EIP)."""
        run = self.run
        m, uc = run.m, run.uc
        saved = run.user_actions.user_state()
        before = saved.regs
        msrs = MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP
        cs, esp, eip = (m.read_msr(x) for x in msrs)
        eff = sysenter_transition(cs, esp, eip, before.rflags)
        # Everything SYSENTER leaves alone, GS bases and CR3 included; CS and SS as the
        # kernel's (__KERNEL_CS, __KERNEL_DS: the selectors it computes)
        run.user_actions.to_ring0(saved, saved.gs, saved.kernel_gs)
        uc.reg_write(X.UC_X86_REG_RSP, eff.rsp)
        uc.reg_write(X.UC_X86_REG_RFLAGS, eff.rflags)
        uc.reg_write(X.UC_X86_REG_RIP, eff.rip)
        run.event(
            Event(
                EventKind.SYSCALL,
                msg(
                    "SYSENTER: CPL 3 → 0, CS ← IA32_SYSENTER_CS {cs:#x}, SS ← {ss:#x}, "
                    "RSP ← IA32_SYSENTER_ESP {rsp:#x}, RFLAGS ← {rflags:#x} (IF, VM, RF "
                    "cleared), RIP ← IA32_SYSENTER_EIP {rip:#x}; nothing saved",
                    cs=eff.cs,
                    ss=eff.ss,
                    rsp=eff.rsp,
                    rflags=eff.rflags,
                    rip=eff.rip,
                ),
                modelled=True,
            )
        )
        run.sink.finish()
        return eff.rip


__all__ = ["SysenterDoor"]
