"""Fast access to Unicorn's registers and MSRs.

The Python binding's ``reg_read`` picks a ctypes class for every call; reading two
dozen registers per recorded step that way costs more than emulating the step.  A
:class:`RegisterFile` is *given* the Uc and a fixed list of register ids and keeps
its ctypes buffers, so a read or write of the whole list is one call into the
library.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

from unicorn import Uc, UcError
from unicorn import x86_const as X
from unicorn.unicorn_py3.unicorn import uclib


class _Msr(ctypes.Structure):
    _fields_ = [("rid", ctypes.c_uint32), ("value", ctypes.c_uint64)]


class RegisterFile:
    """Batch read/write of a fixed list of 64-bit-or-smaller registers."""

    def __init__(self, uc: Uc, ids: Sequence[int]):
        self._uch = uc._uch
        n = len(ids)
        self._n = ctypes.c_int(n)
        self._ids = (ctypes.c_int * n)(*ids)
        self._vals = (ctypes.c_uint64 * n)()
        base = ctypes.addressof(self._vals)
        self._ptrs = (ctypes.c_void_p * n)(*[base + 8 * i for i in range(n)])

    def read(self) -> list[int]:
        status = uclib.uc_reg_read_batch(self._uch, self._ids, self._ptrs, self._n)
        if status:
            raise UcError(status)
        return self._vals[:]

    def write(self, values: Sequence[int]) -> None:
        for i, v in enumerate(values):
            self._vals[i] = v
        status = uclib.uc_reg_write_batch(self._uch, self._ids, self._ptrs, self._n)
        if status:
            raise UcError(status)


class MsrAccess:
    """MSR reads and writes without the binding's per-call overhead."""

    def __init__(self, uc: Uc):
        self._uch = uc._uch
        self._msr = _Msr()
        self._ref = ctypes.byref(self._msr)

    def read(self, msr: int) -> int:
        self._msr.rid = msr
        status = uclib.uc_reg_read(self._uch, X.UC_X86_REG_MSR, self._ref)
        if status:
            raise UcError(status)
        return int(self._msr.value)

    def write(self, msr: int, value: int) -> None:
        self._msr.rid = msr
        self._msr.value = value
        status = uclib.uc_reg_write(self._uch, X.UC_X86_REG_MSR, self._ref)
        if status:
            raise UcError(status)
