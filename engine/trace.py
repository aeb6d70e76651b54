"""Immutable records of one emulated SYSCALL round trip.

The engine yields these; the TUI and the CLI only render them.  Every value in
them was read from the emulated machine (Unicorn's registers, emulated memory,
MSRs, CR3) at the moment the record was taken.  Where the engine *modelled* a
part of the CPU that Unicorn does not implement (see ``engine.machine.modelled``), the
record says so with ``modelled=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from engine.i18n import N_, Msg, joined, msg

#: Names of the registers in :class:`Regs`, in display order.
REG_NAMES: tuple[str, ...] = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rip", "rflags", "cs", "ss", "fs_base", "gs_base", "kernel_gs_base", "cr3",
)  # fmt: skip


class EventKind(StrEnum):
    """What an :class:`Event` is about."""

    SYSCALL = "syscall"  # the SYSCALL ring transition (modelled)
    STACK_SWITCH = "stack_switch"  # RSP moved onto another real stack
    CR3_SWITCH = "cr3_switch"  # MOV to CR3
    SWAPGS = "swapgs"
    HANDLER = "handler"  # do_syscall_64 (modelled)
    CHECK = "check"  # a SYSRET-eligibility check's verdict
    SYSRET = "sysret"
    IRET = "iret"
    ERETU = "eretu"  # FRED's return to ring 3 (modelled)
    INTERRUPT = "interrupt"  # INT n delivered through the IDT (modelled)
    HELPER = "helper"  # a modelled C helper of the entry code, not the system call (sync_regs)
    RETURN = "return"  # back in user mode, the next instruction fetched
    FAULT = "fault"  # a CPU exception ended the run
    EXIT = "exit"  # the task called exit()
    CAP = "cap"  # the scenario's step cap ended the run
    UNSUPPORTED = "unsupported"  # a path the engine does not emulate


class ExitPath(StrEnum):
    """The ways the kernel returns to user mode: entry_SYSCALL_64's two, and FRED's one."""

    SYSRET = "sysret"
    IRET = "iret"
    ERETU = "eretu"  # FRED (6.12 with fred = true): the only way back to ring 3


class Door(StrEnum):
    """How the user's code entered the kernel."""

    SYSCALL = "syscall"  # SYSCALL through MSR_LSTAR (a FRED event under FRED)
    INT80 = "int80"  # int $0x80 through the IDT's DPL-3 gate 0x80 (delivery modelled)
    SYSCALL32 = "syscall32"  # SYSCALL from compatibility mode through MSR_CSTAR (AMD)
    SYSENTER = "sysenter"  # SYSENTER through IA32_SYSENTER_EIP (Intel)

    @property
    def fast32(self) -> bool:
        """A 32-bit fast system call, whose C side do_fast_syscall_32 decides the exit."""
        return self in (Door.SYSCALL32, Door.SYSENTER)


class StackName(StrEnum):
    """Which stack RSP is on."""

    USER = "user"
    TASK = "task"  # the task's kernel stack (pt_regs)
    ENTRY = "entry"  # the per-CPU trampoline (entry) stack
    OTHER = "other"  # RSP holds something else (SWITCH_TO_KERNEL_CR3 keeps CR3 in it)


class CheckName(StrEnum):
    """The SYSRET checks of every kernel; the order is the kernel's own
    (``engine.kernel.spec(name).checks``): v5.8.13 and 6.1 in assembly, 6.12 in C."""

    RCX_EQ_RIP = "rcx_eq_rip"
    CANONICAL_RIP = "canonical_rip"
    CS_USER = "cs_user"
    R11_EQ_RFLAGS = "r11_eq_rflags"
    NO_RF_TF = "no_rf_tf"
    SS_USER = "ss_user"
    RIP_BELOW_TASK_SIZE_MAX = "rip_below_task_size_max"  # 6.12, instead of canonical_rip
    # do_fast_syscall_32's SYSRETL conditions (the compat SYSCALL entry, in C on all three)
    IP_LANDING_PAD = "ip_landing_pad"
    CS_USER32 = "cs_user32"
    NO_RF_TF_VM = "no_rf_tf_vm"  # 6.12's form of no_rf_tf there: VM too


class CheckResult(StrEnum):
    NOT_REACHED = "not_reached"
    PASS = "pass"
    FAIL = "fail"
    REMOVED = "removed"  # what-if: the kernel was built without this check


class Relation(StrEnum):
    """How a check relates its two operands (what ZF after its cmp/test means)."""

    EQUAL = "equal"  # cmp: passes when left == right
    CANONICAL = "canonical"  # cmp with the sign-extended copy: passes when equal
    BITS_CLEAR = "bits_clear"  # test: passes when left & right == 0
    BELOW = "below"  # 6.12's C: passes when left < right (unsigned)


@dataclass(frozen=True, slots=True)
class Regs:
    """Architectural registers at one instant, read from Unicorn."""

    rax: int
    rbx: int
    rcx: int
    rdx: int
    rsi: int
    rdi: int
    rbp: int
    rsp: int
    r8: int
    r9: int
    r10: int
    r11: int
    r12: int
    r13: int
    r14: int
    r15: int
    rip: int
    rflags: int
    cs: int
    ss: int
    fs_base: int
    gs_base: int
    kernel_gs_base: int
    cr3: int

    @property
    def cpl(self) -> int:
        """Current privilege level: the RPL bits of CS (equal to CPL in long mode)."""
        return self.cs & 3  # the RPL bits (engine.constants.SELECTOR_RPL_MASK)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in REG_NAMES}

    def values(self) -> tuple[int, ...]:
        """The registers in :data:`REG_NAMES` order."""
        return (
            self.rax, self.rbx, self.rcx, self.rdx, self.rsi, self.rdi, self.rbp, self.rsp,
            self.r8, self.r9, self.r10, self.r11, self.r12, self.r13, self.r14, self.r15,
            self.rip, self.rflags, self.cs, self.ss, self.fs_base, self.gs_base,
            self.kernel_gs_base, self.cr3,
        )  # fmt: skip

    def changed_from(self, other: Regs) -> tuple[str, ...]:
        if self == other:  # a spin loop (``1: jmp 1b``) changes nothing: skip the walk
            return ()
        pairs = zip(REG_NAMES, self.values(), other.values(), strict=True)
        return tuple(n for n, a, b in pairs if a != b)


@dataclass(frozen=True, slots=True)
class Event:
    """Something worth a line in the trace: a mode switch, a CR3 switch, swapgs,
    the modelled C call, a check verdict, a fault."""

    kind: EventKind
    text: str
    modelled: bool = False


@dataclass(frozen=True, slots=True)
class Fault:
    """A CPU exception that ended the run."""

    vector: int
    name: str  # "#PF", "#GP", ...
    cpl: int
    rip: int
    address: int | None = None  # CR2 for #PF
    modelled: bool = False
    reason: str = ""
    #: The error code the CPU pushes, where the SDM fixes it (None: the vector pushes
    #: none, or it names a selector Unicorn does not report).  Always modelled:
    #: Unicorn hands exceptions to a hook instead of delivering them.
    error_code: int | None = None

    def describe(self, tag_modelled: bool = True) -> str:
        # English, built from msgids so that engine.i18n.tr() can show it translated.
        head = msg(
            "{fault} (vector {vector}) at CPL {cpl}, RIP {rip:#018x}",
            fault=self.name, vector=self.vector, cpl=self.cpl, rip=self.rip,
        )  # fmt: skip
        parts: list[str] = [head]
        if self.address is not None:
            parts.append(msg(", address {address:#x}", address=self.address))
        if self.error_code is not None:  # always modelled: say so unless the whole fault is
            if self.modelled:
                parts.append(msg(", error code {code:#x}", code=self.error_code))
            else:
                parts.append(msg(", error code {code:#x} (modelled)", code=self.error_code))
        if self.modelled and tag_modelled:
            parts.append(N_(" [modelled]"))
        if self.reason:
            parts.append(Msg(": {reason}", reason=self.reason))
        return joined("", parts)


@dataclass(frozen=True, slots=True)
class StackSlot:
    """One 8-byte word of a stack, with the name of the slot it holds."""

    address: int
    value: int
    slot: str  # pt_regs field ("ss", "sp", ... "r15") or trampoline-frame name


@dataclass(frozen=True, slots=True)
class Operand:
    """One value a check compared, with the name the entry code gives it."""

    label: str  # "RCX", "RIP (pt_regs->ip)", "__USER_CS", ...
    value: int


@dataclass(frozen=True, slots=True)
class CheckState:
    """One SYSRET-eligibility check as of a step, with the values it compared.

    The words are made by :func:`engine.checks.describe` (CLI, JSON) or by the UI from
    the operands; nothing reads the values back out of text.
    """

    name: CheckName
    result: CheckResult
    left: Operand | None = None
    right: Operand | None = None
    relation: Relation = Relation.EQUAL


#: The names of the stack words that are not pt_regs fields: what ``call do_syscall_64``
#: pushed below pt_regs, and RAX as the exit saves it on the entry stack.
SLOT_RETURN_ADDRESS = "return address"
SLOT_SAVED_AX = "ax (saved)"


class StepKind(StrEnum):
    """What a step is: an instruction the CPU ran, or one of 6.12's modelled C steps."""

    INSTRUCTION = "instruction"
    C_CALL = "c_call"  # do_syscall_64's system call and exit work
    C_CONDITION = "c_condition"  # one SYSRET condition, as the compiled code tests it
    C_RETURN_TRUE = "c_return_true"  # do_syscall_64 returns true: SYSRET
    C_RETURN_FALSE = "c_return_false"  # do_syscall_64 returns false: IRET
    C_STATEMENT = "c_statement"  # one statement of the C side (engine.run.c_side)


@dataclass(frozen=True, slots=True)
class CStatement:
    """Where a modelled C step stands in the kernel's own source, and what it read and
    wrote: the file and line (in the kernel version's tree), the calls it is inside,
    outermost first (inlined functions too: they are C, whatever the compiler did), and
    the values, named as the C names them, in the order the statement uses them."""

    key: str  # the statement's name in engine.kernel.c_source.C_LINES ("exit", ...)
    file: str  # "kernel/entry/common.c"; "" for the system call's own body
    line: int  # 1-based; 0 with no file
    stack: tuple[str, ...]  # ("do_syscall_64", "syscall_exit_to_user_mode", ...)
    values: tuple[tuple[str, int], ...] = ()

    @property
    def function(self) -> str:
        return self.stack[-1]

    @property
    def where(self) -> str:
        """``file:line``, as an editor takes it ("" for the system call's body)."""
        return f"{self.file}:{self.line}" if self.file else ""


@dataclass(frozen=True, slots=True)
class Step:
    """One executed instruction and the machine state right after it."""

    index: int
    rip: int  # address of the instruction executed
    code: bytes
    text: str  # Capstone's disassembly, AT&T
    source_line: int | None  # 1-based line in the entry_64.S rendition; None for user code
    source: str  # that source line (macro level), or the user's instruction
    macro: str | None  # the macro this instruction came from, if any
    label: str  # the nearest symbol: "entry_SYSCALL_64", "user", ...
    cpl: int  # privilege level the instruction ran at
    regs: Regs  # registers after the instruction
    changed: tuple[str, ...]  # registers this instruction changed
    stack: tuple[StackSlot, ...]  # pt_regs words written so far, top of stack first
    entry_stack: tuple[StackSlot, ...]  # trampoline-stack words written so far
    stack_writes: tuple[int, ...]  # addresses this instruction wrote on either stack
    stack_reads: tuple[int, ...]  # addresses this instruction read on either stack
    checks: tuple[CheckState, ...]  # the six SYSRET checks as of this step
    events: tuple[Event, ...]
    modelled: bool  # part of this step was modelled, not executed by Unicorn
    stack_name: StackName  # which stack RSP is on after the step
    #: pt_regs fields the step rewrote, with (old, new): the modelled do_syscall_64 step
    #: (the system call, then [handler.set] as ptrace or sigreturn would).
    rewritten: tuple[tuple[str, int, int], ...] = ()
    #: The value the latest MOV to CR3 so far wrote (bit 63, no-flush, included), as
    #: read from its source register; ``regs.cr3`` is what CR3 reads back.
    cr3_written: int | None = None
    kind: StepKind = StepKind.INSTRUCTION
    #: a C_STATEMENT step's place in the kernel's C source and its values
    c: CStatement | None = None

    @property
    def number(self) -> int:
        """The step's number as every output writes it: steps are numbered from 1."""
        return self.index + 1

    @property
    def is_c(self) -> bool:
        """One of 6.12's modelled C steps inside do_syscall_64, not an instruction."""
        return self.kind is not StepKind.INSTRUCTION


@dataclass(frozen=True, slots=True)
class Trip:
    """A later round trip of the same run: its SYSCALL's step, its exit, the check that
    decided it, the checks' final states, pt_regs at the C call and after it, and what
    its system call did."""

    first_step: int  # index of the step of its SYSCALL instruction
    exit: ExitPath | None
    failed_check: CheckName | None
    checks: tuple[CheckState, ...]
    pt_regs_at_call: dict[str, int]
    pt_regs_after_call: dict[str, int]
    handler: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MappedRegion:
    """What one page-table root maps at a named region, found by walking it."""

    name: str
    address: int
    mapped: bool
    phys: int | None
    flags: str  # "rw- user nx" style summary of the leaf entry


@dataclass(frozen=True, slots=True)
class RootSummary:
    """One of the two KPTI page-table roots, decoded."""

    name: str  # "kernel" | "user"
    cr3: int
    pgd: int
    pcid: int
    regions: tuple[MappedRegion, ...]


@dataclass(frozen=True, slots=True)
class SourceInstruction:
    address: int
    code: bytes
    text: str
    macro: str | None


@dataclass(frozen=True, slots=True)
class SourceLine:
    """A line of the entry_64.S rendition with what it assembled to."""

    number: int
    text: str
    note: str  # explanation for a learner ("" when none)
    label: str | None  # label defined on this line
    instructions: tuple[SourceInstruction, ...]


@dataclass(frozen=True, slots=True)
class UserLine:
    """One statement of the scenario's ``[user] code``, as written and where it landed.

    The user-code panel, JSON and Markdown show the program from these: labels as labels,
    data as its bytes (never decoded as instructions), instructions as the user wrote them.
    """

    address: int
    kind: str  # "label" | "instruction" | "data" | "mode" (.code32, .code64)
    text: str  # the statement as written (``jmp start``, ``msg: .ascii "hi\\n"`` is two)
    code: bytes = b""  # what it assembled to (nothing for a label)
    line: int = 0  # 1-based line in the code string


@dataclass(frozen=True, slots=True)
class Trace:
    """A whole round trip: what the scenario asked for and every step taken."""

    scenario: str
    path: str | None
    kernel: str
    cpu: str
    paging: int
    pti: bool
    pcid: bool
    initial: Regs  # registers before the first user instruction
    steps: tuple[Step, ...]
    exit: ExitPath | None
    failed_check: CheckName | None
    checks: tuple[CheckState, ...]  # final state of the six checks
    fault: Fault | None
    pt_regs_at_call: dict[str, int] = field(default_factory=dict)
    pt_regs_after_call: dict[str, int] = field(default_factory=dict)
    handler: tuple[str, ...] = ()  # what do_syscall_64 did, line by line
    output: bytes = b""  # what write() printed
    final: Regs | None = None
    final_cpl: int = 3
    msrs: dict[str, int] = field(
        default_factory=dict
    )  # EFER, STAR, LSTAR, SYSCALL_MASK read at start
    roots: tuple[RootSummary, ...] = ()
    source: tuple[SourceLine, ...] = ()
    symbols: dict[str, int] = field(default_factory=dict)
    stopped: str = ""  # why the run ended, in words
    events: tuple[Event, ...] = ()  # all events of all steps, in order
    #: remove_checks names this kernel has no check for (the scenario run on another kernel)
    not_removed: tuple[str, ...] = ()
    #: the scenario's user code statement by statement (empty for a trace of another origin)
    user_code: tuple[UserLine, ...] = ()
    #: the way into the kernel the user's code took
    door: Door = Door.SYSCALL
    #: the round trips after the first (the exit, checks and pt_regs above are the
    #: first's): the rt_sigreturn a delivered signal's handler makes through its restorer
    trips: tuple[Trip, ...] = ()

    @property
    def c_entry(self) -> str:
        """The modelled C function that ran the system call: do_syscall_64, or after an
        int $0x80 v5.8's do_int80_syscall_32 or 6.1's and 6.12's do_int80_emulation, after
        a compat-mode SYSCALL into entry_SYSCALL_compat do_fast_syscall_32 (the ignore
        entry of ia32_emulation=off calls none: its trace has no check)."""
        if self.door is Door.SYSENTER:
            return "do_SYSENTER_32"
        if self.door is Door.SYSCALL32 and self.checks:
            return "do_fast_syscall_32"
        if self.door is not Door.INT80:
            return "do_syscall_64"
        if self.fred:
            return "fred_int80_emulation"
        return "do_int80_syscall_32" if self.kernel == "v5.8.13" else "do_int80_emulation"

    @property
    def fred(self) -> bool:
        """The run was on a FRED machine ([machine] fred = true): its MSRs include the
        FRED ones, which no other machine has."""
        return "FRED_CONFIG" in self.msrs
