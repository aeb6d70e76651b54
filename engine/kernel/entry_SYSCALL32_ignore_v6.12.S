
/*
 * arch/x86/entry/entry_64.S, Linux 6.12.118 (Debian): where MSR_CSTAR points when the
 * kernel was booted with ia32_emulation=off (idt_syscall_init()).  Listed after the rest.
 */

/*
 * This handles SYSCALL from 32-bit code.  There is no way to program
 * MSRs to fully disable 32-bit SYSCALL.
 */
/// SYSCALL from compatibility mode on AMD loaded RIP from MSR_CSTAR, which ia32_emulation=off points here: CPL 0, but still on the user's stack, with the user's GS base and page tables.
SYM_CODE_START(entry_SYSCALL32_ignore)
	UNWIND_HINT_END_OF_STACK
	ENDBR
/// The answer to every 32-bit system call: -ENOSYS in EAX.
	mov	$-ENOSYS, %eax
	CLEAR_CPU_BUFFERS
/// SYSRETL: back to compatibility mode at once, EIP ← ECX, RFLAGS ← R11, CS ← __USER32_CS (STAR[63:48]), SS ← __USER_DS.
	sysretl
SYM_CODE_END(entry_SYSCALL32_ignore)
