"""Host I/O and object transfer for one gdb connection: vFile and qXfer, read-only.

gdb fetches the symbol file and, for process-oriented front-ends (GEF, pwndbg), the
procfs view of the process (:mod:`engine.gdbstub.procfs`) through these packets; the
target description and the auxv come through qXfer.  Nothing on the disk the stub runs
on is reachable but the symbol file it was given.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from engine.gdbstub import procfs
from engine.gdbstub.replay import Replay
from engine.gdbstub.target import target_xml
from engine.gdbstub.wire import MAX_PACKET, Malformed, addr_len, hex_int

# File-I/O errno values (gdb's remote protocol, "Errno Values")
ENOENT, EBADF, EACCES, EINVAL, EMFILE, EROFS = 2, 9, 13, 22, 24, 30
#: Most files gdb may hold open at once over vFile (it keeps the symbol file open twice).
MAX_FILES = 16
FIRST_FD = 3
O_ACCMODE, O_APPEND, O_CREAT, O_TRUNC = 3, 0x8, 0x200, 0x400


@dataclass
class HostIO:
    """The files one connection has open, over one recording."""

    replay: Replay
    exec_file: str | None = None  # the symbol file, offered through qXfer:exec-file
    files: dict[int, bytes] = field(default_factory=dict)  # vFile descriptor → contents
    maps: bytes | None = None  # /proc/PID/maps, built on first use (it never changes)

    def vfile(self, text: str) -> str | bytes:
        """Host I/O, read-only, over the files the recording has and nothing else: the
        symbol file (gdb on another machine can fetch it, and a local one need not warn
        that the target has no file transfer) and the procfs view of :mod:`procfs`.
        Any other path is "no such file": the stub shows nothing of the disk it runs on.
        Each open gets its own descriptor, as gdb caches reads per descriptor.
        """
        op, _, args = text.partition(":")
        if op == "setfs":
            return "F0"
        if op in ("open", "readlink", "unlink", "stat", "lstat"):
            path_hex = args.split(",")[0]
            try:
                path = bytes.fromhex(path_hex).decode()
            except ValueError:
                raise Malformed(text) from None
            if op == "unlink":
                return f"F-1,{EROFS:x}"
            if op == "readlink":
                target = self._readlink(path)
                if target is None:
                    return f"F-1,{ENOENT:x}" if self._contents(path) is None else f"F-1,{EINVAL:x}"
                return f"F{len(target):x};".encode() + target
            data = self._contents(path)
            if data is None:
                return f"F-1,{ENOENT:x}"
            if op != "open":
                return f"F-1,{EACCES:x}"  # vFile has no stat packet; gdb uses fstat
            flags = hex_int(args.split(",")[1]) if "," in args else 0
            if flags & (O_ACCMODE | O_APPEND | O_CREAT | O_TRUNC):
                return f"F-1,{EROFS:x}"  # the recording is history: nothing is writable
            if len(self.files) >= MAX_FILES:
                return f"F-1,{EMFILE:x}"
            fd = next(n for n in range(FIRST_FD, FIRST_FD + MAX_FILES + 1) if n not in self.files)
            self.files[fd] = data
            return f"F{fd:x}"
        if op in ("pread", "fstat", "close", "pwrite"):
            parts = args.split(",")
            fd = hex_int(parts[0])
            if fd not in self.files:
                return f"F-1,{EBADF:x}"
            if op == "pwrite":
                return f"F-1,{EBADF:x}"  # opened read-only
            if op == "close":
                del self.files[fd]
                return "F0"
            data = self.files[fd]
            if op == "fstat":
                # gdb's File-I/O struct stat, big-endian: mode 0100444, one link, the size
                st = struct.pack(">IIIIIIIQQQIII", 0, 0, 0o100444, 1, 0, 0, 0,
                                 len(data), 4096, 0, 0, 0, 0)  # fmt: skip
                return f"F{len(st):x};".encode() + st
            if len(parts) != 3:
                raise Malformed(text)
            count = min(hex_int(parts[1]), MAX_PACKET // 2)
            offset = hex_int(parts[2])
            chunk = data[offset : offset + count]
            return f"F{len(chunk):x};".encode() + chunk
        return ""

    def _contents(self, path: str) -> bytes | None:
        """The bytes of a served file, None for any other path."""
        which = procfs.proc_file(path)
        if which == "maps":
            if self.maps is None:
                self.maps = procfs.maps(self.replay)
            return self.maps
        if which in ("cmdline", "environ"):
            return b""  # no program was exec'd: the user code was placed in memory
        if self.exec_file is not None and (which == "exe" or path == self.exec_file):
            return Path(self.exec_file).read_bytes()
        return None

    def _readlink(self, path: str) -> bytes | None:
        if procfs.proc_file(path) == "exe" and self.exec_file is not None:
            return self.exec_file.encode()
        return None

    def xfer(self, text: str) -> str | bytes:
        parts = text.split(":")
        if len(parts) != 5 or parts[2] != "read":
            return ""
        _, obj, _, annex, span = parts
        offset, length = addr_len(span)
        if obj == "features":
            if annex != "target.xml":
                return "E00"
            data = target_xml().encode()
        elif obj == "exec-file" and self.exec_file:
            data = self.exec_file.encode()
        elif obj == "auxv" and not annex:
            data = procfs.auxv()
        else:
            return ""
        length = min(length, MAX_PACKET // 2)
        chunk = data[offset : offset + length]
        more = offset + length < len(data)
        return (b"m" if more else b"l") + chunk


__all__ = ["MAX_FILES", "HostIO"]
