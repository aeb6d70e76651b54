"""The int $0x80 door: the 32-bit system-call gate of the IDT, delivered as the SDM says.

Unicorn hands INT n to the interrupt hook and never delivers it through the IDT, so the
run stops the emulation at the int (Run.on_intr) and this model performs the delivery
(engine.machine.modelled.software_interrupt_delivery) from the gate the emulated IDT
holds; the kernel's int $0x80 entry then runs in Unicorn from the gate's RIP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import x86_const as X

from engine.constants import MSR_IA32_FRED_CONFIG, MSR_IA32_FRED_RSP0, MSR_STAR, TSS_sp0
from engine.i18n import N_, msg
from engine.machine.idt import int80_handler
from engine.machine.modelled import (
    InterruptFault,
    fred_swint_delivery,
    software_interrupt_delivery,
)
from engine.run.recorder import FRED_INT80_CALL
from engine.run.user import long_mode_cs
from engine.trace import Door, Event, EventKind

if TYPE_CHECKING:
    from engine.run.roundtrip import Run

#: The vector of int $0x80, the 32-bit system-call gate (IA32_SYSCALL_VECTOR).
VEC_INT80 = 0x80
#: Bytes of ``int $0x80`` (cd 80).
INT_N_SIZE = 2


def TSS_ist(n: int) -> int:
    """The offset of IST slot *n* (1-7) in the 64-bit TSS (Intel SDM vol. 3A, Figure 8-11)."""
    return 36 + 8 * (n - 1)


class Int80Door:
    """int $0x80 at CPL 3, for one run: whether this kernel's entry is rendered, and the
    modelled delivery into it."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def int80(self, next_rip: int) -> None:
        """int $0x80 at CPL 3: the 32-bit system-call gate.  Where the kernel's int $0x80
        entry is not rendered, the run stops here, saying so; else the Run delivers it
        (:meth:`int80_delivery`) once Unicorn has stopped."""
        run = self.run
        # under FRED the int is a FRED event into asm_fred_entrypoint_user, whose C side
        # (fred_entry_from_user → fred_intx → fred_int80_emulation) is modelled
        name = int80_handler(run.kernel.name)
        if not run.fred and name not in run.img.symbols and run.sc.machine.ia32_emulation:
            run.rewind_rip = next_rip
            run.event(
                Event(
                    EventKind.UNSUPPORTED,
                    msg(
                        "int $0x80 is the 32-bit system-call entry ({name} on this kernel), "
                        "not a fault; on this kernel it is not modelled yet: v5.8.13's "
                        "entry_INT80_compat is",
                        name=name,
                    ),
                )
            )
            run.stop(msg("stopped at int $0x80 ({name} is not modelled yet)", name=name))
        run.door = Door.INT80
        if run.fred:
            run.rec.fred_call = FRED_INT80_CALL
        # No SYSRET decision on this path: the entry always leaves through IRET.
        run.checks = []

    def fred_int80_delivery(self) -> int:
        """model: INT $0x80 with CR4.FRED = 1, a FRED event of type software interrupt,
        vector 0x80 (engine.machine.modelled.fred_swint_delivery): no IDT, the frame on
        FRED_RSP0, RIP ← the ring-3 entry; returns that RIP."""
        run = self.run
        m = run.m
        assert run.int80_hit is not None
        saved = run.user_actions.user_state()
        before = saved.regs
        d = fred_swint_delivery(
            VEC_INT80, run.int80_hit, before.rflags, before.rsp, before.cs, before.ss,
            m.fred_msrs[MSR_IA32_FRED_CONFIG], m.fred_msrs[MSR_IA32_FRED_RSP0],
            m.read_msr(MSR_STAR), long_mode_cs(before.cs),
        )  # fmt: skip
        run.user_actions.fred_enter(d, saved)
        run.event(
            Event(
                EventKind.INTERRUPT,
                msg(
                    "int $0x80 as a FRED event (type 4 software interrupt, vector 0x80; no "
                    "IDT): CPL 3 → 0, RSP ← FRED_RSP0 & ~0x3f − 64 = {rsp:#x}, 64-byte "
                    "frame pushed, GS base ⇄ KERNEL_GS_BASE, RFLAGS ← {rflags:#x}, RIP ← "
                    "FRED_CONFIG & ~0xfff {rip:#x}",
                    rsp=d.rsp,
                    rflags=d.rflags,
                    rip=d.rip,
                ),
                modelled=True,
            )
        )
        run.sink.finish()
        return d.rip

    def int80_delivery(self) -> int:
        """model: INT $0x80 through the emulated IDT (engine.machine.modelled, Intel SDM
        vol. 3A 6.12, 6.14), which Unicorn does not deliver; returns the gate's RIP."""
        run = self.run
        m, uc = run.m, run.uc
        assert run.int80_hit is not None
        saved = run.user_actions.user_state()
        before = saved.regs
        _, idt_base, idt_limit, _ = uc.reg_read(X.UC_X86_REG_IDTR)
        gate = m.read_virt(before.cr3, idt_base + 16 * VEC_INT80, 16)
        tss = uc.reg_read(X.UC_X86_REG_TR)[1]

        def stack_for(ist: int, dpl: int) -> int | None:
            raw = m.read_virt(before.cr3, tss + (TSS_ist(ist) if ist else TSS_sp0 + 8 * dpl), 8)
            return None if raw is None else int.from_bytes(raw, "little")

        d = software_interrupt_delivery(
            VEC_INT80, gate, idt_limit, before.cpl, before.rflags, before.rsp, before.cs,
            before.ss, run.int80_hit, stack_for, run.paging,
        )  # fmt: skip
        if isinstance(d, InterruptFault):
            run.rewind_rip = run.int80_hit - INT_N_SIZE
            why = d.why
            if not run.sc.machine.ia32_emulation:
                why = msg(
                    "{why}: with ia32_emulation=off, 6.12 leaves vector 0x80 an "
                    "external-interrupt gate (DPL 0, idt_setup_apic_and_irq_gates)",
                    why=why,
                )
            run.model_fault(d.vector, run.int80_hit - INT_N_SIZE, why, d.error_code)
        frame = b"".join(v.to_bytes(8, "little") for v in reversed(d.frame))
        if not m.write_virt(before.cr3, d.rsp, frame, supervisor=True):
            run.stop(N_("int $0x80: the stack TSS.sp0 names is not mapped"))
        run.stack_written(d.rsp, d.rsp + len(frame))
        # GS bases and CR3 stay the user's: entry_INT80_compat swaps and switches itself.
        run.user_actions.to_ring0(saved, saved.gs, saved.kernel_gs)
        uc.reg_write(X.UC_X86_REG_SS, d.ss)
        uc.reg_write(X.UC_X86_REG_RSP, d.rsp)
        uc.reg_write(X.UC_X86_REG_RFLAGS, d.rflags)
        uc.reg_write(X.UC_X86_REG_RIP, d.gate.offset)
        run.event(
            Event(
                EventKind.INTERRUPT,
                msg(
                    "int $0x80 through IDT gate 0x80 (interrupt gate, DPL {dpl} ≥ CPL 3): "
                    "CPL 3 → 0, RSP ← TSS.sp0 {top:#x}, SS ← {ss:#x}; SS, RSP, RFLAGS, CS "
                    "and RIP {rip:#x} pushed at {rsp:#x}; IF, TF, NT and RF cleared: "
                    "RFLAGS ← {rflags:#x}; CS:RIP ← {cs:#x}:{target:#x} from the gate",
                    dpl=d.gate.dpl,
                    top=d.rsp + len(frame),
                    ss=d.ss,
                    rip=run.int80_hit,
                    rsp=d.rsp,
                    rflags=d.rflags,
                    cs=d.cs,
                    target=d.gate.offset,
                ),
                modelled=True,
            )
        )
        run.sink.finish()
        return d.gate.offset


__all__ = ["INT_N_SIZE", "VEC_INT80", "Int80Door"]
