"""Drive one SYSCALL round trip on the machine and record it.

Phases: the engine enters user mode with an IRETQ of its own (engine.run.launch, not
recorded); the user's code runs at CPL 3 up to its ``syscall``; the SYSCALL ring
transition is modelled (engine.machine.modelled); entry_SYSCALL_64 runs instruction by
instruction in Unicorn, with do_syscall_64 modelled as one step (engine.run.syscalls);
one of the two exits returns to CPL 3, where the engine lets the CPU fetch, but not
execute, the instruction at the return RIP.  Any CPU exception on the way ends the
run.  Each step is recorded by engine.run.recorder from the machine as it is after it.

Unicorn swallows Python exceptions raised inside hooks (unicorn-engine/unicorn#1386,
#1987, #2129), so every hook here catches, stores, stops the emulation, and the
exception is re-raised once ``emu_start`` has returned.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
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
from engine.checks import describe, evaluate, initial_states
from engine.constants import (
    EXCEPTION_NAMES,
    MSR_FS_BASE,
    MSR_GS_BASE,
    MSR_KERNEL_GS_BASE,
    MSR_LSTAR,
    MSR_STAR,
    MSR_SYSCALL_MASK,
    SYSRET_RFLAGS_KEEP,
    VEC_DB,
    VEC_GP,
    VEC_UD,
    ZF,
    TSS_io_bitmap_base,
    user_space_top,
)
from engine.errors import HookError
from engine.i18n import N_, joined, msg
from engine.kernel.common_c import CCheck, sysret_conditions
from engine.kernel.image import build_image
from engine.kernel.macros import Features
from engine.machine.core import GPRS, Machine
from engine.machine.faults import from_interrupt, is_io
from engine.machine.modelled import (
    cr3_as_stored,
    error_code,
    io_faults,
    iret_faults,
    syscall_transition,
    sysenter_faults,
    sysret_faults,
    sysret_rflags,
)
from engine.run.launch import launch_key, prepare_launch, user_mappings
from engine.run.memlog import MemoryHistory, WriteLog
from engine.run.recorder import WORD, Pending, StepRecorder
from engine.run.syscalls import PtRegs, do_syscall_64
from engine.scenario.model import Scenario
from engine.trace import (
    CheckResult,
    CheckState,
    Event,
    EventKind,
    ExitPath,
    Fault,
    Regs,
    Step,
    Trace,
)

#: The instruction count the kernel half runs with.  Unicorn 2.1 reports a CPU
#: exception by its own vector only when ``emu_start`` has a count (otherwise as
#: #DF); the kernel path is a few hundred instructions, so this never ends it.
KERNEL_COUNT = 1 << 30

#: Bytes of a ``syscall`` instruction (0f 05).
SYSCALL_SIZE = 2


class _Stop(Exception):
    """Raised inside the engine to end the run cleanly (not an error)."""


@dataclass(frozen=True, slots=True)
class EntryPoints:
    """Addresses in the assembled image where the run has work to do."""

    entry: int
    do_sys: int
    sysret: int
    iret: int
    ldt: int | None  # native_irq_return_ldt (only kernels built with ESPFIX64)
    check_at: dict[int, str]  # address of each assembly check's jne → its name
    mov_cr3: frozenset[int]
    after_cr3_write: frozenset[int]
    swapgs: frozenset[int]
    call_line: int | None  # the source line of ``call do_syscall_64``


@functools.lru_cache(maxsize=16)
def entry_points(features: Features) -> EntryPoints:
    img = build_image(features)
    sym = img.symbols
    checks = [a for a in img.entry if getattr(a.item.meta, "check", None)]
    asm_checks = img.kernel.asm_checks
    removed_asm = [n for n in features.removed_checks if n in asm_checks]
    assert len(checks) + len(removed_asm) == len(asm_checks), "a branch a check"
    mov_cr3 = [a for a in img.entry if a.text.endswith(", %cr3")]
    return EntryPoints(
        entry=sym["entry_SYSCALL_64"],
        do_sys=sym["do_syscall_64"],
        sysret=next(a.address for a in img.entry if a.text == "sysretq"),
        iret=next(a.address for a in img.entry if a.text == "iretq"),
        ldt=sym.get("native_irq_return_ldt"),
        check_at={a.address: a.item.meta.check for a in checks},
        mov_cr3=frozenset(a.address for a in mov_cr3),
        after_cr3_write=frozenset(a.address + len(a.code) for a in mov_cr3),
        swapgs=frozenset(a.address for a in img.entry if a.text == "swapgs"),
        call_line=next(
            getattr(a.item.meta, "line", None) for a in img.entry if a.text.startswith("call")
        ),
    )


class Run:
    """One round trip of *scenario* on *machine*; ``record`` keeps every step."""

    def __init__(
        self,
        machine: Machine,
        scenario: Scenario,
        record: bool = True,
        launches: dict[tuple[object, ...], tuple[object, list[tuple[int, bytes]]]] | None = None,
        memory: bool = True,
    ):
        self.launches = launches
        self.m = machine
        self.sc = scenario
        self.record = record
        self.img = machine.image
        self.kernel = machine.image.kernel  # everything version-specific comes from here
        self.uc = machine.uc
        self.paging = scenario.machine.paging
        self.pts = entry_points(self.img.features)
        self.pcide = machine.config.pcid  # CR4.PCIDE, set at build when the CPU has PCID
        self.user_top = user_space_top(self.paging)
        self.rec = StepRecorder(machine, scenario, self.pts.call_line)
        #: What each recorded step wrote to memory, and the memory at step 0 (the
        #: launch's snapshot of the writable regions): memory at any step, cheaply.
        self.memory: WriteLog | None = WriteLog() if record and memory else None
        self.rec.memory = self.memory
        self.launch_memory: list[tuple[int, bytes]] | None = None

        # run state
        self.phase = "launch"
        self.pending: Pending | None = None
        self.initial: Regs | None = None
        self.checks: list[CheckState] = initial_states(
            machine.image.features.removed_checks, self.kernel.checks
        )
        self.failed_check: str | None = None
        self.exit: ExitPath | None = None
        self.fault: Fault | None = None
        self.stopped = ""
        self.hook_error: BaseException | None = None
        self.syscall_hit: int | None = None
        self.pt_at_call: dict[str, int] = {}
        self.pt_after_call: dict[str, int] = {}
        self.handler_lines: list[str] = []
        self.output = b""
        self.user_count = 0
        self.all_events: list[Event] = []
        self.cr3_restore: tuple[int, int] | None = None
        #: A model's correction to the instruction running now, applied once it has
        #: completed and before anything reads the machine (SYSRET's RFLAGS).
        self.after_step: Callable[[], None] | None = None
        assert scenario.code is not None
        #: The user's IN/OUT instructions, checked by the I/O-permission model.
        self.io_at = frozenset(a for a, _, text in scenario.code.lines if is_io(text))
        #: The user's SYSENTERs: Unicorn runs past them as if they were NOPs.
        self.sysenter_at = frozenset(
            a for a, _, text in scenario.code.lines if text.split()[0] == "sysenter"
        )
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

    def cpl(self) -> int:
        return self.rec.cpl()

    # -- step records ----------------------------------------------------------------
    def _finish(self) -> None:
        """Close the pending step; :class:`_Stop` when it reaches the step cap."""
        p = self.pending
        if p is None:
            return
        self.pending = None
        path = ExitPath.IRET if self.failed_check else ExitPath.SYSRET
        self.rec.finish(p, tuple(self.checks), path)
        if len(self.rec.steps) >= self.sc.step_cap:
            self._stop_at_cap(msg("stopped at the step cap ({cap})", cap=self.sc.step_cap))

    def _stop_at_cap(self, why: str) -> None:
        self.stopped = why
        self._event(Event(EventKind.CAP, msg("step cap of {cap} reached", cap=self.sc.step_cap)))
        raise _Stop

    def _event(self, ev: Event) -> None:
        self.all_events.append(ev)
        if self.pending is not None:
            self.pending.events.append(ev)
            if ev.modelled:
                self.pending.modelled = True
        elif self.rec.steps:
            last = self.rec.steps[-1]
            self.rec.steps[-1] = replace(
                last, events=(*last.events, ev), modelled=last.modelled or ev.modelled
            )

    # -- hook bodies -------------------------------------------------------------------
    def _on_mem_write(
        self, uc: Any, access: int, address: int, size: int, value: int, data: Any
    ) -> None:
        a = self.rec.virt(address) & ~(WORD - 1)
        self.rec.wrote(a)
        if self.pending is not None:
            self.pending.writes.append(a)

    def _on_mem_log(
        self, uc: Any, access: int, address: int, size: int, value: int, data: Any
    ) -> None:
        if self.memory is not None:
            self.memory.stored(address, size, value)

    def _on_mem_read(
        self, uc: Any, access: int, address: int, size: int, value: int, data: Any
    ) -> None:
        if self.pending is not None:
            self.pending.reads.append(self.rec.virt(address) & ~(WORD - 1))

    def _on_code_recorded(self, uc: Any, address: int, size: int, data: Any) -> None:
        self._fix_cr3()  # belongs to the MOV to CR3 still open as the pending step
        self._after_step()
        self._finish()
        if self.phase == "launch":
            if address == L.LAUNCH_STUB:
                return
            self.phase = "user"
        elif self.phase == "returned":
            self._returned()
        self.pending = self.rec.begin(address, size)
        if self.phase == "user":
            self._user_instruction()
            if address in self.io_at:
                self._io(address)
            if address in self.sysenter_at:
                self._sysenter(address)
        if address in self.pts.swapgs:
            self._event(Event(EventKind.SWAPGS, N_("swapgs: GS_BASE ⇄ KERNEL_GS_BASE")))
        elif address in self.pts.mov_cr3:
            _, value = self._mov_cr3_source(address)
            self.pending.cr3_written = value
            self._event(
                Event(
                    EventKind.CR3_SWITCH,
                    msg("MOV to CR3 {value:#x}: page-table root switch", value=value),
                )
            )
        action = self.actions.get(address)
        if action is not None:
            action(address)

    def _on_code_special(self, uc: Any, address: int, size: int, data: Any) -> None:
        self.actions[address](address)

    def _on_code_user(self, uc: Any, address: int, size: int, data: Any) -> None:
        self._after_step()
        if self.phase == "returned":
            self._returned()
        self.phase = "user"
        self._user_instruction()
        if address in self.io_at:
            self._io(address)
        if address in self.sysenter_at:
            self._sysenter(address)

    def _after_step(self) -> None:
        """The model's part of the instruction that just completed (see ``after_step``)."""
        fix, self.after_step = self.after_step, None
        if fix is not None:
            fix()

    def _io(self, address: int) -> None:
        """model: IN/OUT at CPL > IOPL with no port allowed in the TSS raise #GP(0)."""
        tr = self.uc.reg_read(X.UC_X86_REG_TR)
        base = self.m.read_virt(self.m.kernel_cr3, tr[1] + TSS_io_bitmap_base, 2) or b"\0\0"
        rflags = int(self.uc.reg_read(X.UC_X86_REG_RFLAGS))
        if io_faults(self.cpl(), rflags, int.from_bytes(base, "little"), tr[2]):
            self._model_fault(
                VEC_GP,
                address,
                "port I/O at CPL 3 with IOPL 0, and the TSS I/O bitmap allows no port "
                "(it starts past the TSS limit)",
            )

    def _sysenter(self, address: int) -> None:
        """SYSENTER in 64-bit mode: #UD on AMD (modelled); on Intel the other entry point.

        Unicorn 2.1 treats SYSENTER as a hook call and goes on with the next bytes, which
        neither vendor does, so the run stops here either way.
        """
        if sysenter_faults(self.sc.machine.cpu):
            self._model_fault(
                VEC_UD, address, "SYSENTER is invalid in long mode on AMD (APM vol. 3, SYSENTER)"
            )
        self._event(
            Event(
                EventKind.UNSUPPORTED,
                "SYSENTER enters entry_SYSENTER_compat (MSR_IA32_SYSENTER_EIP), which is not "
                "emulated: only entry_SYSCALL_64 is",
            )
        )
        self.stopped = "stopped at SYSENTER (entry_SYSENTER_compat is not emulated)"
        raise _Stop

    def _user_instruction(self) -> None:
        if self.initial is None:
            self.initial = self.rec.read_regs()
            if self.memory is not None:
                self.memory.start()  # step 0: the launch's writes are in launch_memory
            self.rec.prev_regs = self.initial
        self.user_count += 1
        if self.user_count > self.sc.step_cap:
            cap = self.sc.step_cap
            self._stop_at_cap(msg("stopped at the step cap ({cap}) in user code", cap=cap))

    def _returned(self) -> None:
        """The CPU is about to run the first user instruction after the exit: stop here."""
        regs = self.rec.read_regs()
        self._event(
            Event(
                EventKind.RETURN,
                msg(
                    "back at CPL {cpl}: the CPU fetched the instruction at {rip:#x} (not executed)",
                    cpl=regs.cpl,
                    rip=regs.rip,
                ),
            )
        )
        self.stopped = msg("returned to user space at {rip:#x}", rip=regs.rip)
        raise _Stop

    def _build_actions(self) -> dict[int, Callable[[int], None]]:
        """What to do before the instruction at each interesting address runs."""
        actions: dict[int, Callable[[int], None]] = {
            self.pts.do_sys: self._act_do_syscall_64,
            self.pts.sysret: self._act_sysret,
            self.pts.iret: self._act_iret,
        }
        if self.pts.ldt is not None:
            actions[self.pts.ldt] = self._act_ldt
        actions.update(dict.fromkeys(self.pts.check_at, self._check))
        if self.pcide:
            actions.update(dict.fromkeys(self.pts.mov_cr3, self._before_cr3_write))
            if not self.record:  # recorded runs restore before closing the step
                actions.update(dict.fromkeys(self.pts.after_cr3_write, self._fix_cr3_at))
        return actions

    def _before_cr3_write(self, address: int) -> None:
        """model: MOV to CR3 with CR4.PCIDE=1 does not store bit 63 (it only means "no flush").

        Unicorn would store it (and, with 5-level paging, walk from a bogus root), so the
        bit is taken out of the source register for the MOV and put back right after.
        """
        reg, value = self._mov_cr3_source(address)
        stored = cr3_as_stored(value, self.pcide)
        if stored != value:
            self.uc.reg_write(reg, stored)
            self.cr3_restore = (reg, value)
            self._event(
                Event(
                    EventKind.CR3_SWITCH,
                    msg(
                        "CR3 bit 63 (no-flush) is not stored by MOV to CR3 with CR4.PCIDE=1: "
                        "CR3 becomes {cr3:#x}",
                        cr3=stored,
                    ),
                    modelled=True,
                )
            )

    def _mov_cr3_source(self, address: int) -> tuple[int, int]:
        """The source register of the MOV to CR3 at *address*, and the value it holds."""
        asm = self.img.by_address[address]
        reg = GPRS[asm.text.split()[1].rstrip(",").lstrip("%")]
        return reg, int(self.uc.reg_read(reg))

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
        if self.kernel.checks_in_c:
            self._model_c_checks(address)

    def _model_c_checks(self, address: int) -> None:
        """model: 6.12's do_syscall_64 decides the exit in C (engine.kernel.common_c).

        Recorded, the C part becomes steps of its own, none of them an executed
        instruction: the system call, one step per condition the compiled code
        tests, and the return of the bool in AL.  Then the real RET runs.
        """
        removed = self.img.features.removed_checks
        results = sysret_conditions(self.kernel.c_checks, self.pt_after_call, self.paging, removed)
        sysret = all(c.passed for c in results)
        failed = next((c.name for c in results if not c.passed), None)
        if self.failed_check is None:
            self.failed_check = failed

        def decide(c: CCheck) -> None:
            self.checks[self.kernel.checks.index(c.name)] = c.state

        ret = "true" if sysret else "false"
        if self.record and self.pending is not None:
            body = self.pending
            # The step that ran the system call is C, not the RET at this address.
            body.code, body.text = b"", "(C) the system call and exit work"
            body.source = f"{self.kernel.c_call}: the system call   /* C code: modelled */"
            body.modelled = True
            self._finish()
            for c in results:
                verdict = N_("FAIL → return false (IRET)") if not c.passed else N_("pass")
                self.pending = self._c_step(address, f"(C) {c.condition}", c.source)
                decide(c)
                self._event(
                    Event(
                        EventKind.CHECK,
                        msg(
                            "{check}: {verdict} ({detail})",
                            check=c.name,
                            verdict=verdict,
                            detail=describe(c.state),
                        ),
                        modelled=True,
                    )
                )
                self._finish()
            self.pending = self._c_step(
                address,
                f"(C) return {ret}",
                f"return {ret};   /* {'SYSRET' if sysret else 'IRET'} */",
            )
        else:
            for c in results:
                decide(c)
        self.uc.reg_write(X.UC_X86_REG_RAX, int(sysret))
        if self.record:
            self._event(
                Event(
                    EventKind.CHECK,  # the verdict of the C checks, as the bool
                    msg(
                        "do_syscall_64 returns {ret}: AL = {al} → {exit}",
                        ret=ret,
                        al=int(sysret),
                        exit="SYSRET" if sysret else "IRET",
                    ),
                    modelled=True,
                )
            )
            self._finish()
            self.pending = self.rec.begin(address, 1)

    def _c_step(self, address: int, text: str, source: str) -> Pending:
        return Pending(
            address, b"", text, self.pts.call_line, source, None, "do_syscall_64", 0, modelled=True
        )

    def _act_sysret(self, address: int) -> None:
        self.exit = ExitPath.SYSRET
        rcx, r11 = (int(self.uc.reg_read(r)) for r in (X.UC_X86_REG_RCX, X.UC_X86_REG_R11))
        if sysret_faults(self.sc.machine.cpu, rcx, self.paging):
            self._model_fault(
                VEC_GP,
                address,
                msg(
                    "SYSRET to non-canonical RCX {rcx:#x} on Intel raises "
                    "#GP(0) in ring 0, with the user RSP and GS already loaded",
                    rcx=rcx,
                ),
            )
        self._event(Event(EventKind.SYSRET, msg("SYSRETQ: RIP ← RCX {rcx:#x}, CPL 3", rcx=rcx)))
        self.phase = "returned"
        rflags = sysret_rflags(self.sc.machine.cpu, r11)
        if rflags != r11:
            self.after_step = functools.partial(self._sysret_rflags, r11, rflags)

    def _sysret_rflags(self, r11: int, rflags: int) -> None:
        """model: SYSRET clears RF and VM in what it loads from R11; Unicorn copies R11."""
        self.uc.reg_write(X.UC_X86_REG_RFLAGS, rflags)
        self._event(
            Event(
                EventKind.SYSRET,
                msg(
                    "SYSRET loads RFLAGS ← (R11 {r11:#x} & {keep:#x}) | 2 = {rflags:#x}: "
                    "RF and VM are never restored",
                    r11=r11,
                    keep=SYSRET_RFLAGS_KEEP,
                    rflags=rflags,
                ),
                modelled=True,
            )
        )

    def _act_iret(self, address: int) -> None:
        self.exit = ExitPath.IRET
        rsp = int(self.uc.reg_read(X.UC_X86_REG_RSP))
        rip = self.m.read_u64(int(self.uc.reg_read(X.UC_X86_REG_CR3)), rsp)
        if rip is not None and iret_faults(rip, self.paging):
            self._model_fault(
                VEC_GP,
                address,
                msg(
                    "IRETQ to non-canonical RIP {rip:#x} raises #GP(0) at CPL 0 on the IRET itself",
                    rip=rip,
                ),
            )
        self._event(Event(EventKind.IRET, msg("IRETQ to RIP {rip:#x}", rip=rip or 0)))
        self.phase = "returned"

    def _act_ldt(self, address: int) -> None:
        self._event(
            Event(
                EventKind.UNSUPPORTED,
                N_("SS is in the LDT: the espfix64 path (native_irq_return_ldt) is not emulated"),
            )
        )
        self.stopped = N_("stopped at native_irq_return_ldt (espfix64 is not emulated)")
        raise _Stop

    def _model_fault(self, vector: int, rip: int, reason: str) -> None:
        self.fault = Fault(
            vector, EXCEPTION_NAMES[vector], self.cpl(), rip, None, True, reason, error_code(vector)
        )
        self._event(Event(EventKind.FAULT, self.fault.describe(tag_modelled=False), modelled=True))
        self.stopped = msg("{fault} (modelled) at {rip:#x}", fault=EXCEPTION_NAMES[vector], rip=rip)
        raise _Stop

    def _check(self, address: int) -> None:
        name = self.pts.check_at[address]
        i = self.kernel.checks.index(name)
        rflags = self.m.rflags_reg.read()[0]
        if not rflags & ZF and self.failed_check is None:
            # every check branches with jne/jnz: taken when ZF is clear
            self.failed_check = name
        if not self.record:
            failed = CheckResult.PASS if rflags & ZF else CheckResult.FAIL
            self.checks[i] = CheckState(self.checks[i].name, failed)
            return
        r = self.rec.read_regs()
        state = evaluate(name, rflags, r, PtRegs(self.m, r.cr3, r.rsp).read())
        self.checks[i] = state
        verdict = (
            N_("FAIL → IRET via swapgs_restore_regs_and_return_to_usermode")
            if state.result is CheckResult.FAIL
            else N_("pass")
        )
        text = msg(
            "{check}: {verdict} ({detail})", check=name, verdict=verdict, detail=describe(state)
        )
        self._event(Event(EventKind.CHECK, text))

    def _model_do_syscall_64(self) -> None:
        r = self.rec.read_regs()
        args = dict(zip(self.kernel.c_args, (r.rdi, r.rsi), strict=True))
        nr, regs_addr = args["nr"], args["regs"]
        if self.kernel.c_args[1] == "nr":
            nr &= 0xFFFFFFFF  # int nr, then `unsigned int unr = nr` in do_syscall_x64()
        pt = PtRegs(self.m, r.cr3, regs_addr)
        self.pt_at_call = pt.read()
        res = do_syscall_64(
            self.m, r.cr3, nr, regs_addr, self.sc.pid, self.pt_at_call, self.kernel.nr_syscalls
        )
        self.handler_lines = list(res.lines)
        self.output = res.output
        if self.sc.handler_set:
            for k, v in self.sc.handler_set.items():
                pt.write(k, v)
            self.handler_lines.append(
                msg(
                    "then, as ptrace or sigreturn would: {writes}",
                    writes=", ".join(f"{k} = {v:#x}" for k, v in self.sc.handler_set.items()),
                )
            )
        self.pt_after_call = pt.read()
        rewritten = tuple(
            (k, self.pt_at_call[k], v)
            for k, v in self.pt_after_call.items()
            if v != self.pt_at_call[k]
        )
        if self.pending is not None:
            self.pending.rewritten = rewritten
        text: str = joined("; ", self.handler_lines)
        if rewritten:
            diffs = ", ".join(f"{k} {old:#x} → {new:#x}" for k, old, new in rewritten)
            text = msg("{done} | pt_regs changed: {diffs}", done=text, diffs=diffs)
        self._event(Event(EventKind.HANDLER, text, modelled=True))
        if res.exited is not None:
            self.stopped = msg(
                "the task called exit({status}); do_exit() never returns", status=res.exited
            )
            self._event(Event(EventKind.EXIT, self.stopped))
            raise _Stop

    def _on_syscall(self, uc: Any, data: Any) -> None:
        # Unicorn calls this hook from its syscall helper before the helper advances RIP:
        # RIP is the address of the `syscall` (0f 05, always 2 bytes).  After emu_stop it
        # has moved past it, so the address is taken here.
        self.syscall_hit = int(uc.reg_read(X.UC_X86_REG_RIP))
        uc.emu_stop()

    def _on_intr(self, uc: Any, intno: int, data: Any) -> None:
        rip = int(uc.reg_read(X.UC_X86_REG_RIP))
        if intno == VEC_DB and self.syscall_hit is not None:
            # model: SYSCALL masks TF through MSR_SYSCALL_MASK, so no single-step trap
            # is taken on the way into the kernel.
            return
        # Vectors past 31 only come from INT n: not the SYSCALL path, and not emulated.
        cr3, cr2 = (int(uc.reg_read(r)) for r in (X.UC_X86_REG_CR3, X.UC_X86_REG_CR2))
        self.fault = from_interrupt(self.m, intno, rip, self.cpl(), cr3, cr2)
        self._event(Event(EventKind.FAULT, self.fault.describe()))
        self.stopped = msg(
            "{fault} at CPL {cpl}, RIP {rip:#x}", fault=self.fault.name, cpl=self.fault.cpl, rip=rip
        )
        raise _Stop

    def _fault_from_ucerror(self, exc: UcError) -> None:
        rip = int(self.uc.reg_read(X.UC_X86_REG_RIP))
        if exc.errno == UC_ERR_INSN_INVALID:
            # Unicorn reports #UD as an error from emu_start instead of interrupt 6.
            self.fault = Fault(VEC_UD, "#UD", self.cpl(), rip, None, False, N_("invalid opcode"))
            self._event(Event(EventKind.FAULT, self.fault.describe()))
            self.stopped = msg(
                "{fault} at CPL {cpl}, RIP {rip:#x}", fault="#UD", cpl=self.fault.cpl, rip=rip
            )
            return
        self.fault = Fault(-1, "unicorn", self.cpl(), rip, None, False, str(exc))
        text = msg("emulation error at {rip:#x}: {error}", rip=rip, error=str(exc))
        self._event(Event(EventKind.FAULT, text))
        self.stopped = msg("emulation error: {error}", error=str(exc))

    # -- the round trip ----------------------------------------------------------------
    def _enter_user_mode(self) -> None:
        """The machine at the scenario's first user instruction, CPL 3, nothing run yet.

        The first time, the engine's IRETQ gets there; the CPU context and the memory
        it leaves are kept (by the Session), so later runs of the same start restore
        them instead of entering again.
        """
        key = launch_key(self.sc)
        cached = self.launches.get(key) if self.launches is not None else None
        if cached is not None:
            ctx, memory = cached
            self.m.restore_memory(memory)
            self.uc.context_restore(ctx)
            self.launch_memory = memory
            return
        prepare_launch(self.m, self.sc)
        self._emu(L.LAUNCH_STUB, count=1)  # the IRETQ alone
        if self.record or self.launches is not None:
            self.launch_memory = self.m.snapshot_memory()
        if self.fault is None and not self.stopped and self.launches is not None:
            if len(self.launches) >= 16:
                self.launches.pop(next(iter(self.launches)))
            assert self.launch_memory is not None
            self.launches[key] = (self.uc.context_save(), self.launch_memory)

    def _syscall(self) -> None:
        """model: the SYSCALL ring transition (Intel SDM vol. 2B), which Unicorn skips."""
        m, uc = self.m, self.uc
        assert self.syscall_hit is not None
        before = self.rec.read_regs()
        gprs = m.gprs.read()
        fs, gs, kgs = (m.read_msr(x) for x in (MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE))
        eff = syscall_transition(
            self.syscall_hit + SYSCALL_SIZE,
            before.rflags,
            m.read_msr(MSR_SYSCALL_MASK),
            m.read_msr(MSR_LSTAR),
            m.read_msr(MSR_STAR),
        )
        # Back to the saved CPL-0 context (CS/SS with kernel attributes), then put back
        # everything SYSCALL leaves alone.
        m.restore_kernel_context()
        m.gprs.write(gprs)
        uc.reg_write(X.UC_X86_REG_CR3, before.cr3)
        m.write_msr(MSR_FS_BASE, fs)
        m.write_msr(MSR_GS_BASE, gs)
        m.write_msr(MSR_KERNEL_GS_BASE, kgs)
        m.transition_regs.write((eff.rcx, eff.r11, eff.rflags, eff.rip))
        self._event(
            Event(
                EventKind.SYSCALL,
                msg(
                    "SYSCALL: CPL 3 → 0, RCX ← {rcx:#x}, R11 ← {r11:#x}, "
                    "RFLAGS ← {rflags:#x}, RIP ← LSTAR {rip:#x}",
                    rcx=eff.rcx,
                    r11=eff.r11,
                    rflags=eff.rflags,
                    rip=eff.rip,
                ),
                modelled=True,
            )
        )
        if self.record:
            self._finish()

    def _phases(self) -> None:
        """User mode up to the syscall, the transition, the kernel; :class:`_Stop` ends it."""
        self._enter_user_mode()
        if self.fault is not None or self.stopped:
            return
        # One past the cap: the cap's own check stops the run first.  Any count will
        # do for the vectors (see engine.machine.modelled), and this one also bounds a loop.
        self._emu(self.sc.rip, count=self.sc.step_cap + 1)
        if self.fault is not None or self.stopped:
            return
        if self.syscall_hit is None:
            self.stopped = N_("user code ended without reaching a syscall")
            return
        self.phase = "kernel"
        self._syscall()
        self._emu(self.pts.entry, count=KERNEL_COUNT)

    def execute(self) -> Trace:
        sc = self.sc
        # _Stop out of a modelled step (the step cap on the SYSCALL) ends the run where
        # it stands, as one raised in a hook does.
        if self.memory is not None:
            self.m.write_observer = self.memory.direct
        try:
            with contextlib.suppress(_Stop):
                self._phases()
            self._after_step()
            if self.record and self.pending is not None:
                with contextlib.suppress(_Stop):  # the cap on the last step: it is recorded
                    self._finish()
        finally:
            self.m.write_observer = None
        final = self.rec.read_regs()
        if not self.stopped:
            self.stopped = N_("emulation ended")
        return Trace(
            scenario=sc.name,
            path=sc.path,
            kernel=sc.kernel,
            cpu=sc.machine.cpu,
            paging=sc.machine.paging,
            pti=sc.machine.pti,
            pcid=sc.machine.pcid,
            initial=self.initial or final,
            steps=tuple(self.rec.steps),
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
            roots=self.m.roots,
            source=self.img.source,
            symbols=dict(self.img.symbols),
            stopped=self.stopped,
            events=tuple(self.all_events),
            not_removed=sc.not_removed,
        )


class Session:
    """A machine built for one scenario, ready to run it any number of times.

    The Unicorn hooks stay installed between runs and call into whichever
    :class:`Run` is active: Unicorn decides at translation time which instructions
    call a code hook, so changing hooks means flushing every translated block.
    """

    def __init__(self, scenario: Scenario, memory: bool = True):
        """*memory*: recorded runs keep their memory log (see :meth:`memory_history`)."""
        self.scenario = scenario
        self.machine = Machine(scenario.machine, user_mappings(scenario))
        self.keep_memory = memory
        self._mode: tuple[bool, bool] | None = None
        self._hooks: list[int] = []
        self._launches: dict[tuple[object, ...], tuple[object, list[tuple[int, bytes]]]] = {}
        self._run: Run | None = None
        self._memory: tuple[list[tuple[int, bytes]], WriteLog] | None = None

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
        mode = (run.record, run.memory is not None)
        if self._mode == mode:
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
            for w in (run.rec.task, run.rec.entry):
                lo, size = w.phys, w.hi - w.lo
                add(uc.hook_add(UC_HOOK_MEM_WRITE, d("_on_mem_write"), None, lo, lo + size - 1))
                add(uc.hook_add(UC_HOOK_MEM_READ, d("_on_mem_read"), None, lo, lo + size - 1))
            if run.memory is not None:
                # Every store anywhere, for the memory log (physical addresses, as above).
                add(uc.hook_add(UC_HOOK_MEM_WRITE, d("_on_mem_log"), None, 1, 0))
        else:
            for a in run.actions:
                add(uc.hook_add(UC_HOOK_CODE, d("_on_code_special"), None, a, a))
            # Any instruction in user space: the user's code, and the return to it.
            add(uc.hook_add(UC_HOOK_CODE, d("_on_code_user"), None, 0, run.user_top - 1))
        self._mode = mode

    def run(
        self,
        record: bool = True,
        scenario: Scenario | None = None,
        on_step: Callable[[Step], None] | None = None,
    ) -> Trace:
        """One round trip from the scenario's initial state; *record* keeps every step.

        *scenario* may replace the session's own when it needs the same machine and
        user memory (what-if variations of registers, handler writes or expectations).
        *on_step* sees each recorded step while the machine is still in its state.
        """
        sc = self.scenario if scenario is None else scenario
        if sc is not self.scenario and (
            user_mappings(sc) != self.machine.user or sc.machine != self.machine.config
        ):
            raise ValueError("that scenario needs a different machine; make a new Session")
        run = Run(self.machine, sc, record, self._launches, self.keep_memory)
        run.rec.on_step = on_step
        self._install(run)
        self._run = run
        try:
            trace = run.execute()
        finally:
            self._run = None
        if run.memory is not None and run.launch_memory is not None:
            self._memory = (run.launch_memory, run.memory)
        else:
            self._memory = None
        return trace

    def memory_history(self) -> MemoryHistory | None:
        """Memory at any step of the last recorded run; None if it never reached step 0
        (the launch faulted) or was not recorded."""
        if self._memory is None:
            return None
        launch, log = self._memory
        fixed = self.machine.fixed_memory()
        return MemoryHistory([*fixed, *launch], log, self.machine.config.paging)


def run_scenario(scenario: Scenario, record: bool = True) -> Trace:
    """Build the machine for *scenario* and run one recorded round trip."""
    return Session(scenario).run(record)


__all__ = ["EntryPoints", "Run", "Session", "run_scenario"]
