"""Memory at any step of a recorded run: the image at step 0 plus what each step wrote.

A recorded run keeps a :class:`WriteLog`: every store the CPU made (a Unicorn
``UC_HOOK_MEM_WRITE`` over all physical memory, which reports physical addresses)
and every write a modelled part of the machine made directly (do_syscall_64's
pt_regs and user-memory writes, the ``[handler.set]`` writes: they go through
:meth:`engine.machine.core.Machine.write_phys`, which tells the log), cut into
steps where the recorder closes each one.  With the memory as it was when the
first user instruction was about to run (step 0: the launch's snapshot, which the
session keeps anyway), :class:`MemoryHistory` answers "these bytes at step N" from
a per-page index: the page's writes sorted by step, with a copy of the page after
every :data:`CHECKPOINT_EVERY`-th write to it, so a read applies at most that many
writes whatever N is and however long the run.

Steps are numbered as everywhere else: 0 is before the first step, N >= 1 is right
after ``Trace.steps[N - 1]``.  Page tables are memory too: a walk at step N reads
its entries through :meth:`MemoryHistory.read_phys` at N.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.layout import PAGE
from engine.machine.paging import PageWalk, walk

#: A page's contents are copied after every this many writes to it: the most writes a
#: read of that page ever has to apply.
CHECKPOINT_EVERY = 32

#: Bytes of the value Unicorn passes to a write hook (wider stores are read back).
HOOK_VALUE_BYTES = 8

_PAGE_MASK = ~(PAGE - 1)


@dataclass
class WriteLog:
    """The writes of one recorded run, in order, and where each step's end falls.

    ``writes`` holds ``(physical address, bytes)``; a CPU store of up to 8 bytes is
    kept as ``(address, size, value)`` by the hook (cheap) and turned into bytes when
    the history is built.  ``ends[k]`` is ``len(writes)`` when step k + 1 closed.
    """

    writes: list[tuple[int, int, int] | tuple[int, bytes]] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    #: indices of stores wider than a hook value, read back from memory when their step closes
    wide: list[int] = field(default_factory=list)

    def start(self) -> None:
        """Step 0 begins: what was written before (the launch) is in the step-0 image."""
        self.writes.clear()
        self.ends.clear()
        self.wide.clear()

    def stored(self, address: int, size: int, value: int) -> None:
        """A CPU store (the write hook's arguments)."""
        if size > HOOK_VALUE_BYTES:
            self.wide.append(len(self.writes))
        self.writes.append((address, size, value))

    def direct(self, address: int, data: bytes) -> None:
        """A write a modelled part of the machine made to physical memory."""
        self.writes.append((address, bytes(data)))

    def close_step(self, read_phys: Callable[[int, int], bytes]) -> None:
        """The recorder closed a step: its writes are the ones since the previous close."""
        for i in self.wide:
            address, size, _ = self.writes[i]  # type: ignore[misc]
            self.writes[i] = (address, read_phys(address, size))
        self.wide.clear()
        self.ends.append(len(self.writes))


def _as_bytes(w: tuple[int, int, int] | tuple[int, bytes]) -> tuple[int, bytes]:
    if len(w) == 2:
        return w
    address, size, value = w
    return address, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


@dataclass
class _PageHistory:
    """One physical page's writes: the step of each, and checkpoints of its contents."""

    steps: list[int] = field(default_factory=list)
    writes: list[tuple[int, bytes]] = field(default_factory=list)  # (offset in page, bytes)
    checkpoints: list[bytes] = field(default_factory=list)  # after writes 32, 64, ...


class MemoryHistory:
    """Physical memory at any step of one recorded run (see the module docstring)."""

    def __init__(
        self,
        image: Iterable[tuple[int, bytes]],
        log: WriteLog,
        levels: int,
    ):
        """*image*: (physical base, contents) of all memory at step 0; *log*: the run's."""
        self.levels = levels
        self.steps = len(log.ends)
        self._base: dict[int, tuple[bytes, int]] = {}  # page → (region contents, offset)
        for base, data in image:
            data = bytes(data)
            for off in range(0, len(data), PAGE):
                self._base[(base + off) & _PAGE_MASK] = (data, off)
        self._pages: dict[int, _PageHistory] = {}
        step, end_iter = 1, iter(log.ends)
        end = next(end_iter, len(log.writes))
        for i, raw in enumerate(log.writes):
            while i >= end:  # this write belongs to a later step
                step += 1
                end = next(end_iter, len(log.writes))
            address, data = _as_bytes(raw)
            while data:  # a store may cross a page boundary
                page = address & _PAGE_MASK
                n = min(len(data), page + PAGE - address)
                self._add(page, step, address - page, data[:n])
                address, data = address + n, data[n:]

    def _add(self, page: int, step: int, offset: int, data: bytes) -> None:
        h = self._pages.get(page)
        if h is None:
            if page not in self._base:
                return  # not memory (Unicorn would have faulted): nothing to keep
            h = self._pages[page] = _PageHistory()
        h.steps.append(step)
        h.writes.append((offset, data))
        if len(h.writes) % CHECKPOINT_EVERY == 0:
            h.checkpoints.append(bytes(self._replay(page, h, len(h.writes))))

    def _replay(self, page: int, h: _PageHistory, count: int) -> bytearray:
        """The page after its first *count* writes: the last checkpoint, then the rest."""
        done = min(count // CHECKPOINT_EVERY, len(h.checkpoints))
        if done:
            buf = bytearray(h.checkpoints[done - 1])
        else:
            data, off = self._base[page]
            buf = bytearray(data[off : off + PAGE])
        for offset, chunk in h.writes[done * CHECKPOINT_EVERY : count]:
            buf[offset : offset + len(chunk)] = chunk
        return buf

    def page(self, step: int, page: int) -> bytes | None:
        """The contents of the physical *page* at *step*; None if it is not memory."""
        base = self._base.get(page)
        if base is None:
            return None
        h = self._pages.get(page)
        count = 0 if h is None else bisect_right(h.steps, step)
        if h is None or count == 0:
            data, off = base
            return data[off : off + PAGE]
        if count % CHECKPOINT_EVERY == 0:
            return h.checkpoints[count // CHECKPOINT_EVERY - 1]
        return bytes(self._replay(page, h, count))

    def steps_writing(self, address: int, size: int) -> tuple[int, ...]:
        """The steps that wrote any of the *size* bytes at physical *address*, in order
        (a write watch: every store counts, whether or not it changed the value)."""
        found: set[int] = set()
        end = address + size
        page = address & _PAGE_MASK
        while page < end:
            h = self._pages.get(page)
            if h is not None:
                for step, (offset, data) in zip(h.steps, h.writes, strict=True):
                    start = page + offset
                    if start < end and address < start + len(data):
                        found.add(step)
            page += PAGE
        return tuple(sorted(found))

    def read_phys(self, step: int, address: int, size: int) -> bytes | None:
        """*size* bytes at physical *address* at *step*; None if any of them is not memory."""
        out = bytearray()
        while size > 0:
            page = address & _PAGE_MASK
            contents = self.page(step, page)
            if contents is None:
                return None
            n = min(size, page + PAGE - address)
            out += contents[address - page : address - page + n]
            address, size = address + n, size - n
        return bytes(out)

    def walk(self, step: int, cr3: int, vaddr: int) -> PageWalk:
        """The engine's walker over the tables under *cr3* as they were at *step*."""

        def read(address: int, size: int) -> bytes:
            return self.read_phys(step, address, size) or bytes(size)

        return walk(read, cr3, vaddr, self.levels)

    def read_virt(self, step: int, cr3: int, vaddr: int, size: int) -> bytes | None:
        """*size* bytes at *vaddr* through *cr3* at *step*; None if any page is unmapped."""
        out = bytearray()
        while size > 0:
            w = self.walk(step, cr3, vaddr & _PAGE_MASK)
            if w.phys is None:
                return None
            n = min(size, PAGE - (vaddr & (PAGE - 1)))
            chunk = self.read_phys(step, w.phys | (vaddr & (PAGE - 1)), n)
            if chunk is None:
                return None
            out += chunk
            vaddr, size = vaddr + n, size - n
        return bytes(out)


__all__ = ["CHECKPOINT_EVERY", "MemoryHistory", "WriteLog"]
