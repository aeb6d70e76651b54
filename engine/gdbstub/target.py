"""The x86-64 target description gdb gets (qXfer:features:read) and its registers.

Feature and register names follow gdb's own i386/64bit-core.xml, 64bit-sse.xml and
64bit-segments.xml, so gdb (and pwndbg/GEF on top of it) treat the target as a plain
amd64 machine.  The system registers gdb has no standard feature for go in one of
this program's own, with the names QEMU's gdb stub uses (k_gs_base, cr0..cr8, efer),
plus the MSRs SYSCALL is set up by (lstar, star, cstar, fmask: the names of the patch
that adds them to QEMU's i386-64bit.xml), since they are what this program is about.
Every value is read from the replayed Unicorn machine at the current position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from unicorn import x86_const as X

from engine.constants import MSR_CSTAR, MSR_LSTAR, MSR_STAR, MSR_SYSCALL_MASK
from engine.gdbstub.replay import (
    MSR_EFER,
    MSR_FS_BASE,
    MSR_GS_BASE,
    MSR_KERNEL_GS_BASE,
    Replay,
)


@dataclass(frozen=True, slots=True)
class Register:
    name: str
    bits: int
    type: str
    group: str
    feature: str
    read: Callable[[Replay], int]


def _uc(name: str) -> Callable[[Replay], int]:
    uc_id = getattr(X, f"UC_X86_REG_{name}")
    return lambda r: int(r.reg(uc_id))


def _msr(msr: int) -> Callable[[Replay], int]:
    return lambda r: r.msr(msr)


def _st(i: int) -> Callable[[Replay], int]:
    # Unicorn hands an x87 register over as (64-bit significand, 16-bit sign+exponent).
    uc_id = getattr(X, f"UC_X86_REG_FP{i}")

    def read(r: Replay) -> int:
        mantissa, exponent = r.reg(uc_id)
        return int(mantissa) | (int(exponent) & 0xFFFF) << 64

    return read


CORE, SSE, SEGMENTS, SYSTEM = (
    "org.gnu.gdb.i386.core",
    "org.gnu.gdb.i386.sse",
    "org.gnu.gdb.i386.segments",
    "org.syscall-tui.x86.sys",
)


def _registers() -> tuple[Register, ...]:
    regs: list[Register] = []
    add = lambda *a: regs.append(Register(*a))
    for n in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
              "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"):  # fmt: skip
        kind = "data_ptr" if n in ("rbp", "rsp") else "int64"
        add(n, 64, kind, "general", CORE, _uc(n.upper()))
    add("rip", 64, "code_ptr", "general", CORE, _uc("RIP"))
    add("eflags", 32, "i386_eflags", "general", CORE, _uc("EFLAGS"))
    for n in ("cs", "ss", "ds", "es", "fs", "gs"):
        add(n, 32, "int32", "general", CORE, _uc(n.upper()))
    for i in range(8):
        add(f"st{i}", 80, "i387_ext", "float", CORE, _st(i))
    for n, uc_name in (("fctrl", "FPCW"), ("fstat", "FPSW"), ("ftag", "FPTAG"),
                       ("fiseg", "FCS"), ("fioff", "FIP"), ("foseg", "FDS"),
                       ("fooff", "FDP"), ("fop", "FOP")):  # fmt: skip
        add(n, 32, "int", "float", CORE, _uc(uc_name))
    for i in range(16):
        add(f"xmm{i}", 128, "vec128", "vector", SSE, _uc(f"XMM{i}"))
    add("mxcsr", 32, "i386_mxcsr", "vector", SSE, _uc("MXCSR"))
    add("fs_base", 64, "int", "system", SEGMENTS, _msr(MSR_FS_BASE))
    add("gs_base", 64, "int", "system", SEGMENTS, _msr(MSR_GS_BASE))
    add("k_gs_base", 64, "int", "system", SYSTEM, _msr(MSR_KERNEL_GS_BASE))
    for n in ("cr0", "cr2", "cr3", "cr4", "cr8"):
        add(n, 64, "int", "system", SYSTEM, _uc(n.upper()))
    add("efer", 64, "int", "system", SYSTEM, _msr(MSR_EFER))
    add("star", 64, "int", "system", SYSTEM, _msr(MSR_STAR))
    add("lstar", 64, "code_ptr", "system", SYSTEM, _msr(MSR_LSTAR))
    add("cstar", 64, "code_ptr", "system", SYSTEM, _msr(MSR_CSTAR))
    add("fmask", 64, "int", "system", SYSTEM, _msr(MSR_SYSCALL_MASK))
    return tuple(regs)


#: The registers in the order of the description: gdb's remote register numbers.
REGISTERS: tuple[Register, ...] = _registers()
REGISTER_INDEX: dict[str, int] = {r.name: i for i, r in enumerate(REGISTERS)}

_EFLAGS = (("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8),
           ("IF", 9), ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17),
           ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21))  # fmt: skip
_MXCSR = ("IE", "DE", "ZE", "OE", "UE", "PE", "DAZ", "IM", "DM", "ZM", "OM", "UM", "PM", "FZ")

_TYPES = {
    CORE: "".join(
        ['<flags id="i386_eflags" size="4">']
        + [f'<field name="{n}" start="{b}" end="{b}"/>' for n, b in _EFLAGS]
        + ["</flags>"]
    ),
    SSE: "".join(
        [
            '<vector id="v4f" type="ieee_single" count="4"/>',
            '<vector id="v2d" type="ieee_double" count="2"/>',
            '<vector id="v16i8" type="int8" count="16"/>',
            '<vector id="v8i16" type="int16" count="8"/>',
            '<vector id="v4i32" type="int32" count="4"/>',
            '<vector id="v2i64" type="int64" count="2"/>',
            '<union id="vec128"><field name="v4_float" type="v4f"/>',
            '<field name="v2_double" type="v2d"/><field name="v16_int8" type="v16i8"/>',
            '<field name="v8_int16" type="v8i16"/><field name="v4_int32" type="v4i32"/>',
            '<field name="v2_int64" type="v2i64"/><field name="uint128" type="uint128"/>',
            '</union><flags id="i386_mxcsr" size="4">',
        ]
        + [f'<field name="{n}" start="{b}" end="{b}"/>' for b, n in enumerate(_MXCSR)]
        + ["</flags>"]
    ),
}


def target_xml() -> str:
    """The whole description in one document (no xi:include round trips)."""
    parts = ['<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">',
             '<target version="1.0"><architecture>i386:x86-64</architecture>']  # fmt: skip
    for feature in (CORE, SSE, SEGMENTS, SYSTEM):
        parts.append(f'<feature name="{feature}">{_TYPES.get(feature, "")}')
        for r in REGISTERS:
            if r.feature == feature:
                parts.append(
                    f'<reg name="{r.name}" bitsize="{r.bits}" type="{r.type}" group="{r.group}"/>'
                )
        parts.append("</feature>")
    parts.append("</target>")
    return "".join(parts)


def register_hex(replay: Replay, index: int) -> str:
    """Register *index* at the replay's current position, as gdb wants it (little-endian hex)."""
    r = REGISTERS[index]
    value = r.read(replay) & ((1 << r.bits) - 1)
    return value.to_bytes(r.bits // 8, "little").hex()


__all__ = ["REGISTERS", "REGISTER_INDEX", "Register", "register_hex", "target_xml"]
