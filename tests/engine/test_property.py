"""Random pt_regs writes give the exit and failing check the six v5.8 checks predict."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Session, parse_scenario
from engine.constants import MASK64, RF, TF, USER_CS, USER_DS, sign_extend
from engine.scenario.model import Scenario

BASE = parse_scenario('name = "property"\n[user]\ncode = "mov $39, %eax; syscall"', "property.toml")
SESSION = Session(BASE)
RET = BASE.rip + 7  # where the syscall returns

addresses = st.sampled_from(
    [RET, RET + 0x10, 0x7FFFFFFFF000, 0x800000000000, 0xFFFF800000000000, 0x0000800000001000,
     0x00007FFFFFFFFFFF, 0xFFFFFFFFFFFFF000]
)  # fmt: skip
selectors = st.sampled_from([USER_CS, USER_DS, 0x23, 0x1B, 0x33])
flags = st.integers(0, 0x3FFFFF).map(lambda f: (f | 2) & ~0x3000) | st.sampled_from(
    [0x246, 0x246 | RF, 0x246 | TF, 0x202]
)


def predict(f: dict[str, int]) -> str | None:
    """The v5.8 checks, in order, from the pt_regs the exit path reads."""
    if f["cx"] != f["ip"]:
        return "rcx_eq_rip"
    if sign_extend(f["cx"]) != f["ip"]:
        return "canonical_rip"
    if f["cs"] != USER_CS:
        return "cs_user"
    if f["r11"] != f["flags"]:
        return "r11_eq_rflags"
    if f["r11"] & (RF | TF):
        return "no_rf_tf"
    if f["ss"] != USER_DS:
        return "ss_user"
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ip=addresses,
    same_cx=st.booleans(),
    cx=addresses,
    cs=selectors,
    ss=selectors,
    r11=flags,
    same_flags=st.booleans(),
    fl=flags,
)
def test_checks_predict_exit(
    ip: int, same_cx: bool, cx: int, cs: int, ss: int, r11: int, same_flags: bool, fl: int
) -> None:
    writes = {"ip": ip, "cx": ip if same_cx else cx, "cs": cs, "ss": ss, "r11": r11,
              "flags": r11 if same_flags else fl}  # fmt: skip
    sc = Scenario(**{**{f: getattr(BASE, f) for f in BASE.__dataclass_fields__},
                     "handler_set": writes})  # fmt: skip
    trace = SESSION.run(False, sc)
    expected = predict(writes)
    assert trace.failed_check == expected
    assert trace.exit == ("sysret" if expected is None else "iret")
    after = trace.pt_regs_after_call
    assert {k: after[k] for k in writes} == {k: v & MASK64 for k, v in writes.items()}
