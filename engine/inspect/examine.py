"""``x/N{g,w,h,b,i,s} ADDR``: memory at a step through a chosen root, each word explained.

Units are gdb's: g = 8 bytes, w = 4, h = 2, b = 1, i = instructions (Capstone, AT&T),
s = NUL-terminated strings.  Every quadword (``g``) is annotated with what its address
is (a pt_regs slot, a slot of the entry-stack frame as the step recorded it, the task,
entry or user stack, another named region) and what its value points at (a kernel
label, a stack, a page-table root or a page-table page).  An unmapped unit has no
value and says why the walk stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

from engine import layout as L
from engine.asm import disasm_one
from engine.constants import PT_REGS_FIELDS, PT_REGS_SIZE
from engine.errors import escape
from engine.inspect.expr import ExprContext, evaluate
from engine.inspect.machine_at import LIVE, InspectError, MachineAt
from engine.inspect.pagewalk import Root, stop_text
from engine.machine.paging import ADDR_MASK, P
from engine.run.recorder import FRED_INFO_SIZE, FRED_INFO_SLOTS

#: The most units one ``x`` reads (a screenful is a few dozen).
MAX_COUNT = 4096
#: The longest string ``x/s`` reads before it stops looking for the NUL.
MAX_STRING = 256
#: The longest x86 instruction.
MAX_INSN = 15


class Unit(StrEnum):
    GIANT = "g"
    WORD = "w"
    HALF = "h"
    BYTE = "b"
    INSN = "i"
    STRING = "s"


UNIT_SIZE = {Unit.GIANT: 8, Unit.WORD: 4, Unit.HALF: 2, Unit.BYTE: 1}


class NoteKind(StrEnum):
    """What an annotation says about a word."""

    PT_REGS = "pt_regs"  # the address is a struct pt_regs slot
    FRAME = "frame"  # a slot of the entry-stack frame the step recorded
    REGION = "region"  # the address is on a stack or in a named region
    LABEL = "label"  # the value is a kernel label (+ offset)
    POINTS_TO = "points_to"  # the value is an address in a stack or named region
    PAGE_TABLE = "page_table"  # the value is a root or an entry naming a table page
    UNMAPPED = "unmapped"  # nothing there under this root


@dataclass(frozen=True, slots=True)
class Note:
    kind: NoteKind
    text: str


@dataclass(frozen=True, slots=True)
class MemoryUnit:
    """One g/w/h/b unit: its address, its value (None: unmapped), and what it is."""

    address: int
    size: int
    value: int | None
    notes: tuple[Note, ...]

    @property
    def annotation(self) -> str:
        return "; ".join(n.text for n in self.notes)


@dataclass(frozen=True, slots=True)
class Instruction:
    address: int
    code: bytes | None  # None: unmapped
    text: str
    label: str  # the kernel label at this address, or ""


@dataclass(frozen=True, slots=True)
class CString:
    address: int
    text: str | None  # escaped: printable whatever the bytes; None: unmapped
    length: int  # bytes read, without the NUL
    terminated: bool


@dataclass(frozen=True, slots=True)
class Examination:
    """The answer to one ``x``."""

    step: int
    expression: str
    address: int
    unit: Unit
    count: int
    root: str  # "user", "kernel" or "live"
    cr3: int
    units: tuple[MemoryUnit, ...] = ()
    instructions: tuple[Instruction, ...] = ()
    strings: tuple[CString, ...] = ()


_X_COMMAND = re.compile(r"^x(?:/(\d*)([gwhbis]?))?$")


def parse_x(word: str) -> tuple[int, Unit]:
    """``x/8g`` → (8, g); ``x`` → (1, g); ``x/s`` → (1, s)."""
    m = _X_COMMAND.match(word)
    if m is None:
        raise InspectError(f"{word!r} is not x/N followed by one of g w h b i s")
    count = int(m.group(1)) if m.group(1) else 1
    if not 1 <= count <= MAX_COUNT:
        raise InspectError(f"count {count} outside 1..{MAX_COUNT}")
    return count, Unit(m.group(2) or "g")


def context(at: MachineAt, step: int) -> ExprContext:
    return ExprContext(at.regs(step), at.trace.symbols, at.pt_regs_base)


class Annotator:
    """Names addresses and values as the machine's layout and the step's records do."""

    def __init__(self, at: MachineAt, step: int):
        self.at = at
        m = at.machine
        lay = m.layout
        self.top = lay.task_stack_top
        self.pt_base = at.pt_regs_base
        self.fred = m.config.fred
        self.regions: list[tuple[int, int, str]] = [
            (lay.task_stack_base, lay.task_stack_top, "task stack"),
            (L.CEA_ENTRY_STACK, L.ENTRY_STACK_TOP, "entry stack (cpu_entry_area)"),
            (L.CEA_GDT, L.CEA_GDT + L.PAGE, "GDT (cpu_entry_area)"),
            (lay.tss, lay.tss + L.PAGE, "cpu_tss_rw"),
            (lay.percpu_base, lay.percpu_base + m.kernel.percpu_size, "per-CPU data"),
            (L.ENTRY_TEXT, L.ENTRY_TEXT + L.ENTRY_TEXT_SIZE, "entry text"),
            (L.KERNEL_TEXT, L.KERNEL_TEXT + L.KERNEL_TEXT_SIZE, "kernel text"),
        ]
        for u in m.user:
            name = "user stack" if u.name == "stack" else f"user {u.name}"
            self.regions.append((u.vaddr, u.vaddr + u.size, name))
        self.symbols = sorted((a, n) for n, a in at.trace.symbols.items() if not n.startswith("."))
        rec = at.record(step)
        self.frame = {s.address: s.slot for s in rec.entry_stack} if rec else {}
        self.roots = {m.kernel_cr3: "kernel CR3", m.user_cr3: "user CR3"}
        self.tables = (L.PHYS_PAGE_TABLES, L.PHYS_PAGE_TABLES + L.PHYS_PAGE_TABLES_SIZE)

    def region(self, address: int) -> str | None:
        # the first match wins: cpu_tss_rw before the per-CPU area that holds it
        for lo, hi, name in self.regions:
            if lo <= address < hi:
                return name
        return None

    def label(self, value: int) -> str | None:
        best = None
        for addr, name in self.symbols:
            if addr > value:
                break
            best = (addr, name)
        if best is None:
            return None
        addr, name = best
        inside = L.ENTRY_TEXT <= value < L.ENTRY_TEXT + L.ENTRY_TEXT_SIZE or (
            L.KERNEL_TEXT <= value < L.KERNEL_TEXT + L.KERNEL_TEXT_SIZE
        )
        if not inside:
            return None
        return name if value == addr else f"{name}+{value - addr:#x}"

    def notes(self, address: int, size: int, value: int | None) -> tuple[Note, ...]:
        out: list[Note] = []
        off = address - self.pt_base
        if 0 <= off < PT_REGS_SIZE and off % 8 == 0:
            out.append(Note(NoteKind.PT_REGS, f"regs->{PT_REGS_FIELDS[off // 8]}"))
        elif self.fred and 0 <= off - PT_REGS_SIZE < FRED_INFO_SIZE and off % 8 == 0:
            # struct fred_frame ends with struct fred_info above pt_regs (asm/fred.h)
            name = FRED_INFO_SLOTS[(off - PT_REGS_SIZE) // 8]
            out.append(Note(NoteKind.FRAME, f"FRED frame: fred_info.{name}"))
        elif self.frame.get(address):
            out.append(Note(NoteKind.FRAME, f"entry frame: {self.frame[address]}"))
        where = self.region(address)
        if where is not None:
            out.append(Note(NoteKind.REGION, f"on the {where}" if "stack" in where else where))
        if value is None:
            return tuple(out)
        if size == 8:
            label = self.label(value)
            if label is not None:
                out.append(Note(NoteKind.LABEL, label))
            elif value in self.roots:
                out.append(Note(NoteKind.PAGE_TABLE, self.roots[value]))
            elif value & P and self.tables[0] <= value & ADDR_MASK < self.tables[1]:
                out.append(
                    Note(NoteKind.PAGE_TABLE, f"page-table entry → table {value & ADDR_MASK:#x}")
                )
            else:
                target = self.region(value) if value else None
                if target is not None:
                    out.append(Note(NoteKind.POINTS_TO, f"→ {target}"))
        return tuple(out)


def _why_unmapped(at: MachineAt, step: int, root: str, cr3: int, address: int) -> Note:
    r = Root.USER if root == Root.USER else Root.KERNEL
    w = at.walk_root(step, r, cr3, address).result
    return Note(NoteKind.UNMAPPED, f"unreadable under the {root} root: {stop_text(w, at.levels)}")


def examine(
    at: MachineAt,
    step: int,
    expression: str,
    count: int = 1,
    unit: Unit = Unit.GIANT,
    root: str = LIVE,
) -> Examination:
    """``x/{count}{unit} {expression}`` at *step* through *root* (user, kernel or live):
    one branch per unit (words, instructions, strings), each a few lines."""
    if root not in (LIVE, Root.USER, Root.KERNEL):
        raise InspectError(f"root {root!r} is not one of user, kernel, live")
    if not 1 <= count <= MAX_COUNT:
        raise InspectError(f"count {count} outside 1..{MAX_COUNT}")
    at.check_step(step)
    address = evaluate(expression, context(at, step))
    cr3 = at.cr3(step, root)
    base = Examination(step, expression, address, unit, count, str(root), cr3)
    mask = (1 << 64) - 1
    if unit in UNIT_SIZE:
        size = UNIT_SIZE[unit]
        ann = Annotator(at, step)
        cells = _read_pages(at, step, cr3, address, count * size)
        units = []
        for i in range(count):
            a = (address + i * size) & mask
            chunk = cells[i * size : (i + 1) * size]
            if None in chunk:
                notes = (*ann.notes(a, size, None), _why_unmapped(at, step, root, cr3, a))
                units.append(MemoryUnit(a, size, None, notes))
            else:
                v = int.from_bytes(bytes(chunk), "little")  # type: ignore[arg-type]
                units.append(MemoryUnit(a, size, v, ann.notes(a, size, v)))
        return _replace(base, units=tuple(units))
    if unit is Unit.INSN:
        labels = {a: n for n, a in at.trace.symbols.items()}
        insns = []
        a = address
        for _ in range(count):
            raw = _read_upto(at, step, cr3, a, MAX_INSN)
            d = disasm_one(raw, a) if raw else None
            if d is None:
                text = "(unmapped)" if not raw else "(bad)"
                insns.append(Instruction(a, raw or None, text, labels.get(a, "")))
                break
            text, n = d
            insns.append(Instruction(a, raw[:n], text, labels.get(a, "")))
            a = (a + n) & mask
        return _replace(base, instructions=tuple(insns))
    strings = []
    a = address
    for _ in range(count):
        raw = _read_upto(at, step, cr3, a, MAX_STRING)
        if not raw:
            strings.append(CString(a, None, 0, False))
            break
        end = raw.find(b"\0")
        body = raw if end < 0 else raw[:end]
        text = escape(body.decode("latin-1"))
        strings.append(CString(a, text, len(body), end >= 0))
        a = (a + len(body) + 1) & mask
    return _replace(base, strings=tuple(strings))


def _read_pages(at: MachineAt, step: int, cr3: int, address: int, size: int) -> list[int | None]:
    """*size* bytes at *address*, one walk per page; None for each byte of an unmapped page."""
    out: list[int | None] = []
    while size > 0:
        n = min(size, L.PAGE - (address & (L.PAGE - 1)))
        chunk = at.read_virt(step, cr3, address, n)
        out += [None] * n if chunk is None else list(chunk)
        address, size = (address + n) & (1 << 64) - 1, size - n
    return out


def _read_upto(at: MachineAt, step: int, cr3: int, address: int, size: int) -> bytes:
    """Up to *size* bytes at *address*, fewer where the mapping ends (empty: unmapped)."""
    out = b""
    while size > 0:
        n = min(size, L.PAGE - (address & (L.PAGE - 1)))
        chunk = at.read_virt(step, cr3, address, n)
        if chunk is None:
            break
        out += chunk
        address, size = (address + n) & (1 << 64) - 1, size - n
    return out


def _replace(e: Examination, **kw: object) -> Examination:
    return replace(e, **kw)  # type: ignore[arg-type]


__all__ = [
    "MAX_COUNT", "CString", "Examination", "Instruction", "MemoryUnit", "Note", "NoteKind",
    "Unit", "examine", "parse_x",
]  # fmt: skip
