"""int $0x80: the IDT delivery the engine models (Intel SDM vol. 3A 6.12, 6.14), and
v5.8.13's entry_INT80_compat with do_int80_syscall_32 on the emulated machine."""

from __future__ import annotations

import re
import struct

import pytest

from engine import ScenarioError, load_scenario, parse_scenario, run_scenario
from engine.constants import (
    EFAULT,
    IF,
    KERNEL_CS,
    MASK64,
    NT,
    RF,
    TF,
    USER32_CS,
    USER_CS,
    USER_DS,
)
from engine.machine import idt
from engine.machine.modelled import (
    GATE_TRAP,
    IdtGate,
    InterruptDelivery,
    InterruptFault,
    software_interrupt_delivery,
)
from engine.run.syscalls import MASK32
from engine.trace import Door, EventKind, ExitPath
from engine.views.json import trace_json
from tests.conftest import SCENARIOS

TOP = 0xFFFFFE0000003000
HANDLER = 0xFFFFFFFF81A001DD


def deliver(
    gate: bytes | None, limit: int = idt.IDT_LIMIT, cpl: int = 3, rflags: int = 0x346
) -> InterruptDelivery | InterruptFault:
    return software_interrupt_delivery(
        0x80, gate, limit, cpl, rflags, 0x7FFC0000EFF8, USER_CS, USER_DS, 0x401007,
        lambda ist, dpl: TOP + 0x100 * ist + 8 * dpl,
    )  # fmt: skip


def test_the_gate_linux_builds_decodes_as_idt_c_says() -> None:
    g = IdtGate.decode(idt.gate(HANDLER, 3, 0))
    assert (g.offset, g.selector, g.ist, g.gate_type, g.dpl, g.present) == (
        HANDLER, KERNEL_CS, 0, 0xE, 3, True,
    )  # fmt: skip


def test_delivery_from_cpl3_switches_to_tss_sp0_and_pushes_the_frame() -> None:
    d = deliver(idt.gate(HANDLER, 3, 0))
    assert isinstance(d, InterruptDelivery)
    assert d.rsp == TOP - 40 and d.cpl == 0 and d.ss == 0 and d.cs == KERNEL_CS
    assert d.frame == (USER_DS, 0x7FFC0000EFF8, 0x346, USER_CS, 0x401007)
    # an interrupt gate clears IF as well as TF, NT, RF and VM
    assert d.rflags == 0x346 & ~(IF | TF) | 2
    assert d.gate.offset == HANDLER


def test_rsp_is_aligned_down_to_16_and_the_ist_slot_wins() -> None:
    odd = software_interrupt_delivery(
        0x80, idt.gate(HANDLER, 3, 2), idt.IDT_LIMIT, 3, 2, 0x1000, USER_CS, USER_DS, 0x2,
        lambda ist, dpl: TOP + 0x108 if ist == 2 else None,
    )  # fmt: skip
    assert isinstance(odd, InterruptDelivery) and odd.rsp == TOP + 0x100 - 40


def test_a_trap_gate_leaves_if_set() -> None:
    raw = bytearray(idt.gate(HANDLER, 3, 0))
    raw[5] = (raw[5] & 0xF0) | GATE_TRAP
    d = deliver(bytes(raw), rflags=0x200 | NT | RF | 2)
    assert isinstance(d, InterruptDelivery) and d.rflags == 0x202


@pytest.mark.parametrize(
    ("gate", "limit", "vector", "why"),
    [
        (idt.gate(HANDLER, 0, 0), idt.IDT_LIMIT, 13, "DPL is below the CPL"),
        (idt.gate(HANDLER, 3, 0)[:5] + b"\x6e" + idt.gate(HANDLER, 3, 0)[6:], idt.IDT_LIMIT,
         11, "not present"),
        (idt.gate(HANDLER, 3, 0), 0x80 * 16 + 14, 13, "past the IDT limit"),
        (b"\0" * 16, idt.IDT_LIMIT, 13, "not an interrupt or trap gate"),
    ],
)  # fmt: skip
def test_a_gate_int_n_may_not_use_faults_with_the_gates_error_code(
    gate: bytes | None, limit: int, vector: int, why: str
) -> None:
    f = deliver(gate, limit)
    assert isinstance(f, InterruptFault)
    assert (f.vector, f.error_code) == (vector, 0x80 * 8 + 2) and why in f.why


# -- on the machine ------------------------------------------------------------------------
def test_getpid_through_int80_returns_the_pid_in_eax_through_iret() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "int80-getpid.toml"))
    assert t.door is Door.INT80 and t.exit is ExitPath.IRET and t.fault is None
    assert t.final is not None and t.final_cpl == 3
    assert t.final.rax == 1234 and (t.final.cs, t.final.ss) == (USER_CS, USER_DS)
    assert t.pt_regs_at_call["orig_ax"] == 20 and t.pt_regs_after_call["ax"] == 1234
    assert t.stopped == "returned to user space at 0x401007"
    # the C call is do_int80_syscall_32, at its own stub, never do_syscall_64
    (c,) = [s for s in t.steps if s.modelled and s.label.startswith("do_")]
    assert c.label == "do_int80_syscall_32" and c.rip == t.symbols["do_int80_syscall_32"]
    assert c.source == "do_int80_syscall_32(regs)   /* C code: modelled */"
    assert c.source_line is not None
    assert t.source[c.source_line - 1].text.strip() == "call    do_int80_syscall_32"
    assert trace_json(t)["door"] == "int80"


def test_the_hardware_frame_is_named_until_the_exit_rebuilds_it() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "int80-getpid.toml"))
    entered = next(s for s in t.steps if s.cpl == 0)
    pushed = t.steps[entered.index + 4]  # ASM_CLAC, SWAPGS, movl, pushq %rax, pushq %rdi
    assert pushed.text == "pushq %rdi"
    assert [s.slot for s in pushed.entry_stack] == [
        "ss",
        "sp",
        "flags",
        "cs",
        "ip",
        "orig_ax",
        "di",
    ]
    assert [s.value for s in pushed.entry_stack][:5] == [
        USER_DS,
        0x7FFC0000F000,
        0x246,
        USER_CS,
        0x401007,
    ]
    iret = next(s for s in t.steps if s.text == "iretq")
    assert [s.slot for s in iret.entry_stack][:6] == ["ss", "sp", "flags", "cs", "ip", "di"]


def test_64_bit_code_gets_the_32_bit_abi_a_stack_pointer_loses_its_upper_half() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "int80-stack-pointer-truncated.toml"))
    assert t.final is not None and t.final.rax == -EFAULT & MASK64
    assert t.output == b""
    assert any("upper halves dropped from cx 0x7ffc0000eff8" in line for line in t.handler)
    assert any("write(1, 0xeff8, 6) = -14" in line for line in t.handler)


def test_int80_keeps_r8_to_r15_rcx_and_r11() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "int80-keeps-r8-r15.toml"))
    f = t.final
    assert f is not None and t.exit is ExitPath.IRET
    assert (f.r8, f.r9, f.r10, f.r11, f.r15, f.rcx) == (
        0x8888,
        0x9999,
        0x1010,
        0x1111,
        0x1515,
        0xCCCC,
    )


def test_the_upper_half_of_eax_is_dropped_and_the_i386_table_is_used() -> None:
    # 39 is getpid for SYSCALL but mkdir in the i386 table; the upper half of RAX is
    # zero-extended away by entry_INT80_compat's movl %eax, %eax
    t = run_scenario(
        parse_scenario('name = "x"\n[user]\ncode = "movabs $0x100000027, %rax; int $0x80"')
    )
    assert t.pt_regs_at_call["orig_ax"] == 39
    assert t.final is not None and t.final.rax == -38 & MASK64  # -ENOSYS: not modelled
    assert any("mkdir (32-bit nr 39) is not modelled" in line for line in t.handler)


def test_exit_through_int80_never_returns() -> None:
    t = run_scenario(
        parse_scenario('name = "x"\n[user]\ncode = "mov $1, %eax; mov $7, %ebx; int $0x80"')
    )
    assert t.exit is None and t.stopped == "the task called exit(7); do_exit() never returns"


def test_the_idt_gate_points_at_entry_int80_compat_on_v58() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "int80-getpid.toml"))
    page = idt.idt_page("v5.8.13", t.symbols)
    lo, hi = struct.unpack_from("<QQ", page, 16 * 0x80)
    assert IdtGate.decode(page[16 * 0x80 : 16 * 0x81]).offset == t.symbols["entry_INT80_compat"]
    assert (lo >> 45) & 3 == 3 and hi == 0xFFFFFFFF


# -- 6.1.192: asm_int80_emulation, error_entry, sync_regs, do_int80_emulation ---------------
def test_v61_int80_enters_through_the_idtentry_and_returns_the_pid() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "v6.1-int80-getpid.toml"))
    assert t.door is Door.INT80 and t.exit is ExitPath.IRET and t.fault is None
    assert t.final is not None and t.final.rax == 1234 and t.final_cpl == 3
    assert t.c_entry == "do_int80_emulation"
    # the IDT entry pushed -1 as orig_ax and left the number in ax; the C side swaps them
    assert (t.pt_regs_at_call["orig_ax"], t.pt_regs_at_call["ax"]) == (MASK64, 20)
    assert (t.pt_regs_after_call["orig_ax"], t.pt_regs_after_call["ax"]) == (20, 1234)
    c_side = (EventKind.HELPER, EventKind.HANDLER)
    labels = [s.label for s in t.steps if any(e.kind in c_side for e in s.events)]
    assert labels == ["sync_regs", "do_int80_emulation"]
    c = next(s for s in t.steps if s.label == "do_int80_emulation")
    assert c.source == "do_int80_emulation(regs)   /* C code: modelled */"
    assert c.source_line is not None
    assert t.source[c.source_line - 1].text.strip() == "jmp do_int80_emulation"


def test_v61_sync_regs_copies_the_trampoline_pt_regs_to_the_task_stack() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "v6.1-int80-getpid.toml"))
    sync = next(s for s in t.steps if s.label == "sync_regs")
    named = [s.slot for s in sync.entry_stack]
    assert named[:21] == [
        "ss", "sp", "flags", "cs", "ip", "orig_ax", "di", "si", "dx", "cx", "ax",
        "r8", "r9", "r10", "r11", "bx", "bp", "r12", "r13", "r14", "r15",
    ]  # fmt: skip
    assert named[21:] == ["return address", "return address"]
    on_entry = {s.slot: s.value for s in sync.entry_stack[:21]}
    on_task = {s.slot: s.value for s in sync.stack}
    assert on_task == on_entry  # the whole of pt_regs, word for word
    assert sync.regs.rax == sync.stack[-1].address  # sync_regs returns the copy's address
    assert on_task["orig_ax"] == MASK64 and on_task["ax"] == 20 and on_task["cs"] == USER_CS


def test_v61_a_stack_pointer_loses_its_upper_half_as_on_v58() -> None:
    code = (
        "movabs $0x0a6f6c6c6568, %rax; push %rax; mov %rsp, %rcx; mov $6, %edx; "
        "mov $1, %ebx; mov $4, %eax; int $0x80"
    )
    t = run_scenario(
        parse_scenario(f'name = "x"\n[machine]\nkernel = "v6.1"\n[user]\ncode = "{code}"')
    )
    assert t.final is not None and t.final.rax == -EFAULT & MASK64 and t.exit is ExitPath.IRET


# -- 6.12: ENDBR64, UNTRAIN_RET_FROM_CALL, the tail call of sync_regs ----------------------
def test_v612_int80_enters_at_endbr64_and_sync_regs_returns_to_the_idt_entry() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "v6.12-int80-getpid.toml"))
    assert t.exit is ExitPath.IRET and t.final is not None and t.final.rax == 1234
    entered = next(s for s in t.steps if s.cpl == 0)
    assert entered.text == "endbr64" and entered.label == "asm_int80_emulation"
    sync = next(s for s in t.steps if s.label == "sync_regs")
    # error_entry jumped to sync_regs: one return address below pt_regs, error_entry's own
    assert [s.slot for s in sync.entry_stack][21:] == ["return address"]
    after = t.steps[sync.index + 1]
    assert after.label == "asm_int80_emulation" and after.text == "movq %rax, %rsp"
    # UNTRAIN_RET_FROM_CALL: a 5-byte NOP, then a jmp over 12 INT3s (14 bytes of padding)
    untrain = [s for s in t.steps if s.macro == "UNTRAIN_RET_FROM_CALL"]
    assert [s.code.hex() for s in untrain] == ["0f1f440000", "eb0c"]


def test_v612_on_epyc_rome_error_entry_calls_the_srso_untraining() -> None:
    t = run_scenario(
        parse_scenario(
            'name = "x"\n[machine]\nkernel = "v6.12"\ncpu = "amd"\ncpu_model = "epyc-rome"\n'
            '[user]\ncode = "mov $20, %eax; int $0x80"'
        )
    )
    assert t.exit is ExitPath.IRET and t.final is not None and t.final.rax == 1234
    error_entry = [s.label for s in t.steps if s.cpl == 0]
    assert "srso_untrain_ret" in error_entry and "sync_regs" in error_entry


# -- 32-bit code: [user] mode = "compat" and .code32 ----------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "int80-from-32-bit-code.toml",
        "v6.1-int80-from-32-bit-code.toml",
        "v6.12-int80-from-32-bit-code.toml",
    ],
)
def test_a_32_bit_program_gets_the_pid_and_returns_to_compatibility_mode(name: str) -> None:
    t = run_scenario(load_scenario(SCENARIOS / name))
    assert t.initial.cs == USER32_CS and t.exit is ExitPath.IRET
    assert t.final is not None and (t.final.cs, t.final.ss) == (USER32_CS, USER_DS)
    assert t.final.rax & MASK32 == 1234 and t.final_cpl == 3
    entered = next(s for s in t.steps if s.cpl == 0)
    frame = {s.slot: s.value for s in t.steps[entered.index - 1].entry_stack}
    assert frame["cs"] == USER32_CS and frame["sp"] == 0x7F000  # the 32-bit program's


def test_code32_switches_the_assembler_and_the_decoder_mid_program() -> None:
    code = (
        "pushq $0x23; lea 1f(%rip), %rax; push %rax; lretq; .code32; 1: mov $20, %eax; "
        "push %ebx; int $0x80"
    )
    t = run_scenario(parse_scenario(f'name = "x"\n[user]\nrsp = 0x7f000\ncode = "{code}"'))
    texts = [s.text for s in t.steps if s.cpl == 3]
    assert texts[:7] == [
        "pushq $0x23", "leaq 3(%rip), %rax", "pushq %rax", "lretq",
        "movl $0x14, %eax", "pushl %ebx", "int $0x80",
    ]  # fmt: skip
    assert [line.kind for line in t.user_code][4] == "mode"
    assert t.final is not None and t.final.cs == USER32_CS and t.final.rax == 1234


def test_an_instruction_of_the_other_mode_is_a_one_line_error() -> None:
    # push %ebx has no 64-bit encoding; push %rbx none in 32-bit code
    with pytest.raises(ScenarioError, match="push %ebx"):
        parse_scenario('name = "x"\n[user]\ncode = "push %ebx; syscall"')
    with pytest.raises(ScenarioError, match="push %rbx"):
        parse_scenario('name = "x"\n[user]\nmode = "compat"\nrsp = 0x7f000\ncode = "push %rbx"')
    with pytest.raises(ScenarioError, match=re.escape("directive '.code16' is not allowed")):
        parse_scenario('name = "x"\n[user]\ncode = ".code16; syscall"')


@pytest.mark.parametrize(
    ("user", "says"),
    [
        ('mode = "compat"\nrsp = 0x7ffc0000f000', "user.rsp: compat mode has a 32-bit stack"),
        ('mode = "compat"\nrip = 0x100000000\nrsp = 0x7f000', "user.rip: compat mode runs"),
        ('mode = "32"', "user.mode: expected one of '64', 'compat'"),
    ],
)
def test_compat_mode_refuses_what_32_bit_code_cannot_reach(user: str, says: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(says)) as err:
        parse_scenario(f'name = "x"\n[user]\n{user}\ncode = "int $0x80"')
    assert "\n" not in str(err.value)


def test_syscall_from_a_32_bit_program_is_ud_on_intel() -> None:
    t = run_scenario(
        parse_scenario('name = "x"\n[user]\nmode = "compat"\nrsp = 0x7f000\ncode = "syscall"')
    )
    assert t.fault is not None and (t.fault.vector, t.fault.cpl) == (6, 3)


# -- 6.12's ia32_emulation=off: every 32-bit door shut ---------------------------------------
IA32_OFF = 'name = "x"\n[machine]\nkernel = "v6.12"\nia32_emulation = false\n'


def test_ia32_off_int80_fails_the_gates_dpl_check_with_the_idt_error_code() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "v6.12-ia32-emulation-off-int80.toml"))
    assert t.fault is not None and t.exit is None
    assert (t.fault.vector, t.fault.cpl, t.fault.error_code) == (13, 3, 0x80 * 8 + 2)
    assert t.fault.rip == 0x401005 and t.fault.modelled  # the int itself, not past it
    assert "external-interrupt gate" in t.fault.reason


def test_ia32_off_leaves_vector_0x80_a_dpl0_irq_gate() -> None:
    page = idt.idt_page("v6.12", None, ia32=False)
    gate = IdtGate.decode(page[16 * 0x80 : 16 * 0x81])
    assert (gate.dpl, gate.gate_type, gate.present) == (0, 0xE, True)
    assert gate.offset == idt.handler_symbols("v6.12", None, ia32=False)[idt.IRQ_ENTRY]


def test_ia32_off_sysenter_is_gp0_on_intel_and_ud_on_amd() -> None:
    intel = run_scenario(load_scenario(SCENARIOS / "v6.12-ia32-emulation-off-sysenter-intel.toml"))
    assert intel.fault is not None and (intel.fault.vector, intel.fault.error_code) == (13, 0)
    amd = run_scenario(parse_scenario(IA32_OFF + 'cpu = "amd"\n[user]\ncode = "sysenter"'))
    assert amd.fault is not None and amd.fault.vector == 6


def test_ia32_off_compat_syscall_on_amd_enters_at_cstar_and_sysretl_returns_enosys() -> None:
    t = run_scenario(load_scenario(SCENARIOS / "v6.12-ia32-emulation-off-syscall-amd.toml"))
    assert t.door is Door.SYSCALL32 and t.exit is ExitPath.SYSRET and not t.checks
    kernel = [s for s in t.steps if s.cpl == 0]
    entry = t.symbols["entry_SYSCALL32_ignore"]
    assert kernel[0].label == "entry_SYSCALL32_ignore" and kernel[0].rip == entry
    assert [s.text for s in kernel][-1] == "sysretl"
    # the ignore entry never touches the kernel's stack, GS base or page tables
    assert {s.regs.rsp for s in kernel} == {0x7F000} and not any(s.stack for s in kernel)
    assert t.final is not None and (t.final.cs, t.final.ss) == (USER32_CS, USER_DS)
    assert t.final.rax == 0xFFFFFFDA and t.final.rip == t.steps[-1].regs.rip
    # Intel has no SYSCALL outside 64-bit mode, whatever the switch says
    code = "pushq $0x23; lea 1f(%rip), %rax; push %rax; lretq; .code32; 1: syscall"
    intel = run_scenario(parse_scenario(IA32_OFF + f'[user]\nrsp = 0x7f000\ncode = "{code}"'))
    assert intel.fault is not None and intel.fault.vector == 6


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            'name = "x"\n[machine]\nia32_emulation = false\n',
            'machine.ia32_emulation: ia32_emulation = false needs kernel = "v6.12"',
        ),
        (
            IA32_OFF + '[user]\nmode = "compat"\nrsp = 0x7f000\ncode = "int $0x80"',
            "user.mode: no 32-bit program starts on 6.12 with ia32_emulation = false",
        ),
    ],
)
def test_ia32_emulation_errors_are_one_line(text: str, says: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(says)) as err:
        parse_scenario(text)
    assert "\n" not in str(err.value)


def test_a_non_canonical_stack_or_target_faults_as_the_sdm_says() -> None:
    bad_stack = software_interrupt_delivery(
        0x80, idt.gate(HANDLER, 3, 0), idt.IDT_LIMIT, 3, 2, 0x1000, USER_CS, USER_DS, 0x2,
        lambda ist, dpl: 0x0000800000000000,
    )  # fmt: skip
    assert isinstance(bad_stack, InterruptFault) and (bad_stack.vector, bad_stack.error_code) == (
        12,
        0,
    )
    bad_target = deliver(idt.gate(0x0000800000000000, 3, 0))
    assert isinstance(bad_target, InterruptFault) and (
        bad_target.vector,
        bad_target.error_code,
    ) == (13, 0)
    unreadable = deliver(None)  # the IDT is mapped in both roots: only said, not modelled
    assert isinstance(unreadable, InterruptFault) and "not modelled" in unreadable.why
