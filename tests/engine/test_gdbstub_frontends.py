"""What gdb front-ends ask of the stub: procfs over vFile, an auxv, QEMU's packets and
monitor, the IDT and banner they read, the SYSCALL MSRs; every answer checked against
the emulated machine itself."""

from __future__ import annotations

import re
import struct
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unicorn import x86_const as X

from engine import load_scenario
from engine.gdbstub import Replay, Stub
from engine.gdbstub.protocol import MAX_FILES
from engine.gdbstub.server import write_symbol_file
from engine.gdbstub.target import REGISTER_INDEX
from engine.machine import idt
from engine.machine.paging import ADDR_MASK, NX, RW, US
from tests.conftest import SCENARIOS


@cache
def replay_of(name: str) -> Replay:
    return Replay(load_scenario(SCENARIOS / name))


def hexpath(path: str) -> str:
    return path.encode().hex()


def vfile_read(stub: Stub, fd: int) -> bytes:
    data = b""
    while True:
        reply = stub.handle(f"vFile:pread:{fd:x},800,{len(data):x}".encode())
        assert reply is not None and reply.startswith(b"F"), reply
        head, _, chunk = reply.partition(b";")
        if int(head[1:], 16) == 0:
            return data
        data += chunk


def open_fd(stub: Stub, path: str, flags: int = 0) -> bytes:
    reply = stub.handle(f"vFile:open:{hexpath(path)},{flags:x},0".encode())
    assert reply is not None
    return reply


def monitor(stub: Stub, line: str) -> str:
    reply = stub.handle(b"qRcmd," + line.encode().hex().encode())
    assert reply is not None and reply != b"", line
    return bytes.fromhex(reply.decode()).decode()


def reg(stub: Stub, name: str) -> int:
    raw = stub.handle(f"p{REGISTER_INDEX[name]:x}".encode())
    assert raw is not None
    return int.from_bytes(bytes.fromhex(raw.decode()), "little")


@pytest.fixture
def elf_stub(tmp_path: Path) -> Stub:
    r = replay_of("getpid.toml")
    elf = write_symbol_file(r.trace, tmp_path)
    return Stub(r, exec_file=str(elf))


# -- looking like a process -------------------------------------------------------------
MAPS_LINE = re.compile(r"([0-9a-f]{16})-([0-9a-f]{16}) ([r-][w-][x-]p) 00000000 00:00 0\s+(\S*)")


def parse_maps(text: str) -> list[tuple[int, int, str, str]]:
    rows = []
    for line in text.splitlines():
        m = MAPS_LINE.fullmatch(line)
        assert m, line
        rows.append((int(m[1], 16), int(m[2], 16), m[3], m[4]))
    return rows


@pytest.mark.parametrize("name", ["getpid.toml", "pti-off.toml", "la57-rip-2-47.toml"])
def test_proc_maps_is_the_union_of_every_root_with_the_walks_permissions(name: str) -> None:
    r = replay_of(name)
    m = r.machine
    stub = Stub(r)
    fd = int(open_fd(stub, "/proc/42000/maps")[1:], 16)
    rows = parse_maps(vfile_read(stub, fd).decode())
    roots = {cr3 & ADDR_MASK for cr3 in (r.trace.initial.cr3, *(s.regs.cr3 for s in r.trace.steps))}
    assert len(roots) == (2 if m.config.pti else 1)
    listed = set()
    for lo, hi, perms, _ in rows:
        assert lo < hi and lo % 0x1000 == 0 and hi % 0x1000 == 0
        for va in range(lo, hi, 0x1000):
            listed.add(va)
            walks = [w for w in (m.walk(root, va) for root in roots) if w.mapped]
            assert walks, hex(va)  # every listed page is mapped under some root...
            # ...with the union of what the roots give it
            assert (perms[1] == "w") == any(w.flags & RW for w in walks), hex(va)
            assert (perms[2] == "x") == any(not w.flags & NX for w in walks), hex(va)
    # the kernel's view is there although the session starts under the user root
    for _, address in m.named_regions():
        assert address & ~0xFFF in listed, hex(address)
    names = {name for *_, name in rows}
    assert {"[stack]", "[code]", "[kernel.task_stack]", "[entry.text]", "[cea.idt]"} <= names
    assert rows == sorted(rows)


def test_vfile_gives_each_open_its_own_descriptor(elf_stub: Stub) -> None:
    elf = Path(elf_stub.exec_file or "").read_bytes()
    a = open_fd(elf_stub, elf_stub.exec_file or "")
    b = open_fd(elf_stub, "/proc/1/maps")
    c = open_fd(elf_stub, "/proc/42000/exe")
    assert len({a, b, c}) == 3 and all(x.startswith(b"F") for x in (a, b, c))
    fa, fb, fc = (int(x[1:], 16) for x in (a, b, c))
    assert vfile_read(elf_stub, fb).startswith(b"0000000000401000-")  # not the ELF's bytes
    assert elf_stub.handle(f"vFile:close:{fa:x}".encode()) == b"F0"
    assert elf_stub.handle(f"vFile:pread:{fa:x},10,0".encode()) == b"F-1,9"  # closed
    assert vfile_read(elf_stub, fc) == elf  # the others stay open
    st = elf_stub.handle(f"vFile:fstat:{fc:x}".encode())
    assert st is not None and struct.unpack(">Q", st.partition(b";")[2][28:36])[0] == len(elf)
    # bounded: a client that never closes cannot make the stub hold files without end
    for _ in range(MAX_FILES - 2):
        assert open_fd(elf_stub, "/proc/1/cmdline").startswith(b"F")
    assert open_fd(elf_stub, "/proc/1/cmdline") == b"F-1,18"  # EMFILE


def test_vfile_serves_the_procfs_view_and_no_other_file(elf_stub: Stub) -> None:
    for pid in ("1", "42000", "self"):
        fd = int(open_fd(elf_stub, f"/proc/{pid}/cmdline")[1:], 16)
        assert vfile_read(elf_stub, fd) == b""
        fd = int(open_fd(elf_stub, f"/proc/{pid}/environ")[1:], 16)
        assert vfile_read(elf_stub, fd) == b""
    path = elf_stub.exec_file or ""
    assert elf_stub.handle(f"vFile:readlink:{hexpath('/proc/42000/exe')}".encode()) == (
        f"F{len(path):x};{path}".encode()
    )
    assert elf_stub.handle(f"vFile:readlink:{hexpath('/proc/1/maps')}".encode()) == b"F-1,16"
    assert elf_stub.handle(f"vFile:readlink:{hexpath('/etc/passwd')}".encode()) == b"F-1,2"
    for other in ("/etc/passwd", "/proc/1/status", "/proc/1/task/1/maps", "/proc/1/root/etc/passwd",
                  "/proc/1/../../etc/passwd", "/proc/1/maps/../../../etc/passwd", "/proc/self/mem",
                  "/proc/01/maps", "/proc/-1/maps", "proc/1/maps", "/proc/1/maps\0",
                  "/proc/1/exe/..", path + "/../../etc/passwd", str(Path(path).parent),
                  "/proc/" + "9" * 11 + "/maps", "/proc//maps"):  # fmt: skip
        assert open_fd(elf_stub, other) == b"F-1,2", other
    # read-only: the recording is history
    assert open_fd(elf_stub, "/proc/1/maps", flags=2) == b"F-1,1e"  # O_RDWR: EROFS
    assert open_fd(elf_stub, path, flags=0x201) == b"F-1,1e"  # O_CREAT|O_WRONLY
    assert elf_stub.handle(f"vFile:unlink:{hexpath(path)}".encode()) == b"F-1,1e"
    fd = int(open_fd(elf_stub, path)[1:], 16)
    assert elf_stub.handle(f"vFile:pwrite:{fd:x},0,x".encode()) == b"F-1,9"


def test_auxv_holds_the_page_size_and_nothing_invented() -> None:
    stub = Stub(replay_of("getpid.toml"))
    assert b"qXfer:auxv:read+" in (stub.handle(b"qSupported:multiprocess+") or b"")
    reply = stub.handle(b"qXfer:auxv:read::0,1000")
    assert reply is not None and reply.startswith(b"l")
    pairs = [struct.unpack_from("<QQ", reply, 1 + 16 * i) for i in range((len(reply) - 1) // 16)]
    assert pairs == [(6, 0x1000), (0, 0)]  # AT_PAGESZ, AT_NULL
    assert stub.handle(b"qXfer:auxv:read::8,1000") == b"l" + reply[9:]
    assert stub.handle(b"qXfer:auxv:read:x:0,10") == b""  # auxv has no annex


def test_symbol_file_has_no_entry_point_and_names_the_idt_handlers(elf_stub: Stub) -> None:
    data = Path(elf_stub.exec_file or "").read_bytes()
    assert struct.unpack_from("<Q", data, 24)[0] == 0  # e_entry: none
    assert b"asm_exc_divide_error\0" in data and b"entry_INT80_compat\0" in data


# -- the machine's IDT, banner and MSRs ---------------------------------------------------
@pytest.mark.parametrize(
    "name", ["getpid.toml", "v6.12-nopti.toml", "la57-rip-2-47.toml", "v6.1-int80-getpid.toml"]
)
def test_idt_has_linuxs_gates_at_the_named_stubs(name: str) -> None:
    r = replay_of(name)
    r.goto(0)
    _, base, limit, _ = r.reg(X.UC_X86_REG_IDTR)
    assert (base, limit) == (0xFFFFFE0000000000, 0xFFF)
    handlers = idt.handler_symbols(r.trace.kernel, r.trace.symbols)
    dpl3, ist = {3, 4, 0x80}, {1: 3, 2: 2, 8: 1, 18: 4}
    for cr3 in {r.machine.kernel_cr3, r.machine.user_cr3}:  # both roots map it, read-only
        w = r.machine.walk(cr3, base)
        assert w.mapped and not w.flags & RW and not w.flags & US
    present = []
    for vector in range(256):
        lo, hi = struct.unpack("<QQ", r.read(base + 16 * vector, 16))
        if not lo >> 47 & 1:
            continue
        present.append(vector)
        offset = (lo & 0xFFFF) | ((lo >> 48) & 0xFFFF) << 16 | hi << 32
        assert (lo >> 16) & 0xFFFF == 0x10  # __KERNEL_CS
        assert (lo >> 40) & 0xF == 0xE  # 64-bit interrupt gate
        assert (lo >> 45) & 3 == (3 if vector in dpl3 else 0), vector
        assert (lo >> 32) & 7 == ist.get(vector, 0), vector
        assert offset in handlers.values()
        rendered = "entry_INT80_compat" if r.trace.kernel == "v5.8.13" else "asm_int80_emulation"
        if vector == 0x80 and rendered in r.trace.symbols:
            # the kernel's int $0x80 entry is rendered: the gate points at its code
            assert offset == r.trace.symbols[rendered]
            # ASM_CLAC, a NOP without SMAP, first; after 6.12's ENDBR64 (an IBT build)
            endbr = b"\xf3\x0f\x1e\xfa" if r.trace.kernel == "v6.12" else b""
            assert r.read(offset, len(endbr) + 3) == endbr + bytes.fromhex("0f1f00")
        else:
            assert r.read(offset, 2) == b"\x0f\x0b"  # ud2: never run (exceptions are taken)
    assert present == [*range(20), 0x80]
    first = struct.unpack("<QQ", r.read(base, 16))
    assert (first[0] & 0xFFFF | (first[0] >> 48) << 16 | first[1] << 32) == handlers[
        "asm_exc_divide_error"
    ]
    # idt.c's SYSG(IA32_SYSCALL_VECTOR, ...): Debian's 6.1.192 has 6.7's IDTENTRY too
    int80 = "entry_INT80_compat" if r.trace.kernel == "v5.8.13" else "asm_int80_emulation"
    assert int80 in handlers


def test_banner_in_read_only_kernel_data_says_it_is_emulated() -> None:
    r = replay_of("getpid.toml")
    m = r.machine
    text = m.read_virt(m.kernel_cr3, idt.KERNEL_RODATA, 200)
    assert text is not None and text.startswith(b"Linux version 5.8.13 (syscall-tui emulated")
    w = m.walk(m.kernel_cr3, idt.KERNEL_RODATA)
    assert w.flags & NX and not w.flags & RW and not w.flags & US
    assert not m.walk(m.user_cr3, idt.KERNEL_RODATA).mapped  # kernel-only under PTI


def test_syscall_msrs_are_in_the_target_description() -> None:
    r = replay_of("getpid.toml")
    stub = Stub(r)
    assert reg(stub, "lstar") == r.trace.symbols["entry_SYSCALL_64"]
    assert reg(stub, "star") == r.machine.read_msr(0xC0000081) == r.trace.msrs["STAR"]
    assert reg(stub, "fmask") == r.trace.msrs["SYSCALL_MASK"]
    assert reg(stub, "cstar") == r.machine.read_msr(0xC0000083)


# -- looking like QEMU -------------------------------------------------------------------
def test_qemu_packets_only_with_qemu_compat() -> None:
    plain = Stub(replay_of("getpid.toml"))
    for packet in (b"qqemu.sstepbits", b"Qqemu.sstepbits", b"qqemu.PhyMemMode",
                   b"Qqemu.PhyMemMode:1", b"qRcmd," + b"info mem".hex().encode()):  # fmt: skip
        assert plain.handle(packet) == b"", packet
    stub = Stub(replay_of("getpid.toml"), qemu_compat=True)
    assert stub.handle(b"qqemu.sstepbits") == b"ENABLE=1,NOIRQ=2,NOTIMER=4"
    assert stub.handle(b"Qqemu.sstepbits") == b"ENABLE=1,NOIRQ=2,NOTIMER=4"  # bata24 asks so
    assert stub.handle(b"qqemu.sstep") == b"0x7"
    assert stub.handle(b"Qqemu.sstep=5") == b"OK"
    assert stub.handle(b"Qqemu.sstep=zz") == b"E01"
    assert stub.handle(b"qOffsets") == b""  # empty: qemu-system, not qemu-user


def test_phy_mem_mode_reads_guest_physical_memory() -> None:
    r = replay_of("getpid.toml")
    stub = Stub(r, qemu_compat=True)
    pgd = r.machine.kernel_pgd
    assert stub.handle(f"m{pgd:x},10".encode()) == b"E0e"  # virtual: not mapped there
    assert stub.handle(b"qqemu.PhyMemMode") == b"0"
    assert stub.handle(b"Qqemu.PhyMemMode:1") == b"OK"
    assert stub.handle(b"qqemu.PhyMemMode") == b"1"
    assert stub.handle(f"m{pgd:x},40".encode()) == r.machine.read_phys(pgd, 0x40).hex().encode()
    top = 0x1F400000 + r.machine.kernel.percpu_size  # the last RAM region ends here
    assert (
        stub.handle(f"m{top - 8:x},10".encode()) == r.machine.read_phys(top - 8, 8).hex().encode()
    )
    assert stub.handle(b"m7ffff0000000,8") == b"E0e"  # no RAM
    assert stub.handle(b"Qqemu.PhyMemMode:2") == b"E01"
    assert stub.handle(b"Qqemu.PhyMemMode:0") == b"OK"
    assert stub.handle(f"m{pgd:x},10".encode()) == b"E0e"


def test_monitor_info_registers_in_qemus_layout() -> None:
    r = replay_of("getpid.toml")
    stub = Stub(r, qemu_compat=True)
    stub.position = 10  # in the kernel, after SWITCH_TO_KERNEL_CR3
    out = monitor(stub, "info registers")
    r.goto(10)
    regs = r.regs_at(10)
    # the regexes pwndbg (gdblib/regs.py) and bata24 (get_register, qreg) apply
    m = re.search(r"IDT=\s+([\da-fA-F]+)\s+([\da-fA-F]+)", out)
    assert m and (int(m[1], 16), int(m[2], 16)) == (0xFFFFFE0000000000, 0xFFF)
    m = re.search(r"GDT=\s+([\da-fA-F]+)\s+([\da-fA-F]+)", out)
    assert m and int(m[1], 16) == r.reg(X.UC_X86_REG_GDTR)[1]
    cr0 = int(r.reg(X.UC_X86_REG_CR0))
    for name, value in (("RIP", regs.rip), ("RSP", regs.rsp), ("CR3", regs.cr3),
                        ("RCX", regs.rcx), ("R11", regs.r11),
                        ("EFER", r.trace.msrs["EFER"]), ("CR0", cr0)):  # fmt: skip
        m = re.search(rf"\b{name}\s?=(\S+)", out)
        assert m and int(m[1], 16) == value, name
    assert re.search(r"^CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 \[-RA\]$", out, re.M)
    assert re.search(r"^TR =0040 [0-9a-f]{16} 00000067 00008b00 DPL=0 TSS64-busy$", out, re.M)
    assert re.search(rf"^GS =0000 {regs.gs_base:016x} ", out, re.M)
    assert f"CPL={regs.cs & 3} " in out
    assert out.startswith("RAX=") and out.endswith("\n")


def test_monitor_info_mem_and_tlb_follow_the_current_root() -> None:
    r = replay_of("getpid.toml")
    stub = Stub(r, qemu_compat=True)
    for position in (0, 10):
        stub.position = position
        r.goto(position)
        cr3 = r.regs_at(position).cr3
        tlb = monitor(stub, "info tlb")
        pages = 0
        for line in tlb.splitlines():
            m = re.fullmatch(r"([0-9a-f]{16}): ([0-9a-f]{16}) ([X-])--DA--([U-])([W-])", line)
            assert m, line
            w = r.machine.walk(cr3, int(m[1], 16))
            assert w.phys == int(m[2], 16)
            pages += 1
        total = 0
        for line in monitor(stub, "info mem").splitlines():
            m = re.fullmatch(r"([0-9a-f]{16})-([0-9a-f]{16}) ([0-9a-f]{16}) ([u-])r([w-])", line)
            assert m, line
            lo, hi, size = int(m[1], 16), int(m[2], 16), int(m[3], 16)
            assert hi - lo == size  # pwndbg warns when not
            for va in range(lo, hi, 0x1000):
                w = r.machine.walk(cr3, va)
                assert w.mapped and bool(w.flags & US) == (m[4] == "u")
                assert bool(w.flags & RW) == (m[5] == "w")
            total += size
        assert total == pages * 0x1000
    # the user root (position 0) does not map the task stack; the kernel root does
    stub.position = 0
    assert "ffffc90000010000" not in monitor(stub, "info tlb")
    stub.position = 10
    assert "ffffc90000010000: 0000000002000000 X--DA---W" in monitor(stub, "info tlb")


def test_monitor_xp_and_gva2gpa() -> None:
    r = replay_of("getpid.toml")
    stub = Stub(r, qemu_compat=True)
    pgd = r.machine.kernel_pgd
    raw = r.machine.read_phys(pgd, 32)
    out = monitor(stub, f"xp/4xg {pgd:#x}")
    words = struct.unpack("<4Q", raw)
    assert out == (f"{pgd:016x}: 0x{words[0]:016x} 0x{words[1]:016x}\n"
                   f"{pgd + 16:016x}: 0x{words[2]:016x} 0x{words[3]:016x}\n")  # fmt: skip
    out = monitor(stub, f"xp /10xb {pgd:#x}")
    assert out.splitlines()[0] == f"{pgd:016x}: " + " ".join(f"0x{b:02x}" for b in raw[:8])
    assert out.splitlines()[1] == f"{pgd + 8:016x}: " + " ".join(f"0x{b:02x}" for b in raw[8:10])
    assert len(monitor(stub, f"xp/100000xb {pgd:#x}").splitlines()) == 0x4000 // 8  # bounded
    assert "Cannot access memory" in monitor(stub, "xp/4xg 0x7ffff0000000")
    assert monitor(stub, "xp/4q 0") == "invalid char in format: 'q'\n"
    lay = r.machine.layout
    stub.position = next(p for p in range(r.last) if lay.task_stack_base <= r.regs_at(p).rsp
                         < lay.task_stack_top)  # fmt: skip
    rsp = r.regs_at(stub.position).rsp
    phys = r.machine.task_stack_phys + (rsp - lay.task_stack_base)
    assert monitor(stub, f"gva2gpa {rsp:#x}") == f"gpa: {phys:#x}\n"
    assert monitor(stub, "gva2gpa 0x1000") == "Unmapped\n"
    assert monitor(stub, "gva2gpa nope") == "gva2gpa: invalid number\n"


def test_monitor_refuses_changes_and_answers_unknown_commands_as_qemu() -> None:
    stub = Stub(replay_of("getpid.toml"), qemu_compat=True)
    assert monitor(stub, "frobnicate 1") == "unknown command: 'frobnicate'\n"
    assert monitor(stub, "info nonesuch") == "unknown command: 'info nonesuch'\n"
    assert monitor(stub, "info kvm") == "kvm support: disabled\n"  # bata24's msr checks this
    for line in ("system_reset", "stop", "pmemsave 0 4096 /tmp/x"):
        assert "refused: the machine is a recording" in monitor(stub, line)
    # what gdb sent comes back without raw control bytes (a terminal would obey them)
    echoed = monitor(stub, "\x1b]0;owned\x07")
    assert "\x1b" not in echoed and "\x07" not in echoed and echoed.startswith("unknown command")
    assert stub.handle(b"qRcmd,zz") == b"E01"
    assert stub.handle(b"qRcmd,") == b"OK"  # no output: done, not "unsupported"


def test_writes_say_why_to_a_gdb_that_shows_error_text() -> None:
    stub = Stub(replay_of("getpid.toml"))
    assert stub.handle(b"M401000,1:90") == b"E02"
    stub.handle(b"qSupported:multiprocess+;error-message+")
    reply = stub.handle(b"M401000,1:90")
    assert reply is not None and reply.startswith(b"E.") and b"recording is history" in reply
    assert stub.handle(b"P0=00") == reply


def test_monitor_expressions_name_registers_as_qemus_do() -> None:
    r = replay_of("getpid.toml")
    stub = Stub(r, qemu_compat=True)
    stub.position = 3
    r.goto(3)
    assert monitor(stub, "xp/1xg $cr3") == monitor(stub, f"xp/1xg {r.regs_at(3).cr3:#x}")
    assert monitor(stub, "gva2gpa $rip") == monitor(stub, f"gva2gpa {r.regs_at(3).rip:#x}")
    assert monitor(stub, "gva2gpa $nosuch") == "gva2gpa: invalid number\n"


NEW_PREFIXES = [b"qRcmd,", b"Qqemu.PhyMemMode:", b"Qqemu.sstep=", b"qXfer:auxv:read::",
                b"vFile:readlink:", b"vFile:unlink:", b"vFile:pwrite:", b"vFile:fstat:",
                b"vFile:close:", b"vFile:open:", b"qSupported:"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from(NEW_PREFIXES), rest=st.binary(max_size=40))
def test_no_new_packet_crashes_the_stub(prefix: bytes, rest: bytes) -> None:
    stub = Stub(replay_of("exit.toml"), qemu_compat=True)
    if prefix == b"qRcmd,":
        rest = rest.hex().encode()  # reach the monitor with arbitrary command text
    reply = stub.handle(prefix + rest)
    assert reply is None or isinstance(reply, bytes)
    stub.handle(b"Qqemu.PhyMemMode:1")
    assert stub.handle(b"m" + rest[:8].hex().encode() + b",10") is not None


def test_registers_are_served_from_the_log_without_moving_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.gdbstub import reglog

    monkeypatch.setattr(reglog, "MIN_GROWTH", 8)  # grow in small steps: doubling shows
    r = Replay(replay_of("getpid.toml").scenario)
    stub = Stub(r)
    replays = r.replays
    for p in range(1, r.last + 1):
        stub.position = p
        assert reg(stub, "rip") == r.regs_at(p).rip and reg(stub, "rsp") == r.regs_at(p).rsp
        assert stub.handle(b"g") == stub.handle(b"g")
    assert r.replays == replays  # no position was rebuilt by a capped re-run
    log = stub._registers
    assert log.runs <= (r.last // 8).bit_length() + 1  # the log doubled, O(log N) runs
    # between checkpoints only what changed is kept: a few registers a step, not ~70
    changes = sum(len(d) for d in log._delta.values())
    assert changes < 8 * len(log._delta)
