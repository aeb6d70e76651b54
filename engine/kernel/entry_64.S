/* SPDX-License-Identifier: GPL-2.0 */
/*
 * arch/x86/entry/entry_64.S, Linux v5.8.13: the 64-bit SYSCALL entry and
 * its two exits, at the kernel's macro level.  Rendered for syscall-tui;
 * lines starting with "///" are notes for the reader and are not shown
 * as source.  Macros are expanded by engine/kernel/macros.py for the
 * machine the scenario describes (PTI, PCID, 4- or 5-level paging).
 */

/// SYSCALL has just loaded RIP from MSR_LSTAR, CS/SS from MSR_STAR, saved the user RIP in RCX and RFLAGS in R11, and masked RFLAGS with MSR_SYSCALL_MASK. It did not touch RSP, GS or CR3: we are at CPL 0 on the user's stack, with the user's GS base and the user's page tables.
SYM_CODE_START(entry_SYSCALL_64)
	UNWIND_HINT_EMPTY

/// SWAPGS exchanges MSR_GS_BASE with MSR_KERNEL_GS_BASE. The user's GS base goes aside; GS now points at this CPU's per-CPU area, so %gs:offset reaches per-CPU variables.
	swapgs
	/* tss.sp2 is scratch space. */
/// The user RSP has to be saved before RSP can be reused, and nothing else is free yet. TSS.sp2 (the ring-2 stack slot Linux never uses) is a per-CPU word that is mapped even under the user page tables.
	movq	%rsp, PER_CPU_VAR(cpu_tss_rw + TSS_sp2)
/// KPTI: the user page tables map almost nothing of the kernel. Clear bit 12 (user half of the PGD pair) and bit 11 (user PCID) of CR3 to switch to the kernel page tables; with PCID, bit 63 asks the CPU to keep the kernel PCID's TLB entries. RSP is the scratch register because its user value is safe in TSS.sp2.
	SWITCH_TO_KERNEL_CR3 scratch_reg=%rsp
/// cpu_current_top_of_stack (TSS.sp1 in v5.8) holds the top of this task's kernel stack. From here on RSP points into the task stack, which only the kernel page tables map.
	movq	PER_CPU_VAR(cpu_current_top_of_stack), %rsp

	/* Construct struct pt_regs on stack */
/// SYSCALL saved no frame, so the kernel builds by hand what an interrupt would have pushed: SS, RSP, RFLAGS, CS, RIP. This is pt_regs->ss.
	pushq	$__USER_DS				/* pt_regs->ss */
/// The user RSP saved in TSS.sp2 a moment ago becomes pt_regs->sp.
	pushq	PER_CPU_VAR(cpu_tss_rw + TSS_sp2)	/* pt_regs->sp */
/// R11 holds the user RFLAGS that SYSCALL saved.
	pushq	%r11					/* pt_regs->flags */
/// This entry, through MSR_LSTAR, is reached only by a SYSCALL from 64-bit user code (from 32-bit code AMD enters through MSR_CSTAR, Intel raises #UD), so CS is known: __USER_CS.
	pushq	$__USER_CS				/* pt_regs->cs */
/// RCX holds the return address SYSCALL saved: the instruction after the syscall.
	pushq	%rcx					/* pt_regs->ip */
SYM_INNER_LABEL(entry_SYSCALL_64_after_hwframe, SYM_L_GLOBAL)
/// orig_ax keeps the system-call number for ptrace and syscall restart; pt_regs->ax will hold the return value.
	pushq	%rax					/* pt_regs->orig_ax */

/// Push the remaining general registers into pt_regs (pt_regs->ax gets -ENOSYS, the answer if nothing else is done), zeroing RDX, RCX, R8-R15, RBX and RBP right after each is saved so that user values cannot steer speculation in the kernel. RDI, RSI and RAX are not cleared: RAX still holds the call number, and the next two instructions overwrite RDI and RSI.
	PUSH_AND_CLEAR_REGS rax=$-ENOSYS

	/* IRQs are off. */
/// First argument of do_syscall_64(nr, regs): the system-call number.
	movq	%rax, %rdi
/// Second argument: RSP, which now points at the complete struct pt_regs.
	movq	%rsp, %rsi
/// The C part: runs the system call and the exit work (signals, ptrace). It reads and writes the saved registers in pt_regs; what it leaves there is what user space gets back.
	call	do_syscall_64		/* returns with IRQs disabled */

	/*
	 * Try to use SYSRET instead of IRET if we're returning to
	 * a completely clean 64-bit userspace context.  If we're not,
	 * go to the slow exit path.
	 */
/// SYSRET takes the return address from RCX. Load pt_regs->cx ...
	movq	RCX(%rsp), %rcx
/// ... and pt_regs->ip, to see whether they still agree.
	movq	RIP(%rsp), %r11

/// Check 1 (rcx_eq_rip): SYSRET jumps to RCX, so RCX must be the RIP user space should return to. sigreturn or ptrace may have changed one of them.
	cmpq	%rcx, %r11	/* SYSRET requires RCX == RIP */
	jne	swapgs_restore_regs_and_return_to_usermode

	/*
	 * On Intel CPUs, SYSRET with non-canonical RCX/RIP will #GP
	 * in kernel space.  This essentially lets the user take over
	 * the kernel, since userspace controls RSP.
	 *
	 * If width of "canonical tail" ever becomes variable, this will need
	 * to be updated to remain correct on both old and new CPUs.
	 *
	 * Change top bits to match most significant bit (47th or 56th bit
	 * depending on paging mode) in the address.
	 */
/// Sign-extend RCX from bit 47 (bit 56 with 5-level paging): shift the top bits out and arithmetic-shift back. A canonical address comes back unchanged.
	ALTERNATIVE "shl $(64 - 48), %rcx; sar $(64 - 48), %rcx", "shl $(64 - 57), %rcx; sar $(64 - 57), %rcx", X86_FEATURE_LA57

	/* If this changed %rcx, it was not canonical */
/// Check 2 (canonical_rip): if sign-extension changed RCX, it was not canonical. Intel's SYSRET would then raise #GP in ring 0 with the user's RSP and GS already loaded (CVE-2012-0217), so the kernel must not try.
	cmpq	%rcx, %r11
	jne	swapgs_restore_regs_and_return_to_usermode

/// Check 3 (cs_user): SYSRET can only return to the flat 64-bit user code segment, __USER_CS.
	cmpq	$__USER_CS, CS(%rsp)		/* CS must match SYSRET */
	jne	swapgs_restore_regs_and_return_to_usermode

/// SYSRET takes RFLAGS from R11: load pt_regs->r11 ...
	movq	R11(%rsp), %r11
/// Check 4 (r11_eq_rflags): ... and it must equal pt_regs->flags.
	cmpq	%r11, EFLAGS(%rsp)		/* R11 == RFLAGS */
	jne	swapgs_restore_regs_and_return_to_usermode

	/*
	 * SYSCALL clears RF when it saves RFLAGS in R11 and SYSRET cannot
	 * restore RF properly. If the slowpath sets it for whatever reason, we
	 * need to restore it correctly.
	 *
	 * SYSRET can restore TF, but unlike IRET, restoring TF results in a
	 * trap from userspace immediately after SYSRET.  This would cause an
	 * infinite loop whenever #DB happens with register state that satisfies
	 * the opportunistic SYSRET conditions.
	 */
/// Check 5 (no_rf_tf): SYSRET cannot restore RF: it always clears it (and VM) in what it loads from R11. It can load TF, but then the CPU traps from user space immediately after the SYSRET, which loops forever if a #DB left that state. Either flag means IRET.
	testq	$(X86_EFLAGS_RF|X86_EFLAGS_TF), %r11
	jnz	swapgs_restore_regs_and_return_to_usermode

	/* nothing to check for RSP */

/// Check 6 (ss_user): SYSRET loads a fixed SS, __USER_DS; any other SS needs IRET.
	cmpq	$__USER_DS, SS(%rsp)		/* SS must match SYSRET */
	jne	swapgs_restore_regs_and_return_to_usermode

	/*
	 * We win! This label is here just for ease of understanding
	 * perf profiles. Nothing jumps here.
	 */
syscall_return_via_sysret:
	/* rcx and r11 are already restored (see code above) */
/// Restore the general registers from pt_regs. RCX and R11 already hold RIP and RFLAGS, so their slots are popped into RSI and discarded; RDI stays on the stack for now.
	POP_REGS pop_rdi=0 skip_r11rcx=1

	/*
	 * Now all regs are restored except RSP and RDI.
	 * Save old stack pointer and switch to trampoline stack.
	 */
/// Remember where pt_regs is (RSP now points at pt_regs->di).
	movq	%rsp, %rdi
/// TSS.sp0 is the top of the per-CPU trampoline (entry) stack, which stays mapped under the user page tables. The task stack is about to disappear.
	movq	PER_CPU_VAR(cpu_tss_rw + TSS_sp0), %rsp
	UNWIND_HINT_EMPTY

/// Copy the user RSP (pt_regs->sp) to the trampoline stack ...
	pushq	RSP-RDI(%rdi)	/* RSP */
/// ... and the user RDI (pt_regs->di).
	pushq	(%rdi)

	/*
	 * We are on the trampoline stack.  All regs except RDI are live.
	 * We can do future final exit work right here.
	 */
	STACKLEAK_ERASE_NOCLOBBER

/// KPTI: back to the user page tables (set bits 12 and 11). With PCID the per-CPU user_pcid_flush_mask decides whether the user PCID must be flushed or may keep its TLB entries (bit 63).
	SWITCH_TO_USER_CR3_STACK scratch_reg=%rdi

/// Restore the user RDI from the trampoline stack ...
	popq	%rdi
/// ... and the user RSP. From here until SYSRET the kernel runs on the user's stack.
	popq	%rsp
/// swapgs puts the user's GS base back, then SYSRETQ: RIP = RCX, RFLAGS = R11 with RF and VM cleared, CS/SS from MSR_STAR, CPL 3.
	USERGS_SYSRET64
SYM_CODE_END(entry_SYSCALL_64)

	/* SYM_CODE_START_LOCAL(common_interrupt_return), whose first label this is: */
SYM_INNER_LABEL(swapgs_restore_regs_and_return_to_usermode, SYM_L_GLOBAL)
/// The slow exit, taken when any SYSRET check failed: restore every general register, RCX and R11 included, from pt_regs. In v5.8 this is the first label of common_interrupt_return, the exit interrupts and exceptions share; the SYSCALL path only jumps here.
	POP_REGS pop_rdi=0

	/*
	 * The stack is now user RDI, orig_ax, RIP, CS, EFLAGS, RSP, SS.
	 * Save old stack pointer and switch to trampoline stack.
	 */
/// Remember where the rest of pt_regs is.
	movq	%rsp, %rdi
/// Move to the trampoline stack, which the user page tables still map.
	movq	PER_CPU_VAR(cpu_tss_rw + TSS_sp0), %rsp
	UNWIND_HINT_EMPTY

	/* Copy the IRET frame to the trampoline stack. */
/// Build the IRET frame on the trampoline stack: SS ...
	pushq	6*8(%rdi)	/* SS */
/// ... RSP ...
	pushq	5*8(%rdi)	/* RSP */
/// ... RFLAGS (IRET restores RF, which SYSRET cannot, and a TF that traps only after the first user instruction) ...
	pushq	4*8(%rdi)	/* EFLAGS */
/// ... CS ...
	pushq	3*8(%rdi)	/* CS */
/// ... and RIP.
	pushq	2*8(%rdi)	/* RIP */

	/* Push user RDI on the trampoline stack. */
/// The user RDI goes on top; RDI is still needed as scratch.
	pushq	(%rdi)

	/*
	 * We are on the trampoline stack.  All regs except RDI are live.
	 * We can do future final exit work right here.
	 */
	STACKLEAK_ERASE_NOCLOBBER

/// KPTI: switch CR3 back to the user page tables, as on the SYSRET path.
	SWITCH_TO_USER_CR3_STACK scratch_reg=%rdi

	/* Restore RDI. */
/// Restore the user RDI; the IRET frame is now on top of the stack.
	popq	%rdi
/// Put the user's GS base back.
	SWAPGS
/// Off to native_iret.
	INTERRUPT_RETURN

SYM_INNER_LABEL_ALIGN(native_iret, SYM_L_GLOBAL)
	UNWIND_HINT_IRET_REGS
	/*
	 * Are we returning to a stack segment from the LDT?  Note: in
	 * 64-bit mode SS:RSP on the exception stack is always valid.
	 */
/// An SS selector with bit 2 set lives in the LDT; returning to a 16-bit stack needs the espfix64 path, which is not emulated here.
	testb	$4, (SS-RIP)(%rsp)
	jnz	native_irq_return_ldt

SYM_INNER_LABEL(native_irq_return_iret, SYM_L_GLOBAL)
	/*
	 * This may fault.  Non-paranoid faults on return to userspace are
	 * handled by fixup_bad_iret.  These include #SS, #GP, and #NP.
	 */
/// IRETQ pops RIP, CS, RFLAGS, RSP and SS, checks the selectors against the GDT, and drops to CPL 3. Unlike SYSRET it loads CS and SS from the frame and restores RF, but it cannot return to a non-canonical RIP: that raises #GP(0) at CPL 0 on the IRETQ itself (modelled here), which v5.8 sends to fixup_bad_iret.
	iretq

native_irq_return_ldt:
	/* espfix64: builds the frame on a per-CPU espfix stack (not emulated) */
	ud2
