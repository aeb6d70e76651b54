"""Drive one SYSCALL round trip on the machine and record it.

Phases: the engine enters user mode with an IRETQ of its own (not recorded); the
user's code runs at CPL 3 up to its ``syscall``; the SYSCALL ring transition is
modelled (engine.model); entry_SYSCALL_64 runs instruction by instruction in
Unicorn, with do_syscall_64 modelled as one step (engine.syscalls); one of the two
exits returns to CPL 3, where the engine lets the CPU fetch, but not execute, the
instruction at the return RIP.  Any CPU exception on the way ends the run.

Unicorn swallows Python exceptions raised inside hooks (unicorn-engine/unicorn#1386,
#1987, #2129), so every hook here catches, stores, stops the emulation, and the
exception is re-raised once ``emu_start`` has returned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unicorn import (
    UC_ERR_INSN_INVALID,
    UC_HOOK_CODE,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_HOOK_MEM_READ,
    UC_HOOK_MEM_WRITE,
    UcError,
)
from unicorn import x86_const as X

from engine import layout as L
from engine.asm import disasm_one
from engine.constants import (
    CHECK_NAMES,
    EXCEPTION_NAMES,
    MSR_FS_BASE,
    MSR_GS_BASE,
    MSR_KERNEL_GS_BASE,
    MSR_LSTAR,
    MSR_STAR,
    MSR_SYSCALL_MASK,
    PT_REGS_FIELDS,
    PT_REGS_SIZE,
    RF,
    TF,
    UC_SIGCONTEXT_SS,
    UC_STRICT_RESTORE_SS,
    USER_CS,
    USER_DS,
)
from engine.errors import HookError
from engine.kernel.image import build_image
from engine.kernel.macros import Features
from engine.machine import GPRS, Machine, UserMapping
from engine.model import cr3_as_stored, iret_faults, syscall_transition, sysret_faults
from engine.scenario import Scenario
from engine.syscalls import PtRegs, build_sigframe, do_syscall_64
from engine.trace import (
    CheckState,
    Event,
    Fault,
    Regs,
    StackSlot,
    Step,
    Trace,
)

STACK_NAMES = {
    "user": "user stack",
    "task": "task's kernel stack",
    "entry": "per-CPU trampoline (entry) stack",
    "other": "no stack (RSP holds something else)",
}

ENTRY_FRAME_SLOTS = {
    "sysret": ("sp", "di", "ax (saved)"),
    "iret": ("ss", "sp", "flags", "cs", "ip", "di", "ax (saved)"),
}


def user_mappings(sc: Scenario) -> tuple[UserMapping, ...]:
    """The user memory a scenario needs: its code, its stack, and any [[memory]]."""
    assert sc.code is not None
    pages: dict[int, tuple[str, bool, bool]] = {}
    top = 1 << (56 if sc.machine.paging == 5 else 47)
    start = sc.rip & ~0xFFF
    end = (sc.rip + len(sc.code.code) + 0xFFF) & ~0xFFF
    for p in range(start, min(end, top), L.PAGE):
        pages[p] = ("code", False, True)
    lo = max((sc.rsp - 0x4000) & ~0xFFF, 0x1000)
    hi = min((sc.rsp + 0x1000 + 0xFFF) & ~0xFFF, top)
    for p in range(lo, hi if sc.rsp < top else lo, L.PAGE):
        name, w, x = pages.get(p, ("stack", True, False))
        pages[p] = (name if name == "code" else "stack", True, x)
    for mr in sc.memory:
        for p in range(mr.address, mr.address + mr.size, L.PAGE):
            name, _, _ = pages.get(p, ("memory", False, False))
            pages[p] = (name, "w" in mr.access, "x" in mr.access)
    out: list[UserMapping] = []
    code_bytes = sc.code.code
    for p in sorted(pages):
        name, w, x = pages[p]
        data = b""
        off = 0
        if start <= p < end:
            lo_c = max(sc.rip, p)
            hi_c = min(sc.rip + len(code_bytes), p + L.PAGE)
            data = code_bytes[lo_c - sc.rip : hi_c - sc.rip]
            off = lo_c - p
        out.append(UserMapping(name, p, L.PAGE, w, x, data, off))
    return tuple(out)


@dataclass
class _Pending:
    rip: int
    code: bytes
    text: str
    source_line: int | None
    source: str
    macro: str | None
    label: str
    cpl: int
    events: list[Event] = field(default_factory=list)
    modelled: bool = False
    writes: list[int] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)


class _Stop(Exception):
    """Raised inside the engine to end the run cleanly (not an error)."""


@dataclass(frozen=True, slots=True)
class EntryPoints:
    """Addresses in the assembled image where the run has work to do."""

    entry: int
    do_sys: int
    sysret: int
    iret: int
    ldt: int
    check_at: dict[int, int]  # address of each check's jne → index in CHECK_NAMES
    mov_cr3: frozenset[int]
    after_cr3_write: frozenset[int]
    swapgs: frozenset[int]


@functools.lru_cache(maxsize=16)
def entry_points(features: Features) -> EntryPoints:
    img = build_image(features)
    sym = img.symbols
    checks = [a for a in img.entry if getattr(a.item.meta, "check", None)]
    assert len(checks) + len(features.removed_checks) == len(CHECK_NAMES), "a branch a check"
    mov_cr3 = [a for a in img.entry if a.text.endswith(", %cr3")]
    return EntryPoints(
        entry=sym["entry_SYSCALL_64"],
        do_sys=sym["do_syscall_64"],
        sysret=next(a.address for a in img.entry if a.text == "sysretq"),
        iret=next(a.address for a in img.entry if a.text == "iretq"),
        ldt=sym["native_irq_return_ldt"],
        check_at={a.address: CHECK_NAMES.index(a.item.meta.check) for a in checks},
        mov_cr3=frozenset(a.address for a in mov_cr3),
        after_cr3_write=frozenset(a.address + len(a.code) for a in mov_cr3),
        swapgs=frozenset(a.address for a in img.entry if a.text == "swapgs"),
    )


class Run:
    """One round trip of *scenario* on *machine*; ``record`` keeps every step."""

    def __init__(
        self,
        machine: Machine,
        scenario: Scenario,
        record: bool = True,
        launches: dict[tuple[object, ...], tuple[object, list[tuple[int, bytes]]]] | None = None,
    ):
        self.launches = launches
        self.m = machine
        self.sc = scenario
        self.record = record
        self.img = machine.image
        self.uc = machine.uc
        self.paging = scenario.machine.paging
        self.lay = machine.layout
        pts = entry_points(self.img.features)
        self.entry = pts.entry
        self.do_sys = pts.do_sys
        self.sysret_addr = pts.sysret
        self.iret_addr = pts.iret
        self.ldt_addr = pts.ldt
        self.check_at = pts.check_at
        self.cr3_writes = pts.after_cr3_write
        self.mov_cr3_at = pts.mov_cr3
        self.swapgs_at = pts.swapgs
        self.call_line = next(
            getattr(a.item.meta, "line", None) for a in self.img.entry if a.text.startswith("call")
        )
        self.pcide = machine.config.pcid  # CR4.PCIDE, set at build when the CPU has PCID
        self.task_lo = self.lay.task_stack_base
        self.task_hi = self.lay.task_stack_top
        self.es_lo = L.CEA_ENTRY_STACK
        self.es_hi = L.ENTRY_STACK_TOP
        # Unicorn 2.1 hands memory hooks *physical* addresses once paging is on, so the
        # hooks watch the stacks' physical ranges (each is contiguous) and map back.
        self.task_phys = machine.task_stack_phys
        self.es_phys = machine.entry_stack_phys
        self.user_top = 1 << (56 if self.paging == 5 else 47)

        # run state
        self.phase = "launch"
        self.steps: list[Step] = []
        self.pending: _Pending | None = None
        self.prev_regs: Regs | None = None
        self.initial: Regs | None = None
        removed = machine.image.features.removed_checks
        self.checks: list[CheckState] = [
            CheckState(n, "removed", "not in this kernel (what-if: [machine] remove_checks)")
            if n in removed
            else CheckState(n, "not_reached")
            for n in CHECK_NAMES
        ]
        self.failed_check: str | None = None
        self.exit: str | None = None
        self.fault: Fault | None = None
        self.stopped = ""
        self.hook_error: BaseException | None = None
        self.syscall_hit: int | None = None
        self.task_written: dict[int, None] = {}
        self.es_written: dict[int, None] = {}
        self.stack_cache: tuple[StackSlot, ...] = ()
        # The modelled C code writes pt_regs from Python, which no memory hook sees:
        # it marks the stack words to be read again at the end of its step.
        self.stack_dirty = False
        self.es_cache: tuple[StackSlot, ...] = ()
        self.pt_at_call: dict[str, int] = {}
        self.pt_after_call: dict[str, int] = {}
        self.handler_lines: list[str] = []
        self.output = b""
        self.user_count = 0
        self.all_events: list[Event] = []
        self.cr3_restore: tuple[int, int] | None = None
        self.last_stack = ""
        self.actions = self._build_actions()

    # -- hooks -----------------------------------------------------------------------
    def _emu(self, start: int, count: int = 0) -> None:
        try:
            self.uc.emu_start(start, 0, count=count)
        except UcError as exc:
            if self.hook_error is None and self.fault is None:
                self._fault_from_ucerror(exc)
        if self.hook_error is not None:
            err = self.hook_error
            raise HookError(f"error inside a Unicorn hook: {err!r}") from err

    # -- reading state -------------------------------------------------------------
    def read_regs(self) -> Regs:
        vals = self.m.step_regs.read()
        cr3 = vals.pop()
        return Regs(*vals, self.m.read_msr(MSR_KERNEL_GS_BASE), cr3)  # type: ignore[call-arg]

    def cpl(self) -> int:
        return self.m.cs_reg.read()[0] & 3

    def _stack_name(self, rsp: int) -> str:
        if self.task_lo <= rsp <= self.task_hi:
            return "task"
        if self.es_lo <= rsp <= self.es_hi:
            return "entry"
        # user memory the scenario mapped (RSP may hold a stack-top address one past it);
        # anything else, e.g. the CR3 value SWITCH_TO_KERNEL_CR3 keeps in RSP, is no stack
        if any(m.vaddr < rsp <= m.vaddr + m.size for m in self.m.user):
            return "user"
        return "other"

    # -- step records ----------------------------------------------------------------
    def _begin(self, address: int, size: int) -> _Pending:
        asm = self.img.by_address.get(address)
        cpl = self.cpl()
        if asm is not None:
            meta = asm.item.meta
            line = getattr(meta, "line", 0) or None
            source = self.img.source[line - 1].text.strip() if line else ""
            if address == self.do_sys:
                # The C function is shown inside the source line that calls it.
                line = self.call_line
                source = "do_syscall_64(nr, regs)   /* C code: modelled */"
            return _Pending(
                address,
                asm.code,
                asm.text,
                line,
                source,
                getattr(meta, "macro", None),
                self.img.label_at(address),
                cpl,
            )
        code = self.m.read_virt(int(self.uc.reg_read(X.UC_X86_REG_CR3)), address, size) or b""
        d = disasm_one(code, address)
        text = d[0] if d else "(bad)"
        stmt = self.sc.code.statement_at(address) if self.sc.code else None
        return _Pending(address, code, text, None, stmt or text, None, "user", cpl)

    def _finish(self) -> None:
        p = self.pending
        if p is None:
            return
        self.pending = None
        regs = self.read_regs()
        prev = self.prev_regs or regs
        changed = regs.changed_from(prev)
        stack_name = self._stack_name(regs.rsp)
        # RSP also serves as a scratch register (it holds CR3 in SWITCH_TO_KERNEL_CR3):
        # only a move onto another real stack is an event.
        if stack_name != "other" and stack_name != self.last_stack:
            if self.last_stack:
                text = f"RSP {regs.rsp:#x}: now on the {STACK_NAMES[stack_name]}"
                p.events.append(Event("stack_switch", text))
            self.last_stack = stack_name
        if p.writes or self.stack_dirty:
            self.stack_dirty = False
            self.stack_cache = self._stack_words(
                self.task_written, self.task_lo, self.task_hi, None
            )
            path = "iret" if self.failed_check else "sysret"  # which frame the exit builds
            self.es_cache = self._stack_words(self.es_written, self.es_lo, self.es_hi, path)
        step = Step(
            index=len(self.steps),
            rip=p.rip,
            code=p.code,
            text=p.text,
            source_line=p.source_line,
            source=p.source,
            macro=p.macro,
            label=p.label,
            cpl=p.cpl,
            regs=regs,
            changed=changed,
            stack=self.stack_cache,
            entry_stack=self.es_cache,
            stack_writes=tuple(p.writes),
            stack_reads=tuple(p.reads),
            checks=tuple(self.checks),
            events=tuple(p.events),
            modelled=p.modelled,
            stack_name=stack_name,
        )
        self.steps.append(step)
        self.prev_regs = regs
        if len(self.steps) >= self.sc.step_cap:
            self._event(Event("cap", f"step cap of {self.sc.step_cap} reached"))
            self.stopped = f"stopped at the step cap ({self.sc.step_cap})"
            raise _Stop

    def _stack_words(
        self, written: dict[int, None], lo: int, hi: int, exit_path: str | None
    ) -> tuple[StackSlot, ...]:
        if not written:
            return ()
        # One read of the stack's written span (each stack is physically contiguous).
        low = min(written)
        base = self.task_phys if lo == self.task_lo else self.es_phys
        raw = self.m.read_phys(base + (low - lo), hi - low)
        out = []
        names = ENTRY_FRAME_SLOTS.get(exit_path or "", ())
        for addr in sorted(written, reverse=True):
            value = int.from_bytes(raw[addr - low : addr - low + 8], "little")
            if hi == self.task_hi:
                off = addr - (hi - PT_REGS_SIZE)
                slot = PT_REGS_FIELDS[off // 8] if 0 <= off < PT_REGS_SIZE else "return address"
            else:
                slot_index = (hi - addr) // 8 - 1
                slot = names[slot_index] if slot_index < len(names) else ""
            out.append(StackSlot(addr, value, slot))
        return tuple(out)

    def _event(self, ev: Event) -> None:
        self.all_events.append(ev)
        if self.pending is not None:
            self.pending.events.append(ev)
            if ev.modelled:
                self.pending.modelled = True
        elif self.steps:
            last = self.steps[-1]
            self.steps[-1] = dataclasses.replace(
                last, events=(*last.events, ev), modelled=last.modelled or ev.modelled
            )

    # -- hook bodies -------------------------------------------------------------------
    def _virt(self, phys: int) -> int:
        off = phys - self.task_phys
        if 0 <= off < self.task_hi - self.task_lo:
            return self.task_lo + off
        return self.es_lo + (phys - self.es_phys)

    def _on_mem_write(
        self, uc: Any, access: int, address: int, size: int, value: int, data: Any
    ) -> None:
        a = self._virt(address) & ~7
        if self.task_lo <= a < self.task_hi:
            self.task_written[a] = None
        else:
            self.es_written[a] = None
        if self.pending is not None:
            self.pending.writes.append(a)

    def _on_mem_read(
        self, uc: Any, access: int, address: int, size: int, value: int, data: Any
    ) -> None:
        if self.pending is not None:
            self.pending.reads.append(self._virt(address) & ~7)

    def _on_code_recorded(self, uc: Any, address: int, size: int, data: Any) -> None:
        self._fix_cr3()  # belongs to the MOV to CR3 still open as the pending step
        self._finish()
        if self.phase == "launch":
            if address == L.LAUNCH_STUB:
                return
            self.phase = "user"
        elif self.phase == "returned":
            self._returned()
        self.pending = self._begin(address, size)
        if self.phase == "user":
            self._user_instruction()
        if address in self.swapgs_at:
            self._event(Event("swapgs", "swapgs: GS_BASE ⇄ KERNEL_GS_BASE"))
        elif address in self.mov_cr3_at:
            self._event(Event("cr3_switch", "MOV to CR3: page-table root switch"))
        action = self.actions.get(address)
        if action is not None:
            action(address)

    def _on_code_special(self, uc: Any, address: int, size: int, data: Any) -> None:
        self.actions[address](address)

    def _on_code_user(self, uc: Any, address: int, size: int, data: Any) -> None:
        if self.phase == "returned":
            self._returned()
        self.phase = "user"
        self._user_instruction()

    def _user_instruction(self) -> None:
        if self.initial is None:
            self.initial = self.read_regs()
            self.prev_regs = self.initial
        self.user_count += 1
        if self.user_count > self.sc.step_cap:
            self.stopped = f"stopped at the step cap ({self.sc.step_cap}) in user code"
            self._event(Event("cap", self.stopped))
            raise _Stop

    def _returned(self) -> None:
        """The CPU is about to run the first user instruction after the exit: stop here."""
        regs = self.read_regs()
        self._event(
            Event(
                "return",
                f"back at CPL {regs.cpl}: the CPU fetched the instruction "
                f"at {regs.rip:#x} (not executed)",
            )
        )
        self.stopped = f"returned to user space at {regs.rip:#x}"
        raise _Stop

    def _build_actions(self) -> dict[int, Callable[[int], None]]:
        """What to do before the instruction at each interesting address runs."""
        actions: dict[int, Callable[[int], None]] = {
            self.do_sys: self._act_do_syscall_64,
            self.sysret_addr: self._act_sysret,
            self.iret_addr: self._act_iret,
            self.ldt_addr: self._act_ldt,
        }
        actions.update(dict.fromkeys(self.check_at, self._check))
        if self.pcide:
            actions.update(dict.fromkeys(self.mov_cr3_at, self._before_cr3_write))
            if not self.record:  # recorded runs restore before closing the step
                actions.update(dict.fromkeys(self.cr3_writes, self._fix_cr3_at))
        return actions

    def _before_cr3_write(self, address: int) -> None:
        """model: MOV to CR3 with CR4.PCIDE=1 does not store bit 63 (it only means "no flush").

        Unicorn would store it (and, with 5-level paging, walk from a bogus root), so the
        bit is taken out of the source register for the MOV and put back right after.
        """
        asm = self.img.by_address[address]
        reg = GPRS[asm.text.split()[1].rstrip(",").lstrip("%")]
        value = int(self.uc.reg_read(reg))
        stored = cr3_as_stored(value, self.pcide)
        if stored != value:
            self.uc.reg_write(reg, stored)
            self.cr3_restore = (reg, value)
            self._event(
                Event(
                    "cr3_switch",
                    f"CR3 bit 63 (no-flush) is not stored by MOV to CR3 "
                    f"with CR4.PCIDE=1: CR3 becomes {stored:#x}",
                    modelled=True,
                )
            )

    def _fix_cr3_at(self, address: int) -> None:
        self._fix_cr3()

    def _fix_cr3(self) -> None:
        """Put back the bit :meth:`_before_cr3_write` took out of the MOV's source register."""
        if self.cr3_restore is not None:
            reg, value = self.cr3_restore
            self.uc.reg_write(reg, value)
            self.cr3_restore = None

    def _act_do_syscall_64(self, address: int) -> None:
        self._model_do_syscall_64()

    def _act_sysret(self, address: int) -> None:
        self.exit = "sysret"
        rcx = int(self.uc.reg_read(X.UC_X86_REG_RCX))
        if sysret_faults(self.sc.machine.cpu, rcx, self.paging):
            self._model_fault(
                13,
                address,
                f"SYSRET to non-canonical RCX {rcx:#x} on Intel raises "
                "#GP(0) in ring 0, with the user RSP and GS already loaded",
            )
        self._event(Event("sysret", f"SYSRETQ: RIP ← RCX {rcx:#x}, CPL 3"))
        self.phase = "returned"

    def _act_iret(self, address: int) -> None:
        self.exit = "iret"
        rsp = int(self.uc.reg_read(X.UC_X86_REG_RSP))
        rip = self.m.read_u64(int(self.uc.reg_read(X.UC_X86_REG_CR3)), rsp)
        if rip is not None and iret_faults(rip, self.paging):
            self._model_fault(
                13,
                address,
                f"IRETQ to non-canonical RIP {rip:#x} raises #GP(0) at CPL 0 on the IRET itself",
            )
        self._event(Event("iret", f"IRETQ to RIP {rip or 0:#x}"))
        self.phase = "returned"

    def _act_ldt(self, address: int) -> None:
        self._event(
            Event(
                "unsupported",
                "SS is in the LDT: the espfix64 path (native_irq_return_ldt) is not emulated",
            )
        )
        self.stopped = "stopped at native_irq_return_ldt (espfix64 is not emulated)"
        raise _Stop

    def _model_fault(self, vector: int, rip: int, reason: str) -> None:
        self.fault = Fault(vector, EXCEPTION_NAMES[vector], self.cpl(), rip, None, True, reason)
        self._event(Event("fault", self.fault.describe(tag_modelled=False), modelled=True))
        self.stopped = f"{EXCEPTION_NAMES[vector]} (modelled) at {rip:#x}"
        raise _Stop

    def _check(self, address: int) -> None:
        i = self.check_at[address]
        name = CHECK_NAMES[i]
        zf = bool(self.m.rflags_reg.read()[0] & 0x40)
        failed = not zf  # every check branches with jne/jnz: taken when ZF is clear
        if failed and self.failed_check is None:
            self.failed_check = name
        if not self.record:
            self.checks[i] = CheckState(name, "fail" if failed else "pass")
            return
        r = self.read_regs()
        cr3 = r.cr3
        mem = lambda off: self.m.read_u64(cr3, r.rsp + off) or 0
        eq = "==" if zf else "≠"
        if name == "rcx_eq_rip":
            detail = f"RCX {r.rcx:#018x} {eq} RIP {r.r11:#018x}"
        elif name == "canonical_rip":
            detail = (
                f"RIP {r.r11:#018x} is canonical"
                if zf
                else f"RCX {r.r11:#018x} ≠ sign-extended {r.rcx:#018x}: not canonical"
            )
        elif name == "cs_user":
            detail = f"CS {mem(0x88):#x} {eq} __USER_CS {USER_CS:#x}"
        elif name == "r11_eq_rflags":
            detail = f"R11 {r.r11:#x} {eq} RFLAGS {mem(0x90):#x}"
        elif name == "no_rf_tf":
            bits = [n for n, b in (("RF", RF), ("TF", TF)) if r.r11 & b]
            detail = (
                f"R11 {r.r11:#x} has {'+'.join(bits)}"
                if bits
                else f"R11 {r.r11:#x}: RF and TF clear"
            )
        else:
            detail = f"SS {mem(0xA0):#x} {eq} __USER_DS {USER_DS:#x}"
        self.checks[i] = CheckState(name, "fail" if failed else "pass", detail)
        verdict = "FAIL → IRET via swapgs_restore_regs_and_return_to_usermode" if failed else "pass"
        self._event(Event("check", f"{name}: {verdict} ({detail})"))

    def _model_do_syscall_64(self) -> None:
        r = self.read_regs()
        nr, regs_addr = r.rdi, r.rsi
        pt = PtRegs(self.m, r.cr3, regs_addr)
        self.pt_at_call = pt.read()
        res = do_syscall_64(self.m, r.cr3, nr, regs_addr, self.sc.pid, self.pt_at_call)
        self.handler_lines = list(res.lines)
        self.output = res.output
        if self.sc.handler_set:
            for k, v in self.sc.handler_set.items():
                pt.write(k, v)
            self.handler_lines.append(
                "then, as ptrace or sigreturn would: "
                + ", ".join(f"{k} = {v:#x}" for k, v in self.sc.handler_set.items())
            )
        self.pt_after_call = pt.read()
        self.stack_dirty = True
        diffs = [f"{k} {self.pt_at_call[k]:#x} → {v:#x}" for k, v in self.pt_after_call.items()
                 if v != self.pt_at_call[k]]  # fmt: skip
        text = "; ".join(self.handler_lines)
        if diffs:
            text += " | pt_regs changed: " + ", ".join(diffs)
        self._event(Event("handler", text, modelled=True))
        if res.exited is not None:
            self.stopped = f"the task called exit({res.exited}); do_exit() never returns"
            self._event(Event("exit", self.stopped))
            raise _Stop

    def _on_syscall(self, uc: Any, data: Any) -> None:
        # Unicorn calls this hook from its syscall helper before the helper advances RIP:
        # RIP is the address of the `syscall` (0f 05, always 2 bytes).  After emu_stop it
        # has moved past it, so the address is taken here.
        self.syscall_hit = int(uc.reg_read(X.UC_X86_REG_RIP))
        uc.emu_stop()

    def _on_intr(self, uc: Any, intno: int, data: Any) -> None:
        rip = int(uc.reg_read(X.UC_X86_REG_RIP))
        if intno == 1 and self.syscall_hit is not None:
            # model: SYSCALL masks TF through MSR_SYSCALL_MASK, so no single-step trap
            # is taken on the way into the kernel.
            return
        address = int(uc.reg_read(X.UC_X86_REG_CR2)) if intno == 14 else None
        # Vectors past 31 only come from INT n: not the SYSCALL path, and not emulated.
        name = EXCEPTION_NAMES.get(intno, f"INT {intno:#x}")
        self.fault = Fault(intno, name, self.cpl(), rip, address, False, "")
        self._event(Event("fault", self.fault.describe()))
        self.stopped = f"{name} at CPL {self.fault.cpl}, RIP {rip:#x}"
        raise _Stop

    def _fault_from_ucerror(self, exc: UcError) -> None:
        rip = int(self.uc.reg_read(X.UC_X86_REG_RIP))
        if exc.errno == UC_ERR_INSN_INVALID:
            # Unicorn reports #UD as an error from emu_start instead of interrupt 6.
            self.fault = Fault(6, "#UD", self.cpl(), rip, None, False, "invalid opcode")
            self._event(Event("fault", self.fault.describe()))
            self.stopped = f"#UD at CPL {self.fault.cpl}, RIP {rip:#x}"
            return
        self.fault = Fault(-1, "unicorn", self.cpl(), rip, None, False, str(exc))
        self._event(Event("fault", f"emulation error at {rip:#x}: {exc}"))
        self.stopped = f"emulation error: {exc}"

    # -- the round trip ----------------------------------------------------------------
    def _launch_key(self) -> tuple[object, ...]:
        sc = self.sc
        assert sc.code is not None
        return (sc.rip, sc.rsp, sc.rflags, sc.fs_base, sc.gs_base, sc.code.code,
                tuple(sorted(sc.regs.items())), tuple(sorted(sc.sigframe.items())))  # fmt: skip

    def _enter_user_mode(self) -> None:
        """The machine at the scenario's first user instruction, CPL 3, nothing run yet.

        The first time, the engine's IRETQ gets there; the CPU context and the memory
        it leaves are kept (by the Session), so later runs of the same start restore
        them instead of entering again.
        """
        key = self._launch_key()
        cached = self.launches.get(key) if self.launches is not None else None
        if cached is not None:
            ctx, memory = cached
            self.m.restore_memory(memory)
            self.uc.context_restore(ctx)
            return
        self._launch()
        self._emu(L.LAUNCH_STUB, count=1)  # the IRETQ alone
        if self.fault is None and not self.stopped and self.launches is not None:
            if len(self.launches) >= 16:
                self.launches.pop(next(iter(self.launches)))
            self.launches[key] = (self.uc.context_save(), self.m.snapshot_memory())

    def _launch(self) -> None:
        """Enter user mode the way the kernel would: an IRETQ frame on the entry stack."""
        sc, m, uc = self.sc, self.m, self.uc
        m.reset()
        assert sc.code is not None
        frame = struct.pack("<5Q", sc.rip, USER_CS, sc.rflags, sc.rsp, USER_DS)
        top = L.ENTRY_STACK_TOP
        phys = m.walk(m.kernel_cr3, top - 40).phys
        assert phys is not None
        uc.mem_write(phys, frame)
        # The stack above user RSP holds an rt_sigframe as signal delivery leaves it:
        # by default the user's own starting state (so rt_sigreturn restores it), with
        # [sigframe] overrides.
        sf = {name: sc.regs.get(name, 0) for name in GPRS}
        sf.update(
            rsp=sc.rsp,
            rip=sc.code.syscall_return,
            rcx=sc.code.syscall_return,
            r11=sc.rflags,
            eflags=sc.rflags,
            cs=USER_CS,
            ss=USER_DS,
            # frame_uc_flags(): a signal taken in 64-bit code saves SS and asks for it back
            uc_flags=UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
        )
        sf.update(sc.sigframe)
        m.write_virt(m.user_cr3, sc.rsp, build_sigframe(sf))
        m.gprs.write([top - 40 if name == "rsp" else sc.regs.get(name, 0) for name in GPRS])
        uc.reg_write(X.UC_X86_REG_CR3, m.user_cr3)
        m.write_msr(MSR_FS_BASE, sc.fs_base)
        m.write_msr(MSR_GS_BASE, sc.gs_base)
        m.write_msr(MSR_KERNEL_GS_BASE, self.lay.percpu_base)

    def _syscall(self) -> None:
        """model: the SYSCALL ring transition (Intel SDM vol. 2B), which Unicorn skips."""
        m, uc = self.m, self.uc
        assert self.syscall_hit is not None
        before = self.read_regs()
        gprs = m.gprs.read()
        fs, gs, kgs = (m.read_msr(x) for x in (MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE))
        cr3 = before.cr3
        eff = syscall_transition(
            self.syscall_hit + 2,
            before.rflags,
            m.read_msr(MSR_SYSCALL_MASK),
            m.read_msr(MSR_LSTAR),
            m.read_msr(MSR_STAR),
        )
        # Back to the saved CPL-0 context (CS/SS with kernel attributes), then put back
        # everything SYSCALL leaves alone.
        m.restore_kernel_context()
        m.gprs.write(gprs)
        uc.reg_write(X.UC_X86_REG_CR3, cr3)
        m.write_msr(MSR_FS_BASE, fs)
        m.write_msr(MSR_GS_BASE, gs)
        m.write_msr(MSR_KERNEL_GS_BASE, kgs)
        m.transition_regs.write((eff.rcx, eff.r11, eff.rflags, eff.rip))
        self._event(
            Event(
                "syscall",
                f"SYSCALL: CPL 3 → 0, RCX ← {eff.rcx:#x}, R11 ← {eff.r11:#x}, "
                f"RFLAGS ← {eff.rflags:#x}, RIP ← LSTAR {eff.rip:#x}",
                modelled=True,
            )
        )
        if self.record:
            self._finish()

    def execute(self) -> Trace:
        sc = self.sc
        self._enter_user_mode()
        if self.fault is None and not self.stopped:
            self._emu(sc.rip)
        if self.fault is None and not self.stopped and self.syscall_hit is not None:
            self.phase = "kernel"
            self._syscall()
            self._emu(self.entry)
        elif self.fault is None and not self.stopped:
            self.stopped = "user code ended without reaching a syscall"
        if self.record and self.pending is not None:
            with contextlib.suppress(_Stop):
                self._finish()
        final = self.read_regs()
        if not self.stopped:
            self.stopped = "emulation ended"
        return Trace(
            scenario=sc.name,
            path=sc.path,
            kernel=sc.kernel,
            cpu=sc.machine.cpu,
            paging=sc.machine.paging,
            pti=sc.machine.pti,
            pcid=sc.machine.pcid,
            initial=self.initial or final,
            steps=tuple(self.steps),
            exit=self.exit,
            failed_check=self.failed_check,
            checks=tuple(self.checks),
            fault=self.fault,
            pt_regs_at_call=self.pt_at_call,
            pt_regs_after_call=self.pt_after_call,
            handler=tuple(self.handler_lines),
            output=self.output,
            final=final,
            final_cpl=final.cpl,
            msrs=self.m.msrs(),
            control=dict(zip(("CR0", "CR4"), self.m.control_regs.read(), strict=True)),
            roots=self.m.roots,
            source=self.img.source,
            symbols=dict(self.img.symbols),
            stopped=self.stopped,
            events=tuple(self.all_events),
        )


class Session:
    """A machine built for one scenario, ready to run it any number of times.

    The Unicorn hooks stay installed between runs and call into whichever
    :class:`Run` is active: Unicorn decides at translation time which instructions
    call a code hook, so changing hooks means flushing every translated block.
    """

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.machine = Machine(scenario.machine, user_mappings(scenario))
        self._mode: bool | None = None
        self._hooks: list[int] = []
        self._launches: dict[tuple[object, ...], tuple[object, list[tuple[int, bytes]]]] = {}
        self._run: Run | None = None

    def _dispatch(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            run = self._run
            assert run is not None
            try:
                return getattr(run, name)(*args)
            except _Stop:
                run.uc.emu_stop()
            except BaseException as exc:
                if run.hook_error is None:
                    run.hook_error = exc
                run.uc.emu_stop()
            return None

        return call

    def _install(self, run: Run) -> None:
        if self._mode == run.record:
            return
        uc = self.machine.uc
        for h in self._hooks:
            uc.hook_del(h)
        self._hooks.clear()
        uc.ctl_flush_tb()  # type: ignore[attr-defined]
        add = self._hooks.append
        d = self._dispatch
        add(uc.hook_add(UC_HOOK_INTR, d("_on_intr")))
        add(uc.hook_add(UC_HOOK_INSN, d("_on_syscall"), None, 1, 0, X.UC_X86_INS_SYSCALL))
        if run.record:
            add(uc.hook_add(UC_HOOK_CODE, d("_on_code_recorded"), None, 1, 0))
            for lo, size in ((run.task_phys, run.task_hi - run.task_lo),
                             (run.es_phys, run.es_hi - run.es_lo)):  # fmt: skip
                add(uc.hook_add(UC_HOOK_MEM_WRITE, d("_on_mem_write"), None, lo, lo + size - 1))
                add(uc.hook_add(UC_HOOK_MEM_READ, d("_on_mem_read"), None, lo, lo + size - 1))
        else:
            for a in run.actions:
                add(uc.hook_add(UC_HOOK_CODE, d("_on_code_special"), None, a, a))
            # Any instruction in user space: the user's code, and the return to it.
            add(uc.hook_add(UC_HOOK_CODE, d("_on_code_user"), None, 0, run.user_top - 1))
        self._mode = run.record

    def run(self, record: bool = True, scenario: Scenario | None = None) -> Trace:
        """One round trip from the scenario's initial state; *record* keeps every step.

        *scenario* may replace the session's own when it needs the same machine and
        user memory (what-if variations of registers, handler writes or expectations).
        """
        sc = self.scenario if scenario is None else scenario
        if sc is not self.scenario and (
            user_mappings(sc) != self.machine.user or sc.machine != self.machine.config
        ):
            raise ValueError("that scenario needs a different machine; make a new Session")
        run = Run(self.machine, sc, record, self._launches)
        self._install(run)
        self._run = run
        try:
            return run.execute()
        finally:
            self._run = None


def run_scenario(scenario: Scenario, record: bool = True) -> Trace:
    """Build the machine for *scenario* and run one recorded round trip."""
    return Session(scenario).run(record)


__all__ = ["EntryPoints", "Run", "Session", "run_scenario", "user_mappings"]
