"""Records as data: the JSON layout the on-disk store (engine.store) keeps traces and the
kernel image in, read back without running anything the file holds.

A file in the cache is untrusted input like a scenario file.  So nothing read from it names
a class or a function: the layout is fixed here, per record type, as a list of fields and
the type each must have, and a record is rebuilt by calling its own class (a frozen
dataclass of engine.trace, or one a caller registers) with fields that passed the checks.

The layout is a pool: a JSON list of entries, each ``[tag, field, ...]``, where a field is
an inline int, bool or null, or the index of an *earlier* entry (so there are no cycles and
one forward pass reads it).  Equal values are written once: a 10,000-step loop repeats the
same registers, checks and stack words thousands of times, and reading it back costs one
record per distinct value, the records shared as the recorder shares them.

Bounds, for a file someone else wrote: the store caps the file's size, so the pool's length
and every string are bounded by it; the one thing that could grow past it is text built
from templates (a :class:`engine.i18n.Msg` whose values are other messages, shared), so
templates are checked (plain ``{name}`` fields with short format specs, no attribute or
index lookups) and the text they make is counted against :data:`TEXT_BUDGET`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from enum import StrEnum
from itertools import chain, groupby, repeat
from operator import attrgetter
from typing import Any

from engine.i18n import Joined, Literal, Msg

MASK64 = (1 << 64) - 1
#: Characters of text a pool may build from templates and joins, in all.
TEXT_BUDGET = 64 << 20
#: How deep messages may nest (tr() renders them recursively).
MAX_TEXT_DEPTH = 16
#: Format specs a template may use: an alignment, a sign, ``#``, ``0``, a width below 100
#: and a presentation type, as the engine's own messages do (``{rip:#018x}``).
_SPEC = re.compile(r"[<>^=]?[-+ ]?#?0?\d{0,2}[bdoxXs]?")
_FORMATTER = string.Formatter()

TEXT_TAGS = frozenset({"s", "l", "m", "j"})


class Invalid(ValueError):
    """A pool that does not follow the layout."""


# --- field specs ------------------------------------------------------------------------
#
# A spec encodes one field value (encode(enc, value) -> JSON value) and checks one read
# back (check(x, dec) -> value, raising Invalid).


class Spec:
    def encode(self, enc: Encoder, value: Any) -> Any:
        raise NotImplementedError

    def check(self, x: Any, dec: Decoder) -> Any:
        raise NotImplementedError


class Int(Spec):
    def __init__(self, lo: int = 0, hi: int = MASK64) -> None:
        self.lo, self.hi = lo, hi

    def encode(self, enc: Encoder, value: Any) -> Any:
        if type(value) is not int or not self.lo <= value <= self.hi:
            raise Invalid(f"not an int in [{self.lo}, {self.hi}]: {value!r}")
        return value

    def check(self, x: Any, dec: Decoder) -> Any:
        if type(x) is int and self.lo <= x <= self.hi:
            return x
        raise Invalid("int out of range")


class Bool(Spec):
    def encode(self, enc: Encoder, value: Any) -> Any:
        if type(value) is not bool:
            raise Invalid(f"not a bool: {value!r}")
        return value

    def check(self, x: Any, dec: Decoder) -> Any:
        if type(x) is bool:
            return x
        raise Invalid("not a bool")


class Optional(Spec):
    def __init__(self, inner: Spec) -> None:
        self.inner = inner

    def encode(self, enc: Encoder, value: Any) -> Any:
        return None if value is None else self.inner.encode(enc, value)

    def check(self, x: Any, dec: Decoder) -> Any:
        return None if x is None else self.inner.check(x, dec)


class Enum(Spec):
    """A StrEnum member, written as its value."""

    def __init__(self, enum: type[StrEnum]) -> None:
        self.enum = enum
        self.members = {m.value: m for m in enum}

    def encode(self, enc: Encoder, value: Any) -> Any:
        if type(value) is not self.enum:
            raise Invalid(f"not a {self.enum.__name__}: {value!r}")
        return value.value

    def check(self, x: Any, dec: Decoder) -> Any:
        if type(x) is str:
            member = self.members.get(x)
            if member is not None:
                return member
        raise Invalid(f"not a {self.enum.__name__}")


class Ref(Spec):
    """A value kept in the pool (text, bytes, a record, a tuple, a map): its index."""

    def __init__(self, tags: frozenset[str], put: Callable[[Encoder, Any], int]) -> None:
        self.tags = tags
        self.put = put

    def encode(self, enc: Encoder, value: Any) -> Any:
        return self.put(enc, value)

    def check(self, x: Any, dec: Decoder) -> Any:
        if type(x) is int and 0 <= x < len(dec.objs) and dec.tags[x] in self.tags:
            return dec.objs[x]
        raise Invalid("bad reference")


INT64 = Int(-(1 << 63), MASK64)  # a register, an address, a value, signed or not
U64 = Int()
COUNT = Int(0, (1 << 31) - 1)
TEXT = Ref(TEXT_TAGS, lambda enc, v: enc.text(v))
BYTES = Ref(frozenset({"b"}), lambda enc, v: enc.bytes_(v))
BOOL = Bool()


# --- the codec --------------------------------------------------------------------------


class Codec:
    """The layout of one kind of entry: record types, tuple types and maps, by tag."""

    def __init__(self) -> None:
        self.records: dict[type, tuple[str, tuple[tuple[str, Spec], ...]]] = {}
        self.readers: dict[str, Callable[[list[Any], Decoder], Any]] = {
            "s": _read_str,
            "l": _read_literal,
            "b": _read_bytes,
            "m": _read_msg,
            "j": _read_joined,
        }
        self.specs: dict[str, Spec] = {}

    def record(self, cls: type, tag: str, specs: dict[str, Spec] | None = None) -> Spec:
        """Register frozen dataclass *cls* under *tag*; its fields' specs are *specs* (every
        field named, in order) or, by default, read from :attr:`specs` by field name."""
        names = tuple(f.name for f in fields(cls))
        given = specs or {}
        layout = tuple((n, given[n]) for n in names)
        if tuple(given) != names:
            raise TypeError(f"{cls.__name__}: specs for {names}, got {tuple(given)}")
        self.records[cls] = (tag, layout)
        read = _record_reader(cls, tag, tuple(s for _, s in layout))

        self.readers[tag] = read
        spec = Ref(frozenset({tag}), lambda enc, v: enc.record(v, cls, tag, layout))
        self.specs[tag] = spec
        return spec

    def tuple_of(self, item: Spec, tag: str) -> Spec:
        """A tuple whose items are *item*s."""
        check = item.check

        def read(entry: list[Any], dec: Decoder) -> Any:
            if len(entry) != 2 or type(entry[1]) is not list:
                raise Invalid(f"{tag}: not a list")
            return tuple([check(x, dec) for x in entry[1]])

        self.readers[tag] = read
        spec = Ref(frozenset({tag}), lambda enc, v: enc.tuple_(v, item, tag))
        self.specs[tag] = spec
        return spec

    def table_of(self, cls: type, tag: str, specs: dict[str, Spec]) -> Spec:
        """A tuple of *cls* records kept as columns, one per field: a trace's steps.

        A column is checked in one pass of C loops (the set of its types, its min and max,
        the set of the tags it refers to) rather than field by field in Python, and the
        records are made by one ``map`` over the columns: a 10,000-step trace reads back
        in well under a tenth of a second, close to the pickle it replaced."""
        names = tuple(f.name for f in fields(cls))
        if tuple(specs) != names:
            raise TypeError(f"{cls.__name__}: specs for {names}, got {tuple(specs)}")
        layout = tuple(specs.items())
        columns = tuple(_column_reader(spec) for _, spec in layout)
        count = len(columns) + 2

        def read(entry: list[Any], dec: Decoder) -> Any:
            if len(entry) != count or type(entry[1]) is not int:
                raise Invalid(f"{tag}: not a table")
            rows = entry[1]
            values = [_runs(c, col, rows, dec) for c, col in zip(columns, entry[2:], strict=True)]
            return tuple(map(cls, *values)) if rows else ()

        def put(enc: Encoder, value: Any) -> int:
            if type(value) is not tuple or any(type(r) is not cls for r in value):
                raise Invalid(f"{tag}: not a tuple of {cls.__name__}")
            entry: list[Any] = [tag, len(value)]
            for name, spec in layout:
                entry.append(_encode_column(enc, spec, map(attrgetter(name), value), len(value)))
            return enc.put(entry, dedup=False)

        self.readers[tag] = read
        spec = Ref(frozenset({tag}), put)
        self.specs[tag] = spec
        return spec

    def row(self, items: Sequence[Spec], tag: str) -> Spec:
        """A tuple of fixed length whose items are *items*, in order."""
        checks = tuple(s.check for s in items)
        count = len(checks) + 1

        def read(entry: list[Any], dec: Decoder) -> Any:
            if len(entry) != count:
                raise Invalid(f"{tag}: wrong length")
            return tuple([c(x, dec) for c, x in zip(checks, entry[1:], strict=True)])

        def put(enc: Encoder, value: Any) -> int:
            if type(value) is not tuple or len(value) != len(items):
                raise Invalid(f"{tag}: not a {len(items)}-tuple: {value!r}")
            return enc.put([tag, *(s.encode(enc, v) for s, v in zip(items, value, strict=True))])

        self.readers[tag] = read
        spec = Ref(frozenset({tag}), put)
        self.specs[tag] = spec
        return spec

    def str_map(self, value_spec: Int, tag: str) -> Spec:
        """A dict of str keys to ints, written as a JSON object."""
        lo, hi = value_spec.lo, value_spec.hi

        def read(entry: list[Any], dec: Decoder) -> Any:
            if len(entry) != 2 or type(entry[1]) is not dict:
                raise Invalid(f"{tag}: not an object")
            out = entry[1]
            for v in out.values():
                if type(v) is not int or not lo <= v <= hi:
                    raise Invalid(f"{tag}: value out of range")
            return dict(out)

        def put(enc: Encoder, value: Any) -> int:
            if type(value) is not dict:
                raise Invalid(f"{tag}: not a dict")
            for k, v in value.items():
                if type(k) is not str:
                    raise Invalid(f"{tag}: key {k!r} is not a str")
                value_spec.encode(enc, v)
            return enc.put([tag, dict(value)], dedup=False)

        self.readers[tag] = read
        spec = Ref(frozenset({tag}), put)
        self.specs[tag] = spec
        return spec

    def encode(self, value: Any, root: Spec) -> list[Any]:
        """*value* as a pool (a JSON-able list), its root the last entry."""
        enc = Encoder()
        index = root.encode(enc, value)
        if index != len(enc.pool) - 1:  # a root equal to a part of itself: never written
            raise Invalid("the root is not the last entry")
        return enc.pool

    def decode(self, pool: Any, root: Spec) -> Any:
        """The value *pool* holds, checked against *root* (raises :class:`Invalid`)."""
        if type(pool) is not list or not pool:
            raise Invalid("not a pool")
        dec = Decoder()
        readers = self.readers
        objs, tags = dec.objs, dec.tags
        last = len(pool) - 1
        for entry in pool:
            if type(entry) is not list or not entry or type(entry[0]) is not str:
                raise Invalid("not an entry")
            tag = entry[0]
            reader = readers.get(tag)
            if reader is None:
                raise Invalid(f"unknown tag {tag[:20]!r}")
            objs.append(reader(entry, dec))
            tags.append(tag)
        return root.check(last, dec)


def _record_reader(
    cls: type, tag: str, specs: tuple[Spec, ...]
) -> Callable[[list[Any], Decoder], Any]:
    """The reader of a record entry: the fields checked by kind in tight loops (a trace
    has a dozen fields on each of its thousands of steps), then the class called."""
    count = len(specs) + 1
    refs: list[tuple[int, frozenset[str], bool]] = []
    ints: list[tuple[int, int, int, bool]] = []
    bools: list[int] = []
    enums: list[tuple[int, dict[str, Any], bool]] = []
    for i, spec in enumerate(specs, start=1):
        optional = isinstance(spec, Optional)
        inner = spec.inner if isinstance(spec, Optional) else spec
        if isinstance(inner, Ref):
            refs.append((i, inner.tags, optional))
        elif isinstance(inner, Int):
            ints.append((i, inner.lo, inner.hi, optional))
        elif isinstance(inner, Bool) and not optional:
            bools.append(i)
        elif isinstance(inner, Enum):
            enums.append((i, inner.members, optional))
        else:
            raise TypeError(f"{cls.__name__}: no reader for {spec!r}")

    def read(entry: list[Any], dec: Decoder) -> Any:
        if len(entry) != count:
            raise Invalid(f"{tag}: {len(entry) - 1} fields, expected {count - 1}")
        objs, tags = dec.objs, dec.tags
        n = len(objs)
        for i, allowed, optional in refs:
            x = entry[i]
            if type(x) is int and 0 <= x < n and tags[x] in allowed:
                entry[i] = objs[x]
            elif not (optional and x is None):
                raise Invalid(f"{tag}: bad reference")
        for i, lo, hi, optional in ints:
            x = entry[i]
            if not (type(x) is int and lo <= x <= hi) and not (optional and x is None):
                raise Invalid(f"{tag}: int out of range")
        for i in bools:
            if type(entry[i]) is not bool:
                raise Invalid(f"{tag}: not a bool")
        for i, members, optional in enums:
            x = entry[i]
            member = members.get(x) if type(x) is str else None
            if member is not None:
                entry[i] = member
            elif not (optional and x is None):
                raise Invalid(f"{tag}: not a member")
        # The entry (a list json.loads made, read once) is reused for the fields.
        return cls(*entry[1:])

    return read


_NONE = type(None)


def _encode_column(enc: Encoder, spec: Spec, column: Iterable[Any], rows: int) -> Any:
    """One field of every record of a table: the encoded values, or their runs
    ``{"v": values, "n": lengths}`` when that is much shorter (a loop repeats a field's
    value for thousands of steps).  The recorder shares a value with the step before, so
    the values are grouped by identity first and each group is encoded once."""
    values: list[Any] = []
    lengths: list[int] = []
    for _, group in groupby(column, key=id):
        items = list(group)
        x = spec.encode(enc, items[0])
        if values and values[-1] == x and type(values[-1]) is type(x):
            lengths[-1] += len(items)
        else:
            values.append(x)
            lengths.append(len(items))
    if len(values) * 4 <= rows:
        return {"v": values, "n": lengths}
    return list(chain.from_iterable(map(repeat, values, lengths)))


def _runs(
    check: Callable[[Any, int, Decoder], list[Any]], col: Any, rows: int, dec: Decoder
) -> list[Any]:
    """A column read back: a list of *rows* values, or runs of them (see :func:`_compress`)."""
    if type(col) is not dict:
        return check(col, rows, dec)
    values, lengths = col.get("v"), col.get("n")
    if type(lengths) is not list or len(col) != 2:
        raise Invalid("not a column of runs")
    if set(map(type, lengths)) - {int} or (lengths and min(lengths) < 1):
        raise Invalid("bad run lengths")
    if sum(lengths) != rows:  # also bounds what the runs expand to
        raise Invalid("runs of the wrong length")
    checked = check(values, len(lengths), dec)
    return list(chain.from_iterable(map(repeat, checked, lengths)))


def _column_reader(spec: Spec) -> Callable[[Any, int, Decoder], list[Any]]:
    """The checker of one column of a table (see :meth:`Codec.table_of`): one fast path
    per kind of column, kept together because they share the checks' closures."""
    optional = isinstance(spec, Optional)
    inner = spec.inner if isinstance(spec, Optional) else spec

    def values(col: Any, rows: int) -> tuple[list[Any], set[type]]:
        if type(col) is not list or len(col) != rows:
            raise Invalid("column of the wrong length")
        kinds = set(map(type, col))
        if optional and _NONE in kinds:
            kinds.discard(_NONE)
            return [x for x in col if x is not None], kinds
        return col, kinds

    if isinstance(inner, Int):
        lo, hi = inner.lo, inner.hi

        def read_ints(col: Any, rows: int, dec: Decoder) -> list[Any]:
            present, kinds = values(col, rows)
            if kinds - {int} or (present and (min(present) < lo or max(present) > hi)):
                raise Invalid("int column out of range")
            return col

        return read_ints
    if isinstance(inner, Bool) and not optional:

        def read_bools(col: Any, rows: int, dec: Decoder) -> list[Any]:
            _, kinds = values(col, rows)
            if kinds - {bool}:
                raise Invalid("not a bool column")
            return col

        return read_bools
    if isinstance(inner, Enum):
        lookup: dict[Any, Any] = dict(inner.members)
        if optional:
            lookup[None] = None

        def read_enums(col: Any, rows: int, dec: Decoder) -> list[Any]:
            values(col, rows)
            try:
                return list(map(lookup.__getitem__, col))
            except (KeyError, TypeError) as exc:  # TypeError: an unhashable list
                raise Invalid("not a member") from exc

        return read_enums
    if isinstance(inner, Ref):
        allowed = inner.tags

        def read_refs(col: Any, rows: int, dec: Decoder) -> list[Any]:
            present, kinds = values(col, rows)
            objs = dec.objs
            if present:
                if kinds - {int} or min(present) < 0 or max(present) >= len(objs):
                    raise Invalid("bad reference")
                if not set(map(dec.tags.__getitem__, present)) <= allowed:
                    raise Invalid("reference to the wrong type")
            if present is col:
                return list(map(objs.__getitem__, col))
            return [None if x is None else objs[x] for x in col]

        return read_refs
    raise TypeError(f"no column reader for {spec!r}")


class Encoder:
    def __init__(self) -> None:
        self.pool: list[Any] = []
        self.seen: dict[Any, int] = {}  # an entry's content -> its index
        # (tag, id of a value) -> (value, index): a value shared by the records is encoded
        # once.  The tag is part of it because one object may be two things (the empty
        # tuple is every tuple type's).
        self.by_id: dict[tuple[str, int], tuple[Any, int]] = {}

    def put(self, entry: list[Any], dedup: bool = True) -> int:
        if dedup:
            key = tuple(tuple(x) if type(x) is list else x for x in entry)
            # True == 1 in a dict key: a bool and an int in the same place of the same
            # tag never happen (a field has one type), except in a message's values,
            # which carry their own kind letter.
            found = self.seen.get(key)
            if found is not None:
                return found
            self.seen[key] = len(self.pool)
        self.pool.append(entry)
        return len(self.pool) - 1

    def _cached(self, tag: str, value: Any) -> int | None:
        hit = self.by_id.get((tag, id(value)))
        return hit[1] if hit is not None and hit[0] is value else None

    def _remember(self, tag: str, value: Any, index: int) -> int:
        self.by_id[tag, id(value)] = (value, index)
        return index

    def text(self, value: Any) -> int:
        hit = self._cached("text", value)
        if hit is not None:
            return hit
        t = type(value)
        if t is str:
            index = self.put(["s", value])
        elif t is Msg:
            values = []
            for name, v in value.values.items():
                if type(v) is bool:
                    values.append([name, "b", v])
                elif type(v) is int:
                    values.append([name, "i", INT64.encode(self, v)])
                elif v is None:
                    values.append([name, "n", None])
                elif isinstance(v, str):
                    values.append([name, "t", self.text(v)])
                else:
                    raise Invalid(f"message value of type {type(v).__name__}")
            index = self.put(["m", value.template, [tuple(v) for v in values]])
        elif t is Literal:  # a name, never looked up in the catalogue
            index = self.put(["l", str.__str__(value)])
        elif t is Joined:
            parts = [self.text(p) for p in value.parts]
            index = self.put(["j", self.text(value.sep), parts])
        elif isinstance(value, StrEnum):
            index = self.put(["s", value.value])
        else:
            raise Invalid(f"not text: {type(value).__name__}")
        return self._remember("text", value, index)

    def bytes_(self, value: Any) -> int:
        if type(value) is not bytes:
            raise Invalid(f"not bytes: {type(value).__name__}")
        return self.put(["b", value.hex()])

    def record(self, value: Any, cls: type, tag: str, layout: tuple[tuple[str, Spec], ...]) -> int:
        hit = self._cached(tag, value)
        if hit is not None:
            return hit
        if type(value) is not cls:
            raise Invalid(f"not a {cls.__name__}: {type(value).__name__}")
        entry: list[Any] = [tag]
        for name, spec in layout:
            entry.append(spec.encode(self, getattr(value, name)))
        return self._remember(tag, value, self.put(entry))

    def tuple_(self, value: Any, item: Spec, tag: str) -> int:
        hit = self._cached(tag, value)
        if hit is not None:
            return hit
        if type(value) is not tuple:
            raise Invalid(f"{tag}: not a tuple")
        entry = [tag, [item.encode(self, v) for v in value]]
        return self._remember(tag, value, self.put(entry))


class Decoder:
    def __init__(self) -> None:
        self.objs: list[Any] = []
        self.tags: list[str] = []
        self.depth: dict[int, int] = {}  # index of a message -> how deep it nests
        self.text_left = TEXT_BUDGET


def _read_str(entry: list[Any], dec: Decoder) -> Any:
    if len(entry) != 2 or type(entry[1]) is not str:
        raise Invalid("s: not a string")
    return entry[1]


def _read_literal(entry: list[Any], dec: Decoder) -> Any:
    if len(entry) != 2 or type(entry[1]) is not str:
        raise Invalid("l: not a string")
    return Literal(entry[1])


def _read_bytes(entry: list[Any], dec: Decoder) -> Any:
    if len(entry) != 2 or type(entry[1]) is not str:
        raise Invalid("b: not a string")
    return bytes.fromhex(entry[1])  # ValueError (an Invalid's base) when not hex


def _text_ref(x: Any, dec: Decoder) -> tuple[str, int]:
    """The text at index *x* and how deep it nests."""
    if type(x) is int and 0 <= x < len(dec.objs) and dec.tags[x] in TEXT_TAGS:
        return dec.objs[x], dec.depth.get(x, 0)
    raise Invalid("bad text reference")


def _spend(dec: Decoder, chars: int) -> None:
    dec.text_left -= chars
    if dec.text_left < 0:
        raise Invalid("too much text")


def _read_msg(entry: list[Any], dec: Decoder) -> Any:
    if len(entry) != 3 or type(entry[1]) is not str or type(entry[2]) is not list:
        raise Invalid("m: not [template, values]")
    template = entry[1]
    values: dict[str, Any] = {}
    depth = 0
    size = len(template)
    for item in entry[2]:
        if type(item) is not list or len(item) != 3 or type(item[0]) is not str:
            raise Invalid("m: bad value")
        name, kind, x = item
        if kind == "t":
            text, d = _text_ref(x, dec)
            values[name] = text
            depth = max(depth, d + 1)
            size += len(text)
        elif kind == "i":
            values[name] = INT64.check(x, dec)
        elif kind == "b":
            values[name] = BOOL.check(x, dec)
        elif kind == "n" and x is None:
            values[name] = None
        else:
            raise Invalid("m: bad value kind")
    if depth > MAX_TEXT_DEPTH:
        raise Invalid("m: nested too deep")
    fields_seen = 0
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise Invalid("m: bad template") from exc
    for _literal, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in values or conversion is not None or not _SPEC.fullmatch(spec or ""):
            raise Invalid("m: template field not allowed")
        fields_seen += 1
    # Each field adds at most its value's text or a number of at most 100 characters.
    _spend(dec, size + 100 * fields_seen)
    dec.depth[len(dec.objs)] = depth
    try:
        return Msg(template, **values)
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # e.g. {x:d} on a str
        raise Invalid("m: template does not format") from exc


def _read_joined(entry: list[Any], dec: Decoder) -> Any:
    if len(entry) != 3 or type(entry[2]) is not list:
        raise Invalid("j: not [sep, parts]")
    sep, depth = _text_ref(entry[1], dec)
    parts = []
    size = 0
    for x in entry[2]:
        text, d = _text_ref(x, dec)
        parts.append(text)
        depth = max(depth, d + 1)
        size += len(text) + len(sep)
    if depth > MAX_TEXT_DEPTH:
        raise Invalid("j: nested too deep")
    _spend(dec, size)
    dec.depth[len(dec.objs)] = depth
    return Joined(sep, parts)


def check_all(values: Iterable[bool], what: str) -> None:
    """Raise :class:`Invalid` unless every one of *values* holds (a consistency check)."""
    if not all(values):
        raise Invalid(what)


# --- the layout of a trace --------------------------------------------------------------


def trace_codec() -> tuple[Codec, Spec]:
    """The codec of :class:`engine.trace.Trace` and the spec of its root."""
    global _TRACE
    if _TRACE is None:
        _TRACE = _build_trace_codec()
    return _TRACE


_TRACE: tuple[Codec, Spec] | None = None


def _build_trace_codec() -> tuple[Codec, Spec]:
    """The layout of a trace on disk, record by record and field by field, as one
    declaration that reads like the dataclasses it mirrors (long for that reason: one
    line per field of engine.trace's records)."""
    from engine import trace as t

    c = Codec()
    opt_text = Optional(TEXT)
    cpl = Int(0, 3)
    regs = c.record(t.Regs, "R", dict.fromkeys(t.REG_NAMES, U64))
    event = c.record(t.Event, "E", {"kind": Enum(t.EventKind), "text": TEXT, "modelled": BOOL})
    fault = c.record(
        t.Fault,
        "F",
        {
            "vector": Int(0, 255),
            "name": TEXT,
            "cpl": cpl,
            "rip": U64,
            "address": Optional(U64),
            "modelled": BOOL,
            "reason": TEXT,
            "error_code": Optional(U64),
        },
    )
    slot = c.record(t.StackSlot, "K", {"address": U64, "value": U64, "slot": TEXT})
    operand = c.record(t.Operand, "O", {"label": TEXT, "value": INT64})
    check = c.record(
        t.CheckState,
        "C",
        {
            "name": Enum(t.CheckName),
            "result": Enum(t.CheckResult),
            "left": Optional(operand),
            "right": Optional(operand),
            "relation": Enum(t.Relation),
        },
    )
    texts = c.tuple_of(TEXT, "t:s")
    ints = c.tuple_of(U64, "t:i")
    slots = c.tuple_of(slot, "t:K")
    checks = c.tuple_of(check, "t:C")
    events = c.tuple_of(event, "t:E")
    rewrite = c.row((TEXT, U64, U64), "w")
    c_statement = c.record(
        t.CStatement,
        "Q",
        {
            "key": TEXT,
            "file": TEXT,
            "line": COUNT,
            "stack": texts,
            "values": c.tuple_of(c.row((TEXT, U64), "v"), "t:v"),
        },
    )
    steps = c.table_of(
        t.Step,
        "t:S",
        {
            "index": COUNT,
            "rip": U64,
            "code": BYTES,
            "text": TEXT,
            "source_line": Optional(COUNT),
            "source": TEXT,
            "macro": opt_text,
            "label": TEXT,
            "cpl": cpl,
            "regs": regs,
            "changed": texts,
            "stack": slots,
            "entry_stack": slots,
            "stack_writes": ints,
            "stack_reads": ints,
            "checks": checks,
            "events": events,
            "modelled": BOOL,
            "stack_name": Enum(t.StackName),
            "rewritten": c.tuple_of(rewrite, "t:w"),
            "cr3_written": Optional(U64),
            "kind": Enum(t.StepKind),
            "c": Optional(c_statement),
        },
    )
    region = c.record(
        t.MappedRegion,
        "M",
        {"name": TEXT, "address": U64, "mapped": BOOL, "phys": Optional(U64), "flags": TEXT},
    )
    root = c.record(
        t.RootSummary,
        "P",
        {
            "name": TEXT,
            "cr3": U64,
            "pgd": U64,
            "pcid": Int(0, 4095),
            "regions": c.tuple_of(region, "t:M"),
        },
    )
    source = source_lines(c, t)
    u64_map = c.str_map(U64, "d")
    user_line = c.record(
        t.UserLine,
        "U",
        {"address": U64, "kind": TEXT, "text": TEXT, "code": BYTES, "line": COUNT},
    )
    trip = c.record(
        t.Trip,
        "X",
        {
            "first_step": COUNT,
            "exit": Optional(Enum(t.ExitPath)),
            "failed_check": Optional(Enum(t.CheckName)),
            "checks": checks,
            "pt_regs_at_call": u64_map,
            "pt_regs_after_call": u64_map,
            "handler": texts,
        },
    )
    trace = c.record(
        t.Trace,
        "T",
        {
            "scenario": TEXT,
            "path": opt_text,
            "kernel": TEXT,
            "cpu": TEXT,
            "paging": Int(4, 5),
            "pti": BOOL,
            "pcid": BOOL,
            "initial": regs,
            "steps": steps,
            "exit": Optional(Enum(t.ExitPath)),
            "failed_check": Optional(Enum(t.CheckName)),
            "checks": checks,
            "fault": Optional(fault),
            "pt_regs_at_call": u64_map,
            "pt_regs_after_call": u64_map,
            "handler": texts,
            "output": BYTES,
            "final": Optional(regs),
            "final_cpl": cpl,
            "msrs": u64_map,
            "roots": c.tuple_of(root, "t:P"),
            "source": source,
            "symbols": u64_map,
            "stopped": TEXT,
            "events": events,
            "not_removed": texts,
            "user_code": c.tuple_of(user_line, "t:U"),
            "door": Enum(t.Door),
            "trips": c.tuple_of(trip, "t:X"),
        },
    )
    return c, trace


def source_lines(c: Codec, t: Any) -> Spec:
    """Register the rendition's source lines (a trace's and the kernel image's) in *c*."""
    if "t:L" in c.specs:
        return c.specs["t:L"]
    instruction = c.record(
        t.SourceInstruction,
        "I",
        {"address": U64, "code": BYTES, "text": TEXT, "macro": Optional(TEXT)},
    )
    line = c.record(
        t.SourceLine,
        "L",
        {
            "number": COUNT,
            "text": TEXT,
            "note": TEXT,
            "label": Optional(TEXT),
            "instructions": c.tuple_of(instruction, "t:I"),
        },
    )
    return c.tuple_of(line, "t:L")


def decode_trace(pool: Any) -> Any:
    """The :class:`engine.trace.Trace` in *pool*, checked (raises :class:`Invalid`)."""
    codec, root = trace_codec()
    trace = codec.decode(pool, root)
    check_all((s.index == i for i, s in enumerate(trace.steps)), "steps out of order")
    return trace


def encode_trace(trace: Any) -> list[Any]:
    codec, root = trace_codec()
    return codec.encode(trace, root)


def encode_steps(steps: tuple[Any, ...]) -> list[Any]:
    """A run of a trace's steps on their own (the app's loader sends them in batches)."""
    codec, _ = trace_codec()
    return codec.encode(steps, codec.specs["t:S"])


def decode_steps(pool: Any, first: int) -> tuple[Any, ...]:
    """The steps in *pool*, checked to be numbered from *first* on (raises Invalid)."""
    codec, _ = trace_codec()
    steps: tuple[Any, ...] = codec.decode(pool, codec.specs["t:S"])
    check_all((s.index == first + i for i, s in enumerate(steps)), "steps out of order")
    return steps
