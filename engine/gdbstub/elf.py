"""A symbol file for gdb: the kernel image's labels as an ELF64 symbol table.

Why a hand-written ELF: pyelftools only reads ELF; the PyPI libraries that write it
are either unmaintained for years and Python-2 era (makeelf 0.3.4, elffile 0.005) or a
large native package aimed at editing existing binaries (LIEF).  What gdb needs here
is one section header for the code range and a .symtab/.strtab pair: five small
tables, laid out below with :mod:`struct` per the System V ABI (gABI "Object
Files") and its x86-64 supplement.

The file has no program headers and no file contents for its code section
(SHT_NOBITS): gdb takes the symbols from it and reads the instructions from the
target, i.e. from the emulated machine at the current step.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

EM_X86_64 = 62
ET_EXEC = 2
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 1, 2, 3, 8
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
STB_GLOBAL, STT_FUNC = 1, 2
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")


def symbol_sizes(symbols: Mapping[str, int], code: Iterable[tuple[int, int]]) -> dict[str, int]:
    """Each symbol's size: the known instructions that follow it, up to the next symbol.

    *code* is (address, length) of every instruction known (assembled or executed); a
    modelled C step has no bytes (length 0) and says nothing of the code there, which
    would otherwise stop the walk from ever moving on.
    """
    length = {address: n for address, n in code if n > 0}
    starts = sorted(set(symbols.values()))
    out: dict[str, int] = {}
    for name, addr in symbols.items():
        later = [a for a in starts if a > addr]
        stop = later[0] if later else 1 << 64
        end = addr
        while end in length and end < stop:
            end += length[end]
        out[name] = min(end, stop) - addr
    return out


def symbol_elf(symbols: Mapping[str, int], sizes: Mapping[str, int] | None = None) -> bytes:
    """An ELF64 x86-64 executable whose only content is *symbols* (name → address)."""
    if not symbols:
        raise ValueError("no symbols to write")
    sizes = sizes or {}
    ordered = sorted(symbols.items(), key=lambda kv: (kv[1], kv[0]))
    lo = ordered[0][1]
    hi = max(addr + max(sizes.get(name, 0), 1) for name, addr in ordered)

    strtab = bytearray(b"\0")
    syms = bytearray(SYM.pack(0, 0, 0, 0, 0, 0))
    for name, addr in ordered:
        off = len(strtab)
        strtab += name.encode() + b"\0"
        info = (STB_GLOBAL << 4) | STT_FUNC
        syms += SYM.pack(off, info, 0, 1, addr, sizes.get(name, 0))  # section 1: .text

    shstrtab = bytearray(b"\0")
    names = {}
    for sec in (".text", ".symtab", ".strtab", ".shstrtab"):
        names[sec] = len(shstrtab)
        shstrtab += sec.encode() + b"\0"

    body = bytearray()
    offset = EHDR.size

    def place(data: bytes, align: int = 8) -> int:
        nonlocal body
        pad = (-(offset + len(body))) % align
        body += b"\0" * pad
        at = offset + len(body)
        body += data
        return at

    sym_off = place(bytes(syms))
    str_off = place(bytes(strtab), 1)
    shstr_off = place(bytes(shstrtab), 1)
    shoff = place(b"")
    headers = [
        SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        SHDR.pack(names[".text"], SHT_NOBITS, SHF_ALLOC | SHF_EXECINSTR, lo, sym_off,
                  hi - lo, 0, 0, 16, 0),
        # sh_link: the string table; sh_info: index of the first global symbol
        SHDR.pack(names[".symtab"], SHT_SYMTAB, 0, 0, sym_off, len(syms), 3, 1, 8, SYM.size),
        SHDR.pack(names[".strtab"], SHT_STRTAB, 0, 0, str_off, len(strtab), 0, 0, 1, 0),
        SHDR.pack(names[".shstrtab"], SHT_STRTAB, 0, 0, shstr_off, len(shstrtab), 0, 0, 1, 0),
    ]  # fmt: skip
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, v1, SysV
    # e_entry 0: a symbol file has no entry point (gABI: "zero if none").  Any address
    # there is taken for the program's own: pwndbg looks for an ELF header at it and
    # prints "Could not find ELF base!" at every stop.
    ehdr = EHDR.pack(
        ident, ET_EXEC, EM_X86_64, 1, 0, 0, shoff, 0,
        EHDR.size, 0, 0, SHDR.size, len(headers), 4,  # e_shstrndx: .shstrtab
    )  # fmt: skip
    return ehdr + bytes(body) + b"".join(headers)


__all__ = ["symbol_elf", "symbol_sizes"]
