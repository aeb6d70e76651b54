"""The C side of the system call, statement by statement: where each statement the model
steps through stands in each kernel's own source, and the task state it reads.

Line numbers and text are those of the kernels' trees: 6.1.192 and 6.12.118 from Debian's
linux-source packages, v5.8 from a 5.8.18 tree (the nearest stable release whose source
was at hand: arch/x86/entry/common.c did not change in 5.8.14 to 5.8.18 as far as its
stable patches show, and the rendition of v5.8.13's entry code is reconstructed anyway).
tests/engine/test_c_side.py checks every line against the trees when they are unpacked
under SYSCALL_TUI_KERNEL_SRC.  The keys name a statement the same way on every kernel
("exit" is the call of the exit work) so one walk (engine.run.c_side) serves all three.

What the model does at each statement is engine.run.c_side's; this module is data.
"""

from __future__ import annotations

from dataclasses import dataclass

#: key → (file, line, the statement as written), per kernel
C_LINES: dict[str, dict[str, tuple[str, int, str]]] = {
    "v5.8.13": {
        "check": ("arch/x86/entry/common.c", 380, "check_user_regs(regs);"),
        "enter.ctx": ("arch/x86/entry/common.c", 382, "enter_from_user_mode();"),
        "enter.irq": ("arch/x86/entry/common.c", 385, "local_irq_enable();"),
        "ti": ("arch/x86/entry/common.c", 386, "ti = current_thread_info();"),
        "enter.test": (
            "arch/x86/entry/common.c",
            387,
            "if (READ_ONCE(ti->flags) & _TIF_WORK_SYSCALL_ENTRY)",
        ),
        "below": ("arch/x86/entry/common.c", 390, "if (likely(nr < NR_syscalls)) {"),
        "nospec": ("arch/x86/entry/common.c", 391, "nr = array_index_nospec(nr, NR_syscalls);"),
        "call": ("arch/x86/entry/common.c", 392, "regs->ax = sys_call_table[nr](regs);"),
        "exit": ("arch/x86/entry/common.c", 401, "__syscall_return_slowpath(regs);"),
        "prep.work": ("arch/x86/entry/common.c", 342, "u32 cached_flags = READ_ONCE(ti->flags);"),
        "prep.test": (
            "arch/x86/entry/common.c",
            356,
            "if (unlikely(cached_flags & SYSCALL_EXIT_WORK_FLAGS))",
        ),
        "irq.off": ("arch/x86/entry/common.c", 359, "local_irq_disable();"),
        "etump": ("arch/x86/entry/common.c", 360, "__prepare_exit_to_usermode(regs);"),
        "etump.flags": ("arch/x86/entry/common.c", 274, "cached_flags = READ_ONCE(ti->flags);"),
        "etump.test": (
            "arch/x86/entry/common.c",
            276,
            "if (unlikely(cached_flags & EXIT_TO_USERMODE_LOOP_FLAGS))",
        ),
        "etump.loop": (
            "arch/x86/entry/common.c",
            277,
            "exit_to_usermode_loop(regs, cached_flags);",
        ),
        "loop.irq": ("arch/x86/entry/common.c", 230, "local_irq_enable();"),
        "loop.if_resched": (
            "arch/x86/entry/common.c",
            232,
            "if (cached_flags & _TIF_NEED_RESCHED)",
        ),
        "loop.resched": ("arch/x86/entry/common.c", 233, "schedule();"),
        "loop.if_resume": (
            "arch/x86/entry/common.c",
            245,
            "if (cached_flags & _TIF_NOTIFY_RESUME) {",
        ),
        "loop.resume": ("arch/x86/entry/common.c", 247, "tracehook_notify_resume(regs);"),
        "loop.irqoff": ("arch/x86/entry/common.c", 255, "local_irq_disable();"),
        "loop.flags": (
            "arch/x86/entry/common.c",
            257,
            "cached_flags = READ_ONCE(current_thread_info()->flags);",
        ),
        "loop.while": (
            "arch/x86/entry/common.c",
            259,
            "if (!(cached_flags & EXIT_TO_USERMODE_LOOP_FLAGS))",
        ),
        "arch.reload": ("arch/x86/entry/common.c", 280, "cached_flags = READ_ONCE(ti->flags);"),
        "arch.fpregs": ("arch/x86/entry/common.c", 285, "fpregs_assert_state_consistent();"),
        "arch.status": (
            "arch/x86/entry/common.c",
            301,
            "ti->status &= ~(TS_COMPAT|TS_I386_REGS_POKED);",
        ),
        "exit.user": ("arch/x86/entry/common.c", 404, "exit_to_user_mode();"),
        "etum.mds": ("arch/x86/entry/common.c", 134, "mds_user_clear_cpu_buffers();"),
        "loop.if_signal": ("arch/x86/entry/common.c", 242, "if (cached_flags & _TIF_SIGPENDING)"),
        "loop.signal": ("arch/x86/entry/common.c", 243, "do_signal(regs);"),
        "sig.get": ("arch/x86/kernel/signal.c", 810, "if (get_signal(&ksig)) {"),
        "sig.handle": ("arch/x86/kernel/signal.c", 812, "handle_signal(&ksig, regs);"),
        "sig.restart": (
            "arch/x86/kernel/signal.c",
            715,
            "if (syscall_get_nr(current, regs) >= 0) {",
        ),
        "sig.setup": (
            "arch/x86/kernel/signal.c",
            745,
            "failed = (setup_rt_frame(ksig, regs) < 0);",
        ),
        "sig.rt": (
            "arch/x86/kernel/signal.c",
            701,
            "return __setup_rt_frame(ksig->sig, ksig, set, regs);",
        ),
        "sig.frame": (
            "arch/x86/kernel/signal.c",
            449,
            "frame = get_sigframe(&ksig->ka, regs, sizeof(struct rt_sigframe), &fp);",
        ),
        "sig.fpu": (
            "arch/x86/kernel/signal.c",
            273,
            "ret = copy_fpstate_to_sigframe(*fpstate, (void __user *)buf_fx, math_size);",
        ),
        "sig.uc": (
            "arch/x86/kernel/signal.c",
            456,
            "unsafe_put_user(uc_flags, &frame->uc.uc_flags, Efault);",
        ),
        "sig.pretcode": (
            "arch/x86/kernel/signal.c",
            462,
            "unsafe_put_user(ksig->ka.sa.sa_restorer, &frame->pretcode, Efault);",
        ),
        "sig.sigcontext": (
            "arch/x86/kernel/signal.c",
            463,
            "unsafe_put_sigcontext(&frame->uc.uc_mcontext, fp, regs, set, Efault);",
        ),
        "sig.sigmask": ("arch/x86/kernel/signal.c", 464, "unsafe_put_sigmask(set, frame, Efault);"),
        "sig.siginfo": (
            "arch/x86/kernel/signal.c",
            468,
            "if (copy_siginfo_to_user(&frame->info, &ksig->info))",
        ),
        "sig.di": ("arch/x86/kernel/signal.c", 473, "regs->di = sig;"),
        "sig.ax": ("arch/x86/kernel/signal.c", 475, "regs->ax = 0;"),
        "sig.si": ("arch/x86/kernel/signal.c", 479, "regs->si = (unsigned long)&frame->info;"),
        "sig.dx": ("arch/x86/kernel/signal.c", 480, "regs->dx = (unsigned long)&frame->uc;"),
        "sig.ip": (
            "arch/x86/kernel/signal.c",
            481,
            "regs->ip = (unsigned long) ksig->ka.sa.sa_handler;",
        ),
        "sig.sp": ("arch/x86/kernel/signal.c", 483, "regs->sp = (unsigned long)frame;"),
        "sig.cs": ("arch/x86/kernel/signal.c", 502, "regs->cs = __USER_CS;"),
        "sig.flags": (
            "arch/x86/kernel/signal.c",
            757,
            "regs->flags &= ~(X86_EFLAGS_DF|X86_EFLAGS_RF|X86_EFLAGS_TF);",
        ),
        "sig.done": ("arch/x86/kernel/signal.c", 763, "signal_setup_done(failed, ksig, stepping);"),
        "ret": ("arch/x86/entry/common.c", 405, "}"),
    },
    "v6.1": {
        "kstack": ("arch/x86/entry/common.c", 71, "add_random_kstack_offset();"),
        "enter": ("arch/x86/entry/common.c", 72, "nr = syscall_enter_from_user_mode(regs, nr);"),
        "enter.ctx": ("kernel/entry/common.c", 117, "__enter_from_user_mode(regs);"),
        "enter.irq": ("kernel/entry/common.c", 120, "local_irq_enable();"),
        "enter.work": (
            "kernel/entry/common.c",
            100,
            "unsigned long work = READ_ONCE(current_thread_info()->syscall_work);",
        ),
        "enter.test": ("kernel/entry/common.c", 102, "if (work & SYSCALL_WORK_ENTER)"),
        "dispatch": (
            "arch/x86/entry/common.c",
            76,
            "if (!do_syscall_x64(regs, nr) && !do_syscall_x32(regs, nr) && nr != -1) {",
        ),
        "x64.unr": ("arch/x86/entry/common.c", 42, "unsigned int unr = nr;"),
        "x64.below": ("arch/x86/entry/common.c", 44, "if (likely(unr < NR_syscalls)) {"),
        "x64.nospec": (
            "arch/x86/entry/common.c",
            45,
            "unr = array_index_nospec(unr, NR_syscalls);",
        ),
        "x64.call": ("arch/x86/entry/common.c", 46, "regs->ax = x64_sys_call(regs, unr);"),
        "x64.false": ("arch/x86/entry/common.c", 49, "return false;"),
        "switch": ("arch/x86/entry/syscall_64.c", 29, "switch (nr) {"),
        "ni": ("arch/x86/entry/common.c", 78, "regs->ax = __x64_sys_ni_syscall(regs);"),
        "exit": ("arch/x86/entry/common.c", 82, "syscall_exit_to_user_mode(regs);"),
        "exit.work": ("kernel/entry/common.c", 306, "__syscall_exit_to_user_mode_work(regs);"),
        "prep": ("kernel/entry/common.c", 293, "syscall_exit_to_user_mode_prepare(regs);"),
        "prep.work": (
            "kernel/entry/common.c",
            270,
            "unsigned long work = READ_ONCE(current_thread_info()->syscall_work);",
        ),
        "prep.test": ("kernel/entry/common.c", 287, "if (unlikely(work & SYSCALL_WORK_EXIT))"),
        "irq.off": ("kernel/entry/common.c", 294, "local_irq_disable_exit_to_user();"),
        "etump": ("kernel/entry/common.c", 295, "exit_to_user_mode_prepare(regs);"),
        "etump.flags": ("kernel/entry/common.c", 211, "ti_work = read_thread_flags();"),
        "etump.test": (
            "kernel/entry/common.c",
            212,
            "if (unlikely(ti_work & EXIT_TO_USER_MODE_WORK))",
        ),
        "etump.loop": (
            "kernel/entry/common.c",
            213,
            "ti_work = exit_to_user_mode_loop(regs, ti_work);",
        ),
        "loop.while": ("kernel/entry/common.c", 163, "while (ti_work & EXIT_TO_USER_MODE_WORK) {"),
        "loop.irq": ("kernel/entry/common.c", 165, "local_irq_enable_exit_to_user(ti_work);"),
        "loop.if_resched": ("kernel/entry/common.c", 167, "if (ti_work & _TIF_NEED_RESCHED)"),
        "loop.resched": ("kernel/entry/common.c", 168, "schedule();"),
        "loop.if_resume": ("kernel/entry/common.c", 179, "if (ti_work & _TIF_NOTIFY_RESUME)"),
        "loop.resume": ("kernel/entry/common.c", 180, "resume_user_mode_work(regs);"),
        "loop.irqoff": ("kernel/entry/common.c", 190, "local_irq_disable_exit_to_user();"),
        "loop.flags": ("kernel/entry/common.c", 195, "ti_work = read_thread_flags();"),
        "etump.arch": (
            "kernel/entry/common.c",
            215,
            "arch_exit_to_user_mode_prepare(regs, ti_work);",
        ),
        "arch.fpregs": (
            "arch/x86/include/asm/entry-common.h",
            56,
            "fpregs_assert_state_consistent();",
        ),
        "arch.status": (
            "arch/x86/include/asm/entry-common.h",
            72,
            "current_thread_info()->status &= ~(TS_COMPAT | TS_I386_REGS_POKED);",
        ),
        "arch.kstack": (
            "arch/x86/include/asm/entry-common.h",
            85,
            "choose_random_kstack_offset(rdtsc());",
        ),
        "exit.user": ("kernel/entry/common.c", 308, "__exit_to_user_mode();"),
        "etum.arch": ("kernel/entry/common.c", 144, "arch_exit_to_user_mode();"),
        "div0": ("arch/x86/include/asm/entry-common.h", 98, "amd_clear_divider();"),
        "loop.if_signal": (
            "kernel/entry/common.c",
            176,
            "if (ti_work & (_TIF_SIGPENDING | _TIF_NOTIFY_SIGNAL))",
        ),
        "loop.signal": ("kernel/entry/common.c", 177, "arch_do_signal_or_restart(regs);"),
        "sig.get": ("arch/x86/kernel/signal.c", 871, "if (get_signal(&ksig)) {"),
        "sig.handle": ("arch/x86/kernel/signal.c", 873, "handle_signal(&ksig, regs);"),
        "sig.restart": (
            "arch/x86/kernel/signal.c",
            798,
            "if (syscall_get_nr(current, regs) != -1) {",
        ),
        "sig.setup": (
            "arch/x86/kernel/signal.c",
            828,
            "failed = (setup_rt_frame(ksig, regs) < 0);",
        ),
        "sig.rt": (
            "arch/x86/kernel/signal.c",
            784,
            "return __setup_rt_frame(ksig->sig, ksig, set, regs);",
        ),
        "sig.frame": (
            "arch/x86/kernel/signal.c",
            472,
            "frame = get_sigframe(&ksig->ka, regs, sizeof(struct rt_sigframe), &fp);",
        ),
        "sig.fpu": (
            "arch/x86/kernel/signal.c",
            297,
            "if (!copy_fpstate_to_sigframe(*fpstate, (void __user *)buf_fx, math_size))",
        ),
        "sig.uc": (
            "arch/x86/kernel/signal.c",
            479,
            "unsafe_put_user(uc_flags, &frame->uc.uc_flags, Efault);",
        ),
        "sig.pretcode": (
            "arch/x86/kernel/signal.c",
            485,
            "unsafe_put_user(ksig->ka.sa.sa_restorer, &frame->pretcode, Efault);",
        ),
        "sig.sigcontext": (
            "arch/x86/kernel/signal.c",
            486,
            "unsafe_put_sigcontext(&frame->uc.uc_mcontext, fp, regs, set, Efault);",
        ),
        "sig.sigmask": ("arch/x86/kernel/signal.c", 487, "unsafe_put_sigmask(set, frame, Efault);"),
        "sig.siginfo": (
            "arch/x86/kernel/signal.c",
            491,
            "if (copy_siginfo_to_user(&frame->info, &ksig->info))",
        ),
        "sig.di": ("arch/x86/kernel/signal.c", 496, "regs->di = sig;"),
        "sig.ax": ("arch/x86/kernel/signal.c", 498, "regs->ax = 0;"),
        "sig.si": ("arch/x86/kernel/signal.c", 502, "regs->si = (unsigned long)&frame->info;"),
        "sig.dx": ("arch/x86/kernel/signal.c", 503, "regs->dx = (unsigned long)&frame->uc;"),
        "sig.ip": (
            "arch/x86/kernel/signal.c",
            504,
            "regs->ip = (unsigned long) ksig->ka.sa.sa_handler;",
        ),
        "sig.sp": ("arch/x86/kernel/signal.c", 506, "regs->sp = (unsigned long)frame;"),
        "sig.cs": ("arch/x86/kernel/signal.c", 525, "regs->cs = __USER_CS;"),
        "sig.flags": (
            "arch/x86/kernel/signal.c",
            840,
            "regs->flags &= ~(X86_EFLAGS_DF|X86_EFLAGS_RF|X86_EFLAGS_TF);",
        ),
        "sig.done": ("arch/x86/kernel/signal.c", 846, "signal_setup_done(failed, ksig, stepping);"),
        "ret": ("arch/x86/entry/common.c", 83, "}"),
    },
    "v6.12": {
        "kstack": ("arch/x86/entry/common.c", 73, "add_random_kstack_offset();"),
        "enter": ("arch/x86/entry/common.c", 74, "nr = syscall_enter_from_user_mode(regs, nr);"),
        "enter.ctx": ("include/linux/entry-common.h", 194, "enter_from_user_mode(regs);"),
        "enter.irq": ("include/linux/entry-common.h", 197, "local_irq_enable();"),
        "enter.work": (
            "include/linux/entry-common.h",
            165,
            "unsigned long work = READ_ONCE(current_thread_info()->syscall_work);",
        ),
        "enter.test": ("include/linux/entry-common.h", 167, "if (work & SYSCALL_WORK_ENTER)"),
        "dispatch": (
            "arch/x86/entry/common.c",
            78,
            "if (!do_syscall_x64(regs, nr) && !do_syscall_x32(regs, nr) && nr != -1) {",
        ),
        "x64.unr": ("arch/x86/entry/common.c", 43, "unsigned int unr = nr;"),
        "x64.below": ("arch/x86/entry/common.c", 45, "if (likely(unr < NR_syscalls)) {"),
        "x64.nospec": (
            "arch/x86/entry/common.c",
            46,
            "unr = array_index_nospec(unr, NR_syscalls);",
        ),
        "x64.call": ("arch/x86/entry/common.c", 47, "regs->ax = x64_sys_call(regs, unr);"),
        "x64.false": ("arch/x86/entry/common.c", 50, "return false;"),
        "switch": ("arch/x86/entry/syscall_64.c", 32, "switch (nr) {"),
        "ni": ("arch/x86/entry/common.c", 80, "regs->ax = __x64_sys_ni_syscall(regs);"),
        "exit": ("arch/x86/entry/common.c", 84, "syscall_exit_to_user_mode(regs);"),
        "exit.work": ("kernel/entry/common.c", 221, "__syscall_exit_to_user_mode_work(regs);"),
        "prep": ("kernel/entry/common.c", 208, "syscall_exit_to_user_mode_prepare(regs);"),
        "prep.work": (
            "kernel/entry/common.c",
            185,
            "unsigned long work = READ_ONCE(current_thread_info()->syscall_work);",
        ),
        "prep.test": ("kernel/entry/common.c", 202, "if (unlikely(work & SYSCALL_WORK_EXIT))"),
        "irq.off": ("kernel/entry/common.c", 209, "local_irq_disable_exit_to_user();"),
        "etump": ("kernel/entry/common.c", 210, "exit_to_user_mode_prepare(regs);"),
        "etump.flags": ("include/linux/entry-common.h", 326, "ti_work = read_thread_flags();"),
        "etump.test": (
            "include/linux/entry-common.h",
            327,
            "if (unlikely(ti_work & EXIT_TO_USER_MODE_WORK))",
        ),
        "etump.loop": (
            "include/linux/entry-common.h",
            328,
            "ti_work = exit_to_user_mode_loop(regs, ti_work);",
        ),
        "loop.while": ("kernel/entry/common.c", 100, "while (ti_work & EXIT_TO_USER_MODE_WORK) {"),
        "loop.irq": ("kernel/entry/common.c", 102, "local_irq_enable_exit_to_user(ti_work);"),
        "loop.if_resched": ("kernel/entry/common.c", 104, "if (ti_work & _TIF_NEED_RESCHED)"),
        "loop.resched": ("kernel/entry/common.c", 105, "schedule();"),
        "loop.if_resume": ("kernel/entry/common.c", 116, "if (ti_work & _TIF_NOTIFY_RESUME)"),
        "loop.resume": ("kernel/entry/common.c", 117, "resume_user_mode_work(regs);"),
        "loop.irqoff": ("kernel/entry/common.c", 127, "local_irq_disable_exit_to_user();"),
        "loop.flags": ("kernel/entry/common.c", 132, "ti_work = read_thread_flags();"),
        "etump.arch": (
            "include/linux/entry-common.h",
            330,
            "arch_exit_to_user_mode_prepare(regs, ti_work);",
        ),
        "arch.work": (
            "arch/x86/include/asm/entry-common.h",
            64,
            "if (IS_ENABLED(CONFIG_X86_DEBUG_FPU) || unlikely(ti_work))",
        ),
        "arch.fpregs": (
            "arch/x86/include/asm/entry-common.h",
            56,
            "fpregs_assert_state_consistent();",
        ),
        "arch.rsp0": ("arch/x86/include/asm/entry-common.h", 67, "fred_update_rsp0();"),
        "arch.status": (
            "arch/x86/include/asm/entry-common.h",
            81,
            "current_thread_info()->status &= ~(TS_COMPAT | TS_I386_REGS_POKED);",
        ),
        "arch.kstack": (
            "arch/x86/include/asm/entry-common.h",
            94,
            "choose_random_kstack_offset(rdtsc());",
        ),
        "exit.user": ("kernel/entry/common.c", 223, "exit_to_user_mode();"),
        "etum.arch": ("include/linux/entry-common.h", 364, "arch_exit_to_user_mode();"),
        "div0": ("arch/x86/include/asm/entry-common.h", 107, "amd_clear_divider();"),
        "loop.if_signal": (
            "kernel/entry/common.c",
            113,
            "if (ti_work & (_TIF_SIGPENDING | _TIF_NOTIFY_SIGNAL))",
        ),
        "loop.signal": ("kernel/entry/common.c", 114, "arch_do_signal_or_restart(regs);"),
        "sig.get": ("arch/x86/kernel/signal.c", 337, "if (get_signal(&ksig)) {"),
        "sig.handle": ("arch/x86/kernel/signal.c", 339, "handle_signal(&ksig, regs);"),
        "sig.restart": (
            "arch/x86/kernel/signal.c",
            264,
            "if (syscall_get_nr(current, regs) != -1) {",
        ),
        "sig.setup": (
            "arch/x86/kernel/signal.c",
            294,
            "failed = (setup_rt_frame(ksig, regs) < 0);",
        ),
        "sig.rt": ("arch/x86/kernel/signal.c", 250, "return x64_setup_rt_frame(ksig, regs);"),
        "sig.frame": (
            "arch/x86/kernel/signal_64.c",
            175,
            "frame = get_sigframe(ksig, regs, sizeof(struct rt_sigframe), &fp);",
        ),
        "sig.fpu": (
            "arch/x86/kernel/signal.c",
            163,
            "if (!copy_fpstate_to_sigframe(*fpstate, (void __user *)buf_fx, math_size, pkru)) {",
        ),
        "sig.uc": (
            "arch/x86/kernel/signal_64.c",
            182,
            "unsafe_put_user(uc_flags, &frame->uc.uc_flags, Efault);",
        ),
        "sig.pretcode": (
            "arch/x86/kernel/signal_64.c",
            188,
            "unsafe_put_user(ksig->ka.sa.sa_restorer, &frame->pretcode, Efault);",
        ),
        "sig.sigcontext": (
            "arch/x86/kernel/signal_64.c",
            189,
            "unsafe_put_sigcontext(&frame->uc.uc_mcontext, fp, regs, set, Efault);",
        ),
        "sig.sigmask": (
            "arch/x86/kernel/signal_64.c",
            190,
            "unsafe_put_sigmask(set, frame, Efault);",
        ),
        "sig.siginfo": (
            "arch/x86/kernel/signal_64.c",
            194,
            "if (copy_siginfo_to_user(&frame->info, &ksig->info))",
        ),
        "sig.di": ("arch/x86/kernel/signal_64.c", 202, "regs->di = ksig->sig;"),
        "sig.ax": ("arch/x86/kernel/signal_64.c", 204, "regs->ax = 0;"),
        "sig.si": ("arch/x86/kernel/signal_64.c", 208, "regs->si = (unsigned long)&frame->info;"),
        "sig.dx": ("arch/x86/kernel/signal_64.c", 209, "regs->dx = (unsigned long)&frame->uc;"),
        "sig.ip": (
            "arch/x86/kernel/signal_64.c",
            210,
            "regs->ip = (unsigned long) ksig->ka.sa.sa_handler;",
        ),
        "sig.sp": ("arch/x86/kernel/signal_64.c", 212, "regs->sp = (unsigned long)frame;"),
        "sig.cs": ("arch/x86/kernel/signal_64.c", 231, "regs->cs = __USER_CS;"),
        "sig.flags": (
            "arch/x86/kernel/signal.c",
            306,
            "regs->flags &= ~(X86_EFLAGS_DF|X86_EFLAGS_RF|X86_EFLAGS_TF);",
        ),
        "sig.done": ("arch/x86/kernel/signal.c", 312, "signal_setup_done(failed, ksig, stepping);"),
        "ret": ("arch/x86/entry/common.c", 125, "}"),
    },
}

#: The C functions the traced kernels call out of line (each is a symbol the real
#: full-depth traces step into, ../oracle/v6.x/case_*_full); every other function of a
#: statement's call stack was inlined.  6.12's arch_exit_to_user_mode_prepare is the
#: compiler's arch_exit_to_user_mode_prepare.constprop.0.  Unknown for v5.8 (no trace).
OUT_OF_LINE: dict[str, frozenset[str]] = {
    "v6.1": frozenset({
        "do_syscall_64", "syscall_enter_from_user_mode", "x64_sys_call",
        "syscall_exit_to_user_mode", "syscall_exit_to_user_mode_prepare",
        "exit_to_user_mode_prepare", "fpregs_assert_state_consistent", "amd_clear_divider",
        "schedule",
    }),
    "v6.12": frozenset({
        "do_syscall_64", "x64_sys_call", "syscall_exit_to_user_mode",
        "syscall_exit_to_user_mode_prepare", "arch_exit_to_user_mode_prepare",
        "fpregs_assert_state_consistent", "schedule",
    }),
    "v5.8.13": frozenset(),
}  # fmt: skip

#: TIF bits of thread_info->flags (arch/x86/include/asm/thread_info.h, the same in all
#: three kernels) that a scenario's [task] flags may set.
TIF_BITS: dict[str, int] = {"NOTIFY_RESUME": 1, "NEED_RESCHED": 3}
TIF_SIGPENDING = 2

#: The work the exit loop is entered for: EXIT_TO_USER_MODE_WORK (include/linux/
#: entry-common.h: SIGPENDING | NOTIFY_RESUME | UPROBE | NEED_RESCHED | PATCH_PENDING |
#: NOTIFY_SIGNAL, traced as ``test $0x2300e``), v5.8's EXIT_TO_USERMODE_LOOP_FLAGS
#: (SIGPENDING | NOTIFY_RESUME | UPROBE | NEED_RESCHED | PATCH_PENDING).
EXIT_WORK: dict[str, int] = {"v5.8.13": 0x300E, "v6.1": 0x2300E, "v6.12": 0x2300E}
#: The entry work: v5.8's _TIF_WORK_SYSCALL_ENTRY (thread_info flags SYSCALL_TRACE 0,
#: SYSCALL_EMU 6, SYSCALL_AUDIT 7, SECCOMP 8, SYSCALL_TRACEPOINT 28); 6.1's and 6.12's
#: SYSCALL_WORK_ENTER (bits of thread_info.syscall_work, traced as ``test $0x3f``).  The
#: exit's one-time work: v5.8's SYSCALL_EXIT_WORK_FLAGS (SYSCALL_TRACE, SYSCALL_AUDIT,
#: SINGLESTEP 4, SYSCALL_TRACEPOINT), later SYSCALL_WORK_EXIT (``test $0x76``).
ENTRY_WORK: dict[str, int] = {"v5.8.13": 0x100001C1, "v6.1": 0x3F, "v6.12": 0x3F}
EXIT_SYSCALL_WORK: dict[str, int] = {"v5.8.13": 0x10000091, "v6.1": 0x76, "v6.12": 0x76}


@dataclass(frozen=True, slots=True)
class TaskLayout:
    """Where the model finds ``current`` and its fields: the per-CPU pointer to the task
    (read through GS, as ``current`` is), and field offsets in struct task_struct, whose
    first member is struct thread_info (CONFIG_THREAD_INFO_IN_TASK)."""

    current_task: int  # per-CPU offset of current_task (pcpu_hot.current_task on 6.12)
    flags: int = 0  # thread_info.flags
    syscall_work: int | None = 8  # thread_info.syscall_work (5.11+)
    status: int = 0x10  # thread_info.status
    kstack_offset: int | None = None  # task_struct.kstack_offset (5.13+)


#: 6.1: ``mov %gs:0x1fb80,%rax`` then 0x8(%rax), 0x10(%rax), 0x1478(%rax) in the traces;
#: 6.12: pcpu_hot at 0x35000, 0x1480 for kstack_offset.  v5.8 (no trace): thread_info is
#: {flags, status} and its per-CPU current_task is put where nothing else of it lives.
TASKS: dict[str, TaskLayout] = {
    "v5.8.13": TaskLayout(current_task=0x4000, syscall_work=None, status=8),
    "v6.1": TaskLayout(current_task=0x1FB80, kstack_offset=0x1478),
    "v6.12": TaskLayout(current_task=0x35000, kstack_offset=0x1480),
}


def kstack_alloca(kernel: str, offset: int) -> int:
    """The bytes add_random_kstack_offset() moves the stack by, as the traced kernels
    compute ``__kstack_alloca(KSTACK_OFFSET_MAX(offset))``: 6.1 ``and $0x3ff; add $0xf;
    and $0x7f8``, 6.12 ``and $0x3f0`` (the compiler folded the alignment in) then the same."""
    mask = 0x3F0 if kernel == "v6.12" else 0x3FF
    return ((offset & mask) + 0xF) & 0x7F8


def next_kstack_offset(offset: int, tsc: int) -> int:
    """choose_random_kstack_offset(rdtsc()): ``ror32(offset, 5) ^ (u32)tsc``."""
    offset &= 0xFFFFFFFF
    return (((offset >> 5) | (offset << 27)) & 0xFFFFFFFF) ^ (tsc & 0xFFFFFFFF)


__all__ = [
    "C_LINES", "ENTRY_WORK", "EXIT_SYSCALL_WORK", "EXIT_WORK", "OUT_OF_LINE", "TASKS",
    "TIF_BITS", "TIF_SIGPENDING", "TaskLayout", "kstack_alloca", "next_kstack_offset",
]  # fmt: skip
