"""Keystone's output is checked instruction by instruction, and against GNU as."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.asm import Item, Label, assemble, disasm_one, hexify_decimals, same_instruction
from engine.errors import AssemblyError
from engine.kernel.image import LineMeta, build_image
from engine.kernel.macros import Features

ALL_FEATURES = [
    Features(pti, pcid, la57) for pti, pcid, la57 in itertools.product([True, False], repeat=3)
]


@pytest.mark.parametrize("features", ALL_FEATURES, ids=str)
def test_every_kernel_instruction_reads_back_as_intended(features: Features) -> None:
    image = build_image(features)
    assert len(image.entry) > 90
    for a in image.entry:
        decoded = disasm_one(a.code, a.address)
        assert decoded is not None
        text, size = decoded
        assert size == len(a.code)
        assert text == a.text


def test_decimal_immediate_quirk_is_caught() -> None:
    # keystone#569: "$16" is read as 0x16. Fed straight to Keystone it must be refused.
    with pytest.raises(AssemblyError, match="misassembled"):
        assemble([Item("shl $0x10, %rcx", asm="shl $16, %rcx")], 0x1000)


def test_gs_absolute_operand_is_encoded_absolute() -> None:
    (a,), _ = assemble([Item("movq %rsp, %gs:0x6014")], 0xFFFFFFFF81A00000)
    assert a.code == bytes.fromhex("654889242514600000")  # SIB disp32, not RIP-relative


def test_five_byte_nop_given_as_bytes() -> None:
    image = build_image(Features(pti=True, pcid=False, la57=False))
    nops = [a for a in image.entry if a.text.startswith("nopl (%rax, %rax)")]
    assert nops and all(a.code == bytes.fromhex("0f1f440000") for a in nops)
    # ASM_CLAC's three bytes (entry_INT80_compat) are the other NOP given as bytes
    (clac,) = [a for a in image.entry if a.item.meta.macro == "ASM_CLAC"]
    assert clac.code == bytes.fromhex("0f1f00") and clac.text == "nopl (%rax)"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("mov $39, %eax", "mov $0x27, %eax"),
        ("movl $0, 12(%esp)", "movl $0x0, 0xc(%esp)"),
        ("lea 8(%rax,%rbx,8), %r8", "lea 0x8(%rax,%rbx,8), %r8"),
        ("add $-38, %r15", "add $-0x26, %r15"),
        ("mov $0x10, %r8", "mov $0x10, %r8"),
    ],
)
def test_hexify_decimals(source: str, expected: str) -> None:
    assert hexify_decimals(source) == expected


def test_same_instruction_is_strict_about_operands() -> None:
    assert same_instruction("shl $0x10, %rcx", "shlq $0x10, %rcx")
    assert same_instruction("testb $0x4, 0x20(%rsp)", "testb $4, 0x20(%rsp)")
    assert not same_instruction("shl $0x10, %rcx", "shlq $0x16, %rcx")
    assert not same_instruction("sysretq", "sysretl")
    assert same_instruction("jnz 0x10", "jne 0x10")


def test_labels_resolve_forward_and_back() -> None:
    items: list[Item | Label] = [
        Label("top"),
        Item("jmp fwd"),
        Item("nop"),
        Label("fwd"),
        Item("jne top"),
    ]
    out, labels = assemble(items, 0x1000)
    assert labels["fwd"] == out[2].address
    assert out[0].text == f"jmp {labels['fwd']:#x}"
    assert out[2].text == "jne 0x1000"


GNU_AS = shutil.which("as") or ""
GNU_LD = shutil.which("ld") or ""
OBJCOPY = shutil.which("objcopy") or ""


@pytest.mark.skipif(not (GNU_AS and GNU_LD and OBJCOPY), reason="binutils not installed")
@pytest.mark.parametrize("features", ALL_FEATURES, ids=str)
def test_image_matches_gnu_as(features: Features, tmp_path: Path) -> None:
    """The whole entry text, assembled by binutils from the same expansion, is byte-identical."""
    image = build_image(features)
    lines = [".text", ".globl _start", "_start:"]
    externals = {"do_syscall_64", *(image.label_at(s.address) for s in image.c_stubs)}
    label_at: dict[int, list[str]] = {}
    for name, addr in image.labels.items():
        label_at.setdefault(addr, []).append(name)
    for a in image.entry:
        for name in label_at.get(a.address, []):
            if name not in externals:
                lines.append(f"{name}:")
        item = a.item
        assert isinstance(item.meta, LineMeta)
        # The intended text with its label names: GNU as relaxes branches to labels the
        # way the engine's layout does (short when the target is near).
        text = item.asm if item.asm is not None else item.text
        lines.append(text)
    for name in label_at.get(image.entry[-1].address + len(image.entry[-1].code), []):
        lines.append(f"{name}:")
    src = tmp_path / "entry.s"
    src.write_text("\n".join(lines) + "\n")
    obj, elf, binary = tmp_path / "entry.o", tmp_path / "entry.elf", tmp_path / "entry.bin"
    subprocess.run([GNU_AS, "--64", "-o", obj, src], check=True)
    subprocess.run(
        [GNU_LD, "-o", elf, f"-Ttext={image.entry[0].address:#x}",
         *(f"--defsym={name}={image.symbols[name]:#x}" for name in sorted(externals)), obj],
        check=True,
    )  # fmt: skip
    subprocess.run([OBJCOPY, "-O", "binary", "-j", ".text", elf, binary], check=True)
    assert binary.read_bytes() == image.entry_code


@pytest.mark.parametrize(
    "features",
    [*ALL_FEATURES[:2], Features(True, True, False, ("canonical_rip", "ss_user"))],
    ids=str,
)
def test_each_instruction_sits_on_its_own_source_line(features: Features) -> None:
    """A plain instruction's source line spells that instruction (macros expand elsewhere)."""
    image = build_image(features)
    for line in image.source:
        for ins in line.instructions:
            if ins.macro is None:
                word = {"jnz": "jne"}.get(line.text.split()[0], line.text.split()[0])
                assert ins.text.split()[0].startswith(word.rstrip("q")[:3]), (line, ins)


def test_removed_check_leaves_no_compare_behind() -> None:
    image = build_image(Features(True, True, False, ("canonical_rip",)))
    texts = [a.text for a in image.entry]
    assert not any(t.startswith(("shlq", "sarq")) for t in texts)
    assert texts.count("cmpq %rcx, %r11") == 1  # rcx_eq_rip's compare stays
    assert sum(1 for a in image.entry if getattr(a.item.meta, "check", None)) == 5


def test_the_childs_answer_is_records_not_a_pickle() -> None:
    """The parent reads the Keystone child's answer as length-prefixed records and refuses
    anything else: a child that untrusted text corrupted cannot make it run code."""
    import pickle

    from engine import asm

    results = (b"\x90\xc3", "invalid operand", b"")
    assert asm._unpack(asm._pack(results), 3) == results
    packed = asm._pack(results)
    assert asm._unpack(packed, 2) is None  # one record too many
    assert asm._unpack(packed[:5], 3) is None  # truncated inside a header or a record
    assert asm._unpack(pickle.dumps(results), 3) is None
    oversized = asm._RESULT.pack(b"B", asm.MAX_USER_CODE + 1) + bytes(asm.MAX_USER_CODE + 1)
    assert asm._unpack(oversized, 1) is None
    assert asm._unpack(asm._RESULT.pack(b"X", 0), 1) is None
