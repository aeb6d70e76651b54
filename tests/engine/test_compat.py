"""The fast 32-bit doors: SYSCALL from compatibility mode (AMD, entry_SYSCALL_compat) and
SYSENTER (Intel, entry_SYSENTER_compat), through the 32-bit vDSO, on the three kernels."""

from __future__ import annotations

import pytest

from engine import ScenarioError, parse_scenario, run_scenario
from engine.asm import disasm_one
from engine.constants import EFAULT, IF, MASK64, USER32_CS, USER_DS, VEC_UD, VM
from engine.kernel import KERNELS, spec
from engine.kernel.vdso32 import KERNEL_VSYSCALL_OFFSET, vdso32
from engine.layout import VDSO32_BASE
from engine.machine.modelled import sysenter_gp, sysenter_transition
from engine.trace import CheckResult, Door, ExitPath, StepKind, Trace

PAD = VDSO32_BASE + KERNEL_VSYSCALL_OFFSET + 9  # after push×3, the 4-byte fast pair, int


def run(cpu: str, kernel: str = "v5.8.13", code: str = "", extra: str = "") -> Trace:
    code = code or "mov $20, %eax; call __kernel_vsyscall"
    return run_scenario(
        parse_scenario(
            f'name = "t"\n[machine]\nkernel = "{kernel}"\ncpu = "{cpu}"\n'
            f'[user]\nmode = "compat"\nrsp = 0x7f000\ncode = "{code}"\n{extra}',
            "t.toml",
        )
    )


@pytest.mark.parametrize("cpu", ["intel", "amd"])
def test_the_vdso_bytes_decode_as_the_source_says(cpu: str) -> None:
    """The vDSO's bytes are written by hand: Capstone holds each one to its text."""
    v = vdso32(cpu)
    for line in v.lines:
        assert disasm_one(line.code, line.address, 32) == (line.text, len(line.code))
        off = line.address - v.base
        assert v.page[off : off + len(line.code)] == line.code
    assert v.symbols["int80_landing_pad"] == PAD
    fast = "sysenter" if cpu == "intel" else "syscall"
    assert [x.text for x in v.lines][3:5] == [
        "movl %esp, %ebp" if cpu == "intel" else "movl %ecx, %ebp",
        fast,
    ]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("cpu", "door", "entry"), [
    ("amd", Door.SYSCALL32, "entry_SYSCALL_compat"),
    ("intel", Door.SYSENTER, "entry_SYSENTER_compat"),
])  # fmt: skip
def test_getpid_through_the_vdso_returns_with_sysretl_to_compatibility_mode(
    kernel: str, cpu: str, door: Door, entry: str
) -> None:
    t = run(cpu, kernel)
    assert t.door is door and t.exit is ExitPath.SYSRET and t.fault is None
    f = t.final
    assert f is not None and t.final_cpl == 3
    assert (f.cs, f.ss, f.rip, f.rax) == (USER32_CS, USER_DS, PAD, 1234)
    assert [c.name for c in t.checks] == list(spec(kernel).compat_checks)
    assert all(c.result is CheckResult.PASS for c in t.checks)
    first_kernel = next(s for s in t.steps if s.cpl == 0)
    assert first_kernel.rip == t.symbols[entry]
    # the vDSO's own steps, with its source line
    vdso = [s for s in t.steps if VDSO32_BASE <= s.rip < VDSO32_BASE + 0x1000]
    assert vdso[0].source.startswith("__kernel_vsyscall: pushl %ecx")
    assert "vdso32/system_call.S" in vdso[0].source
    # the C side: the call, one step per condition, the return
    kinds = [s.kind for s in t.steps if s.is_c]
    n = len(spec(kernel).compat_checks)
    assert kinds == [StepKind.C_CALL, *[StepKind.C_CONDITION] * n, StepKind.C_RETURN_TRUE]
    assert t.pt_regs_after_call["ip"] == PAD  # do_fast_syscall_32's regs->ip
    assert t.pt_regs_at_call["cs"] == USER32_CS


def test_sysenter_takes_the_user_esp_from_ebp_and_sets_if_in_do_sysenter_32() -> None:
    t = run("intel")
    at, after = t.pt_regs_at_call, t.pt_regs_after_call
    assert at["sp"] == 0 and at["flags"] & IF == 0  # the entry's placeholders
    assert after["sp"] == at["bp"] and after["flags"] == at["flags"] | IF
    assert t.c_entry == "do_SYSENTER_32"


def test_the_caller_ebp_comes_from_the_user_stack() -> None:
    """__kernel_vsyscall pushed EBP last; the kernel reads it back into pt_regs->bp."""
    t = run("amd", code="mov $0x1234abcd, %ebp; mov $20, %eax; call __kernel_vsyscall")
    assert t.pt_regs_at_call["bp"] & 0xFFFFFFFF == t.pt_regs_at_call["cx"]  # ECX copy
    assert t.pt_regs_after_call["bp"] & 0xFFFFFFFF == 0x1234ABCD
    assert t.final is not None and t.final.rbp & 0xFFFFFFFF == 0x1234ABCD


def test_a_bare_syscall_with_esp_on_no_page_gets_efault_and_iret() -> None:
    t = run("amd", code="mov $0x10000000, %esp; mov $20, %eax; syscall")
    assert t.exit is ExitPath.IRET and t.failed_check is None
    assert all(c.result is CheckResult.NOT_REACHED for c in t.checks)
    f = t.final
    assert f is not None and f.rip == PAD and f.cs == USER32_CS
    assert f.rax == -EFAULT & MASK64


@pytest.mark.parametrize(("kernel", "write", "failed", "reached"), [
    ("v5.8.13", "ip = 0x401000", "ip_landing_pad", 3),
    ("v6.12", "ip = 0x401000", "ip_landing_pad", 1),  # 6.12 tests ip first
    ("v6.1", "cs = 0x33", "cs_user32", 1),
    ("v6.12", "ss = 0x23", "ss_user", 3),
    ("v5.8.13", "flags = 0x346", "no_rf_tf", 4),  # TF
])  # fmt: skip
def test_a_rewritten_pt_regs_word_fails_its_condition_and_takes_iret(
    kernel: str, write: str, failed: str, reached: int
) -> None:
    t = run("amd", kernel, extra=f"[handler.set]\n{write}\n")
    assert t.exit is ExitPath.IRET and t.failed_check == failed
    results = [c.result for c in t.checks]
    assert results[reached - 1] is CheckResult.FAIL
    assert set(results[: reached - 1]) <= {CheckResult.PASS}
    assert set(results[reached:]) <= {CheckResult.NOT_REACHED}


def test_vm_in_regs_flags_sends_6_12_to_iret_but_not_6_1() -> None:
    """6.12 added X86_EFLAGS_VM to the flags condition; 6.1 tests RF and TF only (SYSRETL
    then clears VM itself)."""
    flags = f"[handler.set]\nflags = {0x246 | VM:#x}\n"
    assert run("amd", "v6.12", extra=flags).failed_check == "no_rf_tf_vm"
    t = run("amd", "v6.1", extra=flags)
    assert t.exit is ExitPath.SYSRET and t.final is not None and not t.final.rflags & VM


def test_syscall_in_compatibility_mode_on_intel_is_ud_at_cpl_3() -> None:
    t = run("intel", code="mov $20, %eax; syscall")
    assert t.fault is not None and (t.fault.vector, t.fault.cpl) == (VEC_UD, 3)
    assert t.exit is None


def test_sysenter_on_amd_is_ud_even_from_the_vdso() -> None:
    t = run("amd", code="mov $20, %eax; mov %esp, %ebp; sysenter")
    assert t.fault is not None and (t.fault.vector, t.fault.cpl) == (VEC_UD, 3)


def test_the_sysenter_model_follows_the_sdm() -> None:
    e = sysenter_transition(0x10, 0xFFFFFE0000003000, 0xFFFFFFFF81A00400, 0x40346 | VM)
    assert (e.cs, e.ss, e.rsp, e.rip) == (0x10, 0x18, 0xFFFFFE0000003000, 0xFFFFFFFF81A00400)
    assert e.rflags == 0x40146  # IF, VM and RF cleared; TF and AC stay
    assert sysenter_gp(0) and sysenter_gp(3) and not sysenter_gp(0x10)


def test_kernel_vsyscall_is_a_32_bit_task_s_name_only() -> None:
    text = 'name = "t"\n[user]\ncode = "call __kernel_vsyscall"\n'
    with pytest.raises(ScenarioError):
        parse_scenario(text, "t.toml")


@pytest.mark.parametrize("where", [
    'rip = 0xf7fc1000',
    'rsp = 0xf7fc3000',
    'rsp = 0x7f000\n[[memory]]\naddress = 0xf7fc1000',
])  # fmt: skip
def test_nothing_the_scenario_maps_may_cover_the_vdso_page(where: str) -> None:
    text = f'name = "t"\n[user]\nmode = "compat"\ncode = "nop"\n{where}\n'
    if "rsp" not in where:
        text += "rsp = 0x7f000\n"
    with pytest.raises(ScenarioError, match="vDSO page at 0xf7fc1000"):
        parse_scenario(text, "t.toml")


def test_6_1_with_srso_stops_at_the_compat_syscall_saying_why() -> None:
    """6.1 on EPYC-Rome leaves entry_64_compat.S out of the image: the run stops at the
    SYSCALL, naming the entry it would take, rather than claiming CSTAR is empty."""
    t = run("amd", "v6.1", extra="")
    assert t.door is Door.SYSCALL32  # the default CPU model renders it
    text = (
        'name = "t"\n[machine]\nkernel = "v6.1"\ncpu = "amd"\ncpu_model = "epyc-rome"\n'
        '[user]\nmode = "compat"\nrsp = 0x7f000\ncode = "mov $20, %eax; call __kernel_vsyscall"\n'
    )
    t = run_scenario(parse_scenario(text, "t.toml"))
    assert t.exit is None and t.fault is None
    assert (
        t.stopped == "stopped at SYSCALL in compatibility mode (entry_SYSCALL_compat not rendered)"
    )
    assert [c.name for c in t.checks] == list(spec("v6.1").compat_checks)


def test_a_pointer_to_kernel_vsyscall_is_its_address_and_a_string_is_a_string() -> None:
    """`.long __kernel_vsyscall` stores the vDSO entry's address (a call through memory,
    as glibc's through %gs:0x10); inside a string the name is only text."""
    text = (
        'name = "t"\n[user]\nmode = "compat"\nrsp = 0x7f000\n'
        "code = '''\n.long __kernel_vsyscall\n.ascii \"__kernel_vsyscall\"\n'''\n"
    )
    code = parse_scenario(text, "t.toml").code
    assert code is not None
    entry = VDSO32_BASE + KERNEL_VSYSCALL_OFFSET
    assert code.code[:4] == entry.to_bytes(4, "little")
    assert code.code[4:] == b"__kernel_vsyscall"
    assert [line.text for line in code.listing] == [
        ".long __kernel_vsyscall", '.ascii "__kernel_vsyscall"',
    ]  # fmt: skip


@pytest.mark.parametrize("cpu", ["intel", "amd"])
def test_the_patched_vdso_is_ten_instructions_as_the_docs_say(cpu: str) -> None:
    assert len(vdso32(cpu).lines) == 10
