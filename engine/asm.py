"""A verified assembler: Keystone assembles, Capstone reads every instruction back.

Keystone 0.9.2 in AT&T mode is not to be trusted on its own:

* it reads decimal immediates and displacements as hex (``shl $16`` becomes
  ``shl $0x16``, ``movl $0, 12(%esp)`` stores to ``0x12(%esp)``):
  keystone-engine/keystone#569 and #571 (``ks_option`` forces radix 16).  The
  kernel code here is written in hex only, and :func:`hexify_decimals` rewrites
  the user's code before Keystone sees it.
* it encodes an absolute ``%gs:0x6014`` as RIP-relative (keystone-engine/keystone#400,
  #433; the base-less form in general: #295).  Writing the operand as
  ``%gs:0x6014(,%riz,1)`` gives the real encoding (SIB, no base, no index, disp32),
  which is what GNU as emits for the kernel's ``PER_CPU_VAR()``.
* it encodes ``nopl 0x0(%rax,%rax,1)`` as a 4-byte ``0f 18 24 00`` (a prefetch
  hint, not the 5-byte NOP the kernel pads alternatives with), so NOP padding is
  given as bytes.

A memory operand written ``[0x6014](%rip)`` is a RIP-relative reference to the
absolute address 0x6014 (6.12's ``%gs:sym(%rip)`` per-CPU operands, where the
displacement wraps RIP round to the per-CPU offset): :func:`assemble` works out the
displacement once it knows where the instruction ends.

So every instruction is disassembled by Capstone and compared with the intended
text; a mismatch raises :class:`AssemblyError` at build time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from capstone import CS_ARCH_X86, CS_MODE_64, CS_OPT_SYNTAX_ATT, Cs
from keystone import KS_ARCH_X86, KS_MODE_64, KS_OPT_SYNTAX_ATT, Ks, KsError

from engine.errors import AssemblyError


@functools.cache
def keystone() -> Ks:
    ks = Ks(KS_ARCH_X86, KS_MODE_64)
    ks.syntax = KS_OPT_SYNTAX_ATT
    return ks


@functools.cache
def capstone() -> Cs:
    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    cs.syntax = CS_OPT_SYNTAX_ATT
    return cs


def disasm_one(code: bytes, address: int) -> tuple[str, int] | None:
    """Capstone's AT&T text of the first instruction in *code*, and its size."""
    for insn in capstone().disasm(code, address, 1):
        text = f"{insn.mnemonic} {insn.op_str}".strip()
        return text, insn.size
    return None


_GS_ABS = re.compile(r"%gs:(-?0x[0-9a-fA-F]+|\d+)(?![0-9a-fA-Fx]|\s*\()")


def keystone_form(text: str) -> str:
    """The text to give Keystone for an intended AT&T instruction (see the module doc)."""
    return _GS_ABS.sub(lambda m: f"%gs:{m.group(1)}(,%riz,1)", text)


_NUMBER = re.compile(r"(?<![\w.%])(-?)(0x[0-9a-fA-F]+|\d+)(?![\w])")
# Not: part of a name (%r8, label2), hex (0x..), a local label (1:, 1b, 1f).
_DECIMAL = re.compile(r"(?<![\w.%])(-?)(\d+)(?![\wx:])")
_SCALE = re.compile(r",\s*(\d)\s*\)")


def hexify_decimals(line: str) -> str:
    """Rewrite decimal numbers in one AT&T statement as hex (keystone#569).

    Register names (``%r8``), hex numbers, index scales (``(,%rax,8)``) and
    local-label references are left alone.
    """
    scales = [m.span(1) for m in _SCALE.finditer(line)]

    def repl(m: re.Match[str]) -> str:
        if any(a <= m.start(2) < b for a, b in scales):
            return m.group(0)
        return f"{m.group(1)}{int(m.group(2)):#x}"

    return _DECIMAL.sub(repl, line)


# Mnemonics that name the same opcode; Capstone prints the first of each pair.
_ALIASES = {"jnz": "jne", "jz": "je", "jnc": "jae", "jc": "jb", "jnae": "jb", "jnb": "jae"}


def _mnemonic_equal(a: str, b: str) -> bool:
    a, b = _ALIASES.get(a, a), _ALIASES.get(b, b)
    if a == b:
        return True
    strict = {"sysret", "sysretq", "sysretl", "iret", "iretq", "iretl"}
    if a in strict or b in strict:
        return False
    return (a[:-1] == b and a[-1] in "qlwb") or (b[:-1] == a and b[-1] in "qlwb")


def _canon_operands(ops: str) -> str:
    ops = ops.replace("(,%riz,1)", "").replace(" ", "").lower()
    return _NUMBER.sub(lambda m: hex(int(m.group(1) + m.group(2), 0)), ops)


def same_instruction(intended: str, decoded: str) -> bool:
    """True when Capstone's *decoded* text is the *intended* AT&T instruction.

    Operand-size suffixes Capstone adds (``shl``/``shlq``) and how it prints a
    number (``$4``/``$0x4``) do not matter; anything else does.
    """
    im, _, io = intended.strip().partition(" ")
    dm, _, do = decoded.strip().partition(" ")
    return _mnemonic_equal(im.lower(), dm.lower()) and _canon_operands(io) == _canon_operands(do)


@dataclass(frozen=True, slots=True)
class Item:
    """One instruction to assemble: *text* as Capstone should read it back.

    ``asm`` overrides what Keystone is given (NOP padding as ``.byte``);
    branch targets may name labels; ``meta`` rides along untouched.
    """

    text: str
    asm: str | None = None
    meta: Any = None


@dataclass(frozen=True, slots=True)
class Label:
    name: str


@dataclass(frozen=True, slots=True)
class Assembled:
    address: int
    code: bytes
    text: str  # Capstone's text
    item: Item


def _substitute_labels(text: str, labels: dict[str, int]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(0)
        return f"{labels[name]:#x}" if name in labels else name

    return re.sub(r"(?<![%$\w.])[A-Za-z_.][\w.]*", repl, text)


_RIP_ABS = re.compile(r"\[(0x[0-9a-fA-F]+)\]\(%rip\)")


def _rip_relative(text: str, end: int | None) -> str:
    """Resolve ``[abs](%rip)`` for an instruction ending at *end* (None: a placeholder)."""

    def repl(m: re.Match[str]) -> str:
        if end is None:
            return "0x0(%rip)"
        disp = (int(m.group(1), 16) - end) & ((1 << 64) - 1)
        if disp >= 1 << 63:
            disp -= 1 << 64
        if not -(1 << 31) <= disp < 1 << 31:
            raise AssemblyError(f"{m.group(1)} is out of RIP-relative reach from {end:#x}")
        return f"{'-' if disp < 0 else ''}{abs(disp):#x}(%rip)"

    return _RIP_ABS.sub(repl, text)


def _encode(item: Item, address: int, labels: dict[str, int]) -> bytes:
    if item.asm is None and _RIP_ABS.search(item.text):
        # a RIP-relative disp32 does not change the length: measure, then resolve
        size = len(_encode(Item(_rip_relative(item.text, None)), address, labels))
        return _encode(Item(_rip_relative(item.text, address + size)), address, labels)
    source = item.asm if item.asm is not None else keystone_form(item.text)
    if item.asm is None:
        mnem, _, ops = source.partition(" ")
        source = f"{mnem} {_substitute_labels(ops, labels)}".strip()
    try:
        encoding, _count = keystone().asm(source, address)
    except KsError as exc:
        raise AssemblyError(f"Keystone cannot assemble {source!r}: {exc}") from None
    if not encoding:
        raise AssemblyError(f"Keystone produced no bytes for {source!r}")
    return bytes(encoding)


def assemble(
    items: Sequence[Item | Label], base: int, externals: dict[str, int] | None = None
) -> tuple[list[Assembled], dict[str, int]]:
    """Lay out *items* from *base*, resolving labels, and verify every instruction.

    *externals* are symbols defined elsewhere (``do_syscall_64``).  Branch sizes
    depend on distances, so the layout is repeated until the addresses settle.
    """
    ext = dict(externals or {})
    labels: dict[str, int] = ext | {it.name: base for it in items if isinstance(it, Label)}
    sizes: dict[int, int] = {}
    for _ in range(12):
        addr = base
        new_labels: dict[str, int] = dict(ext)
        new_sizes: dict[int, int] = {}
        for idx, it in enumerate(items):
            if isinstance(it, Label):
                new_labels[it.name] = addr
                continue
            size = len(_encode(it, addr, labels))
            new_sizes[idx] = size
            addr += size
        if new_labels == labels and new_sizes == sizes:
            break
        labels, sizes = new_labels, new_sizes
    else:  # pragma: no cover - would need a pathological layout
        raise AssemblyError("label layout did not settle")

    out: list[Assembled] = []
    addr = base
    for it in items:
        if isinstance(it, Label):
            continue
        code = _encode(it, addr, labels)
        decoded = disasm_one(code, addr)
        intended = _substitute_labels(_rip_relative(it.text, addr + len(code)), labels)
        if decoded is None or decoded[1] != len(code):
            raise AssemblyError(
                f"Keystone's bytes {code.hex()} for {it.text!r} are not one instruction"
            )
        if not same_instruction(intended, decoded[0]):
            raise AssemblyError(
                f"Keystone misassembled {it.text!r} at {addr:#x}: bytes {code.hex()} "
                f"read back as {decoded[0]!r}"
            )
        out.append(Assembled(addr, code, decoded[0], it))
        addr += len(code)
    return out, labels
