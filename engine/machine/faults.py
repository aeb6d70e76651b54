"""CPU exceptions as the trace records them.

The vector, CPL, RIP and CR2 are Unicorn's: the UC_HOOK_INTR hook receives the
vector with the CPU still in the state of the fault (RIP at the faulting
instruction, or past it for a trap such as #BP), and CR2 as the MMU set it.  The
error code is not reported by Unicorn (it never delivers the exception through the
IDT), so :func:`engine.machine.modelled.error_code` supplies it, from the page walk for a #PF.
"""

from __future__ import annotations

import functools
import re

from capstone import CS_AC_WRITE, CS_ARCH_X86, CS_MODE_64, Cs
from capstone.x86 import (
    X86_INS_CALL,
    X86_INS_ENTER,
    X86_INS_IRETQ,
    X86_INS_LCALL,
    X86_INS_LEA,
    X86_INS_LEAVE,
    X86_INS_MOV,
    X86_INS_NOP,
    X86_INS_POP,
    X86_INS_POPF,
    X86_INS_POPFQ,
    X86_INS_PUSH,
    X86_INS_PUSHF,
    X86_INS_PUSHFQ,
    X86_INS_RET,
    X86_INS_RETF,
    X86_INS_RETFQ,
    X86_OP_MEM,
    X86_OP_REG,
)
from unicorn import UC_ERR_INSN_INVALID, UcError
from unicorn import x86_const as X

from engine.constants import (
    EXCEPTION_NAMES,
    VEC_GP,
    VEC_NP,
    VEC_PF,
    VEC_SS,
    VEC_UD,
    is_canonical,
)  # fmt: skip
from engine.i18n import N_, msg
from engine.machine.core import Machine
from engine.machine.modelled import (
    error_code,
    far_jump_fault,
    iret_fault,
    return_cs_fault,
    segment_load_error_code,
    stack_fault,
)
from engine.machine.paging import NX, US
from engine.trace import Fault

#: IRETQ (REX.W CF).
IRETQ = b"\x48\xcf"

#: The longest x86 instruction: a fetch fault is at most this far past RIP.
MAX_INSN = 15

#: IN, OUT, INS and OUTS in Capstone's AT&T spelling (inb, outl, insb, rep outsw, ...).
_IO = re.compile(r"^(?:in|out)s?[bwl]?$")

#: Instructions that write memory without a memory operand Capstone marks as written.
_IMPLICIT_WRITES = ("push", "call", "enter", "stos", "movs")


def fault_from_ucerror(exc: UcError, rip: int, cpl: int) -> tuple[Fault, str, str]:
    """An error Unicorn's emu_start raised, as the run's fault: the fault, its event's
    text and why the run stopped.  Unicorn reports #UD as an error from emu_start
    instead of interrupt 6; anything else is an emulation error, said as such."""
    if exc.errno == UC_ERR_INSN_INVALID:
        fault = Fault(VEC_UD, "#UD", cpl, rip, None, False, N_("invalid opcode"))
        stopped = msg("{fault} at CPL {cpl}, RIP {rip:#x}", fault="#UD", cpl=cpl, rip=rip)
        return fault, fault.describe(), stopped
    fault = Fault(-1, "unicorn", cpl, rip, None, False, str(exc))
    text = msg("emulation error at {rip:#x}: {error}", rip=rip, error=str(exc))
    return fault, text, msg("emulation error: {error}", error=str(exc))


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


def _address(m: Machine, insn, op) -> int:  # type: ignore[no-untyped-def]
    """The address (before any FS/GS base) of Capstone's memory operand *op*."""
    mem = op.mem
    base = 0
    if mem.base:
        base_name = insn.reg_name(mem.base)
        base = insn.address + insn.size if base_name == "rip" else _register(m, base_name) or 0
    index = _register(m, insn.reg_name(mem.index)) or 0 if mem.index else 0
    return (base + index * mem.scale + mem.disp) & (2**64 - 1)


#: Far JMP and CALL through memory (FF /5, FF /3) and far RET (CB, CA iw).
_FAR_INDIRECT = (3, 5)
_RETF = (0xCB, 0xCA)


def _offset_size(insn) -> int:  # type: ignore[no-untyped-def]
    """The size of the offset a far transfer reads: 8 with REX.W, 2 with 66h, else 4."""
    return 8 if insn.rex & 8 else 2 if 0x66 in insn.prefix else 4


def _far_transfer(m: Machine, cr3: int, rip: int, cpl: int) -> tuple[int, int] | bool | None:
    """The model's (vector, error code) for the far RET, JMP or CALL at *rip*; None when
    the model does not cover it (a call gate, or the selector cannot be read); False
    when the instruction is no far transfer."""
    code = m.read_virt(cr3, rip, MAX_INSN) or b""
    for insn in _detailed().disasm(code, rip, 1):
        opcode, size = insn.opcode[0], _offset_size(insn)
        descriptor = functools.partial(_descriptor, m, cr3)
        if opcode in _RETF:
            raw = m.read_virt(cr3, int(m.uc.reg_read(X.UC_X86_REG_RSP)) + size, 2)
            cs = None if raw is None else int.from_bytes(raw, "little")
            return None if cs is None else return_cs_fault(cs, descriptor, cpl)
        if opcode == 0xFF and (insn.modrm >> 3) & 7 in _FAR_INDIRECT and insn.operands:
            op = insn.operands[0]
            if op.type != X86_OP_MEM or op.mem.segment:
                return None
            raw = m.read_virt(cr3, _address(m, insn, op) + size, 2)
            cs = None if raw is None else int.from_bytes(raw, "little")
            return None if cs is None else far_jump_fault(cs, descriptor, cpl)
    return False


#: Stack pushes and pops by Capstone id: the bytes each moves (None: the operand's size).
_PUSHES = {X86_INS_PUSH: None, X86_INS_PUSHFQ: 8, X86_INS_PUSHF: 2, X86_INS_CALL: 8,
           X86_INS_ENTER: 8, X86_INS_LCALL: 0}  # fmt: skip
_POPS = {X86_INS_POP: None, X86_INS_POPFQ: 8, X86_INS_POPF: 2, X86_INS_RET: 8,
         X86_INS_RETF: 0, X86_INS_RETFQ: 0, X86_INS_IRETQ: 40}  # fmt: skip
_STACK_BASES = ("rsp", "rbp", "esp", "ebp")


def _is_stack_fault(m: Machine, cr3: int, rip: int) -> bool:
    """Whether the #GP(0) Unicorn raised at *rip* is the SDM's #SS(0), per
    :func:`engine.machine.modelled.stack_fault`."""
    code = m.read_virt(cr3, rip, MAX_INSN) or b""
    rsp = int(m.uc.reg_read(X.UC_X86_REG_RSP))
    for insn in _detailed().disasm(code, rip, 1):
        stack: list[tuple[int, int]] = []
        other: list[tuple[int, int]] = []
        for op in insn.operands:
            if op.type != X86_OP_MEM or insn.id in (X86_INS_LEA, X86_INS_NOP):
                continue
            base = insn.reg_name(op.mem.base) if op.mem.base else ""
            seg = insn.reg_name(op.mem.segment) if op.mem.segment else ""
            if seg in ("fs", "gs"):
                return False  # the base the override adds is not looked at here
            # 64-bit mode ignores a CS, DS, ES or SS override: the base picks the segment
            through_ss = base in _STACK_BASES
            (stack if through_ss else other).append((_address(m, insn, op), op.size))
        far = 2 * _offset_size(insn)  # a far CALL or RET moves an offset and a CS slot
        if insn.id in _PUSHES:
            size = _PUSHES[insn.id] or far
            if insn.id == X86_INS_PUSH:
                size = insn.operands[0].size if insn.operands else 8
            stack.append(((rsp - size) % 2**64, size))
        elif insn.id in _POPS:
            size = _POPS[insn.id] or far
            if insn.id == X86_INS_POP:
                size = insn.operands[0].size if insn.operands else 8
            stack.append((rsp, size))
        elif insn.id == X86_INS_LEAVE:
            stack.append((int(m.uc.reg_read(X.UC_X86_REG_RBP)), 8))
        return stack_fault(stack, other, m.config.paging)
    return False


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
        if source.mem.segment:
            return name, None
        raw = m.read_virt(cr3, _address(m, insn, source), 2)
        return name, None if raw is None else int.from_bytes(raw, "little")
    return None


def _iret_error_code(m: Machine, intno: int, rip: int, cr3: int, cpl: int) -> int | None:
    """The error code of a #GP/#NP/#SS Unicorn raised on IRETQ: the CS or SS selector of
    the frame it refused (or 0), per :func:`engine.machine.modelled.iret_fault`; None when the
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
    if intno == VEC_GP and is_canonical(rip, m.config.paging) and _is_stack_fault(m, cr3, rip):
        reason = "a non-canonical stack address (Unicorn raises #GP(0))"
        return Fault(VEC_SS, EXCEPTION_NAMES[VEC_SS], cpl, rip, None, True, reason, 0)
    if intno in (VEC_GP, VEC_NP, VEC_SS) and m.read_virt(cr3, rip, 2) == IRETQ:
        selector_code = _iret_error_code(m, intno, rip, cr3, cpl)
        return Fault(intno, name, cpl, rip, None, False, "", selector_code)
    if intno in (VEC_GP, VEC_NP, VEC_SS):
        load = _segment_load(m, cr3, rip)
        if load is not None:
            register, selector = load
            load_code = None if selector is None else segment_load_error_code(register, selector)
            return Fault(intno, name, cpl, rip, None, False, "", load_code)
    if intno in (VEC_GP, VEC_NP):
        far = _far_transfer(m, cr3, rip, cpl)
        if far is not False:
            far_code = None
            if far == (0, 0):  # the CS passed: a #GP is the new RIP's (non-canonical)
                far_code = 0 if intno == VEC_GP else None
            elif isinstance(far, tuple) and far[0] == intno:
                far_code = far[1]
            return Fault(intno, name, cpl, rip, None, False, "", far_code)
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


__all__ = ["fault_from_ucerror", "from_interrupt", "is_io", "writes_memory"]
