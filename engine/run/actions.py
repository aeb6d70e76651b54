"""The entry code's models: what the run does before the instruction at an address runs.

The kernel's instructions run in Unicorn; at a few addresses the engine has work to do
first: the MOV to CR3 with PCID (bit 63), the call of do_syscall_64 (the modelled C side),
6.12's C checks, each assembly check's ``jne``, SYSRETQ and IRETQ (the CPU rules Unicorn
does not follow, from engine.machine.modelled), and the espfix64 path.  One method per
address kind; :attr:`EntryActions.table` maps the image's addresses to them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from unicorn import x86_const as X

from engine.constants import SYSRET_RFLAGS_KEEP, VEC_GP, ZF
from engine.i18n import N_, joined, msg
from engine.kernel.common_c import sysret_conditions
from engine.kernel.image import build_image
from engine.kernel.macros import Features
from engine.machine.core import GPRS
from engine.machine.modelled import (
    cr3_as_stored,
    iret_faults,
    sysret_faults,
    sysret_rflags,
)
from engine.run.c_side import CWalk
from engine.run.compat_c import CompatActions
from engine.run.fred_c import FredActions
from engine.run.syscalls import (
    MASK32,
    HandlerResult,
    PtRegs,
)
from engine.trace import CheckName, Event, EventKind, ExitPath

if TYPE_CHECKING:
    from engine.run.roundtrip import Run


@dataclass(frozen=True, slots=True)
class EntryPoints:
    """Addresses in the assembled image where the run has work to do."""

    entry: int
    do_sys: int
    sysret: int | None  # None under FRED: ERETU is the only exit
    iret: int | None
    ldt: int | None  # native_irq_return_ldt (only kernels built with ESPFIX64)
    check_at: dict[int, CheckName]  # address of each assembly check's jne → its name
    mov_cr3: frozenset[int]
    after_cr3_write: frozenset[int]
    swapgs: frozenset[int]
    call_line: int | None  # the source line of ``call do_syscall_64``
    eretu: int | None = None  # under FRED, the ERETU of asm_fred_entrypoint_user
    #: the other modelled C functions' stubs (do_int80_syscall_32) → the source line of
    #: the call of each
    c_calls: dict[int, int | None] = field(default_factory=dict)
    do_int80: int | None = None  # do_int80_syscall_32, where the image calls it
    sync_regs: int | None = None  # 6.1's error_entry: pt_regs to the task stack
    do_int80_emulation: int | None = None  # 6.1's int $0x80 C side
    #: the SYSRETLs of entry_SYSCALL_compat and, with ia32_emulation=off, 6.12's
    #: entry_SYSCALL32_ignore
    sysretl: frozenset[int] = frozenset()
    do_fast32: int | None = None  # do_fast_syscall_32, the compat SYSCALL entry's C side
    do_sysenter32: int | None = None  # do_SYSENTER_32, the SYSENTER entry's


@functools.lru_cache(maxsize=16)
def entry_points(features: Features) -> EntryPoints:
    img = build_image(features)
    sym = img.symbols
    checks = [a for a in img.entry if getattr(a.item.meta, "check", None)]
    asm_checks = img.kernel.asm_checks
    removed_asm = [n for n in features.removed_checks if n in asm_checks]
    assert len(checks) + len(removed_asm) == len(asm_checks), "a branch a check"
    mov_cr3 = [a for a in img.entry if a.text.endswith(", %cr3")]

    def first(text: str) -> int | None:
        return next((a.address for a in img.entry if a.text == text), None)

    def call_of(name: str) -> int | None:
        return next(
            (
                getattr(a.item.meta, "line", None)
                for a in img.entry
                if a.item.text in (f"call {name}", f"jmp {name}")
            ),
            None,
        )

    return EntryPoints(
        entry=sym["asm_fred_entrypoint_user" if features.fred else "entry_SYSCALL_64"],
        do_sys=sym["do_syscall_64"],
        sysret=first("sysretq"),
        iret=first("iretq"),
        eretu=first("eretu"),
        ldt=sym.get("native_irq_return_ldt"),
        check_at={a.address: CheckName(a.item.meta.check) for a in checks},
        mov_cr3=frozenset(a.address for a in mov_cr3),
        after_cr3_write=frozenset(a.address + len(a.code) for a in mov_cr3),
        swapgs=frozenset(a.address for a in img.entry if a.text == "swapgs"),
        call_line=next(
            getattr(a.item.meta, "line", None) for a in img.entry if a.text.startswith("call")
        ),
        c_calls={a.address: call_of(img.label_at(a.address)) for a in img.c_stubs},
        do_int80=sym.get("do_int80_syscall_32"),
        sync_regs=sym.get("sync_regs"),
        do_int80_emulation=sym.get("do_int80_emulation"),
        sysretl=frozenset(a.address for a in img.entry if a.text == "sysretl"),
        do_fast32=sym.get("do_fast_syscall_32"),
        do_sysenter32=sym.get("do_SYSENTER_32"),
    )


class EntryActions:
    """The models of one run, by address (:attr:`table`): one method per modelled
    instruction or C function of the entry code, as Qiling has one handler per syscall,
    so the class grows with the kernel's entries and is about 250 lines (the 32-bit
    doors' C sides are engine.run.compat_c's, FRED's entry engine.run.fred_c's, and
    do_syscall_64's statements engine.run.c_side's)."""

    def __init__(self, run: Run, per_instruction: bool) -> None:
        """*per_instruction*: the run sees every instruction (a recorded run), so the CR3
        fix-up needs no hook of its own after each MOV to CR3."""
        self.run = run
        self.cr3_restore: tuple[int, int] | None = None
        pts = run.points
        table: dict[int, Callable[[int], None]] = {pts.do_sys: self.do_syscall_64}
        c32 = CompatActions(self)  # the 32-bit doors' C sides
        self.fred = FredActions(self)  # 6.12's fred_entry_from_user
        for at, model in (
            (pts.do_int80, c32.do_int80_syscall_32),
            (pts.sync_regs, c32.sync_regs),
            (pts.do_int80_emulation, c32.do_int80_emulation),
            (pts.do_fast32, c32.do_fast_syscall_32),
            (pts.do_sysenter32, c32.do_sysenter_32),
        ):
            if at is not None:
                table[at] = model
        if pts.sysret is not None:
            table[pts.sysret] = self.sysret
        table.update(dict.fromkeys(pts.sysretl, self.sysret))
        if pts.iret is not None:
            table[pts.iret] = self.iret
        if pts.eretu is not None:
            table[pts.eretu] = self.eretu
        if pts.ldt is not None:
            table[pts.ldt] = self.ldt
        table.update(dict.fromkeys(pts.check_at, self.check))
        if run.pcide:
            table.update(dict.fromkeys(pts.mov_cr3, self.before_cr3_write))
            if not per_instruction:
                table.update(dict.fromkeys(pts.after_cr3_write, self.fix_cr3_at))
        self.table = table

    # -- MOV to CR3 with PCID ------------------------------------------------------------
    def before_cr3_write(self, address: int) -> None:
        """model: MOV to CR3 with CR4.PCIDE=1 does not store bit 63 (it only means "no flush").

        Unicorn would store it (and, with 5-level paging, walk from a bogus root), so the
        bit is taken out of the source register for the MOV and put back right after.
        """
        run = self.run
        reg, value = self.mov_cr3_source(address)
        stored = cr3_as_stored(value, run.pcide)
        if stored != value:
            run.uc.reg_write(reg, stored)
            self.cr3_restore = (reg, value)
            run.event(
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

    def mov_cr3_source(self, address: int) -> tuple[int, int]:
        """The source register of the MOV to CR3 at *address*, and the value it holds."""
        asm = self.run.img.by_address[address]
        reg = GPRS[asm.text.split()[1].rstrip(",").lstrip("%")]
        return reg, int(self.run.uc.reg_read(reg))

    def fix_cr3_at(self, address: int) -> None:
        self.fix_cr3()

    def fix_cr3(self) -> None:
        """Put back the bit :meth:`before_cr3_write` took out of the MOV's source register."""
        if self.cr3_restore is not None:
            reg, value = self.cr3_restore
            self.run.uc.reg_write(reg, value)
            self.cr3_restore = None

    # -- the C side ------------------------------------------------------------------------
    def do_syscall_64(self, address: int) -> None:
        if self.run.fred:
            self.fred.fred_entry_from_user()
            return
        self.system_call()
        if self.run.kernel.checks_in_c:
            self.c_checks(address)

    def system_call(self, prefix: tuple[str, ...] = ()) -> None:
        """model: do_syscall_64's C, statement by statement (engine.run.c_side), the
        system call itself (engine.run.syscalls) and the scenario's [handler.set] at its
        dispatch; *prefix*: the C functions above it (FRED's)."""
        run = self.run
        r = run.rec.read_regs()
        args = dict(zip(run.kernel.c_args, (r.rdi, r.rsi), strict=True))
        nr, regs_addr = args["nr"], args["regs"]
        if run.kernel.c_args[1] == "nr":
            nr &= 0xFFFFFFFF  # int nr, then `unsigned int unr = nr` in do_syscall_x64()
        pt = PtRegs(run.m, r.cr3, regs_addr)
        run.pt_at_call = pt.read()
        walk = CWalk(run, pt, nr, prefix)
        checks_follow = run.kernel.checks_in_c and not run.fred
        walk.run_all(checks_follow)
        # what the exit decides on: pt_regs as the exit work left it
        run.pt_after_call = pt.read()
        if checks_follow:
            run.c_frame = walk

    def after_call(self, pt: PtRegs, res: HandlerResult) -> None:
        """What every modelled C entry does after its system call: the [handler.set]
        writes, the pt_regs it changed, its event, and an exit() that never returns."""
        run = self.run
        run.handler_lines = list(res.lines)
        run.output = res.output
        if run.sc.handler_set:
            for k, v in run.sc.handler_set.items():
                pt.write(k, v)
            run.handler_lines.append(
                msg(
                    "then, as ptrace or sigreturn would: {writes}",
                    writes=", ".join(f"{k} = {v:#x}" for k, v in run.sc.handler_set.items()),
                )
            )
        run.pt_after_call = pt.read()
        rewritten = tuple(
            (k, run.pt_at_call[k], v)
            for k, v in run.pt_after_call.items()
            if v != run.pt_at_call[k]
        )
        run.sink.rewrote(rewritten)
        text: str = joined("; ", run.handler_lines)
        if rewritten:
            diffs = ", ".join(f"{k} {old:#x} → {new:#x}" for k, old, new in rewritten)
            text = msg("{done} | pt_regs changed: {diffs}", done=text, diffs=diffs)
        run.event(Event(EventKind.HANDLER, text, modelled=True))
        if res.exited is not None:
            why = msg("the task called exit({status}); do_exit() never returns", status=res.exited)
            run.event(Event(EventKind.EXIT, why))
            run.stop(why)

    def c_checks(self, address: int) -> None:
        """model: 6.12's do_syscall_64 decides the exit in C (engine.kernel.common_c)."""
        run = self.run
        removed = run.img.features.removed_checks
        results = sysret_conditions(run.kernel.c_checks, run.pt_after_call, run.paging, removed)
        if run.failed_check is None:
            run.failed_check = next((c.state.name for c in results if not c.passed), None)
        run.sink.c_checks(address, results, all(c.passed for c in results))

    # -- the assembly checks ---------------------------------------------------------------
    def check(self, address: int) -> None:
        run = self.run
        name = run.points.check_at[address]
        i = run.kernel.checks.index(name)
        rflags = run.m.rflags_reg.read()[0]
        if not rflags & ZF and run.failed_check is None:
            # every check branches with jne/jnz: taken when ZF is clear
            run.failed_check = name
        run.checks[i] = run.sink.assembly_check(run.checks[i], rflags)

    # -- the exits -------------------------------------------------------------------------
    def sysret(self, address: int) -> None:
        run = self.run
        run.exit = ExitPath.SYSRET
        rcx, r11 = (int(run.uc.reg_read(r)) for r in (X.UC_X86_REG_RCX, X.UC_X86_REG_R11))
        # SYSRETL takes only ECX: no canonical check on the 32-bit return (SDM, SYSRET)
        if address not in run.points.sysretl and sysret_faults(run.sc.machine.cpu, rcx, run.paging):
            run.model_fault(
                VEC_GP,
                address,
                msg(
                    "SYSRET to non-canonical RCX {rcx:#x} on Intel raises "
                    "#GP(0) in ring 0, with the user RSP and GS already loaded",
                    rcx=rcx,
                ),
            )
        if address in run.points.sysretl:
            # 32-bit operand size: EIP ← ECX, CS ← STAR[63:48] (APM vol. 3, SYSRET)
            said = msg("SYSRETL: EIP ← ECX {ecx:#x}, CS ← __USER32_CS, CPL 3", ecx=rcx & MASK32)
        else:
            said = msg("SYSRETQ: RIP ← RCX {rcx:#x}, CPL 3", rcx=rcx)
        run.event(Event(EventKind.SYSRET, said))
        run.returning()
        rflags = sysret_rflags(run.sc.machine.cpu, r11)
        if rflags != r11:
            run.after_step = functools.partial(self.sysret_loads_rflags, r11, rflags)

    def sysret_loads_rflags(self, r11: int, rflags: int) -> None:
        """model: SYSRET clears RF and VM in what it loads from R11; Unicorn copies R11."""
        self.run.uc.reg_write(X.UC_X86_REG_RFLAGS, rflags)
        self.run.event(
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

    def iret(self, address: int) -> None:
        run = self.run
        run.exit = ExitPath.IRET
        rsp = int(run.uc.reg_read(X.UC_X86_REG_RSP))
        rip = run.m.read_u64(int(run.uc.reg_read(X.UC_X86_REG_CR3)), rsp)
        if rip is not None and iret_faults(rip, run.paging):
            run.model_fault(
                VEC_GP,
                address,
                msg(
                    "IRETQ to non-canonical RIP {rip:#x} raises #GP(0) at CPL 0 on the IRET itself",
                    rip=rip,
                ),
            )
        run.event(Event(EventKind.IRET, msg("IRETQ to RIP {rip:#x}", rip=rip or 0)))
        run.returning()

    def eretu(self, address: int) -> None:
        """model: ERETU (f3 0f 01 ca), which Unicorn decodes as CLAC.  The emulation stops
        here; the run performs the return from the frame (engine.machine.modelled) and
        lets the CPU fetch the instruction it returns to."""
        run = self.run
        run.exit = ExitPath.ERETU
        run.eretu_at = address
        run.returning()
        run.uc.emu_stop()

    def ldt(self, address: int) -> None:
        self.run.event(
            Event(
                EventKind.UNSUPPORTED,
                N_("SS is in the LDT: the espfix64 path (native_irq_return_ldt) is not emulated"),
            )
        )
        self.run.stop(N_("stopped at native_irq_return_ldt (espfix64 is not emulated)"))


__all__ = ["EntryActions", "EntryPoints", "entry_points"]
