"""The pure decoders behind the register, MSR and page-table panels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.views.decode import (
    decode_cr3,
    decode_star,
    efer_set,
    fmask_names,
    is_canonical,
    rflags_set,
    same_root,
    sign_extend,
    symbol_at,
)

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


def test_star_of_v5_8_gives_the_kernel_and_user_selectors() -> None:
    star = decode_star(0x0023_0010_0000_0000)
    assert (star.syscall_cs, star.syscall_ss) == (0x10, 0x18)
    assert (star.sysret_cs, star.sysret_ss) == (0x33, 0x2B)


def test_fmask_of_v5_8_names_the_six_cleared_flags() -> None:
    assert sorted(fmask_names(0x47700)) == sorted(["TF", "IF", "DF", "IOPL", "NT", "AC"])


def test_efer_bits() -> None:
    assert efer_set(0xD01) == ["SCE", "LME", "LMA", "NXE"]
    assert efer_set(0x500) == ["LME", "LMA"]


def test_rflags_names_set_bits_and_iopl() -> None:
    assert rflags_set(0x246) == ["PF", "ZF", "IF"]
    assert rflags_set(0x10100) == ["TF", "RF"]
    assert rflags_set(0x3002) == ["IOPL3"]


def test_cr3_fields_of_a_kpti_pcid_pair() -> None:
    user = decode_cr3(0x8000_0000_0010_1801)
    assert user.pcid == 0x801 and user.user_half and user.noflush
    assert user.pgd == 0x101000
    kernel = decode_cr3(0x100001)
    assert kernel.pcid == 1 and not kernel.user_half and not kernel.noflush
    # Bit 63 and the PCID do not select a different table.
    assert same_root(0x8000_0000_0010_0001, 0x100001)
    assert not same_root(0x101801, 0x100001)


def test_symbol_at_prefers_the_outer_name() -> None:
    symbols = {"entry_SYSCALL_64": 0x10, "entry_SYSCALL_64_after_hwframe": 0x10, "x": 0x20}
    assert symbol_at(0x10, symbols) == "entry_SYSCALL_64"
    assert symbol_at(0x30, symbols) is None


@given(U64)
def test_canonical_means_sign_extension_changes_nothing(address: int) -> None:
    # This is exactly the kernel's test: shl $16; sar $16; cmp.
    assert is_canonical(address) == (sign_extend(address) == address)


@given(st.integers(min_value=0, max_value=(1 << 47) - 1))
def test_lower_half_is_canonical_and_bit_47_is_not(address: int) -> None:
    assert is_canonical(address)
    assert not is_canonical(address | (1 << 47))


def test_la57_canonical_boundary() -> None:
    assert not is_canonical(1 << 47)
    assert is_canonical(1 << 47, paging=5)
    assert not is_canonical(1 << 56, paging=5)
