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

A scenario's user code is untrusted text, and Keystone is native code that does
not survive all of it:

* it loops forever at 100 % CPU on some statements (``-1``, ``[rax]``, any
  statement that starts with punctuation such as ``! % & ( * + , - / : < = > [ \\ ^ |
  ~`` followed by ``1``): the statement loop of its AsmParser never advances
  (keystone-engine/keystone#551).  ``signal.alarm`` cannot interrupt native code.
* it segfaults on ``.text`` and on section switches (``.section``, ``.data``):
  keystone-engine/keystone#288, #368.
* it allocates without bound on ``.space 0x1000000``, ``.fill`` and ``.incbin
  "/dev/zero"``, and ``.incbin`` puts any local file's bytes into the code.

So :func:`assemble_untrusted` runs Keystone in a forked child with memory and CPU
limits and a wall-clock deadline enforced by the parent, and engine.scenario only
lets instructions, labels and data directives through to it.
"""

from __future__ import annotations

import faulthandler
import functools
import os
import re
import resource
import select
import signal
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from engine.errors import AssemblyError

if TYPE_CHECKING:
    from capstone import Cs
    from keystone import Ks

# Keystone and Capstone load on first use, not with this module: the scenario parser imports
# it, and parsing a file without user code (or reading one from the cache) needs neither.


@functools.cache
def _keystone_module() -> ModuleType:
    import keystone

    return keystone


@functools.cache
def keystone() -> Ks:
    ks_mod = _keystone_module()
    ks = ks_mod.Ks(ks_mod.KS_ARCH_X86, ks_mod.KS_MODE_64)
    ks.syntax = ks_mod.KS_OPT_SYNTAX_ATT
    return ks


@functools.cache
def capstone(bits: int = 64) -> Cs:
    """Capstone in AT&T syntax for *bits*-bit code: 64, or 32 for compatibility mode."""
    import capstone as cs_mod

    cs = cs_mod.Cs(cs_mod.CS_ARCH_X86, cs_mod.CS_MODE_64 if bits == 64 else cs_mod.CS_MODE_32)
    cs.syntax = cs_mod.CS_OPT_SYNTAX_ATT
    return cs


@functools.cache
def capstone_intel(bits: int = 64) -> Cs:
    """Capstone in Intel syntax, whose mnemonics carry no AT&T size suffix (``syscall``,
    ``mov``): the user-code check tells a suffix from the last letter of a name with it."""
    import capstone as cs_mod

    return cs_mod.Cs(cs_mod.CS_ARCH_X86, cs_mod.CS_MODE_64 if bits == 64 else cs_mod.CS_MODE_32)


# A function of its arguments only: a loop in user code decodes the same bytes at the same
# address on every pass, and Capstone's Python wrapper costs more than the lookup.
@functools.lru_cache(maxsize=4096)
def disasm_one(code: bytes, address: int, bits: int = 64) -> tuple[str, int] | None:
    """Capstone's AT&T text of the first instruction in *code*, and its size, decoded as
    *bits*-bit code."""
    for insn in capstone(bits).disasm(code, address, 1):
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
    if not _mnemonic_equal(im.lower(), dm.lower()):
        return False
    if _canon_operands(io) == _canon_operands(do):
        return True
    # Capstone prints a 32-bit operation's negative immediate as its unsigned 32 bits
    # (mov $-0x26, %eax reads back as movl $0xffffffda, %eax)
    return re.fullmatch(r"\$-(0x[0-9a-f]+|\d+), %e\w+", io.strip()) is not None and (
        _canon_operands(_NUMBER.sub(lambda m: hex(-int(m.group(2), 0) % 2**32), io, 1))
        == _canon_operands(do)
    )


@dataclass(frozen=True, slots=True)
class Item:
    """One instruction to assemble: *text* as Capstone should read it back.

    ``asm`` overrides what Keystone is given (NOP padding as ``.byte``);
    branch targets may name labels; ``meta`` rides along untouched.
    """

    text: str
    asm: str | None = None
    meta: Any = None
    #: Bytes that are no instruction on their own: the CPU reads them with the bytes of
    #: the items after them as one (srso_untrain_ret's ``.byte 0x48, 0xb8``, a movabs
    #: whose immediate is the next four instructions).  Not read back alone.
    opaque: bool = False


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
    except _keystone_module().KsError as exc:
        raise AssemblyError(f"Keystone cannot assemble {source!r}: {exc}") from None
    if not encoding:
        raise AssemblyError(f"Keystone produced no bytes for {source!r}")
    return bytes(encoding)


#: Instructions Capstone 5 reads as another one, by their exact bytes: ERETU (FRED,
#: f3 0f 01 ca) reads as ``clac`` with an ignored REP prefix.  Only these bytes given for
#: this text are accepted as it.
CAPSTONE_MISREADS: dict[bytes, str] = {bytes.fromhex("f30f01ca"): "eretu"}


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
        if it.opaque:
            out.append(Assembled(addr, code, it.text, it))
            addr += len(code)
            continue
        decoded = disasm_one(code, addr)
        if decoded is not None and CAPSTONE_MISREADS.get(code) == it.text:
            decoded = (it.text, len(code))
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


# -- untrusted code: Keystone in a child process ------------------------------------

#: Wall-clock seconds one untrusted assembly may take (real user code needs a few ms).
UNTRUSTED_TIMEOUT = 2.0
#: Address space the child may add to what it inherits from the parent.
UNTRUSTED_MEMORY = 256 << 20
#: The most bytes user code may assemble to.
MAX_USER_CODE = 64 << 10
#: Keystone's answer for a text that assembles to more than :data:`MAX_USER_CODE` bytes.
TOO_LARGE = f"assembles to more than {MAX_USER_CODE >> 10} KiB, the limit for user code"
#: Results kept per source text, so that reloading a scenario does not fork again.
_CACHE_SIZE = 256


class AssemblerFailed(Exception):
    """Keystone did not finish on untrusted text: it hung, crashed or ran out of memory."""


#: One result per text given: the bytes, or Keystone's error message.
AsmResult = bytes | str

_cache: OrderedDict[tuple[tuple[str, ...], int], tuple[AsmResult, ...] | str] = OrderedDict()
# One child at a time: a second fork made while the first child runs would inherit the
# first pipe's write end and keep it open past the first child's death.
_lock = threading.Lock()


def _new_lock_after_fork() -> None:
    # A process forked while another thread held the lock (the app forks its loader from
    # a worker thread) would otherwise find it held forever.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


def assemble_untrusted(texts: Sequence[str], address: int) -> tuple[AsmResult, ...]:
    """Assemble each of *texts* at *address* with Keystone, in a forked child.

    Returns, per text, its bytes or Keystone's error message; raises
    :class:`AssemblerFailed` when the child hangs (killed after
    :data:`UNTRUSTED_TIMEOUT` s of wall-clock time), crashes or exceeds its
    memory, or when a text assembles to more than :data:`MAX_USER_CODE` bytes.
    Results (failures too) are cached by text.

    Why a fork and not a thread, a signal or a subprocess: Keystone's hangs are
    loops in native code that no Python mechanism can interrupt, and a crash
    must not take the process with it; a fork costs about 2 ms and needs no
    re-import (Keystone is already loaded here).

    Safe to call from a worker thread of a Textual app: the child runs only the
    forking thread, and that thread only calls into Keystone's C code (a fresh
    ``Ks``, so none the parent's other threads might be using at fork time),
    ``os.write`` and ``os._exit`` (no Python locks, no imports, no atexit
    handlers, no flushing of the parent's buffers); glibc makes malloc usable
    after fork.  The parent waits in ``select`` without the GIL, so the UI
    thread keeps running, and it kills the child when the deadline passes.
    """
    key = (tuple(texts), address)
    _keystone_module()  # in the parent: the child may open no file, so it cannot import
    with _lock:
        hit = _cache.get(key)
        if hit is None:
            try:
                hit = _run_child(key[0], address)
            except AssemblerFailed as exc:
                hit = str(exc)
            _cache[key] = hit
            if len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(key)
    if isinstance(hit, str):
        raise AssemblerFailed(hit)
    return hit


def _inherited_address_space() -> int | None:
    """Bytes of address space this process maps now (RLIMIT_AS counts them in the child)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return None


def _child(texts: tuple[str, ...], address: int, out: int, vsz: int | None) -> None:
    """The child's whole life: limits, Keystone, one message, ``os._exit``."""
    code = 1
    ks_mod = _keystone_module()  # loaded by the parent before the fork: no import here
    try:
        # Keystone reports some failures on stderr ("LLVM ERROR"): keep them off the
        # parent's terminal, which may be the app's screen.
        faulthandler.disable()  # its file is a copy of the parent's stderr
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        cpu = int(UNTRUSTED_TIMEOUT) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        if vsz is not None:
            limit = vsz + UNTRUSTED_MEMORY
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash writes no core file
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # nor any other file
        # No new file descriptors: even a directive that slipped through could not open
        # a local file (.incbin, .include).
        resource.setrlimit(resource.RLIMIT_NOFILE, (0, 0))
        ks = ks_mod.Ks(ks_mod.KS_ARCH_X86, ks_mod.KS_MODE_64)
        ks.syntax = ks_mod.KS_OPT_SYNTAX_ATT
        results: list[AsmResult] = []
        for text in texts:
            try:
                encoding, _count = ks.asm(text, address)
            except ks_mod.KsError as exc:
                results.append(str(exc))
                continue
            data = bytes(encoding or b"")
            if len(data) > MAX_USER_CODE:
                results.append(TOO_LARGE)
                continue
            results.append(data)
        view = memoryview(_pack(results))
        while view:
            view = view[os.write(out, view) :]
        code = 0
    finally:
        os._exit(code)


def _run_child(texts: tuple[str, ...], address: int) -> tuple[AsmResult, ...]:
    vsz = _inherited_address_space()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns (and coverage cannot see it)
        os.close(read_end)
        _child(texts, address, write_end, vsz)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + UNTRUSTED_TIMEOUT
    timed_out = False
    # The most an honest answer can take: each result is at most the code limit (or a short
    # message) and its header.
    budget = len(texts) * (MAX_USER_CODE + _MAX_MESSAGE + _RESULT.size)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_end], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            budget -= len(chunk)
            if budget < 0:
                timed_out = True  # not an answer: kill the child like a hung one
                break
    finally:
        os.close(read_end)
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        raise AssemblerFailed(
            f"the assembler did not finish (stopped after {UNTRUSTED_TIMEOUT:g} s)"
        )
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            raise AssemblerFailed("the assembler did not finish (CPU time limit)")
        if sig == signal.SIGABRT:
            # C++'s bad_alloc under RLIMIT_AS ends in std::terminate, i.e. abort().
            raise AssemblerFailed(
                f"the assembler gave up (out of its {UNTRUSTED_MEMORY >> 20} MiB of memory?)"
            )
        raise AssemblerFailed(f"the assembler crashed ({signal.Signals(sig).name})")
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or not chunks:
        raise AssemblerFailed("the assembler failed (it exited without an answer)")
    result = _unpack(b"".join(chunks), len(texts))
    if result is None:
        raise AssemblerFailed("the assembler failed (its answer was malformed)")
    return result


# The child's answer, one record per text: a kind byte (b"B" bytes, b"S" Keystone's
# message in UTF-8), a length, the data.  Not a pickle: the child runs Keystone on
# untrusted text, and a Keystone that such text corrupted must not be able to make the
# parent run code by what it writes.
_RESULT = struct.Struct("<cI")
_MAX_MESSAGE = 4096  # Keystone's error messages are a line


def _pack(results: Sequence[AsmResult]) -> bytes:
    out = bytearray()
    for r in results:
        data = r if isinstance(r, bytes) else r.encode("utf-8", "replace")[:_MAX_MESSAGE]
        out += _RESULT.pack(b"B" if isinstance(r, bytes) else b"S", len(data)) + data
    return bytes(out)


def _unpack(raw: bytes, count: int) -> tuple[AsmResult, ...] | None:
    """The *count* results in *raw*, or None unless it is exactly that many well-formed
    records within their limits."""
    results: list[AsmResult] = []
    at = 0
    while at < len(raw):
        if at + _RESULT.size > len(raw):
            return None
        kind, size = _RESULT.unpack_from(raw, at)
        at += _RESULT.size
        data = raw[at : at + size]
        at += size
        if len(data) != size:
            return None
        if kind == b"B" and size <= MAX_USER_CODE:
            results.append(data)
        elif kind == b"S" and size <= _MAX_MESSAGE:
            results.append(data.decode("utf-8", "replace"))
        else:
            return None
    return tuple(results) if len(results) == count else None
