"""The 32-bit vDSO's system-call entry, ``__kernel_vsyscall``, as a 32-bit task maps it.

arch/x86/entry/vdso/vdso32/system_call.S, the same on v5.8.13, 6.1 and 6.12: push ECX,
EDX and EBP; then, patched at boot by ``ALTERNATIVE_2 "", SYSENTER_SEQUENCE,
X86_FEATURE_SYSENTER32, SYSCALL_SEQUENCE, X86_FEATURE_SYSCALL32``, ``movl %esp, %ebp;
sysenter`` on Intel (intel.c sets SYSENTER32 on a 64-bit kernel) or ``movl %ecx, %ebp;
syscall`` on AMD (amd.c sets SYSCALL32); ``int $0x80`` after it, where the CPU has
neither; then ``int80_landing_pad``, where do_fast_syscall_32 sends every fast return:
pop EBP, EDX and ECX, and ret.

The bytes are written here, not assembled (ten instructions once patched); a test
decodes each with Capstone and holds it to its text.  The image's layout inside the page
(__kernel_vsyscall at :data:`KERNEL_VSYSCALL_OFFSET`) is this machine's: the real image
starts with its ELF headers and the other vDSO functions, and its offsets vary by build.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from engine.layout import PAGE, VDSO32_BASE

#: Where __kernel_vsyscall starts in the vDSO page (this machine's choice, see above).
KERNEL_VSYSCALL_OFFSET = 0x570

SOURCE = "arch/x86/entry/vdso/vdso32/system_call.S"


@dataclass(frozen=True, slots=True)
class VdsoLine:
    """One instruction of the vDSO: its address, bytes, AT&T text and the source line."""

    address: int
    code: bytes
    text: str
    source: str


@dataclass(frozen=True, slots=True)
class Vdso32:
    """The vDSO page of a 32-bit task on a CPU of one vendor."""

    base: int
    page: bytes
    lines: tuple[VdsoLine, ...]
    symbols: Mapping[str, int]

    def line_at(self, address: int) -> VdsoLine | None:
        return next((x for x in self.lines if x.address == address), None)

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + PAGE


def _program(cpu: str) -> list[tuple[str | None, bytes, str, str]]:
    """(label, bytes, text, source line) of __kernel_vsyscall as *cpu*'s boot patched it."""
    fast = (
        [(b"\x89\xe5", "movl %esp, %ebp"), (b"\x0f\x34", "sysenter")]
        if cpu == "intel"
        else [(b"\x89\xcd", "movl %ecx, %ebp"), (b"\x0f\x05", "syscall")]
    )
    alt = (
        'ALTERNATIVE_2 "", SYSENTER_SEQUENCE, X86_FEATURE_SYSENTER32, '
        "SYSCALL_SEQUENCE, X86_FEATURE_SYSCALL32"
    )
    return [
        ("__kernel_vsyscall", b"\x51", "pushl %ecx", "pushl %ecx"),
        (None, b"\x52", "pushl %edx", "pushl %edx"),
        (None, b"\x55", "pushl %ebp", "pushl %ebp"),
        *((None, code, text, alt) for code, text in fast),
        (None, b"\xcd\x80", "int $0x80", "int $0x80"),
        ("int80_landing_pad", b"\x5d", "popl %ebp", "popl %ebp"),
        (None, b"\x5a", "popl %edx", "popl %edx"),
        (None, b"\x59", "popl %ecx", "popl %ecx"),
        (None, b"\xc3", "retl", "RET"),
    ]


@functools.cache
def vdso32(cpu: str) -> Vdso32:
    """The vDSO page a 32-bit task has on a CPU of vendor *cpu* ("intel" or "amd"), made
    once per vendor and shared (it is immutable)."""
    page = bytearray(PAGE)
    lines: list[VdsoLine] = []
    symbols: dict[str, int] = {}
    at = VDSO32_BASE + KERNEL_VSYSCALL_OFFSET
    for label, code, text, source in _program(cpu):
        if label is not None:
            symbols[label] = at
        shown = f"{label}: {source}" if label is not None else source
        lines.append(VdsoLine(at, code, text, f"{shown}   /* vDSO, {SOURCE} */"))
        off = at - VDSO32_BASE
        page[off : off + len(code)] = code
        at += len(code)
    return Vdso32(VDSO32_BASE, bytes(page), tuple(lines), MappingProxyType(symbols))


__all__ = ["KERNEL_VSYSCALL_OFFSET", "SOURCE", "Vdso32", "VdsoLine", "vdso32"]
