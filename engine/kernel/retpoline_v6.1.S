
/* arch/x86/lib/retpoline.S, Linux 6.1 (Debian 6.1.192): what UNTRAIN_RET calls on a CPU with SRSO */

/*
 * SRSO untraining sequence for Zen1/2, similar to retbleed_untrain_ret()
 * above. On kernel entry, srso_untrain_ret() is executed which is a
 *
 * movabs $0xccccc30824648d48,%rax
 *
 * and when the return thunk executes the inner label srso_safe_ret()
 * later, it is a stack manipulation and a RET which is mispredicted and
 * thus a "safe" one to use.
 */
SYM_START(srso_untrain_ret, SYM_L_LOCAL, SYM_A_NONE)
	ANNOTATE_NOENDBR
/// The first two bytes of a movabs (48 b8). With the eight bytes of the four instructions below as its immediate, the CPU runs them as one instruction, movabs $0xccccc30824648d48, %rax, which hides srso_safe_ret inside it. (The kernel aligns srso_safe_ret to 64 bytes with INT3 padding before this; the padding is left out here, and this file follows the entry code in the entry text, where the kernel links it into .text.)
	.byte 0x48, 0xb8

/*
 * This forces the function return instruction to speculate into a trap
 * (UD2 in srso_return_thunk() below).  This RET will then mispredict
 * and execution will continue at the return site read from the top of
 * the stack.
 */
SYM_INNER_LABEL(srso_safe_ret, SYM_L_GLOBAL)
/// srso_safe_ret, reached by the call below: drop the return address that call pushed; the RET then returns to UNTRAIN_RET's call site. The call trained this RET's prediction to the UD2 after it, so a speculative return cannot be steered elsewhere (SRSO, CVE-2023-20569).
	lea 8(%_ASM_SP), %_ASM_SP
	ret
	int3
	int3
	/* end of movabs */
/// LFENCE: nothing after it starts, not even speculatively, until the movabs has completed.
	lfence
	call srso_safe_ret
	ud2
SYM_CODE_END(srso_safe_ret)
SYM_FUNC_END(srso_untrain_ret)

SYM_CODE_START(entry_untrain_ret)
/// JMP_SRSO_UNTRAIN_RET: the CPU has X86_FEATURE_SRSO (AMD Zen 1 or 2, the safe-RET mitigation), so this ALTERNATIVE is the jmp to srso_untrain_ret (elsewhere the jmp to retbleed_untrain_ret, not shown).
	ALTERNATIVE "jmp retbleed_untrain_ret", "jmp srso_untrain_ret", X86_FEATURE_SRSO
SYM_CODE_END(entry_untrain_ret)
