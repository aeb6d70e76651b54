"""CPU exceptions end the run with their real vector, CPL, RIP, CR2 and error code."""

from __future__ import annotations

import pytest

from engine import Session, parse_scenario
from engine.constants import VEC_BP, VEC_GP, VEC_PF, VEC_UD
from engine.errors import ScenarioError
from engine.machine.faults import is_io
from engine.machine.modelled import error_code, io_faults, sysret_rflags
from engine.trace import EventKind, Trace
from tests.conftest import SCENARIOS, trace_of

GP, PF, UD, BP = VEC_GP, VEC_PF, VEC_UD, VEC_BP


def run(code: str, extra: str = "", record: bool = True) -> Trace:
    text = f'name = "fault"\n{extra}[user]\ncode = "{code}"\n'
    return Session(parse_scenario(text, "fault.toml")).run(record)


PRIVILEGED = [
    "hlt", "wrmsr", "rdmsr", "mov %cr3, %rax", "mov %rax, %cr3", "mov %cr0, %rax",
    "lgdt (%rsp)", "lidt (%rsp)", "swapgs", "sysretq", "cli", "sti", "clts", "invlpg (%rax)",
]  # fmt: skip


@pytest.mark.parametrize("insn", PRIVILEGED)
@pytest.mark.parametrize("record", [True, False])
def test_privileged_instruction_at_cpl3_is_gp0_at_its_address(insn: str, record: bool) -> None:
    t = run(f"{insn}; syscall", record=record)
    f = t.fault
    assert f is not None
    assert (f.name, f.vector, f.cpl, f.rip, f.error_code) == ("#GP", GP, 3, 0x401000, 0)
    assert not f.modelled  # Unicorn's own exception
    assert t.exit is None and t.final_cpl == 3


@pytest.mark.parametrize("insn", ["in $0x60, %al", "out %al, $0x60", "in %dx, %eax", "insb"])
def test_port_io_without_iopl_is_a_modelled_gp0(insn: str) -> None:
    t = run(f"{insn}; syscall")
    f = t.fault
    assert f is not None and (f.vector, f.cpl, f.rip, f.error_code) == (GP, 3, 0x401000, 0)
    assert f.modelled and t.steps[-1].modelled


@pytest.mark.parametrize("rflags", [0x1246, 0x2246, 0x3246])
def test_a_user_iopl_is_refused_with_the_reason(rflags: int) -> None:
    # iopl(3) has opened the I/O bitmap instead of setting RFLAGS.IOPL since Linux 5.5:
    # a scenario cannot start a task with IOPL != 0, so port I/O at CPL 3 always faults.
    with pytest.raises(ScenarioError) as err:
        parse_scenario(f'name = "io"\n[user]\nrflags = {rflags:#x}\ncode = "in $0x60, %al"\n')
    text = str(err.value)
    assert "\n" not in text and "user.rflags" in text and "iopl()" in text
    assert f"IOPL (bits 12-13) is {rflags >> 12}" in text


def test_ud2_is_ud_and_int3_is_bp_with_rip_after_it() -> None:
    t = run("ud2")
    assert t.fault is not None and (t.fault.vector, t.fault.rip) == (UD, 0x401000)
    t = run("int3; syscall")
    # #BP is a trap: the RIP the CPU saves is the next instruction's
    assert t.fault is not None and (t.fault.vector, t.fault.cpl, t.fault.rip) == (BP, 3, 0x401001)
    assert t.fault.error_code is None


def test_unmapped_read_is_pf_with_cr2_and_error_code() -> None:
    t = run("mov (0x10), %rax; syscall")
    f = t.fault
    assert f is not None and (f.vector, f.cpl, f.rip, f.address) == (PF, 3, 0x401000, 0x10)
    assert f.error_code == 0x4  # not present, read, user
    assert f.describe() == (
        "#PF (vector 14) at CPL 3, RIP 0x0000000000401000, address 0x10, error code 0x4 (modelled)"
    )


def test_write_to_read_only_code_is_a_present_write_pf() -> None:
    sc = parse_scenario('name = "w"\n[user]\nrbx = 0x401000\ncode = "mov %rax, (%rbx); syscall"\n')
    t = Session(sc).run()
    f = t.fault
    assert f is not None and (f.vector, f.address, f.error_code) == (PF, 0x401000, 0x7)


def test_code_without_syscall_faults_in_memory_past_it_not_as_user_source() -> None:
    t = run("nop")
    f = t.fault
    # rax = 39: the zero bytes after the nop are addb %al, (%rax), a write to 0x27
    assert f is not None and (f.vector, f.cpl, f.rip, f.address) == (PF, 3, 0x401001, 39)
    assert f.error_code == 0x6
    last = t.steps[-1]
    assert last.text == "addb %al, (%rax)"
    assert last.source == "(not in the user's code: bytes 00 00)"
    assert t.steps[0].source == "nop"


def test_no_double_fault_on_a_second_run_of_the_same_session() -> None:
    session = Session(parse_scenario('name = "x"\n[user]\ncode = "hlt; syscall"\n'))
    for _ in range(3):
        f = session.run().fault
        assert f is not None and f.vector == GP


def test_io_mnemonics() -> None:
    assert all(is_io(t) for t in ("inb $0x60, %al", "outb %al, $0x60", "insb %dx, (%rdi)",
                                  "rep outsw (%rsi), %dx", "inl %dx, %eax"))  # fmt: skip
    assert not any(is_io(t) for t in ("int3", "int $0x80", "incq %rax", "invlpg (%rax)"))


def test_models_follow_the_manuals() -> None:
    assert sysret_rflags("intel", 0x10246) == 0x246
    assert sysret_rflags("amd", 0x10246) == 0x246
    assert sysret_rflags("intel", 0x3FFFFF) == 0x3C7FD7
    assert sysret_rflags("intel", 0) == 0x2
    assert io_faults(3, 0x246, 104, 103) and not io_faults(3, 0x3246, 104, 103)
    assert not io_faults(0, 0x246, 104, 103)
    assert error_code(GP) == 0 and error_code(BP) is None
    assert error_code(PF, present=True, write=True, user=True, fetch=False) == 0x7


@pytest.mark.parametrize("cpu", ["intel", "amd"])
def test_sysret_clears_rf_from_r11_modelled(cpu: str) -> None:
    text = (SCENARIOS / "what-if-sysret-rf.toml").read_text()
    sc = parse_scenario(text.replace("[machine]", f'[machine]\ncpu = "{cpu}"'), "rf.toml")
    t = Session(sc).run()
    assert t.exit == "sysret" and t.fault is None
    sysret = next(s for s in t.steps if s.text == "sysretq")
    assert sysret.regs.r11 == 0x10246
    assert sysret.regs.rflags == 0x246 and sysret.modelled
    assert any(e.kind is EventKind.SYSRET and e.modelled for e in sysret.events)
    assert t.final is not None and t.final.rflags == 0x246


def test_shipped_sysret_rf_what_if() -> None:
    t = trace_of("what-if-sysret-rf.toml")
    assert t.final is not None and t.final.rflags == 0x246 and t.final_cpl == 3


SEGMENT_LOADS = [
    # (user code, error code): a MOV or POP into a segment register refuses the selector
    # it loads and pushes it, RPL cleared (SDM vol. 2A "MOV", "POP"), not 0
    ("mov $0x7, %eax; mov %eax, %ds", 0x4),  # an LDT selector, and no LDT is loaded
    ("mov $0x1003, %eax; mov %eax, %es", 0x1000),  # past the GDT limit
    ("mov $0x18, %eax; mov %eax, %ds", 0x18),  # __KERNEL_DS: DPL 0 < CPL 3
    ("pushq $0x1003; popq %fs", 0x1000),
    ("movw $0x18, (%rsp); movw (%rsp), %gs", 0x18),  # the selector read from memory
    ("xor %eax, %eax; mov %eax, %ss", 0),  # a null SS at CPL 3: #GP(0)
]


@pytest.mark.parametrize(("code", "expected"), SEGMENT_LOADS)
def test_a_refused_segment_load_pushes_the_selector(code: str, expected: int) -> None:
    t = run(f"{code}; syscall")
    f = t.fault
    assert f is not None and (f.vector, f.cpl) == (GP, 3)
    assert f.error_code == expected


def test_iretq_at_cpl3_refuses_a_kernel_cs_first() -> None:
    """User code may run IRETQ: at CPL 3 a CS of RPL 0 is #GP(CS), before SS is looked at."""
    t = run("pushq $0x2b; pushq %rsp; pushfq; pushq $0x10; pushq $0x401000; iretq")
    f = t.fault
    assert f is not None and (f.vector, f.cpl, f.error_code) == (GP, 3, 0x10)


FAR_TRANSFERS = [
    # (user code, error code): a far RET, JMP or CALL refusing the CS it loads pushes
    # that selector (SDM vol. 2A "RET", "JMP", "CALL"), not 0
    ("pushq $0x10; pushq $0x401000; lretq", 0x10),  # __KERNEL_CS: RPL 0 < CPL 3
    ("pushq $0x2b; pushq $0x401000; lretq", 0x28),  # __USER_DS: not a code segment
    ("pushq $0; pushq $0x401000; lretq", 0),  # null
    ("movq $0x401000, (%rsp); movw $0x10, 8(%rsp); ljmpq *(%rsp)", 0x10),
    ("movq $0x401000, (%rsp); movw $0x10, 8(%rsp); lcallq *(%rsp)", 0x10),
]


@pytest.mark.parametrize(("code", "expected"), FAR_TRANSFERS)
def test_a_refused_far_transfer_pushes_the_selector(code: str, expected: int) -> None:
    f = run(f"{code}; syscall").fault
    assert f is not None and (f.vector, f.cpl) == (GP, 3)
    assert f.error_code == expected


STACK_FAULTS = [
    # a non-canonical address through SS is #SS(0) (SDM vol. 2A, 64-bit mode exceptions)
    ("movabs $0x800000000000, %rsp; pop %rax", True),
    ("movabs $0x800000000008, %rsp; push %rax", True),
    ("movabs $0x800000000000, %rsp; ret", True),
    ("movabs $0x800000000000, %rbp; mov 8(%rbp), %rax", True),
    ("movabs $0x800000000000, %rbp; leave", True),
    # not through SS: Unicorn's #GP(0) stands
    ("movabs $0x800000000000, %rax; mov (%rax), %rax", False),
    ("movabs $0x800000000000, %rax; push (%rax)", False),
]


@pytest.mark.parametrize(("code", "ss"), STACK_FAULTS)
def test_a_non_canonical_stack_address_is_a_modelled_ss0(code: str, ss: bool) -> None:
    f = run(f"{code}; syscall").fault
    assert f is not None and f.cpl == 3 and f.rip == 0x40100A and f.error_code == 0
    assert (f.vector, f.name, f.modelled) == ((12, "#SS", True) if ss else (GP, "#GP", False))


def test_the_documented_setup_differences_hold() -> None:
    """docs/scenarios.md says: no #AC (CR0.AM clear); SSE runs (CR4.OSFXSR set, as Linux
    sets it), AVX is #UD (no CR4.OSXSAVE)."""
    ac = run("pushfq; orq $0x40000, (%rsp); popfq; mov 1(%rsp), %rax; syscall")
    assert ac.fault is None and ac.exit == "sysret"
    sse = run("movaps %xmm0, %xmm1; pxor %xmm2, %xmm2; syscall")
    assert sse.fault is None and sse.exit == "sysret"
    avx = run("vmovaps %ymm0, %ymm1; syscall").fault
    assert avx is not None and (avx.vector, avx.rip) == (UD, 0x401000)


# A far return to __USER32_CS (0x23) puts the CPU in compatibility mode; the syscall after
# it is the 32-bit one, which entry_SYSCALL_64 never sees on a real CPU.
COMPAT = "pushq $0x23; lea 1f(%rip), %rax; push %rax; lretq; 1: syscall"


@pytest.mark.parametrize("record", [True, False])
def test_syscall_in_compat_mode_is_ud_at_cpl3_on_intel(record: bool) -> None:
    t = run(COMPAT, record=record)
    f = t.fault
    assert f is not None and (f.vector, f.name, f.cpl, f.modelled) == (UD, "#UD", 3, True)
    assert f.rip == 0x40100C and "compatibility mode" in f.reason
    assert t.exit is None and t.final is not None and t.final.rip == 0x40100C
    assert t.final_cpl == 3  # the kernel was never entered
    if record:
        assert all(s.cpl == 3 for s in t.steps)


@pytest.mark.parametrize("record", [True, False])
def test_compat_syscall_of_a_64_bit_task_stops_on_amd_naming_the_missing_vdso32(
    record: bool,
) -> None:
    """A 64-bit task that far-returns into compatibility mode has no 32-bit vDSO: the
    landing pad do_fast_syscall_32 returns to would be inside the 64-bit vDSO."""
    t = run(COMPAT, '[machine]\ncpu = "amd"\n', record=record)
    assert t.fault is None and t.exit is None and t.final_cpl == 3
    assert t.stopped == "stopped at SYSCALL in compatibility mode of a 64-bit task"
    if record:
        assert all(s.cpl == 3 for s in t.steps)
        events = [e for s in t.steps for e in s.events if e.kind == EventKind.UNSUPPORTED]
        assert events and "entry_SYSCALL_compat" in events[0].text
        assert "64-bit vDSO" in events[0].text


def test_syscall_in_64_bit_mode_after_a_far_return_to_user_cs_still_enters() -> None:
    t = run("pushq $0x33; lea 1f(%rip), %rax; push %rax; lretq; 1: mov $39, %eax; syscall")
    assert t.fault is None and t.exit == "sysret"
