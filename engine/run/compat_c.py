"""The C sides of the 32-bit doors, modelled: v5.8's do_int80_syscall_32, 6.1's and 6.12's
sync_regs and do_int80_emulation (int $0x80), and do_fast_syscall_32 / do_SYSENTER_32 (the
compat SYSCALL and SYSENTER entries), each at the stub address the rendition calls.

The entry code's other models are in engine.run.actions, which puts these in its table;
they share its ``after_call`` (the [handler.set] writes, the pt_regs diff, the event).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import x86_const as X

from engine.constants import IF, PT_REGS_SIZE
from engine.i18n import N_, msg
from engine.kernel.common_c import compat_conditions
from engine.run.sink import CSide
from engine.run.syscalls import (
    PtRegs,
    do_fast_syscall_32,
    do_int80_emulation,
    do_int80_syscall_32,
)
from engine.trace import Event, EventKind

if TYPE_CHECKING:
    from engine.run.actions import EntryActions


class CompatActions:
    """The 32-bit doors' modelled C functions, for one run."""

    def __init__(self, entry: EntryActions) -> None:
        self.entry = entry
        self.run = entry.run

    def do_int80_syscall_32(self, address: int) -> None:
        """model: v5.8's do_int80_syscall_32(regs), the C side of int $0x80
        (engine.run.syscalls), then the scenario's [handler.set]."""
        run = self.run
        r = run.rec.read_regs()
        pt = PtRegs(run.m, r.cr3, r.rdi)
        run.pt_at_call = pt.read()
        res = do_int80_syscall_32(run.m, r.cr3, r.rdi, run.sc.pid, run.pt_at_call)
        self.entry.after_call(pt, res)

    def sync_regs(self, address: int) -> None:
        """model: sync_regs(eregs) (arch/x86/kernel/traps.c): ``regs = (struct pt_regs
        *)this_cpu_read(cpu_current_top_of_stack) - 1`` (6.12: current_top_of_stack(),
        pcpu_hot.top_of_stack); the pt_regs error_entry built on the trampoline stack is
        copied there, and the copy's address returned in RAX."""
        run = self.run
        m = run.m
        r = run.rec.read_regs()
        top = m.read_u64(r.cr3, r.gs_base + run.kernel.top_of_stack)
        raw = m.read_virt(r.cr3, r.rdi, PT_REGS_SIZE)
        if top is None or raw is None:
            run.stop(N_("sync_regs: pt_regs or the top of the task stack is not readable"))
        regs = top - PT_REGS_SIZE
        if regs != r.rdi:
            if not m.write_virt(r.cr3, regs, raw, supervisor=True):
                run.stop(N_("sync_regs: the task stack is not mapped"))
            run.stack_written(regs, top)
        run.uc.reg_write(X.UC_X86_REG_RAX, regs)
        run.event(
            Event(
                EventKind.HELPER,
                msg(
                    "sync_regs: pt_regs copied from the trampoline stack {src:#x} to the task "
                    "stack {dst:#x} (its top − sizeof(struct pt_regs)); RAX ← {dst:#x}",
                    src=r.rdi,
                    dst=regs,
                ),
                modelled=True,
            )
        )

    def do_int80_emulation(self, address: int) -> None:
        """model: do_int80_emulation(regs), 6.1's and 6.12's int $0x80 C side
        (engine.run.syscalls), then the scenario's [handler.set]."""
        run = self.run
        r = run.rec.read_regs()
        pt = PtRegs(run.m, r.cr3, r.rdi)
        run.pt_at_call = pt.read()
        res = do_int80_emulation(
            run.m, r.cr3, r.rdi, run.sc.pid, run.pt_at_call, run.kernel.ia32_nr_syscalls
        )
        self.entry.after_call(pt, res)

    def do_fast_syscall_32(self, address: int) -> None:
        """model: do_fast_syscall_32(regs), the compat SYSCALL entry's C side
        (engine.run.syscalls), the scenario's [handler.set], then its SYSRETL conditions
        (engine.kernel.common_c), each a step of its own, returned in RAX."""
        self._fast32(address, "do_fast_syscall_32")

    def do_sysenter_32(self, address: int) -> None:
        """model: do_SYSENTER_32(regs) (arch/x86/entry/common.c): ``regs->sp = regs->bp``
        ("SYSENTER loses RSP, but the vDSO saved it in RBP"), ``regs->flags |=
        X86_EFLAGS_IF``, then do_fast_syscall_32 as for a compat SYSCALL."""
        self._fast32(address, "do_SYSENTER_32")

    def _fast32(self, address: int, function: str) -> None:
        """*function*'s model at its stub: do_SYSENTER_32's two writes first, then
        do_fast_syscall_32 and its conditions.  It returns a long before 6.12 and a bool on
        6.12, the kernel whose pt_regs has u16 segments (the spec's one 6.12 flag serves)."""
        run = self.run
        r = run.rec.read_regs()
        pt = PtRegs(run.m, r.cr3, r.rdi)
        run.pt_at_call = values = pt.read()
        first: list[str] = []
        if function == "do_SYSENTER_32":
            values = {**values, "sp": values["bp"], "flags": values["flags"] | IF}
            pt.write("sp", values["sp"])
            pt.write("flags", values["flags"])
            first.append(
                msg(
                    "regs->sp ← regs->bp {sp:#x} (the user ESP the vDSO left in EBP), "
                    "regs->flags |= IF",
                    sp=values["sp"],
                )
            )
        pad = run.landing_pad
        assert pad is not None  # the run stops at the SYSCALL of a task without vdso32
        res, ran = do_fast_syscall_32(
            run.m, r.cr3, r.rdi, run.sc.pid, pad, values, run.kernel.ia32_nr_syscalls
        )
        res.lines[:0] = first
        self.entry.after_call(pt, res)
        k = run.kernel
        results = (
            compat_conditions(k.compat_checks, run.pt_after_call, pad, k.u16_segments)
            if ran
            else []
        )
        if run.failed_check is None:
            run.failed_check = next((c.state.name for c in results if not c.passed), None)
        side = CSide(
            function,
            f"{'bool' if k.u16_segments else 'long'} {function}(regs)",
            run.points.c_calls.get(address),
            as_long=not k.u16_segments,
        )
        sysret = ran and all(c.passed for c in results)
        run.sink.c_checks(address, results, sysret, side)


__all__ = ["CompatActions"]
