"""Two recorded runs aligned step by step: pairing, gaps, and where the runs part."""

from __future__ import annotations

import itertools
import json

import pytest

from engine import load_scenario, parse_scenario, run_scenario
from engine.compare import align, diff, render
from engine.compare.align import StepKey
from engine.compare.diff import compare_traces, variant
from engine.compare.render import comparison_json, summary_lines
from engine.trace import Trace
from tests.conftest import SCENARIOS, trace_of


def run(name: str, kernel: str | None = None, cpu: str | None = None) -> Trace:
    return run_scenario(variant(load_scenario(SCENARIOS / name), kernel=kernel, cpu=cpu))


def assert_alignment_is_complete(c: diff.Comparison) -> None:
    """Every step of each run is on exactly one row, in order; no row is empty."""
    lefts = [r.left for r in c.rows if r.left is not None]
    rights = [r.right for r in c.rows if r.right is not None]
    assert lefts == list(range(len(c.left.steps)))
    assert rights == list(range(len(c.right.steps)))
    for row in c.rows:
        assert row.left is not None or row.right is not None
        if row.kind == "same":
            assert row.left is not None and row.right is not None
            assert StepKey.of(c.left.steps[row.left]) == StepKey.of(c.right.steps[row.right])
        elif row.kind == "left":
            assert row.right is None
        elif row.kind == "right":
            assert row.left is None


PAIRS = [
    ("getpid.toml", "check-rcx-eq-rip.toml"),
    ("getpid.toml", "sigreturn-noncanonical.toml"),
    ("getpid.toml", "pti-off.toml"),
    ("getpid.toml", "pcid-off.toml"),
    ("getpid.toml", "la57-rip-2-47.toml"),
    ("getpid.toml", "write-hello.toml"),
    ("getpid.toml", "exit.toml"),
    ("tf-single-step.toml", "rf-in-frame.toml"),
    ("cve-2012-0217-intel.toml", "sigreturn-noncanonical.toml"),
]


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_every_step_of_both_runs_is_aligned_once_in_order(a: str, b: str) -> None:
    assert_alignment_is_complete(compare_traces(trace_of(a), trace_of(b)))
    assert_alignment_is_complete(compare_traces(trace_of(b), trace_of(a)))


def test_a_run_against_itself_is_identical() -> None:
    t = trace_of("sigreturn-noncanonical.toml")
    c = compare_traces(t, t)
    assert c.identical and c.first_difference is None and c.paths_part is None
    assert [(r.left, r.right, r.kind) for r in c.rows] == [
        (i, i, "same") for i in range(len(t.steps))
    ]
    assert len(t.steps) > 100  # the C side's statements are steps too


def test_getpid_on_intel_and_amd_takes_the_same_steps_with_the_same_values() -> None:
    intel, amd = run("getpid.toml", cpu="intel"), run("getpid.toml", cpu="amd")
    assert (intel.cpu, amd.cpu) == ("intel", "amd")
    c = compare_traces(intel, amd)
    assert c.identical
    assert c.counts() == {"same": len(intel.steps), "similar": 0, "left": 0, "right": 0}
    assert all(not row.aspects for row in c.rows)


def test_sigreturn_to_2_47_leaves_through_iret_on_both_vendors() -> None:
    """v5.8 checks canonicality for every vendor: Intel and AMD take the same IRET and
    both fault on it at CPL 0, so nothing differs."""
    c = compare_traces(run("sigreturn-noncanonical.toml"), run("sigreturn-noncanonical-amd.toml"))
    assert c.identical
    assert c.left_outcome.exit == c.right_outcome.exit == "iret"


def test_sysret_to_2_47_parts_at_the_sysret_intel_faults_in_ring_0() -> None:
    """Without the canonical check both run the same steps to SYSRET; there Intel faults at
    CPL 0 and AMD returns to CPL 3 and faults there."""
    c = compare_traces(trace_of("cve-2012-0217-intel.toml"), trace_of("cve-2012-0217-amd.toml"))
    assert c.counts()["same"] == len(c.rows) == len(c.left.steps)
    d = c.paths_part
    assert d is not None and d == c.first_difference
    assert d.position == len(c.rows)
    assert d.left is not None and c.left.steps[d.left].text == "sysretq"
    assert "events" in d.aspects
    registers = {p.name: (p.left, p.right) for p in d.registers}
    assert registers["cs"] == (0x10, 0x33)  # still __KERNEL_CS on Intel, __USER_CS on AMD
    assert {"fault_cpl", "final_cpl"} <= set(c.outcome_differs)
    assert (c.left_outcome.fault_cpl, c.right_outcome.fault_cpl) == (0, 3)


def test_ptrace_rip_first_shows_in_pt_regs_then_parts_at_the_first_check() -> None:
    getpid, moved = trace_of("getpid.toml"), trace_of("check-rcx-eq-rip.toml")
    c = compare_traces(getpid, moved)
    first = c.first_difference
    assert first is not None and first.aspects == ("pt_regs",)
    assert first.left is not None and any(
        e.kind == "handler" for e in getpid.steps[first.left].events
    )
    assert [(p.name, p.left, p.right) for p in first.pt_regs] == [("ip", 0x401007, 0x401020)]
    parts = c.paths_part
    assert parts is not None and parts.position > first.position
    assert parts.left is not None and parts.right is not None
    assert getpid.steps[parts.left].text.startswith("jne") and parts.left == parts.right
    assert [(x.name, x.left, x.right) for x in parts.checks] == [("rcx_eq_rip", "pass", "fail")]
    assert all(r.kind == "same" for r in c.rows[: parts.position])
    # after the branch: getpid's further checks on one side, the IRET path on the other
    after = c.rows[parts.position]
    assert after.kind in ("left", "right")
    assert {"exit", "failed_check", "final_rip"} <= set(c.outcome_differs)
    assert [(p.name, p.left, p.right) for p in c.pt_regs_after_call] == [("ip", 0x401007, 0x401020)]


ONE_REGISTER = """
name = "rbx = {rbx:#x}"
[user]
rbx = {rbx:#x}
code = "mov $39, %eax; syscall"
"""


def test_runs_differing_in_one_register_keep_the_same_path() -> None:
    a = run_scenario(parse_scenario(ONE_REGISTER.format(rbx=0x1111), "a.toml"))
    b = run_scenario(parse_scenario(ONE_REGISTER.format(rbx=0x2222), "b.toml"))
    c = compare_traces(a, b)
    assert not c.identical and c.paths_part is None and not c.outcome_differs
    first = c.first_difference
    assert first is not None and first.position == 0
    assert [(p.name, p.left, p.right) for p in first.registers] == [("rbx", 0x1111, 0x2222)]
    assert all(r.kind == "same" for r in c.rows)
    # PUSH_AND_CLEAR_REGS saves rbx in pt_regs->bx and zeroes it; POP_REGS restores it
    pushed = next(k for k, r in enumerate(c.rows) if r.pt_regs)
    assert [p.name for p in c.rows[pushed].pt_regs] == ["bx"]
    cleared = next(k for k, r in enumerate(c.rows) if k > pushed and not r.registers)
    assert a.steps[cleared].text == "xorl %ebx, %ebx"
    assert [p.name for p in c.rows[-1].registers] == ["rbx"]


def test_pti_off_lacks_the_cr3_switches_and_nothing_else() -> None:
    c = compare_traces(trace_of("getpid.toml"), trace_of("pti-off.toml"))
    assert c.counts()["right"] == 0
    for row in c.rows:
        if row.kind != "same":
            assert row.left is not None
            macro = c.left.steps[row.left].macro or ""
            assert "CR3" in macro
    assert c.paths_part is not None and c.first_difference is not None
    assert c.first_difference.position == 0  # the user CR3 differs from the start
    assert not c.outcome_differs


def test_kernel_rips_are_not_a_difference_but_user_rips_are() -> None:
    t = trace_of("getpid.toml")
    kernel_step = next(s for s in t.steps if s.cpl == 0)
    moved = kernel_step.regs.__class__(**{**kernel_step.regs.as_dict(), "rip": 1 << 63 | 0x10})
    assert diff.register_differences(kernel_step.regs, moved) == ()
    user = t.initial
    other = user.__class__(**{**user.as_dict(), "rip": user.rip + 2})
    assert [p.name for p in diff.register_differences(user, other)] == ["rip"]


def test_block_alignment_of_long_runs_still_pairs_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above the cell budget the middle is aligned block by block; the result stays a
    complete, ordered alignment with the common steps paired."""
    a, b = trace_of("getpid.toml"), trace_of("sigreturn-noncanonical.toml")
    full = compare_traces(a, b)
    monkeypatch.setattr(align, "FULL_ALIGNMENT_CELLS", 50)
    blocks = compare_traces(a, b)
    assert_alignment_is_complete(blocks)
    assert blocks.counts()["same"] >= full.counts()["same"] - 5


def test_json_and_summary_say_where_the_runs_part() -> None:
    c = compare_traces(trace_of("getpid.toml"), trace_of("check-rcx-eq-rip.toml"))
    data = json.loads(json.dumps(comparison_json(c)))
    assert data["identical"] is False
    assert (data["left"]["exit"], data["right"]["exit"]) == ("sysret", "iret")
    assert data["right"]["failed_check"] == "rcx_eq_rip"
    assert data["paths_part"]["checks"] == [{"name": "rcx_eq_rip", "left": "pass", "right": "fail"}]
    assert data["first_difference"]["pt_regs"] == [
        {"name": "ip", "left": "0x401007", "right": "0x401020"}
    ]
    assert len(data["rows"]) == len(c.rows)
    text = "\n".join(summary_lines(c))
    assert "first difference at row" in text and "rcx_eq_rip pass ≠ fail" in text
    assert "exit: A sysret" in text and "B iret (rcx_eq_rip failed)" in text


@pytest.mark.parametrize(("a", "b", "said"), [
    ("getpid.toml", "check-rcx-eq-rip.toml", "pt_regs after do_syscall_64: "),
    ("getpid.toml", "int80-getpid.toml",
     "pt_regs after the C side (A do_syscall_64, B do_int80_syscall_32): "),
    ("compat-syscall-amd.toml", "compat-syscall-ptrace-ip-iret.toml",
     "pt_regs after do_fast_syscall_32: "),
])  # fmt: skip
def test_the_summary_names_each_run_s_own_c_side(a: str, b: str, said: str) -> None:
    lines = summary_lines(compare_traces(trace_of(a), trace_of(b)))
    assert any(line.startswith(said) for line in lines), lines


def test_summary_of_identical_runs_says_so() -> None:
    t = trace_of("getpid.toml")
    assert any("identical" in line for line in summary_lines(compare_traces(t, t)))


@pytest.mark.parametrize(
    ("a", "b"),
    list(itertools.combinations(["enosys.toml", "exit.toml", "arch-prctl-set-gs.toml"], 2)),
)
def test_first_difference_is_never_after_the_paths_part(a: str, b: str) -> None:
    c = compare_traces(trace_of(a), trace_of(b))
    if c.paths_part is not None:
        assert c.first_difference is not None
        assert c.first_difference.position <= c.paths_part.position


LOOP = """
name = "loop"
[user]
code = "mov ${n}, %ecx; 1: {body}; jnz 1b; mov $39, %eax; syscall"
"""


def test_long_unlike_user_loops_still_pair_the_whole_kernel_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over the cell budget a block is split at steps that occur once on each side: the
    kernel path pairs up even though the user loops before it have nothing in common."""
    a = run_scenario(parse_scenario(LOOP.format(n=40, body="dec %ecx"), "a.toml"))
    b = run_scenario(parse_scenario(LOOP.format(n=40, body="sub $1, %ecx"), "b.toml"))
    monkeypatch.setattr(align, "FULL_ALIGNMENT_CELLS", 100)
    c = compare_traces(a, b)
    assert_alignment_is_complete(c)
    kernel_rows = [r for r in c.rows if r.left is not None and a.steps[r.left].cpl == 0]
    assert kernel_rows and all(r.kind == "same" for r in kernel_rows)
    assert len(kernel_rows) == sum(s.cpl == 0 for s in b.steps)


def test_the_summary_escapes_control_characters_in_names() -> None:
    evil = 'name = "getpid\\u001b[2J\\u0007"\n[user]\ncode = "mov $39, %eax; syscall"\n'
    t = run_scenario(parse_scenario(evil, "evil.toml"))
    text = "\n".join(summary_lines(compare_traces(t, trace_of("getpid.toml"))))
    assert "\x1b" not in text and "\x07" not in text
    assert "getpid\\x1b[2J\\x07" in text


def test_decisions_differ_where_a_verdict_or_the_exit_differs() -> None:
    moved = compare_traces(trace_of("getpid.toml"), trace_of("check-rcx-eq-rip.toml"))
    assert moved.decision is not None and moved.decision == moved.paths_part
    assert [x.name for x in moved.decision.checks] == ["rcx_eq_rip"]
    vendors = compare_traces(
        trace_of("cve-2012-0217-intel.toml"), trace_of("cve-2012-0217-amd.toml")
    )
    assert vendors.decision is not None and vendors.decision.position == len(vendors.rows)
    # PTI changes the path (no CR3 switches) but not a single decision
    pti = compare_traces(trace_of("getpid.toml"), trace_of("pti-off.toml"))
    assert pti.paths_part is not None and pti.decision is None


def test_a_check_one_run_has_not_reached_is_no_difference() -> None:
    getpid, moved = trace_of("getpid.toml"), trace_of("check-rcx-eq-rip.toml")
    at_end = diff.check_differences(getpid.steps[-1], moved.steps[-1])
    # getpid passed all six; the ptrace'd run failed the first and reached no other
    assert [(x.name, x.left, x.right) for x in at_end] == [("rcx_eq_rip", "pass", "fail")]


def test_landmarks_at_one_row_are_named_together() -> None:
    c = compare_traces(trace_of("getpid.toml"), trace_of("check-rcx-eq-rip.toml"))
    assert [names for names, _ in render.landmarks(c)] == [("first",), ("paths", "decision")]
    text = "\n".join(summary_lines(c))
    assert "paths part and decisions differ at row" in text


def test_v5_8_and_v6_12_decide_differently_on_the_last_page_below_task_size_max() -> None:
    """RIP 0x7ffffffff000 is canonical (v5.8.13: SYSRET) but not below TASK_SIZE_MAX
    (6.12: IRET). The kernels name their checks differently; their verdicts still meet."""
    name = "v6.12-fallthrough-to-task-size-max.toml"
    old, new = run(name, kernel="v5.8.13"), run(name, kernel="v6.12")
    assert (old.kernel, new.kernel) == ("v5.8.13", "v6.12")
    c = compare_traces(old, new)
    assert_alignment_is_complete(c)
    d = c.decision
    assert d is not None and d.verdicts == ("sysret", "iret")
    assert d.left is not None and d.right is not None
    # A's last check has just passed; B decided earlier, in C
    assert old.steps[d.left].text.startswith("jne")
    assert any(
        ch.name == "rip_below_task_size_max" and ch.result == "fail"
        for ch in new.steps[d.right].checks
    )
    assert {"exit", "failed_check"} <= set(c.outcome_differs)
    paths = c.paths_part
    assert paths is not None and paths.position < d.position  # 6.12's ENDBR comes first
    # the shared entry work pairs up: swapgs, the CR3 switch, the pt_regs pushes
    same = [old.steps[r.left].text for r in c.rows if r.kind == "same" and r.left is not None]
    assert "swapgs" in same and "pushq $0x2b" in same
    data = comparison_json(c)
    assert data["decision"]["verdicts"] == {"left": "sysret", "right": "iret"}


def test_a_removed_check_the_other_kernel_lacks_is_said_not_applied() -> None:
    from engine.scenario.parse import with_kernel

    sc = load_scenario(SCENARIOS / "cve-2012-0217-intel.toml")
    assert with_kernel(sc, "v6.1").not_removed == ()
    assert with_kernel(sc, "v6.1").name == sc.name
    right = with_kernel(sc, "v6.12")
    assert right.not_removed == ("canonical_rip",) and right.machine.removed_checks == ()
    assert "what-if" not in right.name and "not removed" in right.name
    c = compare_traces(run_scenario(sc), run_scenario(variant(sc, kernel="v6.12")))
    assert "B: remove_checks canonical_rip not applied: v6.12 has no such check" in summary_lines(c)
    data = comparison_json(c)
    assert (data["left"]["not_removed"], data["right"]["not_removed"]) == ([], ["canonical_rip"])
