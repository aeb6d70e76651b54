"""The user side's models: what the CPU does at CPL 3 that Unicorn does not do.

Port I/O against the TSS I/O bitmap, SYSENTER in 64-bit mode, and the SYSCALL ring
transition itself (Intel SDM vol. 2B), each from engine.machine.modelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from unicorn import x86_const as X

from engine.checks import initial_states
from engine.constants import (
    MSR_CSTAR,
    MSR_FS_BASE,
    MSR_GS_BASE,
    MSR_IA32_FRED_CONFIG,
    MSR_IA32_FRED_RSP0,
    MSR_KERNEL_GS_BASE,
    MSR_LSTAR,
    MSR_STAR,
    MSR_SYSCALL_MASK,
    USER_CS,
    USER_DS,
    VEC_DB,
    VEC_GP,
    VEC_UD,
    TSS_io_bitmap_base,
    is_canonical,
)
from engine.i18n import N_, msg
from engine.machine.boot import GDT_DESCRIPTORS
from engine.machine.faults import is_io
from engine.machine.modelled import (
    EretuReturn,
    FredDelivery,
    eretu_return,
    eretu_state_fault,
    fred_syscall_delivery,
    io_faults,
    syscall_compat_faults,
    syscall_transition,
)
from engine.trace import Door, Event, EventKind, Regs

if TYPE_CHECKING:
    from engine.run.roundtrip import Run

#: Why a 64-bit task's compat-mode SYSCALL is not followed into entry_SYSCALL_compat.
NO_VDSO32 = N_(
    "SYSCALL in compatibility mode enters entry_SYSCALL_compat on AMD; do_fast_syscall_32 "
    "then returns to current->mm->context.vdso + the 32-bit vDSO's int80_landing_pad "
    "offset, which in a 64-bit task lies inside the 64-bit vDSO, not emulated here: "
    'a 32-bit task ([user] mode = "compat") has the 32-bit vDSO'
)

#: Under FRED, SYSCALL from compatibility mode and SYSENTER are FRED events too.
FAST32_UNDER_FRED = N_(
    "Under FRED a SYSCALL from compatibility mode or a SYSENTER is a FRED event (type 7, "
    "vector 1 or 2, the lm bit telling the mode) into asm_fred_entrypoint_user, whose "
    "fred_other() runs do_fast_syscall_32 for a 32-bit SYSENTER and raises #UD for the "
    "others (entry_fred.c); that delivery is not modelled"
)

#: Bytes of a ``syscall`` instruction (0f 05).
SYSCALL_SIZE = 2


def long_mode_cs(selector: int) -> bool:
    """Is *selector* a 64-bit code segment (L = 1)?  CS 0x23, __USER32_CS, is not: code
    under it runs in compatibility mode.  This machine has no LDT."""
    index = selector >> 3
    if selector & 4 or index >= len(GDT_DESCRIPTORS):
        return False
    return bool(GDT_DESCRIPTORS[index] >> 53 & 1)


class _UserState(NamedTuple):
    regs: Regs
    gprs: list[int]  # the general registers, as engine.machine.regfile reads them
    fs: int
    gs: int
    kernel_gs: int


class UserActions:
    """The models of one run on the user side, one method each (the SYSCALL transitions,
    FRED's delivery and ERETU, port I/O, the return to CPL 3): a little over 250 lines."""

    def __init__(self, run: Run) -> None:
        self.run = run
        assert run.sc.code is not None
        #: The user's IN/OUT instructions, checked by the I/O-permission model (data the
        #: program may execute counts too: its instructions as Capstone reads them).
        decoded = run.sc.code.executable
        self.io_at = frozenset(a for a, text in decoded if is_io(text))
        #: The user's SYSENTERs, and a 32-bit task's vDSO's: Unicorn runs past them as if
        #: they were NOPs.
        vdso = run.vdso.lines if run.vdso is not None else ()
        both = (*decoded, *((x.address, x.text) for x in vdso))
        self.sysenter_at = frozenset(a for a, text in both if text.split()[0] == "sysenter")

    def before(self, address: int) -> None:
        """The models of the user instruction at *address*, before it runs."""
        if address in self.io_at:
            self.port_io(address)
        if address in self.sysenter_at:
            self.run.sysenter_door.at_sysenter(address)

    def returned(self) -> None:
        """The CPU is about to run the first user instruction after the exit: stop here
        (or, after an ERETU that pended a single-step #DB, take it first), unless a signal
        was delivered: then its handler runs, and the run goes on to the rt_sigreturn its
        restorer makes (a second round trip, Run.next_trip)."""
        run = self.run
        regs = run.rec.read_regs()
        sig = run.sc.signal
        if run.signal_delivered and run.first_trip is None and not run.fred and sig is not None:
            run.event(
                Event(
                    EventKind.RETURN,
                    msg(
                        "back at CPL {cpl} in the signal handler {handler} at {rip:#x}: it "
                        "runs, and its ret goes to the restorer {restorer}",
                        cpl=regs.cpl,
                        handler=sig.handler_name,
                        rip=regs.rip,
                        restorer=sig.restorer_name,
                    ),
                )
            )
            run.next_trip()
            return
        if run.eretu_pended_db:
            run.model_fault(
                VEC_DB,
                regs.rip,
                msg(
                    "#DB at CPL 3 before the instruction at {rip:#x} runs: ERETU pended "
                    "it (the SYSCALL event's bit 17 in the SS word, TF in RFLAGS) to "
                    "report the stepped SYSCALL; its FRED delivery is not emulated",
                    rip=regs.rip,
                ),
            )
        run.event(
            Event(
                EventKind.RETURN,
                msg(
                    "back at CPL {cpl}: the CPU fetched the instruction at {rip:#x} (not executed)",
                    cpl=regs.cpl,
                    rip=regs.rip,
                ),
            )
        )
        run.stop(msg("returned to user space at {rip:#x}", rip=regs.rip))

    def port_io(self, address: int) -> None:
        run = self.run
        """model: IN/OUT at CPL > IOPL with no port allowed in the TSS raise #GP(0)."""
        tr = run.uc.reg_read(X.UC_X86_REG_TR)
        base = run.m.read_virt(run.m.kernel_cr3, tr[1] + TSS_io_bitmap_base, 2) or b"\0\0"
        rflags = int(run.uc.reg_read(X.UC_X86_REG_RFLAGS))
        if io_faults(run.cpl(), rflags, int.from_bytes(base, "little"), tr[2]):
            run.model_fault(
                VEC_GP,
                address,
                "port I/O at CPL 3 with IOPL 0, and the TSS I/O bitmap allows no port "
                "(it starts past the TSS limit)",
            )

    def syscall_compat(self, address: int) -> None:
        """SYSCALL in compatibility mode: #UD on Intel (modelled); on AMD the 32-bit entry.

        Unicorn 2.1 calls the SYSCALL hook whatever the mode, so without this the engine
        would run entry_SYSCALL_64, which no CPU enters from 32-bit code.
        """
        run = self.run
        run.rewind_rip = address
        if run.fred:
            run.event(Event(EventKind.UNSUPPORTED, FAST32_UNDER_FRED))
            run.stop(N_("stopped at a 32-bit SYSCALL or SYSENTER under FRED (not modelled)"))
        if syscall_compat_faults(run.sc.machine.cpu):
            run.model_fault(
                VEC_UD,
                address,
                N_(
                    "SYSCALL in compatibility mode (CS.L = 0) is invalid on Intel "
                    "(SDM vol. 2B, SYSCALL)"
                ),
            )
        cstar = run.m.read_msr(MSR_CSTAR)
        if cstar and cstar == run.img.symbols.get("entry_SYSCALL32_ignore"):
            # idt_syscall_init() with ia32_emulation=off: MSR_CSTAR is the ignore entry,
            # which the run enters (syscall() below); there is no SYSRET decision there
            run.rewind_rip = None
            run.door = Door.SYSCALL32
            run.checks = []
            return
        if cstar and cstar == run.img.symbols.get("entry_SYSCALL_compat"):
            if run.landing_pad is None:
                # do_fast_syscall_32 returns to mm->context.vdso + the vdso32 image's
                # landing-pad offset: in a 64-bit task that is inside the 64-bit vDSO
                run.event(Event(EventKind.UNSUPPORTED, NO_VDSO32))
                run.stop(N_("stopped at SYSCALL in compatibility mode of a 64-bit task"))
            run.rewind_rip = None
            run.door = Door.SYSCALL32
            run.checks = initial_states((), run.kernel.compat_checks)
            return
        # AMD with ia32 on and no entry_SYSCALL_compat in the image: 6.1 built for SRSO,
        # whose entry_64_compat.S rendition is left out (engine.kernel.image.compat_listed)
        run.checks = initial_states((), run.kernel.compat_checks)
        run.event(
            Event(
                EventKind.UNSUPPORTED,
                N_(
                    "SYSCALL in compatibility mode enters entry_SYSCALL_compat through "
                    "MSR_CSTAR; on 6.1 with SRSO this machine does not render "
                    "entry_64_compat.S (its error_entry returns through srso_return_thunk, "
                    "which is not rendered)"
                ),
            )
        )
        run.stop(N_("stopped at SYSCALL in compatibility mode (entry_SYSCALL_compat not rendered)"))

    def user_state(self) -> _UserState:
        """What SYSCALL (either kind) or INT n keeps of the user's state, read as it enters."""
        m = self.run.m
        fs, gs, kgs = (m.read_msr(x) for x in (MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE))
        return _UserState(self.run.rec.read_regs(), m.gprs.read(), fs, gs, kgs)

    def to_ring0(self, saved: _UserState, gs_base: int, kernel_gs_base: int) -> None:
        """Back to the saved CPL-0 context (CS/SS with kernel attributes), with the user's
        general registers, CR3 and FS base, and the two GS bases given."""
        m = self.run.m
        m.restore_kernel_context()
        m.gprs.write(saved.gprs)
        self.run.uc.reg_write(X.UC_X86_REG_CR3, saved.regs.cr3)
        m.write_msr(MSR_FS_BASE, saved.fs)
        m.write_msr(MSR_GS_BASE, gs_base)
        m.write_msr(MSR_KERNEL_GS_BASE, kernel_gs_base)

    def syscall(self) -> None:
        """model: the SYSCALL ring transition (Intel SDM vol. 2B), which Unicorn skips."""
        run = self.run
        if run.fred:
            self.fred_syscall()
            return
        m = run.m
        assert run.syscall_hit is not None
        saved = self.user_state()
        before = saved.regs
        # from compatibility mode (AMD) the entry is MSR_CSTAR's (APM vol. 3, SYSCALL)
        compat = run.door is Door.SYSCALL32
        eff = syscall_transition(
            run.syscall_hit + SYSCALL_SIZE,
            before.rflags,
            m.read_msr(MSR_SYSCALL_MASK),
            m.read_msr(MSR_CSTAR if compat else MSR_LSTAR),
            m.read_msr(MSR_STAR),
        )
        # Everything SYSCALL leaves alone, GS bases included (swapgs is the kernel's job).
        self.to_ring0(saved, saved.gs, saved.kernel_gs)
        m.transition_regs.write((eff.rcx, eff.r11, eff.rflags, eff.rip))
        text = (
            "SYSCALL from compatibility mode: CPL 3 → 0, RCX ← {rcx:#x}, R11 ← {r11:#x}, "
            "RFLAGS ← {rflags:#x}, RIP ← CSTAR {rip:#x}"
            if compat
            else "SYSCALL: CPL 3 → 0, RCX ← {rcx:#x}, R11 ← {r11:#x}, "
            "RFLAGS ← {rflags:#x}, RIP ← LSTAR {rip:#x}"
        )
        said = msg(text, rcx=eff.rcx, r11=eff.r11, rflags=eff.rflags, rip=eff.rip)
        run.event(Event(EventKind.SYSCALL, said, modelled=True))
        run.sink.finish()

    # -- FRED ------------------------------------------------------------------------
    def fred_enter(self, d: FredDelivery, saved: _UserState) -> None:
        """A FRED event delivered from ring 3, as *d* computed it (SYSCALL's or INT n's):
        the frame on the stack, CPL 0 with the user's general registers, the GS bases
        swapped, RSP, RFLAGS and RIP loaded."""
        run = self.run
        frame = b"".join(v.to_bytes(8, "little") for v in d.frame)
        if not run.m.write_virt(saved.regs.cr3, d.rsp, frame, supervisor=True):
            run.stop(N_("the FRED frame's stack is not mapped (FRED_RSP0)"))
        # the CPU's pushes, as the memory hooks would have seen them
        run.stack_written(d.rsp, d.rsp + len(frame))
        # Every general register, RCX and R11 included, keeps its user value; FRED event
        # delivery from ring 3 swaps GS base and IA32_KERNEL_GS_BASE (fred.rst).
        self.to_ring0(saved, saved.kernel_gs, saved.gs)
        run.uc.reg_write(X.UC_X86_REG_RSP, d.rsp)
        run.uc.reg_write(X.UC_X86_REG_RFLAGS, d.rflags)
        run.uc.reg_write(X.UC_X86_REG_RIP, d.rip)

    def fred_syscall(self) -> None:
        """model: SYSCALL with CR4.FRED = 1, a FRED event delivered to ring 0
        (engine.machine.modelled.fred_syscall_delivery); Unicorn runs the legacy SYSCALL."""
        run = self.run
        m = run.m
        assert run.syscall_hit is not None
        saved = self.user_state()
        before = saved.regs
        d = fred_syscall_delivery(
            run.syscall_hit + SYSCALL_SIZE,
            before.rflags,
            before.rsp,
            before.cs,
            before.ss,
            m.fred_msrs[MSR_IA32_FRED_CONFIG],
            m.fred_msrs[MSR_IA32_FRED_RSP0],
            m.read_msr(MSR_STAR),
        )
        self.fred_enter(d, saved)
        run.event(
            Event(
                EventKind.SYSCALL,
                msg(
                    "SYSCALL as a FRED event (type 7 'other', vector 1): CPL 3 → 0, "
                    "RSP ← FRED_RSP0 & ~0x3f − 64 = {rsp:#x}, 64-byte frame pushed, "
                    "GS base ⇄ KERNEL_GS_BASE, RFLAGS ← {rflags:#x}, "
                    "RIP ← FRED_CONFIG & ~0xfff {rip:#x}; RCX and R11 untouched",
                    rsp=d.rsp,
                    rflags=d.rflags,
                    rip=d.rip,
                ),
                modelled=True,
            )
        )
        run.sink.finish()

    def eretu(self, address: int) -> int:
        """model: ERETU at *address* (engine.machine.modelled.eretu_return); returns the
        RIP it returns to.  The machine is put in the CPL-3 context the run entered user
        mode with, then given the frame's RIP, RFLAGS and RSP, the general registers as
        POP_REGS left them, and the GS base swapped back."""
        run = self.run
        m, uc = run.m, run.uc
        regs = run.rec.read_regs()
        raw = m.read_virt(regs.cr3, regs.rsp, 6 * 8)
        if raw is None:
            run.stop(N_("ERETU: the FRED frame is not readable"))
        back = eretu_return(
            tuple(int.from_bytes(raw[i : i + 8], "little") for i in range(0, 48, 8))
        )
        _check_eretu(run, back, address)
        run.eretu_pended_db = back.pends_single_step
        gprs = m.gprs.read()
        fs, gs, kgs = (m.read_msr(x) for x in (MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE))
        assert run.user_ctx is not None
        uc.context_restore(run.user_ctx)
        m.gprs.write(gprs)
        uc.reg_write(X.UC_X86_REG_CR3, regs.cr3)
        m.write_msr(MSR_FS_BASE, fs)
        m.write_msr(MSR_GS_BASE, kgs)  # ERETU swaps the GS base back (fred.rst)
        m.write_msr(MSR_KERNEL_GS_BASE, gs)
        uc.reg_write(X.UC_X86_REG_RSP, back.rsp)
        uc.reg_write(X.UC_X86_REG_RFLAGS, back.rflags)
        uc.reg_write(X.UC_X86_REG_RIP, back.rip)
        run.event(
            Event(
                EventKind.ERETU,
                msg(
                    "ERETU: error code skipped; RIP ← {rip:#x}, CS ← {cs:#x}, RFLAGS ← "
                    "{rflags:#x}, RSP ← {rsp:#x}, SS ← {ss:#x} from the frame; GS base "
                    "swapped back; CPL 3. RCX and R11 are what POP_REGS restored",
                    rip=back.rip,
                    cs=back.cs,
                    rflags=back.rflags,
                    rsp=back.rsp,
                    ss=back.ss,
                ),
                modelled=True,
            )
        )
        return back.rip


def _check_eretu(run: Run, back: EretuReturn, address: int) -> None:
    """Stop the run where ERETU would not return as modelled: a return state that fails
    its checks or a non-canonical RIP (#GP(0) on the ERETU itself, at CPL 0), or
    selectors other than the user's."""
    failed = eretu_state_fault(back)
    if failed is not None:
        run.model_fault(
            VEC_GP,
            address,
            msg(
                "ERETU raises #GP(0) at CPL 0: {failed} (the return state is checked "
                "before anything is loaded)",
                failed=failed,
            ),
        )
    # the CPL-3 context ERETU's model starts from is the one the run entered user mode
    # with: a 32-bit task's (CS __USER32_CS) for a return to compatibility mode
    started = run.initial.cs if run.initial is not None else USER_CS
    if (back.cs, back.ss) not in ((USER_CS, USER_DS), (started, USER_DS)):
        run.event(
            Event(
                EventKind.UNSUPPORTED,
                msg(
                    "ERETU to CS {cs:#x} / SS {ss:#x}: only a return to __USER_CS / "
                    "__USER_DS ({ucs:#x} / {uss:#x}), or to the 32-bit task's own "
                    "__USER32_CS, is modelled",
                    cs=back.cs,
                    ss=back.ss,
                    ucs=USER_CS,
                    uss=USER_DS,
                ),
            )
        )
        run.stop(N_("stopped at ERETU (a return to other selectors is not modelled)"))
    if not is_canonical(back.rip, run.paging):
        run.model_fault(
            VEC_GP,
            address,
            msg(
                "ERETU to non-canonical RIP {rip:#x} raises #GP(0) at CPL 0 on the ERETU "
                "itself (6.12 fixes it up through EX_TYPE_ERETU as a user-mode fault)",
                rip=back.rip,
            ),
        )


__all__ = ["SYSCALL_SIZE", "UserActions"]
