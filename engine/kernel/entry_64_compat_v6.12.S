
/*
 * The int $0x80 entry of Linux 6.12.118 (Debian), at the kernel's macro level:
 * asm_int80_emulation is the IDT entry arch/x86/include/asm/idtentry.h declares
 * with DECLARE_IDTENTRY_RAW(IA32_SYSCALL_VECTOR, int80_emulation), i.e. the
 * idtentry and idtentry_body macros of arch/x86/entry/entry_64.S, shown here
 * expanded for it; error_entry's user-mode half and error_return follow from
 * entry_64.S, then int80_emulation from arch/x86/entry/entry_64_compat.S.
 * Listed after entry_64.S; the exit is its swapgs_restore_regs_and_return_to_usermode.
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
