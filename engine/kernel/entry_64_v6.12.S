/* SPDX-License-Identifier: GPL-2.0 */
/*
 * arch/x86/entry/entry_64.S, Linux 6.12 (Debian 6.12.117): the 64-bit SYSCALL
 * entry and its two exits, at the kernel's macro level.  Rendered for
 * syscall-tui; lines starting with "///" are notes for the reader and are not
 * shown as source.  Macros are expanded by engine/kernel/macros.py as the
 * traced kernel patched them at boot (Debian's cloud kernel: IBT's ENDBR
 * present, no ESPFIX64, which its generic amd64 kernel adds; mitigations
 * the CPU does not need patched out), for the PTI / PCID / paging the scenario
 * gives.  Per-CPU variables are reached
 * %gs-relative through RIP-relative addressing, as 6.12 compiles them.
 */

/// SYSCALL has just loaded RIP from MSR_LSTAR, CS/SS from MSR_STAR, saved the user RIP in RCX and RFLAGS in R11, and masked RFLAGS with MSR_SYSCALL_MASK (nearly every flag: RFLAGS is 0x2 here). It did not touch RSP, GS or CR3.
SYM_CODE_START(entry_SYSCALL_64)
	UNWIND_HINT_ENTRY
/// ENDBR64 marks this as a legal indirect-branch target for Intel IBT (CET). Where IBT is off it executes as a NOP.
	ENDBR

/// SWAPGS exchanges MSR_GS_BASE with MSR_KERNEL_GS_BASE: GS now points at this CPU's per-CPU area.
	swapgs
	/* tss.sp2 is scratch space. */
/// Save the user RSP in TSS.sp2 (cpu_tss_rw at per-CPU offset 0x6000, mapped in the user page tables). The operand is %gs:sym(%rip): RIP + displacement wraps to the per-CPU offset, then GS base is added.
	movq	%rsp, PER_CPU_VAR(cpu_tss_rw + TSS_sp2)
/// KPTI: clear bits 12 and 11 of CR3 to switch to the kernel page tables (with PCID, bit 63 keeps the kernel PCID's TLB entries). RSP is the scratch register.
	SWITCH_TO_KERNEL_CR3 scratch_reg=%rsp
/// The top of the task stack lives in pcpu_hot, the per-CPU cache line of hot variables (per-CPU offset 0x35000, top_of_stack at +24 in the traced kernel).
	movq	PER_CPU_VAR(pcpu_hot + X86_top_of_stack), %rsp

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

/// PUSH_REGS then CLEAR_REGS: all the pushes first (ax gets -ENOSYS), then one xor per register, so no user value is left to steer speculation.
	PUSH_AND_CLEAR_REGS rax=$-ENOSYS

	/* IRQs are off. */
/// First argument of bool do_syscall_64(struct pt_regs *regs, int nr): RSP, the complete struct pt_regs.
	movq	%rsp, %rdi
	/* Sign extend the lower 32bit as syscall numbers are treated as int */
/// Second argument: the system-call number, as an int (EAX sign-extended).
	movslq	%eax, %rsi

	/* clobbers %rax, make sure it is after saving the syscall nr */
/// IBRS_ENTER writes MSR_IA32_SPEC_CTRL on CPUs that use IBRS in the kernel. The traced CPU does not: the ALTERNATIVE is a jmp over the wrmsr sequence.
	IBRS_ENTER
/// UNTRAIN_RET: the untrain call site is a 5-byte NOP; the next site (entry IBPB or call-depth reset, 15 bytes) is longer than a NOP can be, so 6.12 patched in a jmp over INT3 padding.
	UNTRAIN_RET
/// CLEAR_BRANCH_HISTORY (BHI): the ALTERNATIVE that calls clear_bhb_loop where X86_FEATURE_CLEAR_BHB_LOOP is set is left a NOP on this CPU.
	CLEAR_BRANCH_HISTORY

/// The C part. In 6.12 it also decides the exit: bool do_syscall_64() runs the system call and the exit work, then tests the SYSRET conditions in C and returns true for SYSRET, false for IRET.
	call	do_syscall_64		/* returns with IRQs disabled */

	/*
	 * Try to use SYSRET instead of IRET if we're returning to
	 * a completely clean 64-bit userspace context.  If we're not,
	 * go to the slow exit path.
	 * In the Xen PV case we must use iret anyway.
	 */

/// The one decision left in assembly: AL is do_syscall_64's bool. Zero (false) means IRET through swapgs_restore_regs_and_return_to_usermode. (A Xen PV guest always jumps there.)
	ALTERNATIVE "testb %al, %al; jz swapgs_restore_regs_and_return_to_usermode", "jmp swapgs_restore_regs_and_return_to_usermode", X86_FEATURE_XENPV

	/*
	 * We win! This label is here just for ease of understanding
	 * perf profiles. Nothing jumps here.
	 */
syscall_return_via_sysret:
/// IBRS_EXIT drops IBRS again on the way out; a jmp over it on the traced CPU.
	IBRS_EXIT
/// Restore the general registers from pt_regs, RCX and R11 (RIP and RFLAGS) included; RDI stays on the stack for now.
	POP_REGS pop_rdi=0

	/*
	 * Now all regs are restored except RSP and RDI.
	 * Save old stack pointer and switch to trampoline stack.
	 */
/// Remember where pt_regs is (RSP now points at pt_regs->di).
	movq	%rsp, %rdi
/// TSS.sp0 is the top of the per-CPU trampoline stack, which the user page tables still map.
	movq	PER_CPU_VAR(cpu_tss_rw + TSS_sp0), %rsp
	UNWIND_HINT_END_OF_STACK

/// Copy the user RSP (pt_regs->sp) to the trampoline stack ...
	pushq	RSP-RDI(%rdi)	/* RSP */
/// ... and the user RDI (pt_regs->di).
	pushq	(%rdi)		/* RDI */

	/*
	 * We are on the trampoline stack.  All regs except RDI are live.
	 * We can do future final exit work right here.
	 */
	STACKLEAK_ERASE_NOCLOBBER

/// KPTI: back to the user page tables (set bits 12 and 11). In 6.12 the PTI ALTERNATIVE comes before the push of RAX.
	SWITCH_TO_USER_CR3_STACK scratch_reg=%rdi

/// Restore the user RDI ...
	popq	%rdi
/// ... and the user RSP. From here until SYSRET the kernel runs on the user's stack.
	popq	%rsp
SYM_INNER_LABEL(entry_SYSRETQ_unsafe_stack, SYM_L_GLOBAL)
	ANNOTATE_NOENDBR
/// Put the user's GS base back.
	swapgs
/// CLEAR_CPU_BUFFERS (MDS, TSA): VERW flushes CPU buffers on affected CPUs. On QEMU's default CPU model the ALTERNATIVE is a 7-byte NOP; on a CPU with MDS (cpu_model = "skylake-client") it is the VERW itself (modelled: the flush is microarchitectural, Unicorn runs only its ZF test of x86_verw_sel).
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
/// The slow exit, shared with interrupts. IBRS_EXIT first (a jmp on this CPU).
	IBRS_EXIT
/// A Xen PV guest leaves here for its own exit; a 5-byte NOP on bare metal.
	ALTERNATIVE "", "jmp xenpv_restore_regs_and_return_to_usermode", X86_FEATURE_XENPV
/// With PTI the exit needs the trampoline stack: this ALTERNATIVE is a jmp to the PTI variant below. Without PTI it is a NOP and the short path right here runs.
	ALTERNATIVE "", "jmp .Lpti_restore_regs_and_return_to_usermode", X86_FEATURE_PTI

	STACKLEAK_ERASE
/// Without PTI: restore every register from pt_regs ...
	POP_REGS
/// ... and drop orig_ax: the IRET frame is on top of the task stack.
	add	$8, %rsp	/* orig_ax */
	UNWIND_HINT_IRET_REGS

.Lswapgs_and_iret:
/// Put the user's GS base back.
	swapgs
/// CLEAR_CPU_BUFFERS: a 7-byte NOP on QEMU's default CPU model; on a CPU with MDS (cpu_model = "skylake-client") the VERW.
	CLEAR_CPU_BUFFERS
	/* Assert that the IRET frame indicates user mode. */
/// The frame's CS must have RPL 3: this path only returns to user mode.
	testb	$3, 8(%rsp)
	jnz	.Lnative_iret
	ud2

.Lpti_restore_regs_and_return_to_usermode:
/// With PTI: restore every general register, RCX and R11 included; RDI stays on the stack.
	POP_REGS pop_rdi=0

	/*
	 * The stack is now user RDI, orig_ax, RIP, CS, EFLAGS, RSP, SS.
	 * Save old stack pointer and switch to trampoline stack.
	 */
/// Remember where the rest of pt_regs is.
	movq	%rsp, %rdi
/// Move to the trampoline stack, which the user page tables still map.
	movq	PER_CPU_VAR(cpu_tss_rw + TSS_sp0), %rsp
	UNWIND_HINT_END_OF_STACK

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

/// RAX is the second scratch register of the CR3 switch: save it ...
	push	%rax
/// KPTI: back to the user page tables, as on the SYSRET path.
	SWITCH_TO_USER_CR3 scratch_reg=%rdi scratch_reg2=%rax
/// ... and restore it.
	pop	%rax

	/* Restore RDI. */
/// Restore the user RDI; the IRET frame is now on top of the stack.
	popq	%rdi
/// Join the common tail: swapgs, then IRET.
	jmp	.Lswapgs_and_iret

SYM_INNER_LABEL(restore_regs_and_return_to_kernel, SYM_L_GLOBAL)
/// The return to kernel mode (not taken by a system call).
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
