"""The "why" panel: the learner's note for the focus line and what the last step did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from textual.content import Content

from engine.constants import USER32_CS
from engine.i18n import N_, Msg, _, tr
from engine.layout import PAGE, VDSO32_BASE
from engine.trace import Event, StepKind
from tui.text import wrap
from tui.widgets.c_notes import C_STATEMENT_NOTES
from tui.widgets.panel import ViewPanel

#: Notes for the user program's instructions, which have no line in entry_64.S.
USER_NOTES: dict[str, str] = {
    "syscall": N_(
        "SYSCALL saves the next RIP in RCX and RFLAGS in R11, clears the RFLAGS bits set in "
        "SYSCALL_MASK, loads CS and SS from STAR and jumps to LSTAR at CPL 0. It changes "
        "neither RSP, nor GS, nor CR3: the entry code has to do all of that itself, "
        "starting on the user's stack and page tables."
    ),
}
USER_DEFAULT = N_(
    "The scenario's own program, running at CPL 3 on the user page tables. The kernel is "
    "entered from here only through SYSCALL (or an interrupt or an exception)."
)

#: A 32-bit task's vDSO code (engine.kernel.vdso32), whatever the instruction.
VDSO_NOTE = N_(
    "The 32-bit vDSO's __kernel_vsyscall (arch/x86/entry/vdso/vdso32/system_call.S), user "
    "code the kernel maps into every 32-bit task: it saves ECX, EDX and EBP, then enters the "
    "kernel the fastest way boot patched in (SYSENTER on Intel, SYSCALL on AMD, else "
    "int $0x80). Every fast return comes back to int80_landing_pad, which pops the three "
    "and returns to the caller."
)


def vdso_note(address: int, initial_cs: int) -> str | None:
    """The vDSO note for a step at *address* of a 32-bit task (launched under __USER32_CS)."""
    if initial_cs == USER32_CS and VDSO32_BASE <= address < VDSO32_BASE + PAGE:
        return VDSO_NOTE
    return None


#: Notes for kernel code outside entry_64.S, by symbol.
KERNEL_NOTES: dict[str, str] = {
    "do_fast_syscall_32": N_(
        "The C half of a 32-bit SYSCALL (entry_SYSCALL_compat): regs->ip ← the vDSO's "
        "int80_landing_pad, the caller's EBP fetched from the user stack, the i386 system "
        "call, the exit work, then its SYSRETL conditions. No C runs on this emulated CPU: "
        "the engine applies what it does to pt_regs and returns, so this step is modelled."
    ),
    "do_SYSENTER_32": N_(
        "The C half of SYSENTER (entry_SYSENTER_compat): regs->sp ← regs->bp and IF set in "
        "regs->flags, then do_fast_syscall_32 as for a compat SYSCALL. No C runs on this "
        "emulated CPU: the engine applies what it does to pt_regs and returns, so this step "
        "is modelled."
    ),
    "do_syscall_64": N_(
        "The C half of the system call: run the handler for the number in RAX (v5.8 calls it "
        "through sys_call_table; 6.1 and 6.12 call x64_sys_call(), a switch on the number, "
        "since the Branch History Injection fix), then do the exit work (signals, ptrace). "
        "No C runs on this emulated CPU: the engine "
        "applies what the handler does to pt_regs and returns, so this step is modelled."
    ),
}


#: 6.12's C steps in do_syscall_64 (not emulated: modelled), by kind; a condition's note
#: is C_CHECK_NOTE with its source line.
C_STEP_NOTES: dict[StepKind, str] = {
    StepKind.C_CALL: N_(
        "bool do_syscall_64(struct pt_regs *regs, int nr), arch/x86/entry/common.c: run the "
        "handler through x64_sys_call(), a switch on the number, then the exit work (signals, "
        "ptrace). In 6.12 the same "
        "function also decides between SYSRET and IRET, in C, before it returns. No C runs on "
        "this emulated CPU: these steps are modelled on the pt_regs in emulated memory."
    ),
    StepKind.C_RETURN_TRUE: N_(
        "Every condition held: do_syscall_64 returns true (AL = 1) and the assembly's "
        "test %al,%al; jz falls through to SYSRET."
    ),
    StepKind.C_RETURN_FALSE: N_(
        "A condition failed: do_syscall_64 returns false (AL = 0) and the assembly's "
        "test %al,%al; jz jumps to swapgs_restore_regs_and_return_to_usermode, the IRET path."
    ),
}
#: The same for do_fast_syscall_32, the compat SYSCALL entry's C side (every kernel).
FAST32_STEP_NOTES: dict[StepKind, str] = {
    StepKind.C_CALL: N_(
        "do_fast_syscall_32(struct pt_regs *regs), arch/x86/entry/common.c: regs->ip ← the "
        "vDSO's int80_landing_pad (SYSCALL lost the caller's ECX, so the return goes through "
        "the vDSO), the caller's EBP read from the user stack, the i386 system call, the exit "
        "work; then the SYSRETL conditions. No C runs on this emulated CPU: these steps are "
        "modelled on the pt_regs in emulated memory."
    ),
    StepKind.C_RETURN_TRUE: N_(
        "Every condition held: do_fast_syscall_32 (and do_SYSENTER_32 with it) returns true "
        "(1) and the entry goes on to sysret32_from_system_call, the SYSRETL exit."
    ),
    StepKind.C_RETURN_FALSE: N_(
        "A condition failed: do_fast_syscall_32 (and do_SYSENTER_32 with it) returns false "
        "(0) and the entry jumps to swapgs_restore_regs_and_return_to_usermode, the IRET path."
    ),
}
SYSENTER32_CALL_NOTE = N_(
    "do_SYSENTER_32(struct pt_regs *regs), arch/x86/entry/common.c: regs->sp ← regs->bp "
    "(SYSENTER saved no ESP; the vDSO left it in EBP), IF set in regs->flags (SYSENTER "
    "cleared it), then do_fast_syscall_32: regs->ip ← the vDSO's int80_landing_pad, the "
    "caller's EBP read from the user stack, the i386 system call, the exit work and the "
    "SYSRETL conditions. No C runs on this emulated CPU: these steps are modelled on the "
    "pt_regs in emulated memory."
)
FAST32_CHECK_NOTE = N_(
    "A SYSRETL condition of do_fast_syscall_32, in the order its C tests it (modelled: the "
    "values compared are read from pt_regs in emulated memory). When it holds, the "
    "function returns false (0) and the exit is IRET. Source: {source}"
)
C_CHECK_NOTE = N_(
    "A SYSRET condition of do_syscall_64, in the order the compiled code tests it (modelled: "
    "the values compared are read from pt_regs in emulated memory). When it holds, the "
    "function returns false and the exit is IRET. Source: {source}"
)


def c_step_note(
    kind: StepKind, source: str, function: str = "do_syscall_64", key: str | None = None
) -> str:
    """The note for one of the modelled C steps of *function* (6.12's do_syscall_64, or
    do_fast_syscall_32); a statement of the C side (*key*) has its own."""
    if key is not None:
        return C_STATEMENT_NOTES.get(key, N_("A statement of the system call's C side."))
    fast = function in ("do_fast_syscall_32", "do_SYSENTER_32")
    if function == "do_SYSENTER_32" and kind is StepKind.C_CALL:
        return SYSENTER32_CALL_NOTE
    note = (FAST32_STEP_NOTES if fast else C_STEP_NOTES).get(kind)
    check = FAST32_CHECK_NOTE if fast else C_CHECK_NOTE
    return note if note is not None else Msg(check, source=source.strip())


def kernel_note(label: str) -> str:
    return KERNEL_NOTES.get(label, N_("Kernel code outside entry_64.S."))


def user_note(instruction: str) -> str:
    mnemonic = instruction.split(maxsplit=1)[0] if instruction.strip() else ""
    return USER_NOTES.get(mnemonic, USER_DEFAULT)


@dataclass(frozen=True, slots=True)
class NoteView:
    note: str  # explanation of the focus line for a learner
    events: tuple[Event, ...]  # events of the step just executed
    handler: tuple[str, ...]  # what do_syscall_64 did, on the step that called it
    rewritten: tuple[tuple[str, int, int], ...] = ()  # pt_regs fields it rewrote: old, new


class NotePanel(ViewPanel[NoteView], can_focus=True):
    """Explains the focus line, then lists the events of the last step.

    Focusable, so that a long note (the handler's pt_regs changes) scrolls with the keys.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "note--text",
        "note--event",
        "note--modelled",
        "note--handler",
        "note--rewritten",
    }

    def watch_view(self, view: NoteView | None) -> None:
        super().watch_view(view)
        if self.scroll_y:
            self.scroll_home(animate=False, immediate=True)

    def build(self, width: int) -> list[Content]:
        view = self.view
        if view is None:
            return []
        width = max(width, 20)
        lines: list[Content] = []
        text_style = self.style("note--text")
        # The note and the events are English msgids from the engine: shown translated.
        for text in wrap(_(view.note), width):
            lines.append(Content.assemble((text, text_style)))
        event_style = self.style("note--event")
        modelled_style = self.style("note--modelled")
        tag = "  " + _("modelled")
        for event in view.events:
            # The handler's event says what do_syscall_64 did and the pt_regs it changed,
            # which the lines below say again: its own lines stand for it, said once.
            said = (
                [tr(t) for t in view.handler]
                if event.kind == "handler" and view.handler
                else [tr(event.text)]
            )
            wrapped = [
                piece
                for text in said
                for piece in wrap(text, width, initial_indent="• ", subsequent_indent="  ")
            ]
            lines.extend(Content.assemble((text, event_style)) for text in wrapped)
            if event.modelled:
                # The tag goes after the text, on a line of its own if the last one is full.
                if cell_len(wrapped[-1]) + cell_len(tag) <= width:
                    lines[-1] = Content.assemble(lines[-1], (tag, modelled_style))
                else:
                    lines.append(Content.assemble((tag, modelled_style)))
        if not any(event.kind == "handler" for event in view.events):
            handler_style = self.style("note--handler")
            for text in view.handler:
                wrapped = wrap(tr(text), width, initial_indent="  │ ", subsequent_indent="  │   ")
                lines.extend(Content.assemble((piece, handler_style)) for piece in wrapped)
        if view.rewritten:
            rewritten_style = self.style("note--rewritten")
            lines.append(Content.assemble((_("pt_regs words rewritten (old → new):"), text_style)))
            for name, old, new in view.rewritten:
                lines.append(
                    Content.assemble((f"  {name:<7} {old:#x} → {new:#x}", rewritten_style))
                )
        return lines
