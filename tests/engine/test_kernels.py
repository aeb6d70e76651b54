"""The three kernels: choosing one, what each runs, and where 6.12's C checks part ways."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ScenarioError, Session, parse_scenario
from engine.checks import describe
from engine.constants import MASK64, RF, TF, USER_CS, USER_DS, sign_extend
from engine.kernel import KERNELS, spec
from engine.kernel.image import build_image
from engine.kernel.macros import Features
from engine.scenario.model import Scenario
from engine.trace import StepKind, Trace
from tests.conftest import trace_of


def scenario(kernel: str, body: str = "", code: str = "mov $39, %eax; syscall") -> Scenario:
    text = f'name = "k"\n[machine]\nkernel = "{kernel}"\n{body}\n[user]\ncode = "{code}"\n'
    return parse_scenario(text, "k.toml")


@cache
def run(kernel: str, body: str = "") -> Trace:
    return Session(scenario(kernel, body)).run()


def test_the_engine_lists_its_kernels() -> None:
    assert KERNELS == ("v5.8.13", "v6.1", "v6.12")
    assert scenario("v6.12").machine.kernel == "v6.12" == scenario("v6.12").kernel
    assert parse_scenario('name = "d"', "d.toml").machine.kernel == "v5.8.13"


def test_an_unknown_kernel_is_a_one_line_error_naming_the_choices() -> None:
    with pytest.raises(ScenarioError) as e:
        parse_scenario('name = "x"\n[machine]\nkernel = "v4.4"\n', "x.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("x.toml:3: machine.kernel:")
    assert all(repr(k) in msg for k in KERNELS)


def test_check_names_are_the_kernels_own() -> None:
    with pytest.raises(ScenarioError, match="rip_below_task_size_max"):
        parse_scenario(
            'name = "x"\n[machine]\nkernel = "v6.12"\n[expect]\nfailed_check = "canonical_rip"\n',
            "x.toml",
        )
    with pytest.raises(ScenarioError, match="canonical_rip"):
        parse_scenario('name = "x"\n[expect]\nfailed_check = "rip_below_task_size_max"\n', "x.toml")


@pytest.mark.parametrize("kernel", KERNELS)
def test_each_kernel_runs_getpid_through_sysret(kernel: str) -> None:
    t = run(kernel)
    assert t.kernel == kernel
    assert t.exit == "sysret" and t.failed_check is None and t.fault is None
    assert [c.name for c in t.checks] == list(spec(kernel).checks)
    assert all(c.result == "pass" for c in t.checks)
    assert t.final is not None and t.final.rax == 1234 and t.final.cpl == 3


@pytest.mark.parametrize("kernel", KERNELS)
def test_syscall_mask_and_stack_top_are_the_kernels(kernel: str) -> None:
    t = run(kernel)
    assert t.msrs["SYSCALL_MASK"] == spec(kernel).syscall_mask
    first = next(s for s in t.steps if s.cpl == 0)
    # SYSCALL masked RFLAGS with the kernel's mask: 6.x clears the arithmetic flags too
    assert (first.regs.rflags & 0x44) == (0x44 if kernel == "v5.8.13" else 0)  # ZF, PF
    load = next(s for s in t.steps if s.stack_name == "task")
    assert load.regs.rsp == 0xFFFFC90000014000  # top of the task stack, from the per-CPU word


def test_do_syscall_64_arguments_follow_the_version() -> None:
    v58, v61 = run("v5.8.13"), run("v6.1")
    call58 = next(s for s in v58.steps if s.text.startswith("call"))
    call61 = next(s for s in v61.steps if s.text.startswith("call"))
    assert (call58.regs.rdi, call58.regs.rsi) == (39, call58.regs.rsp + 8)  # (nr, regs)
    assert (call61.regs.rdi, call61.regs.rsi) == (call61.regs.rsp + 8, 39)  # (regs, nr)


def test_v612_runs_the_c_checks_as_modelled_steps_in_compiled_order() -> None:
    t = run("v6.12")
    first = next(i for i, s in enumerate(t.steps) if s.kind is StepKind.C_CONDITION)
    # do_syscall_64's statements first (engine.run.c_side), the exit work's last
    last = t.steps[first - 1].c
    assert last is not None and last.key == "div0"
    c_steps = t.steps[first - 1 : first + 8]
    texts = [s.text for s in c_steps]
    assert texts[0] == "(C) amd_clear_divider();"
    assert texts[1:7] == [
        "(C) regs->cx != regs->ip", "(C) regs->r11 != regs->flags", "(C) regs->cs != __USER_CS",
        "(C) regs->ss != __USER_DS", "(C) regs->ip >= TASK_SIZE_MAX",
        "(C) regs->flags & (X86_EFLAGS_RF | X86_EFLAGS_TF)",
    ]  # fmt: skip
    assert texts[7] == "(C) return true" and texts[8] == "retq"
    assert all(s.modelled and s.code == b"" for s in c_steps[:8])
    assert "regs->ip >= TASK_SIZE_MAX" in c_steps[5].source
    assert c_steps[7].regs.rax == 1 and "rax" in c_steps[7].changed
    # then the real test %al,%al; je runs, and falls through to the SYSRET path
    after = t.steps[t.steps.index(c_steps[8]) + 1 :]
    assert [s.text.split()[0] for s in after[:2]] == ["testb", "je"]
    assert after[2].label == "syscall_return_via_sysret"
    # each check's state appears on its own step, with the values compared
    assert all(c.result == "not_reached" for c in c_steps[0].checks)
    for i, name in enumerate(spec("v6.12").c_checks, start=1):
        states = [c.result for c in c_steps[i].checks]
        assert states == ["pass"] * i + ["not_reached"] * (6 - i)
        state = {str(c.name): c for c in c_steps[i].checks}[name]
        assert state.left is not None and state.right is not None and describe(state)


def test_v612_failed_c_check_returns_false_and_takes_iret() -> None:
    t = run("v6.12", "[handler.set]\nss = 0x10033\n")  # 16-bit compare: the low word is 0x33
    c = {str(c.name): c for c in t.checks}
    assert t.failed_check == "ss_user" and t.exit == "iret"
    assert c["ss_user"].result == "fail" and "(u16) regs->ss 0x33" in describe(c["ss_user"])
    assert c["rip_below_task_size_max"].result == "not_reached"
    ret = next(s for s in t.steps if s.text == "(C) return false")
    assert ret.regs.rax == 0


def test_v612_tests_cs_on_16_bits() -> None:
    t = run("v6.12", "[handler.set]\ncs = 0x10033\n")
    assert t.failed_check is None and t.exit == "sysret"


def test_task_size_max_follows_the_paging_mode() -> None:
    body = "paging = 5\n[handler.set]\nip = 0x7ffffffff000\ncx = 0x7ffffffff000\n"
    t = run("v6.12", body)
    c = {str(c.name): c for c in t.checks}["rip_below_task_size_max"]
    assert c.result == "pass" and "0x00fffffffffff000" in describe(c)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("pti", [True, False])
@pytest.mark.parametrize("pcid", [True, False])
@pytest.mark.parametrize("la57", [True, False])
def test_every_image_assembles_and_round_trips(
    kernel: str, pti: bool, pcid: bool, la57: bool
) -> None:
    img = build_image(Features(pti, pcid, la57, (), kernel))
    assert img.kernel.name == kernel
    assert {"entry_SYSCALL_64", "swapgs_restore_regs_and_return_to_usermode"} <= set(img.symbols)
    assert ("native_irq_return_ldt" in img.symbols) == spec(kernel).espfix64
    assert sum(a.text == "sysretq" for a in img.entry) == 1
    checks = [a.item.meta.check for a in img.entry if getattr(a.item.meta, "check", None)]
    assert tuple(checks) == spec(kernel).asm_checks


def test_v612_reaches_per_cpu_variables_rip_relative() -> None:
    img = build_image(Features(True, False, False, (), "v6.12"))
    stores = [a for a in img.entry if "%gs:" in a.text]
    assert stores and all("(%rip)" in a.text for a in stores)
    store = stores[0]  # movq %rsp, %gs:disp(%rip): RIP + disp wraps to cpu_tss_rw + TSS_sp2
    disp = int.from_bytes(store.code[-4:], "little", signed=True)
    assert (store.address + len(store.code) + disp) & MASK64 == 0x6014


BASE = scenario("v6.12")
SESSION = Session(BASE)
addresses = st.sampled_from(
    [BASE.rip + 7, 0x7FFFFFFFEFFF, 0x7FFFFFFFF000, 0x800000000000, 0xFFFF800000000000,
     0x00007FFFFFFFFFFF]
)  # fmt: skip
selectors = st.sampled_from([USER_CS, USER_DS, 0x23, 0x1B, 0x10033, 0x1002B])
flags = st.sampled_from([0x246, 0x246 | RF, 0x246 | TF, 0x202, 0x302])


def predict_612(f: dict[str, int]) -> str | None:
    """6.12's do_syscall_64, from arch/x86/entry/common.c, in its compiled order."""
    if f["cx"] != f["ip"]:
        return "rcx_eq_rip"
    if f["r11"] != f["flags"]:
        return "r11_eq_rflags"
    if f["cs"] & 0xFFFF != USER_CS:
        return "cs_user"
    if f["ss"] & 0xFFFF != USER_DS:
        return "ss_user"
    if f["ip"] >= 0x7FFFFFFFF000:
        return "rip_below_task_size_max"
    if f["flags"] & (RF | TF):
        return "no_rf_tf"
    return None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ip=addresses, cx=addresses, cs=selectors, ss=selectors, r11=flags, fl=flags)
def test_v612_c_checks_predict_exit(ip: int, cx: int, cs: int, ss: int, r11: int, fl: int) -> None:
    writes = {"ip": ip, "cx": cx, "cs": cs, "ss": ss, "r11": r11, "flags": fl}
    sc = Scenario(**{**{f: getattr(BASE, f) for f in BASE.__dataclass_fields__},
                     "handler_set": writes})  # fmt: skip
    trace = SESSION.run(False, sc)
    expected = predict_612(writes)
    assert trace.failed_check == expected
    assert trace.exit == ("sysret" if expected is None else "iret")
    # v5.8's canonical test and 6.12's TASK_SIZE_MAX part ways on TASK_SIZE_MAX itself
    if expected is None:
        assert sign_extend(ip) == ip and ip < 0x7FFFFFFFF000


def test_syscall_number_is_an_int_from_6_1_on() -> None:
    """6.1 and 6.12 pass nr as an int: the upper half of RAX is ignored, v5.8 sees ENOSYS."""
    code = "movabs $0x100000027, %rax; syscall"
    old = Session(scenario("v5.8.13", code=code)).run(False)
    new = Session(scenario("v6.1", code=code)).run(False)
    assert old.final is not None and old.final.rax == -38 & MASK64
    assert new.final is not None and new.final.rax == 1234


def test_a_scenario_reruns_on_another_kernel() -> None:
    from engine import load_scenario, with_kernel
    from tests.conftest import SCENARIOS

    sc = load_scenario(SCENARIOS / "sigreturn-noncanonical.toml")
    on612 = with_kernel(sc, "v6.12")
    assert on612.kernel == on612.machine.kernel == "v6.12"
    assert on612.expect.failed_check is None and "failed_check" not in on612.expect.given
    t = Session(on612).run(False)
    assert t.failed_check == "rip_below_task_size_max" and t.exit == "iret"
    with pytest.raises(ValueError, match=r"v6\.12"):
        with_kernel(sc, "v7")


def test_v612_what_if_without_the_task_size_max_check() -> None:
    """Without rip_below_task_size_max, 6.12 would SYSRET to a non-canonical RIP: on Intel
    the #GP comes in ring 0 (CVE-2012-0217), as on v5.8 without canonical_rip."""
    body = (
        'remove_checks = ["rip_below_task_size_max"]\n'
        "[sigframe]\nrip = 0x800000000000\nrcx = 0x800000000000\n"
    )
    sc = scenario("v6.12", body, "mov $15, %eax; syscall")
    t = Session(sc).run()
    c = {str(c.name): c for c in t.checks}
    assert c["rip_below_task_size_max"].result == "removed"
    assert t.failed_check is None and t.exit == "sysret"
    assert t.fault is not None and t.fault.name == "#GP" and t.fault.cpl == 0


def test_v612_rip_checks_write_their_values_alike() -> None:
    """regs->cx == regs->ip and regs->ip < TASK_SIZE_MAX: both padded as a RIP is."""
    t = trace_of("v6.12-fallthrough-to-task-size-max.toml")
    c = {str(c.name): c for c in t.checks}
    assert describe(c["rcx_eq_rip"]) == "regs->cx 0x00007ffffffff000 == regs->ip 0x00007ffffffff000"
    assert describe(c["rip_below_task_size_max"]) == (
        "regs->ip 0x00007ffffffff000 ≥ TASK_SIZE_MAX 0x00007ffffffff000"
    )


# -- [machine] flavour: Debian's cloud and generic builds of 6.1 and 6.12 ---------------

TF_SYSCALL = "mov $39, %eax; pushfq; orq $0x100, (%rsp); popfq; syscall"


def flavoured(kernel: str, flavour: str | None) -> str:
    line = f'flavour = "{flavour}"\n' if flavour else ""
    return f'name = "f"\n[machine]\nkernel = "{kernel}"\n{line}[user]\ncode = "{TF_SYSCALL}"\n'


@pytest.mark.parametrize("kernel", ["v6.1", "v6.12"])
def test_the_generic_flavour_tests_for_an_ldt_stack_before_iretq(kernel: str) -> None:
    cloud = build_image(Features(True, True, False, (), kernel))
    generic = build_image(Features(True, True, False, (), kernel, espfix64=True))
    assert "native_irq_return_ldt" not in cloud.symbols
    assert "native_irq_return_ldt" in generic.symbols
    # the same source lines either way; the cloud build gives the #ifdef block no code
    assert [s.text for s in cloud.source] == [s.text for s in generic.source]
    test = next(s for s in generic.source if "(SS-RIP)" in s.text)
    assert test.instructions and not cloud.source[test.number - 1].instructions
    runs = {f: Session(parse_scenario(flavoured(kernel, f))).run() for f in ("cloud", "generic")}
    iret = {f: [s.text for s in t.steps[-3:]] for f, t in runs.items()}
    assert iret["generic"][0].startswith("testb $4, 0x20(%rsp)") and iret["generic"][2] == "iretq"
    assert iret["cloud"][2] == "iretq" and "testb $4" not in " ".join(iret["cloud"])
    assert len(runs["generic"].steps) == len(runs["cloud"].steps) + 2
    assert runs["generic"].final == runs["cloud"].final


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (flavoured("v5.8.13", "generic"), "v5.8.13 has one build"),
        (flavoured("v6.1", "server"), "expected one of 'cloud', 'generic'"),
    ],
)
def test_a_bad_flavour_is_one_line_naming_the_key(text: str, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text)
    said = str(err.value)
    assert "\n" not in said and "machine.flavour" in said and words in said


def test_the_flavour_stays_where_debian_builds_flavours() -> None:
    from engine.scenario.parse import with_kernel

    sc = parse_scenario(flavoured("v6.1", "generic"))
    assert with_kernel(sc, "v6.12").machine.flavour == "generic"
    assert with_kernel(sc, "v5.8.13").machine.flavour == "cloud"
    assert parse_scenario(flavoured("v6.1", None)).machine.flavour == "cloud"
