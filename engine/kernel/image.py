"""Parse the entry_64.S rendition, expand its macros and assemble it at kernel addresses."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

from engine.asm import Assembled, Item, Label, assemble
from engine.kernel.macros import MACROS, Expander, Features, resolve_operands
from engine.kernel.variants import KernelSpec, spec
from engine.layout import (
    DO_FAST_SYSCALL_32,
    DO_INT80_EMULATION,
    DO_INT80_SYSCALL_32,
    DO_SYSCALL_64,
    DO_SYSENTER_32,
    ENTRY_TEXT,
    LAUNCH_STUB,
    SYNC_REGS,
)
from engine.trace import SourceInstruction, SourceLine

if TYPE_CHECKING:
    from engine.codec import Codec, Spec


@dataclass(frozen=True, slots=True)
class LineMeta:
    """What rides on each assembled instruction: where it came from."""

    line: int  # 1-based display line
    macro: str | None
    check: str | None = None  # the SYSRET check whose branch this is


@dataclass(frozen=True, slots=True)
class KernelImage:
    """The assembled entry text plus the modelled C function and the launch stub."""

    features: Features
    kernel: KernelSpec
    entry: tuple[Assembled, ...]
    entry_code: bytes
    do_syscall_64: Assembled
    launch: Assembled
    symbols: dict[str, int]  # public labels and external symbols
    labels: dict[str, int]  # every label, the macros' local .L ones too
    source: tuple[SourceLine, ...]
    by_address: dict[int, Assembled]
    #: the other modelled C functions the entry code calls (do_int80_syscall_32), each a
    #: ``retq`` at its own address in the kernel text, as do_syscall_64 is
    c_stubs: tuple[Assembled, ...] = ()
    labels_by_address: dict[int, str] = field(default_factory=dict)  # filled after build

    def label_at(self, address: int) -> str:
        """The nearest public symbol at or before *address* in the kernel."""
        label = self.labels_by_address.get(address)
        if label is not None:
            return label
        best, best_addr = "", -1
        for name, addr in self.symbols.items():
            # an end marker (__end_entry_SYSENTER_compat) shares its address with what
            # follows it: it names no code of its own
            if name.startswith((".", "__end_")):
                continue
            if best_addr < addr <= address:
                best, best_addr = name, addr
        return best


SLOW_EXIT = "swapgs_restore_regs_and_return_to_usermode"

#: The modelled C functions other than do_syscall_64 that a rendition may call, and
#: where each one's stub sits in the kernel text.
C_STUBS: dict[str, int] = {
    "do_int80_syscall_32": DO_INT80_SYSCALL_32,
    "do_fast_syscall_32": DO_FAST_SYSCALL_32,  # the compat SYSCALL entry's C side
    "do_SYSENTER_32": DO_SYSENTER_32,  # the SYSENTER entry's
    "sync_regs": SYNC_REGS,
    "do_int80_emulation": DO_INT80_EMULATION,  # reached by int80_emulation's jmp
}

_LABEL_MACRO = re.compile(
    r"^SYM_(?:CODE_START|CODE_START_LOCAL|CODE_START_NOALIGN|INNER_LABEL(?:_ALIGN)?|START"
    r"|FUNC_START)\((\w+)"
)


def source_text(kernel: str = "v5.8.13", fred: bool = False) -> str:
    """The rendition of *kernel*'s entry_64.S (with *fred*, its entry_64_fred.S), as
    shipped in the package."""
    k = spec(kernel)
    name = k.fred_source_file if fred else k.source_file
    if not name:
        raise ValueError(f"{kernel} has no FRED entry")
    return resources.files("engine.kernel").joinpath(name).read_text()


def compat_text(kernel: str) -> str:
    """*kernel*'s arch/x86/entry/entry_64_compat.S rendition (the int $0x80 entry), as
    shipped in the package: listed (and assembled) after the entry code ("": none)."""
    name = spec(kernel).compat_source_file
    return resources.files("engine.kernel").joinpath(name).read_text() if name else ""


def compat_listed(features: Features) -> bool:
    """Is the int $0x80 rendition part of this build's image?  Not under FRED (FRED's
    own entry is the image), and not on 6.1 with SRSO: its error_entry's RET is then a
    jmp to srso_return_thunk, which is not rendered (6.12's error_entry has no RET: it
    tail-calls sync_regs)."""
    if features.fred or not compat_text(features.kernel):
        return False
    return features.kernel != "v6.1" or not features.srso


def srso_text(kernel: str) -> str:
    """The part of *kernel*'s arch/x86/lib/retpoline.S that UNTRAIN_RET reaches on a CPU
    with SRSO, as shipped in the package: listed (and assembled) after the entry code."""
    name = spec(kernel).srso_source_file
    if not name:
        raise ValueError(f"{kernel} has no SRSO rendition")
    return resources.files("engine.kernel").joinpath(name).read_text()


def _strip_comment(line: str) -> str:
    return re.sub(r"/\*.*?\*/", "", line).strip()


@functools.lru_cache(maxsize=16)
def build_image(features: Features) -> KernelImage:
    """Expand and assemble the rendition for *features* (cached in memory and on disk, keyed
    by the features and the engine's source, entry_64.S included: see engine.store)."""
    from engine.store import cached

    return cached(
        "image",
        (repr(features),),
        lambda: assemble_image(features),
        _encode_image,
        lambda data: _decode_image(data, features),
    )


@dataclass(frozen=True, slots=True)
class _StoredImage:
    """What the store keeps of a :class:`KernelImage`: the rest follows from the features
    it is stored under (the spec) or from these (the code, the maps by address)."""

    entry: tuple[Assembled, ...]
    do_syscall_64: Assembled
    launch: Assembled
    symbols: dict[str, int]
    labels: dict[str, int]
    source: tuple[SourceLine, ...]
    c_stubs: tuple[Assembled, ...]


@functools.cache
def _image_codec() -> tuple[Codec, Spec]:
    from engine import trace
    from engine.codec import BOOL, BYTES, COUNT, TEXT, U64, Codec, Optional, source_lines

    c = Codec()
    meta = c.record(
        LineMeta, "l", {"line": COUNT, "macro": Optional(TEXT), "check": Optional(TEXT)}
    )
    item = c.record(Item, "i", {"text": TEXT, "asm": Optional(TEXT), "meta": meta, "opaque": BOOL})
    assembled = c.record(
        Assembled, "a", {"address": U64, "code": BYTES, "text": TEXT, "item": item}
    )
    labels = c.str_map(U64, "d")
    assembled_all = c.tuple_of(assembled, "t:a")
    root = c.record(
        _StoredImage,
        "K",
        {
            "entry": assembled_all,
            "do_syscall_64": assembled,
            "launch": assembled,
            "symbols": labels,
            "labels": labels,
            "source": source_lines(c, trace),
            "c_stubs": assembled_all,
        },
    )
    return c, root


def _encode_image(image: KernelImage) -> object:
    codec, root = _image_codec()
    stored = _StoredImage(
        image.entry, image.do_syscall_64, image.launch, image.symbols, image.labels, image.source,
        image.c_stubs,
    )  # fmt: skip
    return codec.encode(stored, root)


def _decode_image(data: object, features: Features) -> KernelImage:
    """The image stored for *features*, checked: its instructions follow each other from
    the entry text's start and sit where the two stubs are (raises ValueError)."""
    from engine.codec import Invalid

    codec, root = _image_codec()
    stored: _StoredImage = codec.decode(data, root)
    address = ENTRY_TEXT
    for a in stored.entry:
        if a.address != address or not a.code:
            raise Invalid("the entry text's instructions do not follow each other")
        address += len(a.code)
    if stored.do_syscall_64.address != DO_SYSCALL_64 or stored.launch.address != LAUNCH_STUB:
        raise Invalid("a stub is not at its address")
    if any(a.address not in C_STUBS.values() for a in stored.c_stubs):
        raise Invalid("a C stub is not at its address")
    return _finish(
        features, stored.entry, stored.do_syscall_64, stored.launch, stored.symbols,
        stored.labels, stored.source, stored.c_stubs,
    )  # fmt: skip


class _Statements:
    """The rendition's statements turned into items to assemble, one source line at a
    time: labels, macros expanded, the SYSRET checks' branches named (or, for a what-if
    kernel without one, left out with their compare)."""

    def __init__(self, features: Features):
        self.features = features
        self.expander = Expander(features)
        self.kspec = spec(features.kernel)
        self.check_names = self.kspec.asm_checks
        self.items: list[Item | Label] = []
        self.checks_seen = 0
        self.check_start = 0  # where the instructions of the next check begin

    def add(self, code: str, line_no: int) -> str | None:
        """Add the statement *code* of source line *line_no*; the label it defines."""
        m = _LABEL_MACRO.match(code)
        if m:
            self.items.append(Label(m.group(1)))
            if code.startswith("SYM_FUNC_START") and self.kspec.endbr:
                # linkage.h: SYM_FUNC_START begins with ENDBR in an IBT build (6.12)
                meta = LineMeta(line_no, "SYM_FUNC_START")
                self.items.append(Item("endbr64", ".byte 0xf3, 0x0f, 0x1e, 0xfa", meta))
            return m.group(1)
        if re.match(r"^[\w.]+:$", code):
            self.items.append(Label(code[:-1]))
            return code[:-1]
        if code.startswith(("SYM_CODE_END", "SYM_FUNC_END")):
            return None
        if code.startswith(".byte"):
            # data the CPU reads as part of the next instructions (engine.asm.Item.opaque)
            self.items.append(Item(code, code, LineMeta(line_no, None), opaque=True))
            return None
        word, _, args = code.partition(" ")
        word = word.strip()
        if "\t" in word:
            word, _, rest = word.partition("\t")
            args = rest + " " + args
        if word in MACROS:
            for it in self.expander.expand(word, args.strip()):
                if isinstance(it, Item):
                    it = Item(it.text, it.asm, LineMeta(line_no, word))
                self.items.append(it)
            return None
        text = resolve_operands(re.sub(r"\s+", " ", code), self.kspec)
        mnem, _, ops = text.partition(" ")
        item = Item(f"{mnem} {ops}".strip(), None, LineMeta(line_no, None))
        if mnem == "call":
            self.check_start = len(self.items) + 1  # the checks follow the C call
        if mnem in ("jne", "jnz") and ops == SLOW_EXIT and self.checks_seen < len(self.check_names):
            self._check_branch(item, line_no)
        else:
            self.items.append(item)
        return None

    def _check_branch(self, item: Item, line_no: int) -> None:
        """The branch of one of the six SYSRET checks, in the order the code tests them."""
        name = self.check_names[self.checks_seen]
        self.checks_seen += 1
        if name in self.features.removed_checks:
            # what-if: built without this check. Its compare (and for canonical_rip the
            # shifts) goes with the branch; the loads of RCX and R11 stay, SYSRET needs them.
            self.items[self.check_start :] = [
                it for it in self.items[self.check_start :]
                if isinstance(it, Label) or it.text.startswith(("mov", "nop"))
            ]  # fmt: skip
        else:
            self.items.append(Item(item.text, None, LineMeta(line_no, None, name)))
        self.check_start = len(self.items)


def _configs(features: Features) -> dict[str, bool]:
    """The kernel configuration options a rendition's ``#ifdef`` may test, as this build
    sets them (an unknown one is a KeyError: the rendition names what it depends on)."""
    return {"CONFIG_X86_ESPFIX64": features.espfix64}


def _rendition(features: Features) -> str:
    """The source listed for *features*: entry_64.S (or FRED's entry), then the int $0x80
    entry, then the SRSO untraining, each where the build has it."""
    text = source_text(features.kernel, features.fred)
    if compat_listed(features):
        text += "\n" + compat_text(features.kernel)
    if features.srso:
        text += "\n" + srso_text(features.kernel)
    if not features.ia32 and not features.fred and features.kernel == "v6.12":
        # MSR_CSTAR's target with ia32_emulation=off
        ignore = "entry_SYSCALL32_ignore_v6.12.S"
        text += "\n" + resources.files("engine.kernel").joinpath(ignore).read_text()
    return text


def _called_c_functions(features: Features, text: str) -> dict[str, int]:
    """The modelled C functions the rendition *text* calls or jumps to, at their stubs.
    do_syscall_64 sits at one address; under FRED the entry calls fred_entry_from_user,
    which (for a SYSCALL event) ends in do_syscall_64."""
    called = {"do_syscall_64": DO_SYSCALL_64}
    if features.fred:
        called["fred_entry_from_user"] = DO_SYSCALL_64
    called |= {n: a for n, a in C_STUBS.items() if re.search(rf"\b(call|jmp)\s+{n}\b", text)}
    return called


def _read_rendition(
    features: Features, text: str, statements: _Statements
) -> list[tuple[str, str, str | None]]:
    """Each source line of the rendition *text* as shown (text, its ``///`` note, the label
    it defines), its code given to *statements*: comments and the blocks of an ``#ifdef``
    this build leaves out carry none, a statement continued with a backslash belongs to
    the line it starts on."""
    shown: list[tuple[str, str, str | None]] = []  # (text, note, label)
    note: list[str] = []
    in_comment = False
    configs = _configs(features)
    built: list[bool] = []  # one per open #ifdef: is its block in this build?
    continued: tuple[int, str] | None = None  # a statement's first line and text so far
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("///"):
            note.append(stripped[3:].strip())
            continue
        code = "" if in_comment else _strip_comment(raw)
        if "/*" in raw and "*/" not in raw.split("/*", 1)[1]:
            in_comment = True
            code = "" if raw.strip().startswith("/*") else _strip_comment(raw.split("/*")[0])
        elif in_comment and "*/" in raw:
            in_comment = False
            code = ""
        if code.startswith(("#ifdef", "#endif")):
            # shown as the kernel's source has it; a block the build leaves out is
            # listed without instructions, as the compiler leaves it out
            if code.startswith("#ifdef"):
                built.append(configs[code.split()[1]])
            else:
                built.pop()
            code = ""
        elif not all(built):
            code = ""
        if continued is not None:
            # the rest of a statement continued with a backslash: it belongs to the
            # line it started on
            code, (line_no, continued) = f"{continued[1]} {code}", (continued[0], None)
        else:
            line_no = len(shown) + 1
        if code.endswith("\\"):
            continued, code = (line_no, code[:-1].rstrip()), ""
        label = statements.add(code, line_no) if code else None
        shown.append((raw.rstrip().expandtabs(8), " ".join(note), label))
        if code or continued or (not all(built) and _strip_comment(raw)):
            note = []
    return shown


def assemble_image(features: Features) -> KernelImage:
    """Expand and assemble the rendition for *features*."""
    statements = _Statements(features)
    text = _rendition(features)
    shown = _read_rendition(features, text, statements)
    called = _called_c_functions(features, text)
    entry, labels = assemble(statements.items, ENTRY_TEXT, called)
    (do_sys,), _ = assemble([Item("retq", None, LineMeta(0, None))], DO_SYSCALL_64)
    c_stubs = tuple(
        assemble([Item("retq", None, LineMeta(0, None))], called[name])[0][0]
        for name in C_STUBS
        if name in called
    )
    (launch,), _ = assemble([Item("iretq", None, LineMeta(0, None))], LAUNCH_STUB)

    per_line: dict[int, list[SourceInstruction]] = {}
    for a in entry:
        meta = a.item.meta
        assert isinstance(meta, LineMeta)
        per_line.setdefault(meta.line, []).append(
            SourceInstruction(a.address, a.code, a.text, meta.macro)
        )
    source = tuple(
        SourceLine(i + 1, text, n, lab, tuple(per_line.get(i + 1, ())))
        for i, (text, n, lab) in enumerate(shown)
    )
    public = {k: v for k, v in labels.items() if not k.startswith(".")}
    return _finish(features, tuple(entry), do_sys, launch, public, dict(labels), source, c_stubs)


def _finish(
    features: Features,
    entry: tuple[Assembled, ...],
    do_sys: Assembled,
    launch: Assembled,
    symbols: dict[str, int],
    labels: dict[str, int],
    source: tuple[SourceLine, ...],
    c_stubs: tuple[Assembled, ...],
) -> KernelImage:
    """The image made of these parts, with what follows from them (assembled or stored)."""
    image = KernelImage(
        features=features,
        kernel=spec(features.kernel),
        entry=entry,
        entry_code=b"".join(a.code for a in entry),
        do_syscall_64=do_sys,
        launch=launch,
        symbols=symbols,
        labels=labels,
        source=source,
        by_address={a.address: a for a in (*entry, do_sys, launch, *c_stubs)},
        c_stubs=c_stubs,
    )
    image.labels_by_address.update({a: image.label_at(a) for a in image.by_address})
    return image
