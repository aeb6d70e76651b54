"""Launching user mode: the memory a scenario maps and the state its first instruction sees.

The engine enters CPL 3 the way the kernel does, with an IRETQ frame on the entry
stack; the IRETQ itself is run by the caller (it is not part of the trace).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unicorn import x86_const as X

from engine import layout as L
from engine.constants import (
    MSR_FS_BASE,
    MSR_GS_BASE,
    MSR_KERNEL_GS_BASE,
    UC_SIGCONTEXT_SS,
    UC_STRICT_RESTORE_SS,
    USER32_CS,
    USER_CS,
    USER_DS,
    user_space_top,
)
from engine.i18n import N_
from engine.kernel.c_source import TASKS, TIF_BITS, TIF_SIGPENDING
from engine.kernel.vdso32 import vdso32
from engine.machine.core import GPRS, Machine, UserMapping
from engine.run.syscalls import build_sigframe
from engine.scenario.model import Scenario

if TYPE_CHECKING:
    from engine.run.roundtrip import Run

#: Bytes of the IRETQ frame: RIP, CS, RFLAGS, RSP, SS.
IRET_FRAME_SIZE = 5 * 8

#: How far below the user's RSP the stack mapping reaches.
USER_STACK_BELOW = 0x4000


def _page_down(addr: int) -> int:
    return addr & ~(L.PAGE - 1)


def _page_up(addr: int) -> int:
    return (addr + L.PAGE - 1) & ~(L.PAGE - 1)


def user_mappings(sc: Scenario) -> tuple[UserMapping, ...]:
    """The user memory a scenario needs: its code, its stack, and any [[memory]]."""
    assert sc.code is not None
    pages: dict[int, tuple[str, bool, bool]] = {}
    top = user_space_top(sc.machine.paging)
    start = _page_down(sc.rip)
    end = _page_up(sc.rip + len(sc.code.code))
    for p in range(start, min(end, top), L.PAGE):
        pages[p] = (N_("code"), False, True)  # names shown as "user {name}": messages
    lo = max(_page_down(sc.rsp - USER_STACK_BELOW), L.PAGE)
    hi = min(_page_up(sc.rsp + L.PAGE), top)
    for p in range(lo, hi if sc.rsp < top else lo, L.PAGE):
        name, w, x = pages.get(p, (N_("stack"), True, False))
        pages[p] = (name if name == "code" else "stack", True, x)
    for mr in sc.memory:
        for p in range(mr.address, mr.address + mr.size, L.PAGE):
            name, _, _ = pages.get(p, (N_("memory"), False, False))
            pages[p] = (name, "w" in mr.access, "x" in mr.access)
    out: list[UserMapping] = []
    if sc.mode == "compat":
        # a 32-bit task's vDSO (vdso32), whose int80_landing_pad the fast returns use
        vdso = vdso32(sc.machine.cpu)
        pages.pop(vdso.base, None)  # parse refuses a scenario that maps this page itself
        out.append(UserMapping(N_("vDSO"), vdso.base, L.PAGE, False, True, vdso.page, 0))
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
    return tuple(sorted(out, key=lambda u: u.vaddr))


def launch_key(sc: Scenario) -> tuple[object, ...]:
    """What decides the machine's state at the first user instruction."""
    assert sc.code is not None
    return (sc.rip, sc.rsp, sc.rflags, sc.fs_base, sc.gs_base, sc.code.code, sc.mode,
            tuple(sorted(sc.regs.items())), tuple(sorted(sc.sigframe.items())),
            sc.task, sc.signal)  # fmt: skip


def write_task(m: Machine, sc: Scenario) -> None:
    """``current`` as the scenario's [task] has it when the system call enters: the
    thread_info flags, and kstack_offset where the kernel has one (the rest stays zero:
    no syscall_work, so no ptrace, seccomp or audit on the way in or out)."""
    lay = TASKS[sc.kernel]
    flags = sum(1 << TIF_BITS[name] for name in sc.task.flags)
    if sc.signal is not None:
        flags |= 1 << TIF_SIGPENDING  # the signal is queued: signal_wake_up() set it
    base = m.layout.task_struct
    m.write_virt(m.kernel_cr3, base + lay.flags, struct.pack("<Q", flags), supervisor=True)
    if lay.kstack_offset is not None:
        offset = struct.pack("<I", sc.task.kstack_offset)
        m.write_virt(m.kernel_cr3, base + lay.kstack_offset, offset, supervisor=True)


def prepare_launch(m: Machine, sc: Scenario) -> None:
    """Reset *m* and set it up to enter user mode: an IRETQ frame on the entry stack,
    the rt_sigframe above the user's RSP, the user's registers, CR3 and the bases.
    RSP is left at the frame; running :data:`engine.layout.LAUNCH_STUB` (one IRETQ)
    enters CPL 3."""
    uc = m.uc
    m.reset()
    assert sc.code is not None
    # a 32-bit program runs under __USER32_CS (compatibility mode), as execve's IRET leaves it
    cs = USER32_CS if sc.mode == "compat" else USER_CS
    frame = struct.pack("<5Q", sc.rip, cs, sc.rflags, sc.rsp, USER_DS)
    top = L.ENTRY_STACK_TOP
    phys = m.walk(m.kernel_cr3, top - IRET_FRAME_SIZE).phys
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
    write_task(m, sc)
    m.gprs.write(
        [top - IRET_FRAME_SIZE if name == "rsp" else sc.regs.get(name, 0) for name in GPRS]
    )
    uc.reg_write(X.UC_X86_REG_CR3, m.user_cr3)
    m.write_msr(MSR_FS_BASE, sc.fs_base)
    m.write_msr(MSR_GS_BASE, sc.gs_base)
    m.write_msr(MSR_KERNEL_GS_BASE, m.layout.percpu_base)


def enter_user_mode(run: Run) -> None:
    """The machine at the scenario's first user instruction, CPL 3, nothing run yet.

    The first time, the engine's IRETQ gets there; the CPU context and the memory
    it leaves are kept (by the Session), so later runs of the same start restore
    them instead of entering again.
    """
    key = launch_key(run.sc)
    cached = run.launches.get(key) if run.launches is not None else None
    if cached is not None:
        ctx, memory = cached
        run.m.restore_memory(memory)
        run.uc.context_restore(ctx)
        run.launch_memory = memory
        run.user_ctx = ctx
        return
    prepare_launch(run.m, run.sc)
    run.emu(L.LAUNCH_STUB, count=1)  # the IRETQ alone
    run.user_ctx = run.uc.context_save()
    if run.memory is not None or run.launches is not None:
        run.launch_memory = run.m.snapshot_memory()
    if run.fault is None and not run.stopped and run.launches is not None:
        if len(run.launches) >= 16:
            run.launches.pop(next(iter(run.launches)))
        assert run.launch_memory is not None
        run.launches[key] = (run.uc.context_save(), run.launch_memory)


__all__ = ["enter_user_mode", "launch_key", "prepare_launch", "user_mappings", "write_task"]
