"""6.12's C entry under FRED, modelled: fred_entry_from_user() (arch/x86/entry/entry_fred.c)
for a SYSCALL event (fred_other(), then do_syscall_64 statement by statement) and for
int $0x80 (fred_intx() → fred_int80_emulation()), at the stub address the FRED
rendition calls.  The entry code's other models are in engine.run.actions, which owns
this; they share its system_call and after_call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import x86_const as X

from engine.constants import ENOSYS, MASK64
from engine.i18n import N_, msg
from engine.machine.modelled import EVENT_TYPE_OTHER, EVENT_TYPE_SWINT, FRED_SYSCALL
from engine.run.int80 import VEC_INT80
from engine.run.syscalls import PtRegs, do_int80_emulation
from engine.trace import Event, EventKind

if TYPE_CHECKING:
    from engine.run.actions import EntryActions

#: fred_intx() (entry_fred.c) with ia32_emulation=off: vector 0x80 falls through.
FRED_INT80_OFF = N_(
    "fred_intx: with ia32_emulation=off vector 0x80 falls through to the default case: "
    "regs->ip back over the int, RF set, swevent cleared, exc_general_protection(regs, "
    "0x402), the #GP IDT delivery would have raised (the task gets SIGSEGV)"
)


class FredActions:
    """fred_entry_from_user and what it calls, for one FRED run."""

    def __init__(self, entry: EntryActions) -> None:
        self.entry = entry
        self.run = entry.run

    def fred_entry_from_user(self) -> None:
        """model: 6.12's fred_entry_from_user(regs) (arch/x86/entry/entry_fred.c) for a
        SYSCALL event: orig_ax (the frame's error code) ← -1; the SS word says type 7
        (EVENT_TYPE_OTHER), so fred_other(): vector 1 (FRED_SYSCALL) in long mode, so
        orig_ax ← ax, ax ← -ENOSYS, do_syscall_64(regs, orig_ax), its bool ignored."""
        run = self.run
        r = run.rec.read_regs()
        pt = PtRegs(run.m, r.cr3, r.rdi)
        ss_word = pt.read()["ss"]
        event_type, vector = (ss_word >> 48) & 0xF, (ss_word >> 32) & 0xFF
        long_mode = bool(ss_word >> 57 & 1)
        if (event_type, vector) == (EVENT_TYPE_SWINT, VEC_INT80):
            if run.sc.machine.ia32_emulation:
                self.fred_int80_emulation(pt)
                return
            run.event(Event(EventKind.HELPER, FRED_INT80_OFF, modelled=True))
            run.stop(N_("stopped in fred_intx: int $0x80 with ia32_emulation=off is a #GP"))
        if (event_type, vector, long_mode) != (EVENT_TYPE_OTHER, FRED_SYSCALL, True):
            run.event(
                Event(
                    EventKind.UNSUPPORTED,
                    msg(
                        "fred_entry_from_user: event type {type}, vector {vector} is not a "
                        "64-bit SYSCALL; only fred_other()'s SYSCALL path is modelled",
                        type=event_type,
                        vector=vector,
                    ),
                )
            )
            run.stop(N_("stopped in fred_entry_from_user (not a SYSCALL event)"))
        ax = pt.read()["ax"]
        pt.write("orig_ax", ax)
        pt.write("ax", (-ENOSYS) % 2**64)
        # do_syscall_64(regs, regs->orig_ax): the call's own arguments, then the C side
        run.uc.reg_write(X.UC_X86_REG_RSI, ax)
        run.event(
            Event(
                EventKind.HANDLER,
                msg(
                    "fred_entry_from_user → fred_other (type {type} 'other', vector {vector} "
                    "SYSCALL): orig_ax ← ax, ax ← -ENOSYS, do_syscall_64(regs, {nr:#x})",
                    type=event_type,
                    vector=vector,
                    nr=ax,
                ),
                modelled=True,
            )
        )
        self.entry.system_call(("fred_entry_from_user", "fred_other"))
        run.event(
            Event(
                EventKind.HANDLER,
                N_(
                    "do_syscall_64 still computes its SYSRET conditions in C, but "
                    "fred_other() ignores the bool: under FRED there is no SYSRET decision, "
                    "ERETU restores every register from the frame"
                ),
                modelled=True,
            )
        )

    def fred_int80_emulation(self, pt: PtRegs) -> None:
        """model: fred_entry_from_user for a software interrupt (type 4): orig_ax ← -1,
        then fred_intx() → fred_int80_emulation(regs) (arch/x86/entry/common.c, 6.12),
        which, as do_int80_emulation does, takes orig_ax ← ax & 0xffffffff, ax ← -ENOSYS and
        the i386 dispatch; its exit is FRED's ERETU, with no SYSRET decision."""
        run = self.run
        pt.write("orig_ax", MASK64)
        run.event(
            Event(
                EventKind.HANDLER,
                N_(
                    "fred_entry_from_user → fred_intx (type 4 software interrupt, vector "
                    "0x80) → fred_int80_emulation(regs): orig_ax ← -1 first"
                ),
                modelled=True,
            )
        )
        run.pt_at_call = pt.read()
        res = do_int80_emulation(
            run.m, pt.cr3, pt.base, run.sc.pid, run.pt_at_call, run.kernel.ia32_nr_syscalls,
            fred=True,
        )  # fmt: skip
        self.entry.after_call(pt, res)


__all__ = ["FRED_INT80_OFF", "FredActions"]
