/* SPDX-License-Identifier: GPL-2.0 */
/*
 * arch/x86/entry/entry_64_fred.S, Linux 6.12 (Debian 6.12.118 source): the
 * FRED entry point for events from ring 3, at the kernel's macro level.
 * Rendered for syscall-tui; lines starting with "///" are notes for the reader
 * and are not shown as source.  This is a 6.12 built with CONFIG_X86_FRED=y and
 * booted with fred=on (Debian's 6.12 leaves CONFIG_X86_FRED off), on a CPU with
 * FRED: SYSCALL is a FRED event, and ERETU is the only way back to ring 3.
 *
 *	.macro FRED_ENTER
 *		UNWIND_HINT_END_OF_STACK
 *		ANNOTATE_NOENDBR
 *		PUSH_AND_CLEAR_REGS
 *		ENCODE_FRAME_POINTER	(empty: Debian builds with the ORC unwinder)
 *		movq	%rsp, %rdi	(%rdi -> pt_regs)
 *	.endm
 *
 *	.macro FRED_EXIT
 *		UNWIND_HINT_REGS
 *		POP_REGS
 *	.endm
 */

	/*
	 * The new RIP value that FRED event delivery establishes is
	 * IA32_FRED_CONFIG & ~FFFH for events that occur in ring 3.
	 * Thus the FRED ring 3 entry point must be 4K page aligned.
	 */
/// The CPU delivered the SYSCALL as a FRED event: it is at CPL 0 on the FRED_RSP0 stack (aligned down to 64 bytes), the 64-byte FRED frame is pushed (error code, RIP, CS word, RFLAGS, RSP, SS word with the event type and vector, event data), the GS base is already the kernel's (the hardware swapped it), RFLAGS is 0x2. RCX and R11 still hold the user's values. No swapgs, no CR3 switch, no stack switch follows.
SYM_CODE_START_NOALIGN(asm_fred_entrypoint_user)
/// FRED_ENTER: PUSH_AND_CLEAR_REGS builds the rest of pt_regs under the frame (the frame's error code is pt_regs->orig_ax), then RDI = RSP, the pt_regs pointer.
	FRED_ENTER
/// The C part: fred_entry_from_user() dispatches on the event type in the frame's SS word; type 7 ("other"), vector 1 (SYSCALL), in 64-bit mode, goes to fred_other() and do_syscall_64(), whose bool (SYSRET or not) is ignored.
	call	fred_entry_from_user
SYM_INNER_LABEL(asm_fred_exit_user, SYM_L_GLOBAL)
/// FRED_EXIT: POP_REGS restores every general register from pt_regs, RCX and R11 included. RSP then points at the frame's error code.
	FRED_EXIT
/// ERETU (f3 0f 01 ca): skips the error code, pops RIP, CS, RFLAGS, RSP and SS from the frame (a bad one is a #GP(0) here), swaps the GS base back and returns to ring 3. The kernel checks nothing before it: there is no SYSRET decision. With TF set, the SYSCALL's bit 17 in the SS word makes ERETU pend a single-step #DB before the next user instruction.
	ERETU

	/* 1: ERETU above; _ASM_EXTABLE_TYPE(1b, asm_fred_entrypoint_user, EX_TYPE_ERETU) */
SYM_CODE_END(asm_fred_entrypoint_user)
