"""The inspection results (engine.inspect) as JSON objects and as plain text lines.

JSON keeps numbers that are addresses or register values as ``0x`` hex strings (as
the trace JSON does for values wider than a double's 53 bits) and names as the
enums' values.  Text lines are for the headless commands: nothing a scenario wrote
reaches them unescaped (strings read from memory are escaped by ``x/s`` itself).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.errors import escape
from engine.inspect.breakpoints import Hit, Point, PointKind
from engine.inspect.command import PointsAnswer
from engine.inspect.examine import Examination, Unit
from engine.inspect.info import GdtInfo, IdtInfo, Info, TssInfo
from engine.inspect.pagewalk import PageWalkReport, RootWalk, stop_text


def _hex(v: int | None) -> str | None:
    return None if v is None else f"{v:#x}"


def root_walk_json(w: RootWalk) -> dict[str, Any]:
    r = w.result
    return {
        "root": str(w.root),
        "cr3": _hex(w.decode.cr3),
        "table": _hex(w.decode.table),
        "pcid": w.decode.pcid,
        "pti_user_table": w.decode.pti_user_table,
        "pti_user_pcid": w.decode.pti_user_pcid,
        "levels": [
            {
                "level": s.level,
                "name": s.name,
                "table": _hex(s.table),
                "index": s.index,
                "entry_address": _hex(s.entry_address),
                "entry": _hex(s.entry),
                "bits": list(s.bits),
                "next": _hex(s.next),
            }
            for s in w.levels
        ],
        "result": {
            "mapped": r.mapped,
            "physical": _hex(r.physical),
            "page_size": r.page_size,
            "stop": None if r.stop is None else str(r.stop),
            "stop_level": r.stop_level,
            "writable": r.writable,
            "user": r.user,
            "executable": r.executable,
            "user_denied_at": r.user_denied_at,
            "read_only_at": r.read_only_at,
            "nx_at": r.nx_at,
            "summary": stop_text(r, w.levels_total),
        },
    }


def walk_json(report: PageWalkReport) -> dict[str, Any]:
    return {
        "step": report.step,
        "address": _hex(report.vaddr),
        "live_cr3": _hex(report.live_cr3),
        "roots": [root_walk_json(w) for w in report.walks],
    }


def x_json(e: Examination) -> dict[str, Any]:
    out: dict[str, Any] = {
        "step": e.step,
        "expression": e.expression,
        "address": _hex(e.address),
        "unit": str(e.unit),
        "count": e.count,
        "root": e.root,
        "cr3": _hex(e.cr3),
    }
    if e.unit is Unit.INSN:
        out["instructions"] = [
            {
                "address": _hex(i.address),
                "bytes": None if i.code is None else i.code.hex(),
                "text": i.text,
                "label": i.label,
            }
            for i in e.instructions
        ]
    elif e.unit is Unit.STRING:
        out["strings"] = [
            {"address": _hex(s.address), "text": s.text, "length": s.length,
             "terminated": s.terminated}
            for s in e.strings
        ]  # fmt: skip
    else:
        out["words"] = [
            {
                "address": _hex(u.address),
                "size": u.size,
                "value": _hex(u.value),
                "annotation": u.annotation,
                "notes": [{"kind": str(n.kind), "text": n.text} for n in u.notes],
            }
            for u in e.units
        ]
    return out


#: Fields of the info records that are counts or small numbers, written as JSON numbers;
#: every other integer (an address, a register, a descriptor) is a hex string.
_DECIMAL = frozenset({"step", "offset", "dpl", "type", "vector", "pcid"})


def _json_value(name: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if name in _DECIMAL else f"{value:#x}"
    if isinstance(value, tuple):
        return [_json_value(name, v) for v in value]
    if dataclasses.is_dataclass(value):
        return {f.name: _json_value(f.name, getattr(value, f.name)) for f in
                dataclasses.fields(value)}  # fmt: skip
    return str(value)


def info_json(info: Info) -> dict[str, Any]:
    """``info gdt|tss|idt|cr|msr`` as one JSON object, field for field as the record."""
    out = _json_value("", info)
    if isinstance(info, IdtInfo):  # (vector, offset, selector) triples, named
        out["gates"] = [
            {"vector": v, "offset": f"{o:#x}", "selector": f"{sel:#x}"} for v, o, sel in info.gates
        ]
    assert isinstance(out, dict)
    out["kind"] = type(info).__name__.removesuffix("Info").lower()
    return out


def walk_lines(report: PageWalkReport) -> list[str]:
    """The walk under each root, level by level, then its verdict."""
    out = [f"walk {report.vaddr:#x} at step {report.step} (live CR3 {report.live_cr3:#x})"]
    for w in report.walks:
        d = w.decode
        root = f"{w.root} root: CR3 {d.cr3:#x} → table {d.table:#x}"
        if d.pcid is not None:
            root += f", PCID {d.pcid:#x}"
        if d.pti_user_table:
            root += ", PTI user-PGD bit 12 set"
        if d.pti_user_pcid:
            root += ", PTI user-PCID bit 11 set"
        out.append(root)
        for s in w.levels:
            bits = " ".join(s.bits) or "-"
            out.append(
                f"  L{s.level} {s.name:<10} [{s.index:3}] @ {s.entry_address:#x} = "
                f"{s.entry:#018x}  {bits}"
            )
        out.append(f"  → {stop_text(w.result, w.levels_total)}")
    return out


def x_lines(e: Examination) -> list[str]:
    head = f"x/{e.count}{e.unit} {e.expression} = {e.address:#x} at step {e.step}, "
    out = [head + f"{e.root} root (CR3 {e.cr3:#x})"]
    if e.unit is Unit.INSN:
        for i in e.instructions:
            label = f"<{i.label}> " if i.label else ""
            code = i.code.hex(" ") if i.code else ""
            out.append(f"  {i.address:#018x}  {label}{code:<30}  {i.text}")
    elif e.unit is Unit.STRING:
        for s in e.strings:
            text = "(unmapped)" if s.text is None else f'"{s.text}"'
            out.append(f"  {s.address:#018x}  {text}{'' if s.terminated else ' …'}")
    else:
        width = 2 * e.units[0].size if e.units else 16
        for u in e.units:
            value = "?" * width if u.value is None else f"{u.value:0{width}x}"
            note = f"  {u.annotation}" if u.notes else ""
            out.append(f"  {u.address:#018x}  {value}{note}")
    return out


def info_lines(info: Info) -> list[str]:
    """``info gdt|tss|idt|cr|msr`` as text."""
    if isinstance(info, GdtInfo):
        out = [f"GDT at {info.base:#x}, limit {info.limit:#x} (step {info.step})"]
        if not info.readable:
            out.append("  (its memory is not mapped under the kernel root)")
        for d in info.descriptors:
            if not d.raw:
                out.append(f"  {d.selector:#06x}  null")
                continue
            flags = " ".join(
                f
                for f, on in (("P", d.present), ("L", d.long), ("D/B", d.default_big),
                              ("G", d.granularity))
                if on
            )  # fmt: skip
            out.append(
                f"  {d.selector:#06x}  {d.name or '-':<15} {d.type_name:<24} DPL {d.dpl}  "
                f"base {d.base:#x} limit {d.limit:#x}  {flags}"
            )
        return out
    if isinstance(info, TssInfo):
        out = [f"TSS (TR {info.selector:#x}) at {info.base:#x}, limit {info.limit:#x}"]
        for f in info.fields:
            out.append(f"  +{f.offset:<3} {f.name:<15} {f.value:#018x}  {f.meaning}")
        return out
    if isinstance(info, IdtInfo):
        out = [f"IDTR base {info.base:#x}, limit {info.limit:#x}"]
        if info.note:
            out.append(f"  {info.note}")
        out += [f"  vector {v:3}  {off:#018x}  selector {sel:#x}" for v, off, sel in info.gates]
        return out
    out = []
    for r in info.registers:
        bits = " ".join(r.bits)
        note = f"  ({r.note})" if r.note else ""
        out.append(f"  {r.name:<15} {r.value:#018x}  {bits}{note}")
    return out


__all__ = ["info_lines", "root_walk_json", "walk_json", "walk_lines", "x_json", "x_lines"]


def _point_text(p: Point) -> str:
    cond = f" if {escape(p.condition)}" if p.condition is not None else ""
    stops = len(p.positions)
    at = ", ".join(str(q) for q in p.positions[:8]) + (" ..." if stops > 8 else "")
    reached = f"stops {stops}x, at step {at}" if stops else "never reached in this run"
    return f"{escape(p.spec)}{cond} — {p.where}; {reached}"


def point_line(p: Point) -> str:
    """One point as ``info break`` lists it: number, kind, what it is on, its stops."""
    return f"{p.number:<3} {p.kind:<10} {_point_text(p)}"


def points_lines(answer: PointsAnswer) -> list[str]:
    """What break, watch, delete and ``info break`` say."""
    if answer.added is not None:
        p = answer.added
        return [f"{p.kind.capitalize()} {p.number}: {_point_text(p)}"]
    if answer.deleted:
        return ["deleted " + ", ".join(str(n) for n in answer.deleted)]
    if not answer.points.points:
        return ["no breakpoints or watchpoints"]
    return ["Num Type       What — where; stops", *map(point_line, answer.points.points)]


def hit_line(hit: Hit) -> str:
    """Why ``continue`` stopped here: the point, and a watch's old and new value."""
    p = hit.point
    head = f"{p.kind.capitalize()} {p.number}, {escape(p.spec)}"
    if p.kind is PointKind.WATCH:
        old = "unmapped" if hit.old is None else f"{hit.old:#x}"
        new = "unmapped" if hit.new is None else f"{hit.new:#x}"
        return f"{head}: {old} → {new} (step {hit.position})"
    return f"{head} (step {hit.position})"
