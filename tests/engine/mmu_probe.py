"""Ask the emulated MMU itself what an address maps to: one load, run by Unicorn.

A machine built for the scenario is given the memory of another one (replayed to some
step); a ``mov (%rax), %rbx`` at CPL 0, placed in an unused part of .entry.text (mapped
in both roots), runs under the chosen CR3; :meth:`MMU.load_user` runs the same load at
CPL 3, from the user's code page, to see what U/S lets user code reach.  The load's
physical address comes from a read hook (Unicorn reports physical addresses to memory
hooks on this machine), its value from RBX; a #PF or #GP means the MMU refused the
address.  This is the reference the inspector's walk and ``x`` are tested against, so
it uses none of their code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from unicorn import UC_HOOK_INTR, UC_HOOK_MEM_READ, UC_MEM_READ, UcError
from unicorn import x86_const as X

from engine import layout as L
from engine.machine.core import Machine
from engine.run.launch import prepare_launch, user_mappings
from engine.scenario.model import Scenario

#: mov (%rax), %rbx
LOAD = bytes.fromhex("488b18")
#: Where the probe runs: past the launch stub, in the second page of .entry.text.
PROBE = L.LAUNCH_STUB + 0x800
PROBE_PHYS = L.PHYS_ENTRY_TEXT + (PROBE - L.ENTRY_TEXT)


@dataclass(frozen=True)
class Probe:
    mapped: bool
    physical: int | None
    value: int | None
    vector: int | None  # the exception, when the load faulted


class MMU:
    """A machine of *scenario*'s configuration, reused for every probe."""

    def __init__(self, scenario: Scenario):
        self.m = Machine(scenario.machine, user_mappings(scenario))
        uc = self.m.uc
        self.reads: list[int] = []
        self.vectors: list[int] = []

        def on_read(uc_: Any, access: int, address: int, size: int, value: int, d: Any) -> None:
            # data reads only: Unicorn reports instruction fetches to UC_HOOK_MEM_FETCH
            if access == UC_MEM_READ:
                self.reads.append(address)

        def on_intr(uc_: Any, intno: int, d: Any) -> None:
            self.vectors.append(intno)
            uc_.emu_stop()

        # CPL 3 at the first user instruction, as the engine's own IRETQ leaves it; in
        # 64-bit mode even for a 32-bit program ([user] mode = "compat"): the probe's load
        # is 64-bit code, and paging does not depend on the mode
        prepare_launch(self.m, dataclasses.replace(scenario, mode="64"))
        uc.emu_start(L.LAUNCH_STUB, 0, count=1)
        self.user_ctx = uc.context_save()
        # the start of the user's code page: a load there never crosses into the next page
        self.user_rip = scenario.rip & ~(L.PAGE - 1)
        user_phys = self.m.walk(self.m.user_cr3, self.user_rip).phys
        assert user_phys is not None
        self.user_phys = user_phys
        # the code page is read-only memory, which no snapshot restores: put it back by hand
        self.user_code = bytes(uc.mem_read(user_phys, len(LOAD)))
        uc.hook_add(UC_HOOK_MEM_READ, on_read, None, 1, 0)
        uc.hook_add(UC_HOOK_INTR, on_intr)
        self.probe_code = bytes(uc.mem_read(PROBE_PHYS, len(LOAD)))

    def load(self, memory: list[tuple[int, bytes]], cr3: int, vaddr: int) -> Probe:
        """Load 8 bytes at *vaddr* under *cr3*, with the writable memory *memory*."""
        m, uc = self.m, self.m.uc
        m.restore_memory(memory)
        m.restore_kernel_context()  # CPL 0
        uc.reg_write(X.UC_X86_REG_CR3, cr3)  # also flushes Unicorn's TLB
        uc.reg_write(X.UC_X86_REG_RAX, vaddr)
        uc.reg_write(X.UC_X86_REG_RBX, 0)
        uc.mem_write(PROBE_PHYS, LOAD)  # read-only memory: put back after, by hand
        uc.ctl_flush_tb()  # type: ignore[attr-defined]  # no translation of older bytes
        self.reads.clear()
        self.vectors.clear()
        try:
            uc.emu_start(PROBE, PROBE + len(LOAD), count=1)
        except UcError:
            return Probe(False, None, None, -1)
        finally:
            uc.mem_write(PROBE_PHYS, self.probe_code)
        if self.vectors:
            return Probe(False, None, None, self.vectors[0])
        assert self.reads, "the load read nothing"
        return Probe(True, self.reads[0], int(uc.reg_read(X.UC_X86_REG_RBX)), None)

    def load_user(self, memory: list[tuple[int, bytes]], cr3: int, vaddr: int) -> Probe:
        """The same load at CPL 3, from the user's code page (executable under the user
        root only: the kernel root's user PGD entries are NX)."""
        m, uc = self.m, self.m.uc
        m.restore_memory(memory)
        uc.mem_write(self.user_phys, LOAD)
        uc.ctl_flush_tb()  # type: ignore[attr-defined]  # no translation of older bytes
        uc.context_restore(self.user_ctx)
        uc.reg_write(X.UC_X86_REG_CR3, cr3)
        uc.reg_write(X.UC_X86_REG_RAX, vaddr)
        uc.reg_write(X.UC_X86_REG_RBX, 0)
        self.reads.clear()
        self.vectors.clear()
        try:
            uc.emu_start(self.user_rip, self.user_rip + len(LOAD), count=1)
        except UcError:
            return Probe(False, None, None, -1)
        finally:
            uc.mem_write(self.user_phys, self.user_code)
        if self.vectors:
            return Probe(False, None, None, self.vectors[0])
        return Probe(True, self.reads[0], int(uc.reg_read(X.UC_X86_REG_RBX)), None)
