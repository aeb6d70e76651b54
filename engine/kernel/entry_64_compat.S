
/*
 * arch/x86/entry/entry_64_compat.S, Linux v5.8.13: the int $0x80 entry, the
 * compat-mode SYSCALL entry and the SYSENTER entry (CONFIG_IA32_EMULATION), at the
 * kernel's macro level, in that order (the kernel's file has SYSENTER's first, then
 * SYSCALL's, then int $0x80's).  Listed after entry_64.S; their IRET exit is
 * entry_64.S's swapgs_restore_regs_and_return_to_usermode.  The SYSCALL and SYSENTER
 * entries are as the x86/urgent fixes merged for 5.8 (June 2020: SYSENTER's sp and IF
 * fix-ups moved into do_SYSENTER_32, the Xen PV frame fix) and the 2022 PUSH_AND_CLEAR_REGS
 * conversion, which quotes the register pushes it replaced, show them.
 */

/*
 * 32-bit legacy system call entry.
 *
 * 32-bit x86 Linux system calls traditionally used the INT $0x80
 * instruction.  INT $0x80 lands here.
 *
 * This entry point can be used by 32-bit and 64-bit programs to perform
 * 32-bit system calls.  Instances of INT $0x80 can be found inline in
 * various programs and libraries.  It is also used by the vDSO's
 * __kernel_vsyscall fallback for hardware that doesn't support a faster
 * entry method.  Restarted 32-bit system calls also fall back to INT
 * $0x80 regardless of what instruction was originally used to do the
 * system call.
 *
 * This is considered a slow path.  It is not used by most libc
 * implementations on modern hardware except during process startup.
 *
 * Arguments:
 * eax  system call number
 * ebx  arg1
 * ecx  arg2
 * edx  arg3
 * esi  arg4
 * edi  arg5
 * ebp  arg6
 */
/// The CPU delivered int $0x80 through IDT vector 0x80, a DPL-3 interrupt gate (so user code may raise it): it loaded RSP from TSS.sp0, the top of the per-CPU trampoline stack, pushed the user's SS, RSP, RFLAGS, CS and the RIP after the int, cleared IF, TF, NT and RF, and loaded CS:RIP from the gate. Unlike SYSCALL it saved a complete frame, and RCX and R11 still hold the user's values. CR3 and the GS base are still the user's.
SYM_CODE_START(entry_INT80_compat)
	UNWIND_HINT_EMPTY
	/*
	 * Interrupts are off on entry.
	 */
/// ASM_CLAC clears RFLAGS.AC on a CPU with SMAP (interrupt delivery does not clear it); this emulated CPU runs with CR4.SMAP clear, so the alternative left three bytes of NOP.
	ASM_CLAC			/* Do this early to minimize exposure */
/// As on the SYSCALL path: GS now points at this CPU's per-CPU area.
	SWAPGS

	/*
	 * User tracing code (ptrace or signal handlers) might assume that
	 * the saved RAX contains a 32-bit number when we're invoking a 32-bit
	 * syscall.  Just in case the high bits are nonzero, zero-extend
	 * the syscall number.  (This could almost certainly be deleted
	 * with no ill effects.)
	 */
/// A 32-bit move zero-extends: the upper half of RAX is dropped, the first sign of the 32-bit ABI.
	movl	%eax, %eax

	/* switch to thread stack expects orig_ax and rdi to be pushed */
/// Two words go on the trampoline stack below the hardware frame: the call number (the future pt_regs->orig_ax) ...
	pushq	%rax			/* pt_regs->orig_ax */
/// ... and the user RDI, which frees RDI for the CR3 switch and the copy.
	pushq	%rdi			/* pt_regs->di */

	/* Need to switch before accessing the thread stack. */
/// KPTI: to the kernel page tables, with RDI as the scratch register; the thread stack is not mapped in the user tables.
	SWITCH_TO_KERNEL_CR3 scratch_reg=%rdi

	/* In the Xen PV case we already run on the thread stack. */
	ALTERNATIVE "", "jmp .Lint80_keep_stack", X86_FEATURE_XENPV

/// Remember where the seven words are ...
	movq	%rsp, %rdi
/// ... and move to the top of this task's kernel stack.
	movq	PER_CPU_VAR(cpu_current_top_of_stack), %rsp

/// Copy the hardware frame to the task stack, word by word: these become pt_regs->ss, sp, flags, cs and ip.
	pushq	6*8(%rdi)		/* regs->ss */
	pushq	5*8(%rdi)		/* regs->rsp */
	pushq	4*8(%rdi)		/* regs->eflags */
	pushq	3*8(%rdi)		/* regs->cs */
	pushq	2*8(%rdi)		/* regs->ip */
	pushq	1*8(%rdi)		/* regs->orig_ax */
	pushq	(%rdi)			/* pt_regs->di */
.Lint80_keep_stack:

/// The rest of pt_regs, RSI to R15 each cleared right after it is saved (nospec: no user value may steer speculation; RDI is reloaded below). The 32-bit arguments arrive in EBX, ECX, EDX, ESI, EDI and EBP; R8-R15 are saved as they are, for a 64-bit caller's sake.
	pushq	%rsi			/* pt_regs->si */
	xorl	%esi, %esi		/* nospec   si */
	pushq	%rdx			/* pt_regs->dx */
	xorl	%edx, %edx		/* nospec   dx */
	pushq	%rcx			/* pt_regs->cx */
	xorl	%ecx, %ecx		/* nospec   cx */
/// pt_regs->ax starts as -ENOSYS, the answer if no system call runs.
	pushq	$-ENOSYS		/* pt_regs->ax */
	pushq   %r8			/* pt_regs->r8 */
	xorl	%r8d, %r8d		/* nospec   r8 */
	pushq   %r9			/* pt_regs->r9 */
	xorl	%r9d, %r9d		/* nospec   r9 */
	pushq   %r10			/* pt_regs->r10*/
	xorl	%r10d, %r10d		/* nospec   r10 */
	pushq   %r11			/* pt_regs->r11 */
	xorl	%r11d, %r11d		/* nospec   r11 */
	pushq   %rbx                    /* pt_regs->rbx */
	xorl	%ebx, %ebx		/* nospec   rbx */
	pushq   %rbp                    /* pt_regs->rbp */
	xorl	%ebp, %ebp		/* nospec   rbp */
	pushq   %r12                    /* pt_regs->r12 */
	xorl	%r12d, %r12d		/* nospec   r12 */
	pushq   %r13                    /* pt_regs->r13 */
	xorl	%r13d, %r13d		/* nospec   r13 */
	pushq   %r14                    /* pt_regs->r14 */
	xorl	%r14d, %r14d		/* nospec   r14 */
	pushq   %r15                    /* pt_regs->r15 */
	xorl	%r15d, %r15d		/* nospec   r15 */

	UNWIND_HINT_REGS

/// The direction flag must be clear for C code; interrupt delivery does not clear it.
	cld

/// The only argument of do_int80_syscall_32(regs): the complete struct pt_regs.
	movq	%rsp, %rdi
/// The C part: the 32-bit system call (ia32_sys_call_table, arguments from pt_regs->bx, cx, dx, si, di, bp, each truncated to 32 bits) and the exit work.
	call	do_int80_syscall_32
/// No SYSRET attempt: int $0x80 always leaves through the IRET exit of entry_64.S, which restores every register and reloads CS and SS from the frame.
	jmp	swapgs_restore_regs_and_return_to_usermode
SYM_CODE_END(entry_INT80_compat)

/*
 * 32-bit SYSCALL entry.
 *
 * 32-bit system calls through the vDSO's __kernel_vsyscall enter here
 * on 64-bit kernels running on AMD CPUs.
 *
 * The SYSCALL instruction, in principle, should *only* occur in the
 * vDSO.  In practice, it appears that this really is the case.
 * As evidence:
 *
 *  - The calling convention for SYSCALL has changed several times without
 *    anyone noticing.
 *
 *  - Prior to the in-kernel X86_BUG_SYSRET_SS_ATTRS fixup, anything
 *    user task that did SYSCALL without immediately reloading SS
 *    would randomly crash.
 *
 *  - Most programmers do not directly target AMD CPUs, and the 32-bit
 *    SYSCALL instruction does not exist on Intel CPUs.  Even on AMD
 *    CPUs, Linux disables the SYSCALL instruction on 32-bit kernels
 *    because the SYSCALL instruction in legacy/native 32-bit mode (as
 *    opposed to compat mode) is sufficiently poorly designed as to be
 *    essentially unusable.
 *
 * 32-bit SYSCALL saves RIP to RCX, clears RFLAGS.RF, then saves
 * RFLAGS to R11, then loads new SS, CS, and RIP from previously
 * programmed MSRs.  RFLAGS gets masked by a value from another MSR
 * (so CLD and CLAC are not needed).  SYSCALL does not save anything on
 * the stack and does not change RSP.
 *
 * Note: RFLAGS saving+masking-with-MSR happens only in Long mode
 * (in legacy 32-bit mode, IF, RF and VM bits are cleared and that's it).
 * Don't get confused: RFLAGS saving+masking depends on Long Mode Active bit
 * (EFER.LMA=1), NOT on bitness of userspace where SYSCALL executes
 * or target CS descriptor's L bit (SYSCALL does not read segment descriptors).
 *
 * Arguments:
 * eax  system call number
 * ecx  return address
 * ebx  arg1
 * ebp  arg2	(note: not saved in the stack frame, should not be touched)
 * edx  arg3
 * esi  arg4
 * edi  arg5
 * esp  user stack
 * 0(%esp) arg6
 */
/// SYSCALL from compatibility mode (AMD) loaded RIP from MSR_CSTAR, CS and SS from MSR_STAR, saved the user EIP in RCX and RFLAGS in R11, and masked RFLAGS with MSR_SYSCALL_MASK. As on the 64-bit path it left RSP, GS and CR3 alone. The vDSO's __kernel_vsyscall got here with `movl %ecx, %ebp; syscall`: SYSCALL overwrites ECX, so the second argument travels in EBP, and the caller's EBP waits on the user stack.
SYM_CODE_START(entry_SYSCALL_compat)
	UNWIND_HINT_EMPTY
	/* Interrupts are off on entry. */
/// GS now points at this CPU's per-CPU area.
	swapgs

	/* Stash user ESP */
/// The user ESP goes to R8D (a 32-bit move: the upper half is cleared); R8 is free, a 32-bit caller has no R8.
	movl	%esp, %r8d

	/* Use %rsp as scratch reg. User ESP is stashed in r8 */
/// KPTI: to the kernel page tables, RSP the scratch register now that ESP is safe in R8.
	SWITCH_TO_KERNEL_CR3 scratch_reg=%rsp

	/* Switch to the kernel stack */
/// Straight to the top of the task stack: unlike entry_SYSCALL_64 this entry builds pt_regs there at once.
	movq	PER_CPU_VAR(cpu_current_top_of_stack), %rsp

	/* Construct struct pt_regs on stack */
/// The hardware part of pt_regs, as an interrupt would have pushed it: SS (__USER32_DS, the same selector as __USER_DS, 0x2b), the user ESP, the RFLAGS SYSCALL saved in R11, CS __USER32_CS (0x23) and the EIP SYSCALL saved in RCX.
	pushq	$__USER32_DS		/* pt_regs->ss */
	pushq	%r8			/* pt_regs->sp */
	pushq	%r11			/* pt_regs->flags */
	pushq	$__USER32_CS		/* pt_regs->cs */
	pushq	%rcx			/* pt_regs->ip */
SYM_INNER_LABEL(entry_SYSCALL_compat_after_hwframe, SYM_L_GLOBAL)
/// A 32-bit move zero-extends: the call number loses any upper half.
	movl	%eax, %eax		/* discard orig_ax high bits */
	pushq	%rax			/* pt_regs->orig_ax */
/// The rest of pt_regs. pt_regs->cx gets EBP, where the vDSO put the second argument; R8-R11 and R12-R15 are saved as zeros (a 32-bit caller has none of them) and every register is cleared after its push (nospec).
	pushq	%rdi			/* pt_regs->di */
	pushq	%rsi			/* pt_regs->si */
	xorl	%esi, %esi		/* nospec   si */
	pushq	%rdx			/* pt_regs->dx */
	xorl	%edx, %edx		/* nospec   dx */
	pushq	%rbp			/* pt_regs->cx (stashed in bp) */
	xorl	%ecx, %ecx		/* nospec   cx */
/// pt_regs->ax starts as -ENOSYS.
	pushq	$-ENOSYS		/* pt_regs->ax */
	pushq   $0			/* pt_regs->r8  = 0 */
	xorl	%r8d, %r8d		/* nospec   r8 */
	pushq   $0			/* pt_regs->r9  = 0 */
	xorl	%r9d, %r9d		/* nospec   r9 */
	pushq   $0			/* pt_regs->r10 = 0 */
	xorl	%r10d, %r10d		/* nospec   r10 */
	pushq   $0			/* pt_regs->r11 = 0 */
	xorl	%r11d, %r11d		/* nospec   r11 */
	pushq   %rbx                    /* pt_regs->rbx */
	xorl	%ebx, %ebx		/* nospec   rbx */
/// pt_regs->bp for now holds the second argument too; do_fast_syscall_32 overwrites its low half with the caller's EBP, read from the user stack.
	pushq   %rbp                    /* pt_regs->rbp (will be overwritten) */
	xorl	%ebp, %ebp		/* nospec   rbp */
	pushq   $0			/* pt_regs->r12 = 0 */
	xorl	%r12d, %r12d		/* nospec   r12 */
	pushq   $0			/* pt_regs->r13 = 0 */
	xorl	%r13d, %r13d		/* nospec   r13 */
	pushq   $0			/* pt_regs->r14 = 0 */
	xorl	%r14d, %r14d		/* nospec   r14 */
	pushq   $0			/* pt_regs->r15 = 0 */
	xorl	%r15d, %r15d		/* nospec   r15 */
	UNWIND_HINT_REGS

/// The only argument of do_fast_syscall_32(regs): the complete struct pt_regs.
	movq	%rsp, %rdi
/// The C part: regs->ip ← the vDSO's int80_landing_pad, the caller's EBP fetched from the user stack, the 32-bit system call, the exit work; then the SYSRETL conditions, returned as 1 (SYSRETL) or 0 (IRET) in EAX.
	call	do_fast_syscall_32
	/* XEN PV guests always use IRET path */
/// 0 from do_fast_syscall_32: the IRET exit of entry_64.S.
	ALTERNATIVE "testl %eax, %eax; jz swapgs_restore_regs_and_return_to_usermode", \
		    "jmp swapgs_restore_regs_and_return_to_usermode", X86_FEATURE_XENPV

	/* Opportunistic SYSRET */
sysret32_from_system_call:
	/*
	 * We are not going to return to userspace from the trampoline
	 * stack. So let's erase the thread stack right now.
	 */
	STACKLEAK_ERASE
/// Reload what SYSRETL needs from pt_regs: RBX and RBP (callee-saved for the vDSO), RFLAGS into R11 and the return EIP (the landing pad) into RCX.
	movq	RBX(%rsp), %rbx		/* pt_regs->rbx */
	movq	RBP(%rsp), %rbp		/* pt_regs->rbp */
	movq	EFLAGS(%rsp), %r11	/* pt_regs->flags (in r11) */
	movq	RIP(%rsp), %rcx		/* pt_regs->ip (in rcx) */
/// Skip r8-r15, then pop the return value into RAX and the argument registers; pt_regs->cx is skipped (RCX holds the return EIP).
	addq	$RAX, %rsp		/* Skip r8-r15 */
	popq	%rax			/* pt_regs->rax */
	popq	%rdx			/* Skip pt_regs->cx */
	popq	%rdx			/* pt_regs->dx */
	popq	%rsi			/* pt_regs->si */
	popq	%rdi			/* pt_regs->di */

        /*
         * USERGS_SYSRET32 does:
         *  GSBASE = user's GS base
         *  EIP = ECX
         *  RFLAGS = R11
         *  CS = __USER32_CS
         *  SS = __USER_DS
         *
	 * ECX will not match pt_regs->cx, but we're returning to a vDSO
	 * trampoline that will fix up RCX, so this is okay.
	 *
	 * R12-R15 are callee-saved, so they contain whatever was in them
	 * when the system call started, which is already known to user
	 * code.  We zero R8-R10 to avoid info leaks.
         */
/// RSP now points at orig_ax; the user ESP is pt_regs->sp, a few slots up. From here the kernel runs on the user's stack.
	movq	RSP-ORIG_RAX(%rsp), %rsp

	/*
	 * The original userspace %rsp (RSP-ORIG_RAX(%rsp)) is stored
	 * on the process stack which is not mapped to userspace and
	 * not readable after we SWITCH_TO_USER_CR3.  Delay the CR3
	 * switch until after after the last reference to the process
	 * stack.
	 *
	 * %r8/%r9 are zeroed before the sysret, thus safe to clobber.
	 */
/// KPTI: back to the user page tables, with R8 and R9 as scratch (no stack needed).
	SWITCH_TO_USER_CR3_NOSTACK scratch_reg=%r8 scratch_reg2=%r9

/// R8-R10 are cleared so that no kernel value leaks: a 32-bit program can far-jump into 64-bit code and read them.
	xorl	%r8d, %r8d
	xorl	%r9d, %r9d
	xorl	%r10d, %r10d
/// The user's GS base back.
	swapgs
/// SYSRETL: EIP ← ECX (the landing pad), RFLAGS ← R11, CS ← __USER32_CS and SS ← __USER_DS from MSR_STAR, CPL 3, compatibility mode.
	sysretl
SYM_CODE_END(entry_SYSCALL_compat)

/*
 * 32-bit SYSENTER entry.
 *
 * 32-bit system calls through the vDSO's __kernel_vsyscall enter here
 * on 64-bit kernels running on Intel CPUs.
 *
 * The SYSENTER instruction, in principle, should *only* occur in the
 * vDSO.  In practice, a small number of Android devices were shipped
 * with a copy of Bionic that inlined a SYSENTER instruction.  This
 * never happened in any of Google's Bionic versions -- it only happened
 * in a narrow range of Intel-provided versions.
 *
 * SYSENTER loads SS, RSP, CS, and RIP from previously programmed MSRs.
 * IF and VM in RFLAGS are cleared (IOW: interrupts are off).
 * SYSENTER does not save anything on the stack,
 * and does not save old RIP (!!!), RSP, or RFLAGS.
 *
 * Arguments:
 * eax  system call number
 * ebx  arg1
 * ecx  arg2
 * edx  arg3
 * esi  arg4
 * edi  arg5
 * ebp  user stack
 * 0(%ebp) arg6
 */
/// SYSENTER (Intel) loaded CS from IA32_SYSENTER_CS (__KERNEL_CS) and SS from the next GDT slot, RSP from IA32_SYSENTER_ESP (the top of this CPU's entry stack) and RIP from IA32_SYSENTER_EIP, and cleared IF, VM and RF. It saved nothing: not the user EIP, ESP or RFLAGS. The vDSO's __kernel_vsyscall came here with `movl %esp, %ebp; sysenter`, so EBP holds the user ESP; the return address is the vDSO's own.
SYM_CODE_START(entry_SYSENTER_compat)
	UNWIND_HINT_EMPTY
	/* Interrupts are off on entry. */
/// GS now points at this CPU's per-CPU area.
	SWAPGS

/// KPTI: to the kernel page tables. RSP already points at the entry stack, so RAX can be saved there for the scratch register.
	pushq	%rax
	SWITCH_TO_KERNEL_CR3 scratch_reg=%rax
	popq	%rax

/// Onto the task stack.
	movq	PER_CPU_VAR(cpu_current_top_of_stack), %rsp

	/* Construct struct pt_regs on stack */
/// The hardware part of pt_regs, as an interrupt would have pushed it, but SYSENTER saved nothing: SS (__USER32_DS, 0x2b), sp 0 (do_SYSENTER_32 fills it from EBP), the current RFLAGS (IF is clear now; do_SYSENTER_32 sets it in the copy), CS __USER32_CS and ip 0 (do_fast_syscall_32 sets the vDSO's landing pad).
	pushq	$__USER32_DS		/* pt_regs->ss */
	pushq	$0			/* pt_regs->sp = 0 (placeholder) */

	/*
	 * Push flags.  This is nasty.  First, interrupts are currently
	 * off, but we need pt_regs->flags to have IF set.  Second, if TS
	 * was set in usermode, it's still set, and we're singlestepping
	 * through this code.  do_SYSENTER_32() will fix up IF.
	 */
	pushfq				/* pt_regs->flags (except IF = 0) */
	pushq	$__USER32_CS		/* pt_regs->cs */
	pushq	$0			/* pt_regs->ip = 0 (placeholder) */
SYM_INNER_LABEL(entry_SYSENTER_compat_after_hwframe, SYM_L_GLOBAL)

	/*
	 * User tracing code (ptrace or signal handlers) might assume that
	 * the saved RAX contains a 32-bit number when we're invoking a 32-bit
	 * syscall.  Just in case the high bits are nonzero, zero-extend
	 * the syscall number.  (This could almost certainly be deleted
	 * with no ill effects.)
	 */
/// A 32-bit move zero-extends: the call number loses any upper half.
	movl	%eax, %eax

/// The rest of pt_regs: the argument registers as they are, -ENOSYS in ax, R8-R11 and R12-R15 saved as zeros and cleared (nospec), RBX and RBP saved and cleared.
	pushq	%rax			/* pt_regs->orig_ax */
	pushq	%rdi			/* pt_regs->di */
	pushq	%rsi			/* pt_regs->si */
	pushq	%rdx			/* pt_regs->dx */
	pushq	%rcx			/* pt_regs->cx */
	pushq	$-ENOSYS		/* pt_regs->ax */
	pushq   $0			/* pt_regs->r8  = 0 */
	xorl	%r8d, %r8d		/* nospec   r8 */
	pushq   $0			/* pt_regs->r9  = 0 */
	xorl	%r9d, %r9d		/* nospec   r9 */
	pushq   $0			/* pt_regs->r10 = 0 */
	xorl	%r10d, %r10d		/* nospec   r10 */
	pushq   $0			/* pt_regs->r11 = 0 */
	xorl	%r11d, %r11d		/* nospec   r11 */
	pushq   %rbx                    /* pt_regs->rbx */
	xorl	%ebx, %ebx		/* nospec   rbx */
	pushq   %rbp                    /* pt_regs->rbp (will be overwritten) */
	xorl	%ebp, %ebp		/* nospec   rbp */
	pushq   $0			/* pt_regs->r12 = 0 */
	xorl	%r12d, %r12d		/* nospec   r12 */
	pushq   $0			/* pt_regs->r13 = 0 */
	xorl	%r13d, %r13d		/* nospec   r13 */
	pushq   $0			/* pt_regs->r14 = 0 */
	xorl	%r14d, %r14d		/* nospec   r14 */
	pushq   $0			/* pt_regs->r15 = 0 */
	xorl	%r15d, %r15d		/* nospec   r15 */
	UNWIND_HINT_REGS

/// The direction flag must be clear for C code; SYSENTER does not clear it.
	cld

	/*
	 * SYSENTER doesn't filter flags, so we need to clear NT and AC
	 * ourselves.  To save a few cycles, we can check whether
	 * either was set instead of doing an unconditional popfq.
	 * This needs to happen before enabling interrupts so that
	 * we don't get preempted with NT set.
	 *
	 * If TF is set, we will single-step all the way to here -- do_debug
	 * will ignore all the traps.  (Yes, this is slow, but so is
	 * single-stepping in general.  This allows us to avoid having
	 * a more complicated code to handle the case where a user program
	 * forces us to single-step through the SYSENTER entry code.)
	 *
	 * NB.: .Lsysenter_fix_flags is a label with the code under it moved
	 * out-of-line as an optimization: NT is unlikely to be set in the
	 * majority of the cases and instead of polluting the I$ unnecessarily,
	 * we're keeping that code behind a branch which will predict as
	 * not-taken and therefore its instructions won't be fetched.
	 */
/// SYSENTER masks no flags (SYSCALL has MSR_SYSCALL_MASK): with NT, AC or TF set in the user's RFLAGS, the out-of-line fix loads clean flags.
	testl	$X86_EFLAGS_NT|X86_EFLAGS_AC|X86_EFLAGS_TF, EFLAGS(%rsp)
	jnz	.Lsysenter_fix_flags
.Lsysenter_flags_fixed:

/// The only argument of do_SYSENTER_32(regs): the complete struct pt_regs.
	movq	%rsp, %rdi
/// The C part: regs->sp ← regs->bp (the user ESP the vDSO left in EBP), IF set in regs->flags, then do_fast_syscall_32: regs->ip ← the vDSO's landing pad, the caller's EBP from the user stack, the system call, the SYSRETL conditions, returned as 1 or 0 in EAX.
	call	do_SYSENTER_32
	/* XEN PV guests always use IRET path */
/// 0 from do_SYSENTER_32: the IRET exit of entry_64.S.
	ALTERNATIVE "testl %eax, %eax; jz swapgs_restore_regs_and_return_to_usermode", \
		    "jmp swapgs_restore_regs_and_return_to_usermode", X86_FEATURE_XENPV
/// Otherwise SYSENTER shares the SYSRETL exit of entry_SYSCALL_compat (SYSEXIT is never used on a 64-bit kernel).
	jmp	sysret32_from_system_call

/// Load RFLAGS with only the always-set bit 1 (X86_EFLAGS_FIXED): NT, AC and TF go; pt_regs keeps the user's copy.
.Lsysenter_fix_flags:
	pushq	$X86_EFLAGS_FIXED
	popfq
	jmp	.Lsysenter_flags_fixed
SYM_INNER_LABEL(__end_entry_SYSENTER_compat, SYM_L_GLOBAL)
SYM_CODE_END(entry_SYSENTER_compat)
