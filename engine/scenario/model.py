"""What a scenario is, once parsed and validated: plain frozen records, nothing heavy.

The parser (:mod:`engine.scenario.parse`) builds these; the machine, the run and every view
read them.  Importing this module loads no emulator, assembler or disassembler.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from operator import attrgetter

from engine.trace import CheckName, ExitPath, UserLine


@dataclass(frozen=True, slots=True)
class MachineConfig:
    """What the scenario's [machine] table chooses."""

    cpu: str = "intel"
    paging: int = 4
    pti: bool = True
    pcid: bool = True
    removed_checks: tuple[str, ...] = ()  # what-if: SYSRET checks patched out
    kernel: str = "v5.8.13"  # one of engine.kernel.KERNELS
    #: FRED (Flexible Return and Event Delivery) on: a 6.12 built with CONFIG_X86_FRED=y,
    #: booted with fred=on, on a CPU that has it (only kernel = "v6.12")
    fred: bool = False
    #: The CPU model whose bugs decide which mitigations the kernel patched in at boot:
    #: "qemu-max" (QEMU's default model: none needed), "skylake-client" (MDS, so
    #: CLEAR_CPU_BUFFERS runs VERW) or "epyc-rome" (SRSO, so UNTRAIN_RET calls the
    #: safe-RET untraining); each checked against real 6.1 and 6.12 traces
    cpu_model: str = "qemu-max"
    #: Which of Debian's builds of 6.1 / 6.12: "cloud" (cloud-amd64, the default, without
    #: CONFIG_X86_ESPFIX64) or "generic" (amd64, with it: the IRET path tests for an LDT
    #: stack segment first).  v5.8.13 has one build, which has ESPFIX64.
    flavour: str = "cloud"
    #: 6.12's ia32_emulation= boot switch (6.7+): off, no 32-bit door is open (vector 0x80
    #: an external-interrupt gate, IA32_SYSENTER_CS invalid, MSR_CSTAR the ignore entry)
    ia32_emulation: bool = True


#: Debian's kernel flavours [machine] flavour may name (the default first).
FLAVOURS: tuple[str, ...] = ("cloud", "generic")
#: The kernels that come in those flavours.
FLAVOURED_KERNELS: tuple[str, ...] = ("v6.1", "v6.12")

#: The vendor of each CPU model other than QEMU's default ([machine] cpu must agree).
CPU_MODEL_VENDORS: dict[str, str] = {"skylake-client": "intel", "epyc-rome": "amd"}

#: The CPU models [machine] cpu_model may name, and the kernels each is checked on.
CPU_MODELS: dict[str, tuple[str, ...]] = {
    "qemu-max": ("v5.8.13", "v6.1", "v6.12"),
    "skylake-client": ("v6.1", "v6.12"),
    "epyc-rome": ("v6.1", "v6.12"),
}


USER_REGS = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12",
    "r13", "r14", "r15",
)  # fmt: skip

SIGFRAME_FIELDS = (
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
    "rdx", "rax", "rcx", "rsp", "rip", "eflags", "cs", "gs", "fs", "ss", "uc_flags",
)  # fmt: skip

#: The CPU vendors a scenario can choose with ``[machine] cpu``, the default first.
CPUS: tuple[str, ...] = ("intel", "amd")

DEFAULT_RIP = 0x401000
DEFAULT_RSP = 0x7FFC0000F000
DEFAULT_RFLAGS = 0x246
DEFAULT_RAX = 39  # getpid: the plainest round trip
DEFAULT_PID = 1234
DEFAULT_STEP_CAP = 10_000
#: The largest step_cap a scenario may ask for (a recorded step costs memory and time).
MAX_STEP_CAP = 100_000
#: Scenario files larger than this are refused before reading (real ones are < 4 KiB).
MAX_FILE_SIZE = 1 << 20
#: [[memory]] limits: entries, bytes in all, and page tables per root they may need
#: (the machine's pool has 256 table pages; the kernel's own mappings use < 40).
MAX_MEMORY_ENTRIES = 32
MAX_MEMORY_TOTAL = 32 << 20
MAX_MEMORY_TABLES = 100
#: User code statements (64 KiB of code is at most 65536 one-byte instructions).
MAX_STATEMENTS = 20_000
#: Data directives user code may use; every other directive is refused (see engine/asm.py).
DATA_DIRECTIVES = (
    ".byte", ".short", ".word", ".value", ".long", ".int", ".quad", ".ascii", ".asciz", ".string",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class UserCode:
    """The user's program, assembled (and verified) at its address."""

    source: str
    address: int
    code: bytes
    lines: tuple[tuple[int, str, str], ...]  # (address, user's statement, Capstone text)
    #: every statement (labels, instructions, data) in the order written, for display
    listing: tuple[UserLine, ...] = ()
    #: (address, Capstone text) of what the data statements would execute as, if jumped
    #: into: the machine's models (I/O, SYSENTER) must know them; no display shows them.
    data_insns: tuple[tuple[int, str], ...] = ()

    def statement_at(self, address: int) -> str | None:
        """The instruction statement at *address*, or the data statement holding it.

        Called for every user step: a search of the listing (in address order), not a scan.
        """
        k = bisect.bisect_right(self.listing, address, key=attrgetter("address"))
        while k > 0:
            k -= 1
            line = self.listing[k]
            if line.kind == "label" or not line.code:
                continue  # no bytes of its own: the statement before it holds the address
            if line.kind == "instruction":
                return line.text if line.address == address else None
            return line.text if address < line.address + len(line.code) else None
        return None

    @property
    def executable(self) -> tuple[tuple[int, str], ...]:
        """(address, Capstone text) of every instruction the program holds, data read as code
        included, by address."""
        return tuple(sorted([(a, text) for a, _, text in self.lines] + list(self.data_insns)))

    @property
    def syscall_return(self) -> int:
        """Where the first ``syscall`` of the program returns to."""
        for addr, text in self.executable:
            if text.split()[0] == "syscall":
                return addr + 2
        return self.address


@dataclass(frozen=True, slots=True)
class MemoryRange:
    address: int
    size: int
    access: str  # "r" "rw" "rx" "rwx"


@dataclass(frozen=True, slots=True)
class Expect:
    """The scenario's [expect]: only the keys in *given* are checked, and for those, None
    is what the file wrote as "none" (no exit, no failed check, no fault)."""

    exit: ExitPath | None = None
    failed_check: CheckName | None = None
    fault: str | None = None  # an exception's name: "#GP", "#PF", ...
    fault_cpl: int | None = None
    given: tuple[str, ...] = ()


#: [task] kstack_offset and tsc when the file gives none: the values of the 6.1 trace's
#: case a (current->kstack_offset 0xe3debdc9 on entry, RDTSC 0x1f724086 at the exit), so
#: a run moves its C frame by what the real kernel did there.
DEFAULT_KSTACK_OFFSET = 0xE3DEBDC9
DEFAULT_TSC = 0x1F724086


@dataclass(frozen=True, slots=True)
class TaskState:
    """What the scenario's [task] table says of ``current`` when the system call enters:
    thread_info flags to set (names of engine.kernel.c_source.TIF_BITS), its
    kstack_offset (6.1, 6.12), and what RDTSC returns at the exit, which
    choose_random_kstack_offset() mixes into the next offset (deterministic here)."""

    flags: tuple[str, ...] = ()
    kstack_offset: int = DEFAULT_KSTACK_OFFSET
    tsc: int = DEFAULT_TSC


@dataclass(frozen=True, slots=True)
class SignalConfig:
    """The scenario's [signal]: a pending signal the exit work delivers, its handler and
    sa_restorer (addresses of labels of the user's code), and SA_SIGINFO."""

    number: int
    handler: int
    restorer: int
    handler_name: str
    restorer_name: str
    siginfo: bool = True


@dataclass(frozen=True, slots=True)
class DebugSettings:
    """A scenario's [debug] table: the debugger's set-up when it opens the file."""

    breaks: tuple[str, ...] = ()  # break arguments: "LABEL", "N", "*EXPR", "... if COND"
    watches: tuple[str, ...] = ()  # watch arguments: "regs->ip", "$rsp+8"
    shows: tuple[str, ...] = ()  # x or walk command lines pinned to their panels


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed, validated scenario."""

    name: str
    path: str
    description: str = ""
    kernel: str = "v5.8.13"
    machine: MachineConfig = field(default_factory=MachineConfig)
    regs: dict[str, int] = field(default_factory=dict)  # user GPRs (rax..r15)
    rip: int = DEFAULT_RIP
    rsp: int = DEFAULT_RSP
    rflags: int = DEFAULT_RFLAGS
    #: "64", or "compat": the code starts as 32-bit code under __USER32_CS
    mode: str = "64"
    fs_base: int = 0
    gs_base: int = 0
    code: UserCode | None = None
    memory: tuple[MemoryRange, ...] = ()
    handler_set: dict[str, int] = field(default_factory=dict)
    pid: int = DEFAULT_PID
    sigframe: dict[str, int] = field(default_factory=dict)
    expect: Expect = Expect()
    step_cap: int = DEFAULT_STEP_CAP
    #: ``remove_checks`` names dropped by :func:`with_kernel`: this kernel has no such check.
    not_removed: tuple[str, ...] = ()
    debug: DebugSettings = DebugSettings()
    task: TaskState = TaskState()
    signal: SignalConfig | None = None
