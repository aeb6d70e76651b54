"""CPU exceptions as the trace records them.

The vector, CPL, RIP and CR2 are Unicorn's: the UC_HOOK_INTR hook receives the
vector with the CPU still in the state of the fault (RIP at the faulting
instruction, or past it for a trap such as #BP), and CR2 as the MMU set it.  The
error code is not reported by Unicorn (it never delivers the exception through the
IDT), so :func:`engine.model.error_code` supplies it, from the page walk for a #PF.
"""

from __future__ import annotations

import functools
import re

from capstone import CS_AC_WRITE, CS_ARCH_X86, CS_MODE_64, Cs
from capstone.x86 import X86_INS_MOV, X86_INS_POP, X86_OP_MEM, X86_OP_REG
from unicorn import x86_const as X

from engine.constants import EXCEPTION_NAMES, VEC_GP, VEC_NP, VEC_PF, VEC_SS
from engine.machine import Machine
from engine.model import error_code, iret_fault, segment_load_error_code
from engine.paging import NX, US
from engine.trace import Fault

#: IRETQ (REX.W CF).
IRETQ = b"\x48\xcf"

#: The longest x86 instruction: a fetch fault is at most this far past RIP.
MAX_INSN = 15

#: IN, OUT, INS and OUTS in Capstone's AT&T spelling (inb, outl, insb, rep outsw, ...).
_IO = re.compile(r"^(?:in|out)s?[bwl]?$")

#: Instructions that write memory without a memory operand Capstone marks as written.
_IMPLICIT_WRITES = ("push", "call", "enter", "stos", "movs")


def is_io(text: str) -> bool:
    """Whether Capstone's *text* is a port I/O instruction."""
    words = [w for w in text.split() if not w.startswith("rep")]
    return bool(words) and bool(_IO.match(words[0]))


@functools.cache
def _detailed() -> Cs:
    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    cs.detail = True
    return cs


def writes_memory(code: bytes, address: int) -> bool:
    """Whether the instruction in *code* writes memory (for a #PF's W bit)."""
    for insn in _detailed().disasm(code, address, 1):
        if insn.mnemonic.split()[-1].startswith(_IMPLICIT_WRITES):
            return True
        return any(op.type == X86_OP_MEM and op.access & CS_AC_WRITE for op in insn.operands)
    return False


def _executable(m: Machine, cr3: int, vaddr: int, cpl: int) -> bool:
    w = m.walk(cr3, vaddr)
    return w.mapped and not w.flags & NX and (cpl < 3 or bool(w.flags & US))


def _descriptor(m: Machine, cr3: int, selector: int) -> int | None:
    """The descriptor *selector* names in the GDT or LDT as loaded, None past the limit."""
    table = m.uc.reg_read(X.UC_X86_REG_LDTR if selector & 4 else X.UC_X86_REG_GDTR)
    base, limit = table[-3], table[-2]  # (selector,) base, limit, flags
    if selector & 4 and table[0] & ~3 == 0:
        return None  # no LDT loaded
    offset = selector & ~7
    if offset + 7 > limit:
        return None
    raw = m.read_virt(cr3, base + offset, 8)
    return None if raw is None else int.from_bytes(raw, "little")


#: The segment registers MOV and POP load, by Capstone's name.
_SEGMENT_REGS = ("ds", "es", "fs", "gs", "ss")


def _register(m: Machine, name: str) -> int | None:
    reg = getattr(X, f"UC_X86_REG_{name.upper()}", None)
    return None if reg is None else int(m.uc.reg_read(reg))


def _segment_load(m: Machine, cr3: int, rip: int) -> tuple[str, int | None] | None:
    """(segment register, selector) when the instruction at *rip* is a MOV or POP into a
    segment register; the selector is None when it cannot be read (a memory operand
    through a segment override, or memory the page tables do not map)."""
    code = m.read_virt(cr3, rip, MAX_INSN) or b""
    for insn in _detailed().disasm(code, rip, 1):
        if insn.id not in (X86_INS_MOV, X86_INS_POP):
            return None
        ops = list(insn.operands)
        seg = next(
            (op for op in ops if op.type == X86_OP_REG and insn.reg_name(op.reg) in _SEGMENT_REGS
             and op.access & CS_AC_WRITE),
            None,
        )  # fmt: skip
        if seg is None:
            return None
        name = insn.reg_name(seg.reg)
        if insn.id == X86_INS_POP:
            raw = m.read_virt(cr3, int(m.uc.reg_read(X.UC_X86_REG_RSP)), 2)
            return name, None if raw is None else int.from_bytes(raw, "little")
        source = next(op for op in ops if op is not seg)
        if source.type == X86_OP_REG:
            value = _register(m, insn.reg_name(source.reg))
            return name, None if value is None else value & 0xFFFF
        mem = source.mem
        if mem.segment:
            return name, None
        base = 0
        if mem.base:
            base_name = insn.reg_name(mem.base)
            base = rip + insn.size if base_name == "rip" else _register(m, base_name) or 0
        index = _register(m, insn.reg_name(mem.index)) or 0 if mem.index else 0
        address = (base + index * mem.scale + mem.disp) & (2**64 - 1)
        raw = m.read_virt(cr3, address, 2)
        return name, None if raw is None else int.from_bytes(raw, "little")
    return None


def _iret_error_code(m: Machine, intno: int, rip: int, cr3: int, cpl: int) -> int | None:
    """The error code of a #GP/#NP/#SS Unicorn raised on IRETQ: the CS or SS selector of
    the frame it refused (or 0), per :func:`engine.model.iret_fault`; None when the
    model does not find the fault Unicorn raised."""
    rsp = int(m.uc.reg_read(X.UC_X86_REG_RSP))
    frame = m.read_virt(cr3, rsp, 5 * 8)
    if frame is None:
        return None
    cs, ss = (int.from_bytes(frame[i * 8 : i * 8 + 2], "little") for i in (1, 4))
    vector, code = iret_fault(cs, ss, functools.partial(_descriptor, m, cr3), cpl)
    return code if vector == intno else None


def from_interrupt(m: Machine, intno: int, rip: int, cpl: int, cr3: int, cr2: int) -> Fault:
    """The :class:`Fault` for exception *intno* as Unicorn raised it."""
    name = EXCEPTION_NAMES.get(intno, f"INT {intno:#x}")
    if intno in (VEC_GP, VEC_NP, VEC_SS) and m.read_virt(cr3, rip, 2) == IRETQ:
        selector_code = _iret_error_code(m, intno, rip, cr3, cpl)
        return Fault(intno, name, cpl, rip, None, False, "", selector_code)
    if intno in (VEC_GP, VEC_NP, VEC_SS):
        load = _segment_load(m, cr3, rip)
        if load is not None:
            register, selector = load
            load_code = None if selector is None else segment_load_error_code(register, selector)
            return Fault(intno, name, cpl, rip, None, False, "", load_code)
    if intno != VEC_PF:
        return Fault(intno, name, cpl, rip, None, False, "", error_code(intno))
    fetch = rip <= cr2 < rip + MAX_INSN and not _executable(m, cr3, cr2, cpl)
    code = b"" if fetch else (m.read_virt(cr3, rip, MAX_INSN) or b"")
    pf = error_code(
        VEC_PF,
        present=m.walk(cr3, cr2).mapped,
        write=not fetch and writes_memory(code, rip),
        user=cpl == 3,
        fetch=fetch,
    )
    return Fault(intno, name, cpl, rip, cr2, False, "", pf)


__all__ = ["from_interrupt", "is_io", "writes_memory"]
