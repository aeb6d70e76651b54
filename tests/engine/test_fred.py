"""FRED on 6.12: the [machine] key, the machine it builds, and the modelled event delivery
and ERETU (engine.machine.modelled), checked against the numbers of the 6.12 source."""

from __future__ import annotations

import pytest

from engine import ScenarioError, parse_scenario, run_scenario
from engine.constants import CR4_FRED, TF, USER_CS, USER_DS
from engine.kernel.image import build_image
from engine.kernel.macros import Features
from engine.layout import ENTRY_TEXT
from engine.machine.core import Machine
from engine.machine.modelled import (
    FRED_FRAME_FIELDS,
    eretu_return,
    eretu_state_fault,
    fred_cs_word,
    fred_ss_word,
    fred_syscall_delivery,
)
from engine.run.launch import user_mappings
from engine.trace import CheckResult, EventKind, ExitPath

GETPID = """
name = "fred"
[machine]
kernel = "v6.12"
fred = true
[user]
code = "mov $39, %eax; syscall"
rcx = 0x1111
r11 = 0x2222
"""


@pytest.mark.parametrize("kernel", ["v5.8.13", "v6.1"])
def test_fred_is_refused_off_6_12_in_one_line_naming_the_key(kernel: str) -> None:
    text = f'name = "x"\n[machine]\nkernel = "{kernel}"\nfred = true\n'
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text)
    message = str(info.value)
    assert "machine.fred" in message and "v6.12" in message and kernel in message
    assert "\n" not in message


def test_fred_with_pti_is_refused_as_6_12_turns_fred_off() -> None:
    text = 'name = "x"\n[machine]\nkernel = "v6.12"\nfred = true\npti = true\n'
    with pytest.raises(ScenarioError, match="pti"):
        parse_scenario(text)


def test_fred_means_no_pti_unless_said() -> None:
    sc = parse_scenario(GETPID)
    assert sc.machine.fred and not sc.machine.pti


def test_the_machine_is_programmed_as_cpu_init_fred_exceptions_leaves_it() -> None:
    sc = parse_scenario(GETPID)
    m = Machine(sc.machine, user_mappings(sc))
    from unicorn import x86_const as X

    assert int(m.uc.reg_read(X.UC_X86_REG_CR4)) & CR4_FRED
    msrs = m.msrs()
    # FRED_CONFIG_REDZONE | FRED_CONFIG_INT_STKLVL(0) | asm_fred_entrypoint_user
    assert msrs["FRED_CONFIG"] == ENTRY_TEXT | 0x40
    assert msrs["FRED_RSP0"] == m.layout.task_stack_top
    for name in ("FRED_RSP1", "FRED_RSP2", "FRED_RSP3", "FRED_STKLVLS", "FRED_SSP0"):
        assert msrs[name] == 0
    assert msrs["LSTAR"] == 0  # syscall_init() skips idt_syscall_init() under FRED


def test_the_entry_is_page_aligned_and_ends_in_eretu_bytes() -> None:
    img = build_image(Features(False, True, False, (), "v6.12", True))
    assert img.symbols["asm_fred_entrypoint_user"] % 0x1000 == 0
    assert img.entry[-1].code == bytes.fromhex("f30f01ca")
    assert img.entry[-1].text == "eretu"
    assert not any(a.text in ("swapgs", "sysretq", "iretq") for a in img.entry)


def test_ss_and_cs_words_follow_struct_fred_ss_and_fred_cs() -> None:
    ss = fred_ss_word(USER_DS, 1, 7, 2, swevent=True)
    assert ss == 0x2B | 1 << 17 | 1 << 32 | 7 << 48 | 1 << 57 | 2 << 60
    assert fred_cs_word(USER_CS, stack_level=3, wfe=True) == 0x33 | 3 << 16 | 1 << 18


def test_delivery_aligns_rsp0_down_to_64_and_leaves_the_return_state_in_the_frame() -> None:
    d = fred_syscall_delivery(
        0x401007, 0x346, 0x7FFC0000F000, USER_CS, USER_DS,
        fred_config=0xFFFFFFFF81A00040, fred_rsp0=0xFFFFC90000013FFF, star=0x0023001000000000,
    )  # fmt: skip
    assert d.rsp == 0xFFFFC90000013FC0 - 64  # 0x...3fff & ~0x3f, then the 64-byte frame
    assert d.rip == 0xFFFFFFFF81A00000 and d.rflags == 0x2
    assert (d.cs, d.ss) == (0x10, 0x18)
    frame = dict(zip(FRED_FRAME_FIELDS, d.frame, strict=True))
    assert (frame["ip"], frame["flags"], frame["sp"]) == (0x401007, 0x346, 0x7FFC0000F000)
    back = eretu_return(d.frame)
    assert (back.rip, back.cs, back.rflags, back.rsp, back.ss) == (
        0x401007, USER_CS, 0x346, 0x7FFC0000F000, USER_DS,
    )  # fmt: skip


def test_getpid_under_fred_returns_by_eretu_with_rcx_and_r11_as_the_user_left_them() -> None:
    trace = run_scenario(parse_scenario(GETPID))
    assert trace.exit is ExitPath.ERETU and trace.fault is None
    assert not trace.checks and trace.failed_check is None
    f = trace.final
    assert f is not None
    assert (f.cpl, f.rip, f.rax) == (3, trace.initial.rip + 7, 1234)
    # under SYSCALL/SYSRET they would be the return RIP and RFLAGS; FRED writes neither
    assert (f.rcx, f.r11) == (0x1111, 0x2222)
    assert not any(e.kind is EventKind.SWAPGS for e in trace.events)
    assert any(e.kind is EventKind.ERETU and e.modelled for e in trace.events)


def test_tf_set_syscall_takes_no_trap_in_the_kernel_and_eretu_restores_tf() -> None:
    code = "mov $39, %eax; pushfq; orq $0x100, (%rsp); popfq; syscall"
    trace = run_scenario(parse_scenario(GETPID.replace("mov $39, %eax; syscall", code)))
    # every kernel step up to ERETU, whose after-state is the user's again
    kernel = [s for s in trace.steps if s.cpl == 0 and s.text != "eretu"]
    assert kernel and all(not s.regs.rflags & TF for s in kernel)
    assert trace.exit is ExitPath.ERETU
    assert trace.final is not None and trace.final.rflags & TF
    assert not any(c.result is CheckResult.FAIL for c in trace.checks)
    # the SYSCALL event set the SS word's bit 17, so ERETU pends the single-step #DB:
    # taken at CPL 3 before the instruction after syscall runs (the IDT path's IRET
    # traps only after it)
    f, end = trace.fault, trace.final
    assert f is not None and f.name == "#DB" and f.cpl == 3 and f.modelled
    after_syscall = next(u.address for u in trace.user_code if u.text == "syscall") + 2
    assert end is not None and f.rip == end.rip == after_syscall
    assert trace.steps[-1].text == "eretu"


@pytest.mark.parametrize(
    ("ss_bit17", "tf", "pends"), [(1, 1, True), (1, 0, False), (0, 1, False), (0, 0, False)]
)
def test_eretu_pends_a_single_step_db_for_a_stepped_software_event_only(
    ss_bit17: int, tf: int, pends: bool
) -> None:
    back = eretu_return((0, 0x401000, USER_CS, 0x202 | tf * TF, 0x7FFC0000F000,
                         USER_DS | ss_bit17 << 17))  # fmt: skip
    assert back.pends_single_step is pends


def test_a_syscall_without_tf_under_fred_takes_no_db() -> None:
    assert run_scenario(parse_scenario(GETPID)).fault is None


def test_sigreturn_writes_only_the_selector_of_the_frames_ss_word() -> None:
    """regs->ss is the u16 of a union with the FRED SS word: the event bits stay, so the
    frame ERETU reads still says type 7, vector 1 (and ERETU takes the selector alone)."""
    text = GETPID.replace("mov $39, %eax; syscall", "mov $15, %eax; syscall")
    trace = run_scenario(parse_scenario(text + "[sigframe]\nrip = 0x401000\nss = 0x2b\n"))
    after = trace.pt_regs_after_call
    assert after["ss"] & 0xFFFF == USER_DS
    assert (after["ss"] >> 48 & 0xF, after["ss"] >> 32 & 0xFF) == (7, 1)
    assert trace.exit is ExitPath.ERETU and trace.final is not None
    assert trace.final.rip == 0x401000 and trace.final.ss == USER_DS


def test_trace_json_says_fred_and_eretu_with_no_checks() -> None:
    from engine.views.json import trace_json

    doc = trace_json(run_scenario(parse_scenario(GETPID)))
    assert doc["machine"]["fred"] is True and doc["machine"]["pti"] is False
    assert doc["exit"] == "eretu" and doc["checks"] == []


def test_a_sweep_and_a_second_run_end_as_the_recorded_one() -> None:
    """The ERETU model needs the CPL-3 context of the launch; a later run restores the
    launch from the session's cache instead of running it, and a sweep has no recorder."""
    from engine import Session

    session = Session(parse_scenario(GETPID))
    first, sweep, again = session.run(True), session.run(False), session.run(True)
    for t in (sweep, again):
        assert t.exit is ExitPath.ERETU and t.final == first.final and t.stopped == first.stopped


@pytest.mark.parametrize(
    ("flags", "faults"),
    [
        (0x246, False),
        (0x202, False),
        (0x3246, True),  # IOPL 3
        (0x1246, True),  # IOPL 1
        (0x20246, True),  # VM
        (0x8246, True),  # bit 15, reserved
        (0x24E, True),  # bit 3, reserved
        (0x244, True),  # bit 1 clear
        (0x400246, True),  # bit 22, reserved
        (0x40246, False),  # AC may be set
        (0x4246, False),  # NT may be set
    ],
)
def test_eretu_checks_the_return_rflags_before_loading_anything(flags: int, faults: bool) -> None:
    """ERETU refuses a return state with IOPL, VM or a reserved RFLAGS bit: #GP(0) on
    the ERETU itself, at CPL 0 (the IDT path's SYSRET or IRET would load it)."""
    trace = run_scenario(parse_scenario(GETPID + f"[handler.set]\nflags = {flags:#x}\n"))
    if faults:
        assert trace.fault is not None and (trace.fault.name, trace.fault.cpl) == ("#GP", 0)
        assert trace.final is not None and trace.final.rip == trace.steps[-1].rip  # at ERETU
        assert trace.steps[-1].text.startswith(("eretu", ".byte"))
    else:
        assert trace.fault is None and trace.final is not None and trace.final.cpl == 3
        assert trace.final.rflags == flags


@pytest.mark.parametrize(
    ("cs", "ss", "failed"),
    [
        (USER_CS, USER_DS, None),
        (USER_CS | 0x10000, USER_DS, "the CS word is not a ring-3 selector alone"),
        (USER_CS & ~3, USER_DS, "the CS word is not a ring-3 selector alone"),
        (USER_CS, USER_DS & ~3, "the SS word is not a ring-3 selector"),
        (USER_CS, USER_DS | 0x80000, "the SS word is not a ring-3 selector"),
        (USER_CS, USER_DS | 0x7 << 16 | 0x12345678 << 32, None),  # STI, swevent, NMI, info
    ],
)
def test_eretu_checks_the_cs_and_ss_words(cs: int, ss: int, failed: str | None) -> None:
    frame = (0, 0x401007, cs, 0x246, 0x7FFC0000F000, ss)
    assert eretu_state_fault(eretu_return(frame)) == failed


@pytest.mark.parametrize(("mode", "cs", "lm"), [("64", USER_CS, 1), ("compat", 0x23, 0)])
def test_int80_under_fred_is_a_software_interrupt_event_into_fred_int80_emulation(
    mode: str, cs: int, lm: int
) -> None:
    """No IDT: type 4, vector 0x80 in the frame's SS word (lm clear from compatibility
    mode), fred_int80_emulation's i386 getpid, ERETU back to the caller's CS."""
    t = run_scenario(
        parse_scenario(
            'name = "t"\n[machine]\nkernel = "v6.12"\nfred = true\n'
            f'[user]\nmode = "{mode}"\nrsp = 0x7f000\ncode = "mov $20, %eax; int $0x80"\n'
        )
    )
    assert t.exit is ExitPath.ERETU and t.c_entry == "fred_int80_emulation"
    ss = next(s for s in t.steps if s.cpl == 0).stack[2].value  # fred_ss, below edata, resv
    assert (ss >> 48 & 0xF, ss >> 32 & 0xFF, ss >> 57 & 1, ss >> 17 & 1) == (4, 0x80, lm, 1)
    assert t.pt_regs_after_call["orig_ax"] == 20 and t.pt_regs_after_call["ax"] == 1234
    assert t.final is not None and (t.final.cs, t.final.rax) == (cs, 1234)
    assert not any(e.kind is EventKind.SWAPGS for e in t.events)


@pytest.mark.parametrize("code", ["syscall", "mov %esp, %ebp; sysenter"])
def test_a_32_bit_fast_call_under_fred_stops_saying_what_fred_other_would_do(code: str) -> None:
    t = run_scenario(
        parse_scenario(
            'name = "t"\n[machine]\nkernel = "v6.12"\nfred = true\n'
            f'[user]\nmode = "compat"\nrsp = 0x7f000\ncode = "{code}"\n'
        )
    )
    assert t.fault is None and t.exit is None and t.final_cpl == 3
    assert t.stopped == "stopped at a 32-bit SYSCALL or SYSENTER under FRED (not modelled)"
    said = [e.text for e in t.events if e.kind is EventKind.UNSUPPORTED]
    assert said and "fred_other()" in said[0]
