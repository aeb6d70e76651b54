/* SPDX-License-Identifier: GPL-2.0 */
/*
 * arch/x86/entry/entry_64.S, Linux 6.1 (Debian 6.1.192): the 64-bit SYSCALL
 * entry and its two exits, at the kernel's macro level.  Rendered for
 * syscall-tui; lines starting with "///" are notes for the reader and are not
 * shown as source.  Macros are expanded by engine/kernel/macros.py as the
 * traced kernel patched them at boot (Debian's cloud kernel: no IBT, no
 * ESPFIX64, which its generic amd64 kernel adds; mitigations the CPU does
 * not need patched out), for the PTI / PCID / paging the scenario gives.
 */

/// SYSCALL has just loaded RIP from MSR_LSTAR, CS/SS from MSR_STAR, saved the user RIP in RCX and RFLAGS in R11, and masked RFLAGS with MSR_SYSCALL_MASK (in 6.1 nearly every flag, so RFLAGS is 0x2 here). It did not touch RSP, GS or CR3.
SYM_CODE_START(entry_SYSCALL_64)
	UNWIND_HINT_ENTRY
/// ENDBR marks an indirect-branch target for Intel IBT. Debian's 6.1 build has no CONFIG_X86_KERNEL_IBT, so it assembles to nothing.
	ENDBR

/// SWAPGS exchanges MSR_GS_BASE with MSR_KERNEL_GS_BASE: GS now points at this CPU's per-CPU area.
	swapgs
	/* tss.sp2 is scratch space. */
/// Save the user RSP in TSS.sp2, a per-CPU word the user page tables still map (cpu_tss_rw is at per-CPU offset 0x6000, as in the traced kernel).
	movq	%rsp, PER_CPU_VAR(cpu_tss_rw + TSS_sp2)
/// KPTI: clear bits 12 and 11 of CR3 to switch to the kernel page tables (with PCID, bit 63 keeps the kernel PCID's TLB entries). RSP is the scratch register.
	SWITCH_TO_KERNEL_CR3 scratch_reg=%rsp
/// In 6.1 the top of the task stack is a per-CPU variable of its own, cpu_current_top_of_stack (per-CPU offset 0x1fb50 in the traced kernel), no longer TSS.sp1 as in v5.8.
	movq	PER_CPU_VAR(cpu_current_top_of_stack), %rsp

SYM_INNER_LABEL(entry_SYSCALL_64_safe_stack, SYM_L_GLOBAL)
/// From this label on, RSP is the task stack: ip_within_syscall_gap() treats RIPs before it as still on the user's RSP, which the SEV-ES #VC handler (vc_switch_off_ist) must not trust.
	ANNOTATE_NOENDBR

	/* Construct struct pt_regs on stack */
/// The hardware-frame part of pt_regs, built by hand: SS ...
	pushq	$__USER_DS				/* pt_regs->ss */
/// ... the user RSP saved in TSS.sp2 ...
	pushq	PER_CPU_VAR(cpu_tss_rw + TSS_sp2)	/* pt_regs->sp */
/// ... the user RFLAGS that SYSCALL left in R11 ...
	pushq	%r11					/* pt_regs->flags */
/// ... __USER_CS ...
	pushq	$__USER_CS				/* pt_regs->cs */
/// ... and the return address SYSCALL left in RCX.
	pushq	%rcx					/* pt_regs->ip */
SYM_INNER_LABEL(entry_SYSCALL_64_after_hwframe, SYM_L_GLOBAL)
/// orig_ax keeps the system-call number for ptrace and syscall restart.
	pushq	%rax					/* pt_regs->orig_ax */

/// Unlike v5.8, PUSH_AND_CLEAR_REGS is PUSH_REGS then CLEAR_REGS: all the pushes first (ax gets -ENOSYS), then one xor per register, so no user value is left to steer speculation.
	PUSH_AND_CLEAR_REGS rax=$-ENOSYS

	/* IRQs are off. */
/// First argument of do_syscall_64(regs, nr): RSP, which points at the complete struct pt_regs. (v5.8 passed nr first.)
	movq	%rsp, %rdi
	/* Sign extend the lower 32bit as syscall numbers are treated as int */
/// Second argument: the system-call number, as an int (EAX sign-extended).
	movslq	%eax, %rsi

	/* clobbers %rax, make sure it is after saving the syscall nr */
/// IBRS_ENTER writes MSR_IA32_SPEC_CTRL on CPUs that use IBRS in the kernel. The traced CPU does not: the ALTERNATIVE is a jmp over the wrmsr sequence.
	IBRS_ENTER
/// UNTRAIN_RET (Retbleed/SRSO on AMD, entry IBPB): a one-byte nop that ends objtool's UNRET validation, then two call sites left as NOPs on this CPU (the calls are patched in only where a feature asks for them).
	UNTRAIN_RET
/// CLEAR_BRANCH_HISTORY (BHI): the ALTERNATIVE that calls clear_bhb_loop where X86_FEATURE_CLEAR_BHB_LOOP is set is left a NOP on this CPU.
	CLEAR_BRANCH_HISTORY

/// The C part (it returns nothing in 6.1): runs the system call and the exit work (signals, ptrace). What it leaves in pt_regs is what user space gets back.
	call	do_syscall_64		/* returns with IRQs disabled */

	/*
	 * Try to use SYSRET instead of IRET if we're returning to
	 * a completely clean 64-bit userspace context.  If we're not,
	 * go to the slow exit path.
	 * In the Xen PV case we must use iret anyway.
	 */

/// A Xen PV guest always takes IRET; on bare metal this ALTERNATIVE is a 5-byte NOP.
	ALTERNATIVE "", "jmp swapgs_restore_regs_and_return_to_usermode", X86_FEATURE_XENPV

/// SYSRET takes the return address from RCX. Load pt_regs->cx ...
	movq	RCX(%rsp), %rcx
/// ... and pt_regs->ip, to see whether they still agree.
	movq	RIP(%rsp), %r11

/// Check 1 (rcx_eq_rip): SYSRET jumps to RCX, so RCX must be the RIP user space should return to.
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
/// Sign-extend RCX from bit 47 (bit 56 with 5-level paging). A canonical address comes back unchanged.
	ALTERNATIVE "shl $(64 - 48), %rcx; sar $(64 - 48), %rcx", "shl $(64 - 57), %rcx; sar $(64 - 57), %rcx", X86_FEATURE_LA57

	/* If this changed %rcx, it was not canonical */
/// Check 2 (canonical_rip): if sign-extension changed RCX it was not canonical, and Intel's SYSRET would #GP in ring 0 on the user's stack (CVE-2012-0217). 6.1 still tests canonical-ness, so TASK_SIZE_MAX itself (0x7ffffffff000, the page above the last user page, which no task can map) passes.
	cmpq	%rcx, %r11
	jne	swapgs_restore_regs_and_return_to_usermode

/// Check 3 (cs_user): SYSRET can only return to __USER_CS.
	cmpq	$__USER_CS, CS(%rsp)		/* CS must match SYSRET */
	jne	swapgs_restore_regs_and_return_to_usermode

/// SYSRET takes RFLAGS from R11: load pt_regs->r11 ...
	movq	R11(%rsp), %r11
/// Check 4 (r11_eq_rflags): ... and it must equal pt_regs->flags.
	cmpq	%r11, EFLAGS(%rsp)		/* R11 == RFLAGS */
	jne	swapgs_restore_regs_and_return_to_usermode

	/*
	 * SYSRET cannot restore RF.  It can restore TF, but unlike IRET,
	 * restoring TF results in a trap from userspace immediately after
	 * SYSRET.
	 */
/// Check 5 (no_rf_tf): SYSRET cannot restore RF, and TF would trap right after it. Either flag means IRET.
	testq	$(X86_EFLAGS_RF|X86_EFLAGS_TF), %r11
	jnz	swapgs_restore_regs_and_return_to_usermode

	/* nothing to check for RSP */

/// Check 6 (ss_user): SYSRET loads a fixed SS, __USER_DS.
	cmpq	$__USER_DS, SS(%rsp)		/* SS must match SYSRET */
	jne	swapgs_restore_regs_and_return_to_usermode

	/*
	 * We win! This label is here just for ease of understanding
	 * perf profiles. Nothing jumps here.
	 */
syscall_return_via_sysret:
/// IBRS_EXIT drops IBRS again on the way out; a jmp over it on the traced CPU.
	IBRS_EXIT
/// Restore the general registers from pt_regs. 6.1 pops RCX and R11 from their slots too (they hold RIP and RFLAGS, so nothing changes); RDI stays on the stack for now.
	POP_REGS pop_rdi=0

	/*
	 * Now all regs are restored except RSP and RDI.
	 * Save old stack pointer and switch to trampoline stack.
	 */
/// Remember where pt_regs is (RSP now points at pt_regs->di).
	movq	%rsp, %rdi
/// TSS.sp0 is the top of the per-CPU trampoline stack, which the user page tables still map.
	movq	PER_CPU_VAR(cpu_tss_rw + TSS_sp0), %rsp
	UNWIND_HINT_EMPTY

/// Copy the user RSP (pt_regs->sp) to the trampoline stack ...
	pushq	RSP-RDI(%rdi)	/* RSP */
/// ... and the user RDI (pt_regs->di).
	pushq	(%rdi)		/* RDI */

	/*
	 * We are on the trampoline stack.  All regs except RDI are live.
	 * We can do future final exit work right here.
	 */
	STACKLEAK_ERASE_NOCLOBBER

/// KPTI: back to the user page tables (set bits 12 and 11); with PCID, user_pcid_flush_mask decides between a flush and bit 63.
	SWITCH_TO_USER_CR3_STACK scratch_reg=%rdi

/// Restore the user RDI ...
	popq	%rdi
/// ... and the user RSP. From here until SYSRET the kernel runs on the user's stack.
	popq	%rsp
SYM_INNER_LABEL(entry_SYSRETQ_unsafe_stack, SYM_L_GLOBAL)
	ANNOTATE_NOENDBR
/// Put the user's GS base back.
	swapgs
/// CLEAR_CPU_BUFFERS (MDS, TSA): VERW flushes CPU buffers on affected CPUs. On QEMU's default CPU model the ALTERNATIVE is a jmp over it; on a CPU with MDS (cpu_model = "skylake-client") the jmp is patched to a 2-byte NOP and VERW runs (modelled: the flush is microarchitectural, Unicorn runs only its ZF test of x86_verw_sel).
	CLEAR_CPU_BUFFERS
/// SYSRETQ: RIP = RCX, RFLAGS = R11, CS/SS from MSR_STAR, CPL 3.
	sysretq
SYM_INNER_LABEL(entry_SYSRETQ_end, SYM_L_GLOBAL)
	ANNOTATE_NOENDBR
	int3
SYM_CODE_END(entry_SYSCALL_64)

	/* ... further on in entry_64.S: */
SYM_CODE_START_LOCAL(common_interrupt_return)
SYM_INNER_LABEL(swapgs_restore_regs_and_return_to_usermode, SYM_L_GLOBAL)
/// The slow exit, shared with the interrupt return (common_interrupt_return). IBRS_EXIT first (a jmp on this CPU).
	IBRS_EXIT
/// A Xen PV guest leaves here for its own exit; a 5-byte NOP on bare metal.
	ALTERNATIVE "", "jmp xenpv_restore_regs_and_return_to_usermode", X86_FEATURE_XENPV

/// Restore every general register, RCX and R11 included, from pt_regs; RDI stays on the stack.
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

/// KPTI: back to the user page tables, as on the SYSRET path.
	SWITCH_TO_USER_CR3_STACK scratch_reg=%rdi

	/* Restore RDI. */
/// Restore the user RDI; the IRET frame is now on top of the stack.
	popq	%rdi
/// Put the user's GS base back.
	swapgs
/// CLEAR_CPU_BUFFERS: a jmp over the VERW on QEMU's default CPU model; on a CPU with MDS (cpu_model = "skylake-client") a 2-byte NOP, then VERW.
	CLEAR_CPU_BUFFERS
/// Off to the IRETQ.
	jmp	.Lnative_iret


SYM_INNER_LABEL(restore_regs_and_return_to_kernel, SYM_L_GLOBAL)
/// The return to kernel mode (not taken by a system call): the jmp above skips it.
	POP_REGS
	addq	$8, %rsp	/* skip regs->orig_ax */

.Lnative_iret:
	UNWIND_HINT_IRET_REGS
	/*
	 * Are we returning to a stack segment from the LDT?  Note: in
	 * 64-bit mode SS:RSP on the exception stack is always valid.
	 */
#ifdef CONFIG_X86_ESPFIX64
/// Only in Debian's generic amd64 kernel ([machine] flavour = "generic"); its cloud kernel, the default here, is built without CONFIG_X86_ESPFIX64. An SS selector with bit 2 set lives in the LDT; returning to a 16-bit stack needs the espfix64 path, which is not emulated here.
	testb	$4, (SS-RIP)(%rsp)
	jnz	native_irq_return_ldt
#endif

SYM_INNER_LABEL(native_irq_return_iret, SYM_L_GLOBAL)
	ANNOTATE_NOENDBR	/* exc_double_fault */
	/*
	 * This may fault.  Non-paranoid faults on return to userspace are
	 * handled by fixup_bad_iret.  These include #SS, #GP, and #NP.
	 * Double-faults due to espfix64 are handled in exc_double_fault.
	 * Other faults here are fatal.
	 */
/// IRETQ pops RIP, CS, RFLAGS, RSP and SS, checks the selectors against the GDT, and drops to CPL 3. Unlike SYSRET it loads CS and SS from the frame and restores RF, but it cannot return to a non-canonical RIP: that raises #GP(0) at CPL 0 on the IRETQ itself (modelled here), which error_entry sends to fixup_bad_iret.
	iretq

#ifdef CONFIG_X86_ESPFIX64
native_irq_return_ldt:
	/* espfix64: builds the frame on a per-CPU espfix stack (not emulated) */
	ud2
#endif
SYM_CODE_END(common_interrupt_return)
