"""The remote protocol's framing and argument syntax: checksums, escapes, hex numbers.

Pure functions over bytes and text, shared by the packet dispatcher
(:mod:`engine.gdbstub.protocol`), its host I/O (:mod:`engine.gdbstub.hostio`) and the
transport (:mod:`engine.gdbstub.server`).  A packet whose arguments do not parse raises
:class:`Malformed`, which the dispatcher answers with an ``E`` reply.
"""

from __future__ import annotations

#: Largest packet (payload) either side sends; told to gdb in qSupported.
MAX_PACKET = 0x4000
#: The reply to a packet whose arguments do not parse.
E_MALFORMED = "E01"


class Malformed(ValueError):
    """A packet whose arguments cannot be parsed."""


def checksum(payload: bytes) -> int:
    return sum(payload) & 0xFF


def escape(payload: bytes) -> bytes:
    """Binary-safe payload: '#', '$', '}' and '*' go as '}' then the byte xor 0x20."""
    out = bytearray()
    for b in payload:
        if b in b"#$}*":
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape(payload: bytes) -> bytes:
    out = bytearray()
    it = iter(payload)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                raise Malformed("escape at the end of a packet")
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def frame(payload: bytes) -> bytes:
    body = escape(payload)
    return b"$" + body + b"#" + f"{checksum(body):02x}".encode()


def hex_int(text: str) -> int:
    if not text or len(text) > 16:
        raise Malformed(text)
    try:
        return int(text, 16)
    except ValueError:
        raise Malformed(text) from None


def addr_len(args: str) -> tuple[int, int]:
    addr, sep, length = args.partition(",")
    if not sep:
        raise Malformed(args)
    return hex_int(addr), hex_int(length)


__all__ = [
    "E_MALFORMED", "MAX_PACKET", "Malformed", "addr_len", "checksum", "escape", "frame",
    "hex_int", "unescape",
]  # fmt: skip
