
/*
 * The int $0x80 entry of Linux 6.12.118 (Debian), at the kernel's macro level:
 * asm_int80_emulation is the IDT entry arch/x86/include/asm/idtentry.h declares
 * with DECLARE_IDTENTRY_RAW(IA32_SYSCALL_VECTOR, int80_emulation), i.e. the
 * idtentry and idtentry_body macros of arch/x86/entry/entry_64.S, shown here
 * expanded for it; error_entry's user-mode half and error_return follow from
 * entry_64.S, then int80_emulation from arch/x86/entry/entry_64_compat.S.
 * Then entry_SYSCALL_compat, the compat-mode SYSCALL entry (AMD), and
 * entry_SYSENTER_compat (Intel), from arch/x86/entry/entry_64_compat.S.  Listed
 * after entry_64.S; the IRET exit of all three is its
 * swapgs_restore_regs_and_return_to_usermode.
 */

/// The CPU delivered int $0x80 through IDT vector 0x80, a DPL-3 interrupt gate: it loaded RSP from TSS.sp0, the top of the per-CPU trampoline stack, pushed the user's SS, RSP, RFLAGS, CS and the RIP after the int, cleared IF, TF, NT and RF, and loaded CS:RIP from the gate. Since the IDTENTRY conversion of 6.7, int $0x80 enters like any exception without an error code, not through the old entry_INT80_compat.
SYM_CODE_START(asm_int80_emulation)
	UNWIND_HINT_IRET_ENTRY offset=0
/// ENDBR64 marks this as a legal indirect-branch target for Intel IBT (CET). Where IBT is off it executes as a NOP.
	ENDBR
/// ASM_CLAC clears RFLAGS.AC on a CPU with SMAP (interrupt delivery does not clear it); this emulated CPU runs with CR4.SMAP clear, so the alternative left three bytes of NOP.
	ASM_CLAC
/// The direction flag must be clear for C code; interrupt delivery does not clear it.
	cld

/// The slot of pt_regs->orig_ax: -1, "no system call to restart". do_int80_emulation puts the call number there later.
	pushq	$-1			/* ORIG_RAX: no syscall to restart */

	/*
	 * Call error_entry() and switch to the task stack if from userspace.
	 *
	 * When in XENPV, it is already in the task stack, and it can't fault
	 * for native_iret() nor native_load_gs_index() since XENPV uses its
	 * own pvops for IRET and load_gs_index().  And it doesn't need to
	 * switch the CR3.  So it can skip invoking error_entry().
	 */
/// error_entry builds pt_regs on the trampoline stack, switches GS and CR3, and returns the address of the copy on the task stack, where RSP goes next.
	ALTERNATIVE "call error_entry; movq %rax, %rsp", "call xen_error_entry", X86_FEATURE_XENPV

	ENCODE_FRAME_POINTER
	UNWIND_HINT_REGS

/// The only argument of the C handler: the complete struct pt_regs, now on the task stack.
	movq	%rsp, %rdi			/* pt_regs pointer into 1st argument*/

/// int80_emulation clears the branch history in assembly where the CPU needs it (BHI), then jumps to the C function do_int80_emulation, which returns here.
	call	int80_emulation

	/* For some configurations \cfunc ends up being a noreturn. */
	REACHABLE

/// No SYSRET attempt: an IDT entry always leaves through error_return.
	jmp	error_return
SYM_CODE_END(asm_int80_emulation)

/*
 * Switch GS and CR3 if needed.
 */
SYM_CODE_START(error_entry)
	ANNOTATE_NOENDBR
	UNWIND_HINT_FUNC

/// Push the rest of pt_regs below the hardware frame and orig_ax, and clear the registers. save_ret=1: the return address of the call sits where pt_regs->di belongs, so RSI carries it over and it is pushed again below pt_regs.
	PUSH_AND_CLEAR_REGS save_ret=1
	ENCODE_FRAME_POINTER 8

/// From user mode? The CS the CPU saved has RPL 3 (the +8 skips the return address).
	testb	$3, CS+8(%rsp)
	jz	.Lerror_kernelspace

	/*
	 * We entered from user mode or we're pretending to have entered
	 * from user mode due to an IRET fault.
	 */
/// As on the SYSCALL path: GS now points at this CPU's per-CPU area.
	swapgs
/// An LFENCE after SWAPGS only where X86_FEATURE_FENCE_SWAPGS_USER is set (bugs.c sets it under the Spectre v1 mitigation for a CPU with the SWAPGS bug and PTI off); with PTI the CR3 write serializes, so three bytes of NOP.
	FENCE_SWAPGS_USER_ENTRY
	/* We have user CR3.  Change to kernel CR3. */
/// KPTI: to the kernel page tables, with RAX as the scratch register (its user value is saved in pt_regs).
	SWITCH_TO_KERNEL_CR3 scratch_reg=%rax
/// IBRS_ENTER writes MSR_IA32_SPEC_CTRL on CPUs that use IBRS in the kernel. The traced CPU does not: the ALTERNATIVE is a jmp over the wrmsr sequence.
	IBRS_ENTER
/// UNTRAIN_RET_FROM_CALL: UNTRAIN_RET's two sites, with the call-depth reset meant for a called function (RESET_CALL_DEPTH_FROM_CALL, 14 bytes): CALL_UNTRAIN_RET's five bytes (a NOP, or the call of entry_untrain_ret where X86_FEATURE_UNRET is set, as on EPYC-Rome), then a jmp over the INT3 padding of the second site.
	UNTRAIN_RET_FROM_CALL

/// The argument of sync_regs: pt_regs on the trampoline stack (past the return address).
	leaq	8(%rsp), %rdi			/* arg0 = pt_regs pointer */
	/* Put us onto the real thread stack. */
/// A tail call: sync_regs (C, modelled) copies pt_regs to the top of the task stack and returns that address in RAX, straight to asm_int80_emulation.
	jmp	sync_regs

.Lerror_kernelspace:
	/* an exception from kernel mode: not rendered, int $0x80 comes from user mode */
	ud2
SYM_CODE_END(error_entry)

SYM_CODE_START_LOCAL(error_return)
	UNWIND_HINT_REGS
	DEBUG_ENTRY_ASSERT_IRQS_OFF
/// Back to user mode (RPL 3 in the saved CS) or to the kernel.
	testb	$3, CS(%rsp)
	jz	restore_regs_and_return_to_kernel
/// The IRET exit of entry_64.S, the one a failed SYSRET check takes too: it restores every register and reloads CS and SS from the frame.
	jmp	swapgs_restore_regs_and_return_to_usermode
SYM_CODE_END(error_return)

/*
 * int 0x80 is used by 32 bit mode as a system call entry. Normally idt entries
 * point to C routines, however since this is a system call interface the branch
 * history needs to be scrubbed to protect against BHI attacks, and that
 * scrubbing needs to take place in assembly code prior to entering any C
 * routines.
 */
SYM_CODE_START(int80_emulation)
	ANNOTATE_NOENDBR
	UNWIND_HINT_FUNC
/// CLEAR_BRANCH_HISTORY (BHI): the ALTERNATIVE that calls clear_bhb_loop where X86_FEATURE_CLEAR_BHB_LOOP is set is left a NOP on this CPU.
	CLEAR_BRANCH_HISTORY
/// The C part, reached by a jump, so its return goes straight back to asm_int80_emulation: the 32-bit system call (ia32_sys_call(), arguments from pt_regs->bx, cx, dx, si, di, bp, each cut to 32 bits) and the exit work.
	jmp do_int80_emulation
SYM_CODE_END(int80_emulation)

/*
 * 32-bit SYSCALL entry.
 *
 * 32-bit system calls through the vDSO's __kernel_vsyscall enter here
 * on 64-bit kernels running on AMD CPUs.
 *
 * The SYSCALL instruction, in principle, should *only* occur in the
 * vDSO.  In practice, it appears that this really is the case.
 *
 * 32-bit SYSCALL saves RIP to RCX, clears RFLAGS.RF, then saves
 * RFLAGS to R11, then loads new SS, CS, and RIP from previously
 * programmed MSRs.  RFLAGS gets masked by a value from another MSR
 * (so CLD and CLAC are not needed).  SYSCALL does not save anything on
 * the stack and does not change RSP.
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
	UNWIND_HINT_ENTRY
/// ENDBR64: a legal indirect-branch target for IBT; a NOP where IBT is off.
	ENDBR
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
	movq	PER_CPU_VAR(pcpu_hot + X86_top_of_stack), %rsp

SYM_INNER_LABEL(entry_SYSCALL_compat_safe_stack, SYM_L_GLOBAL)
	ANNOTATE_NOENDBR

	/* Construct struct pt_regs on stack */
/// The hardware part of pt_regs, as an interrupt would have pushed it: SS (__USER_DS, 0x2b), the user ESP, the RFLAGS SYSCALL saved in R11, CS __USER32_CS (0x23) and the EIP SYSCALL saved in RCX.
	pushq	$__USER_DS		/* pt_regs->ss */
	pushq	%r8			/* pt_regs->sp */
	pushq	%r11			/* pt_regs->flags */
	pushq	$__USER32_CS		/* pt_regs->cs */
	pushq	%rcx			/* pt_regs->ip */
SYM_INNER_LABEL(entry_SYSCALL_compat_after_hwframe, SYM_L_GLOBAL)
/// A 32-bit move zero-extends: the call number loses any upper half.
	movl	%eax, %eax		/* discard orig_ax high bits */
	pushq	%rax			/* pt_regs->orig_ax */
/// The rest of pt_regs, then every register cleared. rcx=%rbp: pt_regs->cx gets EBP, where the vDSO put the second argument; pt_regs->bp gets it too for now, and do_fast_syscall_32 overwrites its low half with the caller's EBP from the user stack.
	PUSH_AND_CLEAR_REGS rcx=%rbp rax=$-ENOSYS
	UNWIND_HINT_REGS

/// The mitigations of entry_SYSCALL_64, patched the same way on this CPU.
	IBRS_ENTER
	UNTRAIN_RET
	CLEAR_BRANCH_HISTORY

/// The only argument of do_fast_syscall_32(regs): the complete struct pt_regs.
	movq	%rsp, %rdi
/// The C part: regs->ip ← the vDSO's int80_landing_pad, the caller's EBP fetched from the user stack, the 32-bit system call, the exit work; then the SYSRETL conditions, returned as a bool in AL: true (SYSRETL) or false (IRET).
	call	do_fast_syscall_32

sysret32_from_system_call:
	/* XEN PV guests always use IRET path */
/// false from do_fast_syscall_32: the IRET exit of entry_64.S.
	ALTERNATIVE "testb %al, %al; jz swapgs_restore_regs_and_return_to_usermode", \
		    "jmp swapgs_restore_regs_and_return_to_usermode", X86_FEATURE_XENPV

	/*
	 * Opportunistic SYSRET
	 *
	 * We are not going to return to userspace from the trampoline
	 * stack. So let's erase the thread stack right now.
	 */
	STACKLEAK_ERASE

/// IBRS_EXIT, as on the 64-bit exit.
	IBRS_EXIT

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
SYM_INNER_LABEL(entry_SYSRETL_compat_unsafe_stack, SYM_L_GLOBAL)
	ANNOTATE_NOENDBR

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
/// CLEAR_CPU_BUFFERS, as before SYSRETQ.
	CLEAR_CPU_BUFFERS
/// SYSRETL: EIP ← ECX (the landing pad), RFLAGS ← R11, CS ← __USER32_CS and SS ← __USER_DS from MSR_STAR, CPL 3, compatibility mode.
	sysretl
SYM_INNER_LABEL(entry_SYSRETL_compat_end, SYM_L_GLOBAL)
	ANNOTATE_NOENDBR
/// Never reached: an INT3 after the SYSRETL stops straight-line speculation past it.
	int3
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
	UNWIND_HINT_ENTRY
/// ENDBR64: a legal indirect-branch target for IBT; a NOP where IBT is off.
	ENDBR
	/* Interrupts are off on entry. */
/// GS now points at this CPU's per-CPU area.
	swapgs

/// KPTI: to the kernel page tables. RSP already points at the entry stack, so RAX can be saved there for the scratch register.
	pushq	%rax
	SWITCH_TO_KERNEL_CR3 scratch_reg=%rax
	popq	%rax

/// Onto the task stack.
	movq	PER_CPU_VAR(pcpu_hot + X86_top_of_stack), %rsp

	/* Construct struct pt_regs on stack */
/// The hardware part of pt_regs, as an interrupt would have pushed it, but SYSENTER saved nothing: SS (__USER_DS, 0x2b), sp 0 (do_SYSENTER_32 fills it from EBP), the current RFLAGS (IF is clear now; do_SYSENTER_32 sets it in the copy), CS __USER32_CS and ip 0 (do_fast_syscall_32 sets the vDSO's landing pad).
	pushq	$__USER_DS		/* pt_regs->ss */
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

	pushq	%rax			/* pt_regs->orig_ax */
/// The rest of pt_regs, then every register cleared; ax starts as -ENOSYS.
	PUSH_AND_CLEAR_REGS rax=$-ENOSYS
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

	/*
	 * CPU bugs mitigations mechanisms can call other functions. They
	 * should be invoked after making sure TF is cleared because
	 * single-step is ignored only for instructions inside the
	 * entry_SYSENTER_compat function.
	 */
/// The mitigations of entry_SYSCALL_64, patched the same way on this CPU.
	IBRS_ENTER
	UNTRAIN_RET
	CLEAR_BRANCH_HISTORY

/// The only argument of do_SYSENTER_32(regs): the complete struct pt_regs.
	movq	%rsp, %rdi
/// The C part: regs->sp ← regs->bp (the user ESP the vDSO left in EBP), IF set in regs->flags, then do_fast_syscall_32: regs->ip ← the vDSO's landing pad, the caller's EBP from the user stack, the system call, the SYSRETL conditions, returned as a bool in AL.
	call	do_SYSENTER_32
/// SYSENTER shares entry_SYSCALL_compat's exit: sysret32_from_system_call tests the bool in AL there (false: IRET), then SYSRETL (SYSEXIT is never used on a 64-bit kernel).
	jmp	sysret32_from_system_call

/// Load RFLAGS with only the always-set bit 1 (X86_EFLAGS_FIXED): NT, AC and TF go; pt_regs keeps the user's copy.
.Lsysenter_fix_flags:
	pushq	$X86_EFLAGS_FIXED
	popfq
	jmp	.Lsysenter_flags_fixed
SYM_INNER_LABEL(__end_entry_SYSENTER_compat, SYM_L_GLOBAL)
SYM_CODE_END(entry_SYSENTER_compat)
