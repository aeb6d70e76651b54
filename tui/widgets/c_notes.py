"""The why panel's note for each statement of the modelled C side (engine.run.c_side),
by the statement's key (engine.kernel.c_source.C_LINES): what the kernel does there and
what the model does instead.  One note serves every kernel that has the statement."""

from __future__ import annotations

from engine.i18n import N_

C_STATEMENT_NOTES: dict[str, str] = {
    "kstack": N_(
        "add_random_kstack_offset(): the stack of this system call starts a random distance "
        "below pt_regs (CONFIG_RANDOMIZE_KSTACK_OFFSET, on in Debian), so an attacker cannot "
        "know where the C frames are. The distance comes from current->kstack_offset, which "
        "the previous exit chose; the compiled code moves RSP by ((offset & mask) + 15) & "
        "0x7f8 with alloca. Modelled: RSP moves here and comes back when do_syscall_64 returns."
    ),
    "enter": N_(
        "The entry work: establish kernel state (context tracking, lockdep), enable "
        "interrupts, and run what the task's syscall_work asks for (ptrace, seccomp, audit, "
        "tracepoints). It returns the system call number, which a tracer may have changed."
    ),
    "enter.ctx": N_(
        "Leaving user mode: context tracking (RCU is told the CPU is in the kernel) and "
        "lockdep. Neither is active on this kernel's configuration at boot, so nothing "
        "observable changes (modelled: passed over)."
    ),
    "enter.irq": N_(
        "STI: interrupts are enabled from here. SYSCALL cleared IF through MSR_SYSCALL_MASK; "
        "the C side runs the system call with interrupts on. Modelled: RFLAGS.IF is set."
    ),
    "enter.work": N_(
        "The task's syscall_work bits (thread_info), read through current: the per-CPU "
        "current_task pointer, then the task_struct, both in emulated memory."
    ),
    "enter.test": N_(
        "Any entry work? SYSCALL_WORK_ENTER (v5.8: _TIF_WORK_SYSCALL_ENTRY, in the thread "
        "flags) covers seccomp, ptrace (SYSCALL_TRACE, SYSCALL_EMU), audit and tracepoints "
        "(6.1 and 6.12: syscall user dispatch too). None is set: syscall_trace_enter() is "
        "not called."
    ),
    "ti": N_("current_thread_info(): the thread_info at the start of current's task_struct."),
    "check": N_(
        "check_user_regs(): sanity checks that only CONFIG_DEBUG_ENTRY builds make; nothing "
        "on this kernel (modelled: passed over)."
    ),
    "dispatch": N_(
        "The dispatch: the 64-bit table first, then the x32 one; a number in neither is "
        '"invalid, but still a system call" (-ENOSYS), and -1 means a tracer skipped it.'
    ),
    "x64.unr": N_(
        "nr is an int: converted to unsigned, a negative number becomes a huge one and "
        "fails the bound below."
    ),
    "x64.below": N_("The bound check of the number against the table's size, NR_syscalls."),
    "below": N_("The bound check of the number against the table's size, NR_syscalls."),
    "x64.nospec": N_(
        "array_index_nospec(): a mask that is all ones when the number is in bounds and zero "
        "otherwise, computed without a branch (cmp; sbb): a mispredicted bound check cannot "
        "speculatively index past the table (Spectre v1)."
    ),
    "nospec": N_(
        "array_index_nospec(): a mask that is all ones when the number is in bounds and zero "
        "otherwise, computed without a branch (cmp; sbb): a mispredicted bound check cannot "
        "speculatively index past the table (Spectre v1)."
    ),
    "x64.call": N_(
        "x64_sys_call(regs, nr) runs the system call; its return value is stored in "
        "regs->ax, where the exit's POP_REGS finds it for RAX."
    ),
    "call": N_(
        "v5.8 calls the handler through sys_call_table, an indirect call (through a "
        "retpoline thunk, CONFIG_RETPOLINE); its return value is stored in regs->ax."
    ),
    "x64.false": N_("Out of the 64-bit table: do_syscall_x64() returns false."),
    "switch": N_(
        "x64_sys_call(): a switch on the number, generated from syscall_64.tbl, with a direct "
        "call per case. It replaced the indirect call through sys_call_table in 2024 (Linux "
        "6.9, and the stable kernels, 6.1 among them), so that no indirect branch here can "
        "be steered by branch history (BHI)."
    ),
    "ni": N_("An invalid number: regs->ax = -ENOSYS, what __x64_sys_ni_syscall() returns."),
    "body": N_(
        "The system call itself. Its own C (getpid, for one, calls __task_pid_nr_ns under "
        "RCU) is one modelled step: the engine does what it does to pt_regs, user memory "
        "and MSRs."
    ),
    "exit": N_(
        "The exit work: syscall-specific work (ptrace, audit), then the work the thread flags "
        "ask for before user mode (signals, rescheduling, notify-resume), then the "
        "architecture's last steps."
    ),
    "exit.work": N_("The work done with interrupts still on, then off, before user mode."),
    "prep": N_("Syscall-specific exit work, run once per system call with interrupts on."),
    "prep.work": N_("The task's syscall_work bits again, for the exit's one-time work."),
    "prep.test": N_(
        "Any one-time exit work? SYSCALL_WORK_EXIT (v5.8: SYSCALL_EXIT_WORK_FLAGS) covers "
        "ptrace's report of the exit, single-stepping, audit and tracepoints. None is set: "
        "syscall_exit_work() (v5.8: syscall_slow_exit_work()) is not called."
    ),
    "irq.off": N_(
        "CLI: interrupts stay off until SYSRET or IRET, so no interrupt can queue new work "
        "after the flags are checked. Modelled: RFLAGS.IF is cleared."
    ),
    "etump": N_("The work the thread flags ask for before returning to user mode."),
    "etump.flags": N_(
        "thread_info.flags, read with interrupts off: NEED_RESCHED, SIGPENDING, "
        "NOTIFY_RESUME and the rest (the scenario's [task] flags set them)."
    ),
    "etump.test": N_(
        "Any work before user mode? EXIT_TO_USER_MODE_WORK (v5.8: "
        "EXIT_TO_USERMODE_LOOP_FLAGS): SIGPENDING, NOTIFY_RESUME, UPROBE, NEED_RESCHED, "
        "PATCH_PENDING (and since 5.11 NOTIFY_SIGNAL). If none is set, the loop is skipped."
    ),
    "etump.loop": N_(
        "The exit loop runs until no work is left: each turn enables interrupts, does the "
        "work, disables them and reads the flags again."
    ),
    "loop.while": N_("The loop's test: is any work left in the flags?"),
    "loop.irq": N_("STI: the work (scheduling, signals) runs with interrupts on."),
    "loop.if_resched": N_("TIF_NEED_RESCHED: another task should run first."),
    "loop.resched": N_(
        "schedule(): the CPU would switch to another task and come back later. Modelled: "
        "no other task is runnable, so it returns at once, with TIF_NEED_RESCHED cleared."
    ),
    "loop.if_resume": N_("TIF_NOTIFY_RESUME: work queued for the return to user mode."),
    "loop.resume": N_(
        "The notify-resume work (task_work, cgroup throttling, rseq). Modelled: nothing is "
        "queued; the flag is cleared."
    ),
    "loop.irqoff": N_("CLI again before the flags are read once more."),
    "loop.flags": N_("The flags once more: the work may have set new ones."),
    "etump.arch": N_("The architecture's part of the exit preparation (x86)."),
    "arch.work": N_(
        "Debian's 6.12 is built with CONFIG_X86_DEBUG_FPU, so arch_exit_work() runs on every "
        "exit, not only when a flag asks for it."
    ),
    "arch.fpregs": N_(
        "fpregs_assert_state_consistent(): a check that the FPU registers belong to this "
        "task. Nothing to do here (modelled: one step)."
    ),
    "arch.rsp0": N_(
        "fred_update_rsp0(): with FRED, MSR_IA32_FRED_RSP0 must hold this task's stack top. "
        "Without FRED it does nothing."
    ),
    "arch.status": N_(
        "TS_COMPAT and TS_I386_REGS_POKED are cleared from thread_info.status: a 32-bit "
        "system call's marks must not outlive it. Modelled: written to the task_struct."
    ),
    "arch.kstack": N_(
        "choose_random_kstack_offset(rdtsc()): the next system call's stack offset, "
        "ror32(offset, 5) ^ the time-stamp counter. Modelled: RDTSC returns the scenario's "
        "[task] tsc, so a run is repeatable; the new offset is written to the task_struct."
    ),
    "arch.reload": N_("The flags again: the loop may have rescheduled."),
    "exit.user": N_(
        "The last steps before user mode: tracing and lockdep are told interrupts will be "
        "on, context tracking is told the CPU goes to user mode, then the architecture's "
        "last-minute work."
    ),
    "etum.arch": N_("x86's last-minute exit work: the divider fix for AMD's Zen 1."),
    "etum.mds": N_(
        "mds_user_clear_cpu_buffers(): v5.8 runs VERW here, in C, when the CPU has MDS and "
        "the mitigation is on. This CPU model has no MDS: the static key is off and nothing "
        "runs. (6.1 and 6.12 do this in assembly, CLEAR_CPU_BUFFERS before SYSRET or IRET.)"
    ),
    "div0": N_(
        "amd_clear_divider(): on AMD Zen 1 (X86_BUG_DIV0) a dummy division keeps a previous "
        "quotient from leaking to user space. The CPU model has no such bug, so the DIV was "
        "patched to NOPs at boot."
    ),
    "loop.if_signal": N_("TIF_SIGPENDING: a signal is queued for this task."),
    "loop.signal": N_(
        "Deliver it now, on the way out: the handler must run before the interrupted code "
        "does. This is why a signal makes the exit take IRET: pt_regs is about to be "
        "rewritten for the handler."
    ),
    "sig.get": N_(
        "get_signal() dequeues the signal and finds the action the task installed for it "
        "(a handler, SA_RESTORER, SA_SIGINFO). With nothing left queued, TIF_SIGPENDING is "
        "cleared."
    ),
    "sig.handle": N_("A handler is installed: set up its frame and registers."),
    "sig.restart": N_(
        "Was this a system call that must be restarted? Only an -ERESTART* return value in "
        "regs->ax asks for it; this one returned normally, so nothing changes."
    ),
    "sig.setup": N_("Build the signal frame on the user stack; a failure means SIGSEGV."),
    "sig.rt": N_("A 64-bit task with a 64-bit handler: the x86-64 rt_sigframe."),
    "sig.frame": N_(
        "get_sigframe(): below regs->sp, the 128-byte red zone, then room for the FPU state "
        "(64-byte aligned), then struct rt_sigframe, aligned so that RSP + 8 is a multiple "
        "of 16 when the handler starts, as after a call."
    ),
    "sig.fpu": N_(
        "The FPU and SSE registers go to the user stack (XSAVE), so the handler may use "
        "them freely and sigreturn can restore them. Modelled: the x87 and SSE state read "
        "from the emulated CPU, in the XSAVE layout, with the magic words sigreturn checks."
    ),
    "sig.uc": N_(
        "The ucontext's head: uc_flags (FP_XSTATE, SIGCONTEXT_SS, STRICT_RESTORE_SS), no "
        "uc_link, and uc_stack (no alternate stack: SS_DISABLE)."
    ),
    "sig.pretcode": N_(
        "pretcode, the frame's first word, is the sa_restorer: where the handler's RET "
        "goes. glibc's restorer is mov $15, %eax; syscall: rt_sigreturn."
    ),
    "sig.sigcontext": N_(
        "Every register pt_regs holds is saved in the frame's sigcontext: ip is where the "
        "interrupted code resumes after rt_sigreturn, ax the system call's return value."
    ),
    "sig.sigmask": N_("The signal mask to restore at rt_sigreturn (nothing was blocked)."),
    "sig.siginfo": N_(
        "SA_SIGINFO: the siginfo for the handler's second argument (si_signo, si_code "
        "SI_KERNEL: the signal came from the kernel, as alarm()'s SIGALRM does)."
    ),
    "sig.di": N_("The handler's first argument: the signal number."),
    "sig.ax": N_("RAX 0, for a handler declared without a prototype (varargs)."),
    "sig.si": N_("The second argument: &frame->info, the siginfo."),
    "sig.dx": N_("The third argument: &frame->uc, the ucontext."),
    "sig.ip": N_(
        "regs->ip becomes the handler. regs->cx still holds the interrupted code's RIP, so "
        "the SYSRET check RCX == RIP will fail and the kernel leaves by IRET, which loads "
        "RIP, RSP and RFLAGS from pt_regs as the handler needs them."
    ),
    "sig.sp": N_("regs->sp becomes the frame: the handler's RET pops pretcode."),
    "sig.cs": N_("The handler runs in 64-bit mode: regs->cs = __USER_CS."),
    "sig.flags": N_(
        "DF, RF and TF are cleared for the handler (the ABI wants DF clear; TF would trap "
        "in it). pt_regs now describes the handler's first instruction."
    ),
    "sig.done": N_(
        "signal_setup_done(): the signal is blocked while its handler runs (sa_mask and the "
        "signal itself), and a tracer single-stepping is told."
    ),
    "ret": N_(
        "do_syscall_64 returns: its frame, and with it the random stack offset, is popped, "
        "and RSP points at the return address again. Modelled: RSP put back."
    ),
}

__all__ = ["C_STATEMENT_NOTES"]
