"""Statements about the kernels and the CPU that were read against the kernel source and the
manuals and found false: none may come back, in English or in Japanese.

Each pattern is searched in every tracked text file the project writes (README, docs, the
renditions' notes, the Python sources, the scenario files and the Japanese catalogue),
with the fact that makes it false.  Text is searched with its line breaks and runs of
spaces folded, so a sentence wrapped over two lines is still found.
"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Files that quote the false sentences on purpose (this test) are not searched.
SKIP = {"tests/test_statements.py"}

FALSE: list[tuple[str, str]] = [
    # Debian's default amd64 6.1 and 6.12 kernels have CONFIG_X86_16BIT=y and
    # CONFIG_X86_ESPFIX64=y (config-6.1.0-57-amd64, config-6.12.107+deb12-amd64); only the
    # cloud-amd64 flavour, the one traced, lacks them.
    (
        r"Debian's (6\.1 |6\.12 )?builds?[^.]{0,40}(no|without) (CONFIG_X86_)?ESPFIX64",
        "only Debian's cloud kernel lacks ESPFIX64",
    ),
    (r"no \(Debian's build\)", "only Debian's cloud kernel lacks ESPFIX64"),
    (r"Debian の 6\.12? ビルドには CONFIG_X86_ESPFIX64", "only the cloud kernel lacks ESPFIX64"),
    (r"as Debian builds it has no ESPFIX64", "only the cloud kernel lacks ESPFIX64"),
    # 6.1.192 and 6.12 dispatch through x64_sys_call(), a switch (the BHI fix);
    # arch/x86/entry/syscall_64.c: "The sys_call_table[] is no longer used for system calls".
    (r"(look up the handler in|handler from) sys_call_table", "6.1/6.12 call x64_sys_call()"),
    (r"sys_call_table (から|の)ハンドラ", "6.1/6.12 call x64_sys_call()"),
    # Since v5.5 iopl() is emulated through the I/O bitmap (arch/x86/kernel/ioport.c).
    (r"IOPL 3 is allowed|\(iopl\(3\)\)", "iopl(3) does not set RFLAGS.IOPL"),
    # 0x7ffffffff000 is TASK_SIZE_MAX, the page no task can map, above the last user page.
    (
        r"last user page,? \(?0x7ffffffff000|return(s)? to the last user page",
        "0x7ffffffff000 is TASK_SIZE_MAX",
    ),
    (r"last page below TASK_SIZE_MAX|last-page-below-task-size-max", "it is TASK_SIZE_MAX"),
    (r"ユーザ空間の最後のページ（0x7ffffffff000）", "0x7ffffffff000 is TASK_SIZE_MAX"),
    # IRETQ to a non-canonical RIP is #GP(0) (SDM vol. 2A, IRET); SYSRET loads TF from R11
    # (and traps at once) but always clears RF.
    (
        r"return anywhere and restore any flag|どこへでも戻れ",
        "IRET cannot go to a non-canonical RIP",
    ),
    (
        r"IRET restores RF and TF, which SYSRET cannot|IRET は RF と TF を復元できる",
        "SYSRET loads TF; only RF is IRET's alone",
    ),
]


def _texts() -> list[tuple[str, str]]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    texts = []
    for name in out.splitlines():
        path = ROOT / name
        if name in SKIP or path.suffix in {".svg", ".png", ".json"} or not path.is_file():
            continue
        if name.startswith("tests/engine/oracle/"):
            continue  # traces of the real kernels, not statements
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        # A .po wraps msgids and msgstrs as "...\n"...": join the pieces back together.
        if path.suffix == ".po":
            text = re.sub(r'"\n"', "", text)
        texts.append((name, re.sub(r"\s+", " ", text)))
    return texts


TEXTS = _texts()


@pytest.mark.parametrize(("pattern", "why"), FALSE, ids=[p for p, _ in FALSE])
def test_a_false_statement_is_not_made_anywhere(pattern: str, why: str) -> None:
    rx = re.compile(pattern)
    found = [name for name, text in TEXTS if rx.search(text)]
    assert not found, f"{why}: {found}"


def test_the_search_sees_the_files_that_make_statements() -> None:
    names = {name for name, _ in TEXTS}
    for wanted in (
        "README.md",
        "docs/scenarios.md",
        "engine/kernel/entry_64_v6.1.S",
        "engine/locale/ja/LC_MESSAGES/syscall_tui.po",
        "tui/widgets/note.py",
    ):
        assert wanted in names
