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
from capstone.x86 import X86_OP_MEM

from engine.constants import EXCEPTION_NAMES
from engine.machine import Machine
from engine.model import error_code
from engine.paging import NX, US
from engine.trace import Fault

#: Exception vectors the engine names (Intel SDM vol. 3A, table 6-1).
VEC_DB, VEC_BP, VEC_UD, VEC_GP, VEC_PF = 1, 3, 6, 13, 14

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


def from_interrupt(m: Machine, intno: int, rip: int, cpl: int, cr3: int, cr2: int) -> Fault:
    """The :class:`Fault` for exception *intno* as Unicorn raised it."""
    name = EXCEPTION_NAMES.get(intno, f"INT {intno:#x}")
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


__all__ = ["VEC_BP", "VEC_DB", "VEC_GP", "VEC_PF", "VEC_UD", "from_interrupt", "is_io"]
