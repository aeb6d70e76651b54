"""do_syscall_64's C, modelled statement by statement.

The engine does not run compiled C.  This walk goes through the statements the kernel's
C side executes for one system call, in the order its source has them (the entry work,
the dispatch, the exit work), and does what each does to the machine: it reads
``current`` through GS (the per-CPU current_task, then the task_struct's thread_info
flags, syscall_work and kstack_offset in emulated memory), moves RSP by the random
kstack offset and back, sets and clears RFLAGS.IF where the C enables and disables
interrupts, writes thread_info.status and the next kstack_offset, and at the dispatch
runs the modelled system call (engine.run.syscalls), which writes regs->ax.  Each
statement becomes a step of its own (StepKind.C_STATEMENT, with its file, line, call
stack and values: engine.trace.CStatement); a sweep does the same work without steps.

Coarser than the kernel, and said so in docs/scenarios.md: the system call's own body is
one step (getpid's __task_pid_nr_ns and RCU are not entered); context tracking, lockdep,
tracing and audit are configured off or idle on this machine and are passed over; no
syscall_work bit can be set, so syscall_trace_enter and syscall_exit_work never run;
schedule() finds no other task; the exit loop handles NEED_RESCHED, NOTIFY_RESUME and a
pending signal (engine.run.signal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import x86_const as X

from engine.constants import ENOSYS, IF, MSR_GS_BASE
from engine.kernel.c_source import (
    C_LINES,
    ENTRY_WORK,
    EXIT_SYSCALL_WORK,
    EXIT_WORK,
    TASKS,
    TIF_BITS,
    kstack_alloca,
    next_kstack_offset,
)
from engine.run.signal import deliver
from engine.run.sink import Values
from engine.run.syscalls import SYSCALL_NAMES, HandlerResult, PtRegs, do_syscall_64

if TYPE_CHECKING:
    from engine.run.roundtrip import Run

#: TS_COMPAT | TS_I386_REGS_POKED, which arch_exit_to_user_mode_prepare clears
TS_CLEARED = 0x6


class CWalk:
    """One system call's C side on one kernel: :meth:`run_all` steps through it."""

    def __init__(self, run: Run, pt: PtRegs, nr: int, prefix: tuple[str, ...] = ()) -> None:
        """*nr* as do_syscall_64 takes it (an int on 6.1 and 6.12, the caller's low 32
        bits); *prefix*: the calls above do_syscall_64 (FRED's fred_entry_from_user)."""
        self.run = run
        self.pt = pt
        self.nr = nr
        self.prefix = prefix
        self.kernel = run.kernel.name
        self.lines = C_LINES[self.kernel]
        self.task = TASKS[self.kernel]
        m = run.m
        gs = m.read_msr(MSR_GS_BASE)  # the kernel's GS after SWAPGS: the per-CPU area
        current = m.read_u64(pt.cr3, gs + self.task.current_task)
        assert current is not None, "current_task is not mapped"
        self.current = current
        #: RSP at the call, put back when do_syscall_64 returns
        self.rsp_at_call = int(run.uc.reg_read(X.UC_X86_REG_RSP))

    # -- the machine ---------------------------------------------------------------------
    def _read(self, offset: int, size: int) -> int:
        raw = self.run.m.read_virt(self.pt.cr3, self.current + offset, size)
        assert raw is not None, "current is not mapped"
        return int.from_bytes(raw, "little")

    def _write(self, offset: int, size: int, value: int) -> None:
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        ok = self.run.m.write_virt(self.pt.cr3, self.current + offset, data, supervisor=True)
        assert ok, "current is not writable"

    def thread_flags(self) -> int:
        return self._read(self.task.flags, 8)

    def write_flags(self, flags: int) -> None:
        self._write(self.task.flags, 8, flags)

    def syscall_work(self) -> int:
        return 0 if self.task.syscall_work is None else self._read(self.task.syscall_work, 8)

    def _interrupts(self, on: bool) -> None:
        """local_irq_enable() is STI, local_irq_disable() CLI: RFLAGS.IF."""
        uc = self.run.uc
        flags = int(uc.reg_read(X.UC_X86_REG_RFLAGS))
        uc.reg_write(X.UC_X86_REG_RFLAGS, flags | IF if on else flags & ~IF)

    # -- steps -----------------------------------------------------------------------------
    def step(self, key: str, stack: tuple[str, ...], values: Values = (), text: str = "") -> None:
        """Statement *key* of this kernel's C begins, in *stack*, reading or writing
        *values*: what the caller does to the machine after this belongs to its step."""
        self.run.sink.c_statement(key, self.lines[key], self.prefix + stack, values, text)

    def body(self, stack: tuple[str, ...] | None, name: str) -> None:
        """The system call's own function, one step (none when *stack* is None: past the
        table no function runs), then the [handler.set] writes, as after any C entry."""
        if stack is not None:
            where = ("", 0, f"{name}(regs);")  # the body's own source is not shown
            self.run.sink.c_statement(
                "body", where, self.prefix + stack, (("nr", self.nr),), f"{name}(regs)"
            )
        res: HandlerResult = do_syscall_64(
            self.run.m, self.pt.cr3, self.nr, self.pt.base, self.run.sc.pid,
            self.run.pt_at_call, self.run.kernel.nr_syscalls,
        )  # fmt: skip
        self.run.actions.after_call(self.pt, res)

    # -- the walk --------------------------------------------------------------------------
    def run_all(self, checks_follow: bool) -> None:
        """The whole C side; *checks_follow*: 6.12's SYSRET conditions come next (they end
        the function), else do_syscall_64's closing brace returns here."""
        if self.kernel == "v5.8.13":
            self._v58()
        else:
            self._generic()
        if not checks_follow:
            self.step("ret", ("do_syscall_64",), (("rsp", self.rsp_at_call),))
            self.restore_rsp()
            self.run.sink.c_return()

    def restore_rsp(self) -> None:
        """do_syscall_64's epilogue: the frame, the random offset with it, is gone."""
        self.run.uc.reg_write(X.UC_X86_REG_RSP, self.rsp_at_call)

    def _generic(self) -> None:
        """6.1 and 6.12: the generic entry code (kernel/entry/common.c)."""
        v612 = self.kernel == "v6.12"
        d = ("do_syscall_64",)
        offset = self._read(self.task.kstack_offset or 0, 4)
        alloca = kstack_alloca(self.kernel, offset)
        rsp = self.rsp_at_call - alloca
        self.step(
            "kstack", d, (("current->kstack_offset", offset), ("alloca", alloca), ("rsp", rsp))
        )
        self.run.uc.reg_write(X.UC_X86_REG_RSP, rsp)
        self.step("enter", d, (("nr", self.nr),))
        e = (*d, "syscall_enter_from_user_mode")
        self.step("enter.ctx", e)
        self.step("enter.irq", e, (("RFLAGS.IF", 1),))
        self._interrupts(True)
        ew = (*e, "syscall_enter_from_user_mode_work" if v612 else "__syscall_enter_from_user_work")
        work = self.syscall_work()
        self.step("enter.work", ew, (("work", work),))
        self.step(
            "enter.test", ew, (("work & SYSCALL_WORK_ENTER", work & ENTRY_WORK[self.kernel]),)
        )
        self._dispatch(d)
        self.step("exit", d)
        x = (*d, "syscall_exit_to_user_mode")
        self.step("exit.work", x)
        w = (*x, "__syscall_exit_to_user_mode_work")
        self.step("prep", w)
        p = (*w, "syscall_exit_to_user_mode_prepare")
        work = self.syscall_work()
        self.step("prep.work", p, (("work", work),))
        self.step(
            "prep.test", p, (("work & SYSCALL_WORK_EXIT", work & EXIT_SYSCALL_WORK[self.kernel]),)
        )
        self.step("irq.off", w, (("RFLAGS.IF", 0),))
        self._interrupts(False)
        self.step("etump", w)
        t = (*w, "exit_to_user_mode_prepare")
        ti_work = self._exit_work(t, "ti_work")
        self.step("etump.arch", t, (("ti_work", ti_work),))
        a = (*t, "arch_exit_to_user_mode_prepare")
        if v612:
            # CONFIG_X86_DEBUG_FPU is on in Debian's 6.12: arch_exit_work runs every time
            self.step("arch.work", a, (("ti_work", ti_work),))
            self.step("arch.fpregs", (*a, "arch_exit_work", "fpregs_assert_state_consistent"))
            self.step("arch.rsp0", a)
        else:
            self.step("arch.fpregs", (*a, "fpregs_assert_state_consistent"))
        self._status(a)
        old = self._read(self.task.kstack_offset or 0, 4)
        new = next_kstack_offset(old, self.run.sc.task.tsc)
        self.step(
            "arch.kstack", a,
            (("current->kstack_offset", old), ("rdtsc()", self.run.sc.task.tsc),
             ("current->kstack_offset", new)),
        )  # fmt: skip
        self._write(self.task.kstack_offset or 0, 4, new)
        u = (*x, "exit_to_user_mode" if v612 else "__exit_to_user_mode")
        self.step("exit.user", x)
        self.step("etum.arch", u)
        div = (*u, "arch_exit_to_user_mode", "amd_clear_divider")
        self.step("div0", div if not v612 else div[:-1])

    def _v58(self) -> None:
        """v5.8: do_syscall_64 and its own exit work in arch/x86/entry/common.c."""
        d = ("do_syscall_64",)
        self.step("check", d)
        self.step("enter.ctx", d)
        self.step("enter.irq", d, (("RFLAGS.IF", 1),))
        self._interrupts(True)
        self.step("ti", d, (("ti", self.current),))
        flags = self.thread_flags()
        self.step(
            "enter.test", d,
            (("ti->flags", flags), ("& _TIF_WORK_SYSCALL_ENTRY", flags & ENTRY_WORK[self.kernel])),
        )  # fmt: skip
        self._dispatch(d)
        self.step("exit", d)
        r = (*d, "__syscall_return_slowpath")
        flags = self.thread_flags()
        self.step("prep.work", r, (("cached_flags", flags),))
        self.step(
            "prep.test", r,
            (("cached_flags & SYSCALL_EXIT_WORK_FLAGS", flags & EXIT_SYSCALL_WORK[self.kernel]),),
        )  # fmt: skip
        self.step("irq.off", r, (("RFLAGS.IF", 0),))
        self._interrupts(False)
        self.step("etump", r)
        p = (*r, "__prepare_exit_to_usermode")
        self._exit_work(p, "cached_flags")
        self.step("arch.reload", p, (("cached_flags", self.thread_flags()),))
        self.step("arch.fpregs", (*p, "fpregs_assert_state_consistent"))
        self._status(p)
        self.step("exit.user", d)
        self.step("etum.mds", (*d, "exit_to_user_mode"))

    def _dispatch(self, d: tuple[str, ...]) -> None:
        """nr checked against NR_syscalls, array_index_nospec, the table or switch, the
        system call, and its return value stored in regs->ax."""
        nr, table = self.nr, self.run.kernel.nr_syscalls
        name = SYSCALL_NAMES.get(nr)
        handler = f"__x64_sys_{name}" if name is not None else None
        if self.kernel == "v5.8.13":
            self.step("below", d, (("nr", nr), ("NR_syscalls", table)))
            if nr >= table:
                self.body(None, "")  # regs->ax keeps the -ENOSYS the entry code stored
                return
            self.step("nospec", d, (("nr", nr),))
            self.step("call", d, (("nr", nr),), text=f"sys_call_table[{nr}](regs)")
            self.body((*d, handler) if handler else d, handler or f"sys_call_table[{nr}]")
            self.step("call", d, (("regs->ax", self.pt.read()["ax"]),))
            return
        self.step("dispatch", d, (("nr", nr),))
        x = (*d, "do_syscall_x64")
        self.step("x64.unr", x, (("unr", nr),))
        self.step("x64.below", x, (("unr", nr), ("NR_syscalls", table)))
        if nr >= table:
            self.step("x64.false", x)
            if nr != 0xFFFFFFFF:  # nr != -1: "Invalid system call, but still a system call"
                self.step("ni", d, (("regs->ax", -ENOSYS),))
                self.pt.write("ax", -ENOSYS)
            self.body(None, "")
            return
        self.step("x64.nospec", x, (("unr", nr),))
        self.step("x64.call", x, (("unr", nr),), text=f"x64_sys_call(regs, {nr})")
        s = (*d, "x64_sys_call")
        self.step(
            "switch", s, (("nr", nr),), text=f"switch (nr) → case {nr}: {handler or 'not modelled'}"
        )
        self.body((*s, handler) if handler else s, handler or f"system call {nr}")
        self.step("x64.call", x, (("regs->ax", self.pt.read()["ax"]),))

    def _exit_work(self, t: tuple[str, ...], name: str) -> int:
        """The thread flags read for the exit, and the work loop while any asks for work."""
        flags = self.thread_flags()
        mask = EXIT_WORK[self.kernel]
        self.step("etump.flags", t, ((name, flags),))
        self.step("etump.test", t, ((f"{name} & work", flags & mask),))
        if not flags & mask:
            return flags
        self.step("etump.loop", t, ((name, flags),))
        v58 = self.kernel == "v5.8.13"
        loop = (*t, "exit_to_usermode_loop" if v58 else "exit_to_user_mode_loop")
        # at most one turn per flag (and the signal's): each turn clears what it handled
        for _ in range(len(TIF_BITS) + 2):
            if not v58:
                self.step("loop.while", loop, ((name, flags),))
                if not flags & mask:
                    break
            self.step("loop.irq", loop, (("RFLAGS.IF", 1),))
            self._interrupts(True)
            flags = self._loop_flag(loop, name, flags, "NEED_RESCHED", "loop.if_resched",
                                    "loop.resched", "schedule")  # fmt: skip
            flags = deliver(self, loop, name, flags)
            flags = self._loop_flag(loop, name, flags, "NOTIFY_RESUME", "loop.if_resume",
                                    "loop.resume", "tracehook_notify_resume" if v58
                                    else "resume_user_mode_work")  # fmt: skip
            self.step("loop.irqoff", loop, (("RFLAGS.IF", 0),))
            self._interrupts(False)
            flags = self.thread_flags()
            self.step("loop.flags", loop, ((name, flags),))
            if v58:
                self.step("loop.while", loop, ((f"{name} & work", flags & mask),))
                if not flags & mask:
                    break
        return flags

    def _loop_flag(
        self, loop: tuple[str, ...], name: str, flags: int, tif: str, test: str, call: str,
        callee: str,
    ) -> int:  # fmt: skip
        """One ``if (ti_work & _TIF_X) handler();`` of the loop: the handler clears X."""
        bit = 1 << TIF_BITS[tif]
        self.step(test, loop, ((f"{name} & _TIF_{tif}", flags & bit),))
        if not flags & bit:
            return flags
        cleared = self.thread_flags() & ~bit
        self.step(call, (*loop, callee), (("thread_info.flags", cleared),))
        self.write_flags(cleared)
        return flags

    def _status(self, a: tuple[str, ...]) -> None:
        status = self._read(self.task.status, 4)
        self.step("arch.status", a, (("status", status), ("status", status & ~TS_CLEARED)))
        self._write(self.task.status, 4, status & ~TS_CLEARED)


__all__ = ["CWalk"]
