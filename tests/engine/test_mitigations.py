"""The mitigation cost view: what each mitigation macro executed on the run's CPU model."""

from __future__ import annotations

import pytest

from engine import parse_scenario, run_scenario
from engine.mitigations import MITIGATIONS, mitigation_costs
from engine.views.json import trace_json
from engine.views.markdown import trace_markdown
from tests.conftest import trace_of


def costs(name: str) -> dict[str, tuple[int, bool]]:
    return {c.macro: (c.instructions, c.patched_out) for c in mitigation_costs(trace_of(name))}


def test_qemu_max_jumps_over_verw_and_skylake_runs_it() -> None:
    """6.1 on QEMU's default model patches CLEAR_CPU_BUFFERS to a jmp over VERW; on
    Skylake-Client (X86_BUG_MDS) to a NOP then VERW: one instruction more, doing work."""
    sky = costs("v6.1-skylake-client-verw.toml")
    assert sky["CLEAR_CPU_BUFFERS"] == (2, False)
    plain = run_scenario(parse_scenario('name = "t"\n[machine]\nkernel = "v6.1"\n', "t"))
    qemu = {c.macro: (c.instructions, c.patched_out) for c in mitigation_costs(plain)}
    assert qemu["CLEAR_CPU_BUFFERS"] == (1, True)
    assert qemu["IBRS_ENTER"][1] and qemu["UNTRAIN_RET"][1]  # nothing to do on this model


def test_epyc_rome_calls_the_srso_untraining_and_it_counts_as_untrain_ret() -> None:
    t = run_scenario(
        parse_scenario(
            'name = "t"\n[machine]\nkernel = "v6.12"\ncpu = "amd"\ncpu_model = "epyc-rome"\n', "t"
        )
    )
    c = {x.macro: x for x in mitigation_costs(t)}
    assert not c["UNTRAIN_RET"].patched_out and c["UNTRAIN_RET"].instructions > 3
    assert any(s.label == "srso_untrain_ret" for s in t.steps)


@pytest.mark.parametrize(("kernel", "user_switch"), [
    ("v5.8.13", (3, False)),  # the push and pop of RAX stay outside the ALTERNATIVE
    ("v6.1", (3, False)),
    ("v6.12", (1, True)),  # its ALTERNATIVE jumps over them too
])  # fmt: skip
def test_with_pti_off_the_cr3_switches_cost_what_each_kernel_left_of_them(
    kernel: str, user_switch: tuple[int, bool]
) -> None:
    t = run_scenario(
        parse_scenario(f'name = "t"\n[machine]\nkernel = "{kernel}"\npti = false\n', "t")
    )
    c = {x.macro: (x.instructions, x.patched_out) for x in mitigation_costs(t)}
    assert c["SWITCH_TO_KERNEL_CR3"] == (1, True)  # a jmp over the CR3 write
    assert c["SWITCH_TO_USER_CR3_STACK"] == user_switch


def test_the_counts_add_up_to_the_steps_in_those_macros() -> None:
    t = trace_of("v6.12-skylake-client-verw.toml")
    counted = sum(c.instructions for c in mitigation_costs(t))
    in_macros = sum(1 for s in t.steps if not s.is_c and s.macro in MITIGATIONS)
    assert counted >= in_macros > 0


@pytest.mark.parametrize("name", ["getpid.toml", "v6.1-skylake-client-verw.toml"])
def test_json_and_markdown_list_them(name: str) -> None:
    t = trace_of(name)
    data = trace_json(t, steps=False)["mitigations"]
    assert [m["macro"] for m in data] == [c.macro for c in mitigation_costs(t)]
    assert all(set(m) == {"macro", "answers", "instructions", "patched_out"} for m in data)
    doc = trace_markdown(t)
    assert "## Mitigations this run executed" in doc
    assert all(f"`{m['macro']}`" in doc for m in data)


def test_compare_on_two_cpu_models_says_what_the_mitigations_cost() -> None:
    from engine.compare.diff import compare_traces, variant
    from engine.compare.render import summary_lines

    sc = parse_scenario('name = "t"\n[machine]\nkernel = "v6.1"\n', "t")
    a = run_scenario(variant(sc, cpu_model="qemu-max"))
    b = run_scenario(variant(sc, cpu_model="skylake-client"))
    assert b.cpu == "intel"
    lines = [line for line in summary_lines(compare_traces(a, b)) if "mitigations" in line]
    assert len(lines) == 1 and "CLEAR_CPU_BUFFERS 1· → 2" in lines[0]
    same = summary_lines(compare_traces(a, a))
    assert not any("mitigations" in line for line in same)
