"""The real gdb over what front-ends use: procfs over vFile, the auxv, the SYSCALL MSRs,
and with --qemu-compat QEMU's packets and monitor commands."""

from __future__ import annotations

import re
from pathlib import Path

from tests.gdb.test_gdb_remote import gdb, stub


def test_gdb_fetches_proc_maps_and_exe_and_reads_the_auxv(tmp_path: Path) -> None:
    maps, exe = tmp_path / "maps", tmp_path / "exe"
    with stub("getpid.toml") as port:
        out = gdb(port, f"remote get /proc/42000/maps {maps}",
                  f"remote get /proc/42000/exe {exe}", "remote get /etc/hostname /dev/null",
                  "info auxv", "info registers lstar fmask")  # fmt: skip
    text = maps.read_text()
    assert re.search(r"^0000000000401000-0000000000402000 r-xp .* \[code\]$", text, re.M), text
    assert re.search(
        r"^ffffc90000010000-ffffc90000014000 rw-p .* \[kernel.task_stack\]$", text, re.M
    )
    assert exe.read_bytes().startswith(b"\x7fELF")
    assert "Remote I/O error: No such file or directory" in out  # /etc/hostname: never served
    assert re.search(r"^6\s+AT_PAGESZ\s+System page size\s+4096$", out, re.M), out
    lstar = 0xFFFFFFFF81A00000  # entry_SYSCALL_64, as syscall_init() writes it
    assert re.search(rf"^lstar\s+{lstar:#x}\s+{lstar:#x} <entry_SYSCALL_64>$", out, re.M), out
    assert re.search(r"^fmask\s+0x[0-9a-f]+", out, re.M)


def test_monitor_commands_only_with_qemu_compat() -> None:
    with stub("getpid.toml") as port:
        out = gdb(port, "monitor info registers", "maintenance packet Qqemu.sstepbits")
    assert "Target does not support this command." in out
    assert 'received: ""' in out
    with stub("getpid.toml", "--qemu-compat") as port:
        out = gdb(port, "maintenance packet Qqemu.sstepbits", "stepi 12", "monitor info registers",
                  "monitor gva2gpa $rsp", "monitor info nonesuch", "x/2gx $cr3",
                  "maintenance packet Qqemu.PhyMemMode:1", "x/2gx ($cr3 & ~0xfff)",
                  "maintenance packet Qqemu.PhyMemMode:0", "set {char}$rip = 0")  # fmt: skip
    assert 'received: "ENABLE=1,NOIRQ=2,NOTIMER=4"' in out
    assert re.search(r"^IDT=\s+fffffe0000000000 00000fff$", out, re.M), out
    assert re.search(r"^CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 \[-RA\]$", out, re.M)
    assert re.search(r"^gpa: 0x[0-9a-f]+$", out, re.M)
    assert "unknown command: 'info nonesuch'" in out
    # physical mode: the kernel's PML4 itself; entry 0 is a table (P|RW|US|A = 0x27)
    assert re.search(r"^0x100000:\s+0x[0-9a-f]*27\s+0x0+$", out, re.M), out
    assert "Cannot access memory at address" in out  # the write is refused
