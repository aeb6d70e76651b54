
/*
 * arch/x86/entry/entry_64_compat.S, Linux v5.8.13: the int $0x80 entry
 * (CONFIG_IA32_EMULATION), at the kernel's macro level.  Listed after
 * entry_64.S; its exit is entry_64.S's swapgs_restore_regs_and_return_to_usermode.
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
