"""The IDT and the version banner: what a kernel debugger reads to know the kernel.

pwndbg's ``kbase`` takes the handler of IDT[0] and looks for the executable mapping
holding it; bata24's ``idtinfo`` decodes the table IDTR points at; both find the
kernel version by searching read-only kernel data for ``Linux version``.  A machine
with IDTR 0/0 and no banner leaves all of them empty-handed.

* **The IDT** is laid out as Linux's ``idt_setup_traps()``/``def_idts``
  (arch/x86/kernel/idt.c): 64-bit interrupt gates through ``__KERNEL_CS``, DPL 3 only
  for #BP, #OF and the ``int $0x80`` vector, IST stacks for #DB, NMI, #DF and #MC.
  It lives where Linux maps its read-only copy, ``CPU_ENTRY_AREA_RO_IDT`` (the first
  page of the cpu_entry_area), in both roots, as ``load_idt()`` leaves IDTR.
* **The handlers** have no code in the image, but for the ``int $0x80`` entry where
  the kernel's rendition has it (v5.8.13's ``entry_INT80_compat``, whose delivery
  engine.machine.modelled models): each other vector points at a small stub in
  ``.entry.text`` named like Linux's handler (``asm_exc_divide_error``...).  A stub is
  ``ud2``: Unicorn hands every exception to the engine's interrupt hook
  (engine/machine/faults.py) and never vectors through the IDT, so these stubs never
  run; they exist so that the gates point at code with a name, as the front-ends
  expect.  External-interrupt vectors (32..255
  but 0x80) are left not present: the machine has no APIC.
* **The banner** sits at the start of a read-only, no-execute page of kernel data
  after the text (where ``__start_rodata`` follows ``.entry.text``), and says the
  kernel is emulated.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from engine import layout as L
from engine.constants import KERNEL_CS

#: CPU_ENTRY_AREA_RO_IDT (arch/x86/include/asm/cpu_entry_area.h): the page before CPU 0's area.
CEA_RO_IDT = L.CEA_BASE - L.PAGE
PHYS_IDT = L.PHYS_CEA + 2 * L.PAGE  # after the GDT and entry-stack pages
IDT_LIMIT = 256 * 16 - 1

#: Where the handler stubs go in .entry.text (the entry code ends well before).
STUBS = L.ENTRY_TEXT + 0x800
STUB_SIZE = 16
UD2 = b"\x0f\x0b"

#: Read-only kernel data: one page after .entry.text, at the physical address that
#: keeps the kernel's virtual-physical offset (0xffffffff80000000).
KERNEL_RODATA = 0xFFFFFFFF81C00000
PHYS_KERNEL_RODATA = 0x01C00000

GATE_INTERRUPT = 0xE
INT80 = 0x80

#: (vector, Linux's handler, DPL, IST) from idt.c's early_idts/def_idts (v5.8..v6.12).
EXCEPTIONS: tuple[tuple[int, str, int, int], ...] = (
    (0, "asm_exc_divide_error", 0, 0),
    (1, "asm_exc_debug", 0, 3),  # IST_INDEX_DB + 1
    (2, "asm_exc_nmi", 0, 2),  # IST_INDEX_NMI + 1
    (3, "asm_exc_int3", 3, 0),  # SYSG: int3 from user space
    (4, "asm_exc_overflow", 3, 0),  # SYSG: into from user space
    (5, "asm_exc_bounds", 0, 0),
    (6, "asm_exc_invalid_op", 0, 0),
    (7, "asm_exc_device_not_available", 0, 0),
    (8, "asm_exc_double_fault", 0, 1),  # IST_INDEX_DF + 1
    (9, "asm_exc_coproc_segment_overrun", 0, 0),
    (10, "asm_exc_invalid_tss", 0, 0),
    (11, "asm_exc_segment_not_present", 0, 0),
    (12, "asm_exc_stack_segment", 0, 0),
    (13, "asm_exc_general_protection", 0, 0),
    (14, "asm_exc_page_fault", 0, 0),
    (15, "asm_exc_spurious_interrupt_bug", 0, 0),
    (16, "asm_exc_coprocessor_error", 0, 0),
    (17, "asm_exc_alignment_check", 0, 0),
    (18, "asm_exc_machine_check", 0, 4),  # IST_INDEX_MCE + 1
    (19, "asm_exc_simd_coprocessor_error", 0, 0),
)


def int80_handler(kernel: str) -> str:
    """The IA32_SYSCALL_VECTOR gate's target (idt.c's SYSG): v6.7 replaced
    entry_INT80_compat with the IDTENTRY asm_int80_emulation, and the change was taken
    into 6.1's stable series before 6.1.192 (Debian's 6.1.192 idt.c has it)."""
    return "entry_INT80_compat" if kernel == "v5.8.13" else "asm_int80_emulation"


#: With 6.12's ia32_emulation=off, idt_setup_traps() installs no gate for 0x80, so
#: idt_setup_apic_and_irq_gates() gives it an external-interrupt entry like every vector
#: from 0x20: a DPL-0 interrupt gate into irq_entries_start (here a stub of that name).
IRQ_ENTRY = "irq_entries_start"


def gates(kernel: str, ia32: bool = True) -> tuple[tuple[int, str, int, int], ...]:
    if not ia32:
        return (*EXCEPTIONS, (INT80, IRQ_ENTRY, 0, 0))
    return (*EXCEPTIONS, (INT80, int80_handler(kernel), 3, 0))


def handler_symbols(
    kernel: str, image: Mapping[str, int] | None = None, ia32: bool = True
) -> dict[str, int]:
    """Each gate's handler name → its address: the code of that name in the kernel
    image's symbols *image* where it has it, else its stub."""
    have = image or {}
    return {
        name: have.get(name, STUBS + STUB_SIZE * i)
        for i, (_, name, _, _) in enumerate(gates(kernel, ia32))
    }


def stub_symbols(kernel: str, image: Mapping[str, int] | None = None) -> dict[str, int]:
    """The handlers that are stubs (no code of theirs in *image*) → the stub's address."""
    have = image or {}
    return {n: a for n, a in handler_symbols(kernel).items() if n not in have}


def gate(offset: int, dpl: int, ist: int) -> bytes:
    """A 16-byte 64-bit interrupt gate (Intel SDM vol. 3A, 6.14.1)."""
    attr = 0x80 | dpl << 5 | GATE_INTERRUPT  # P, DPL, type
    low = (
        (offset & 0xFFFF)
        | KERNEL_CS << 16
        | (ist & 7) << 32
        | attr << 40
        | ((offset >> 16) & 0xFFFF) << 48
    )
    return struct.pack("<QQ", low, offset >> 32)


def idt_page(kernel: str, image: Mapping[str, int] | None = None, ia32: bool = True) -> bytes:
    table = bytearray(L.PAGE)
    symbols = handler_symbols(kernel, image, ia32)
    for vector, name, dpl, ist in gates(kernel, ia32):
        table[16 * vector : 16 * vector + 16] = gate(symbols[name], dpl, ist)
    return bytes(table)


def stub_code(kernel: str) -> bytes:
    """The handler stubs, each ``ud2`` padded with int3 to :data:`STUB_SIZE`."""
    one = UD2 + b"\xcc" * (STUB_SIZE - len(UD2))
    return one * len(gates(kernel))


def banner(kernel: str) -> bytes:
    """linux_banner's format (init/version.c), saying what this kernel really is."""
    release = kernel.lstrip("v")
    return (
        f"Linux version {release} (syscall-tui emulated entry path: not a running kernel) "
        "(no compiler: the entry code is assembled by syscall-tui) #1 SMP\n\0"
    ).encode()


__all__ = [
    "CEA_RO_IDT",
    "IDT_LIMIT",
    "KERNEL_RODATA",
    "PHYS_IDT",
    "PHYS_KERNEL_RODATA",
    "STUBS",
    "banner",
    "gates",
    "handler_symbols",
    "idt_page",
    "stub_code",
    "stub_symbols",
]
