"""The repository's own text files: what a merge must not leave behind."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A merge that stops on a conflict writes these three lines into the file; a commit that
# keeps them ships a README or a source file with both sides and the markers in it.
MARKER = re.compile(r"^(<{7}|={7}|>{7})( |$)", re.MULTILINE)


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    files = []
    for name in out.splitlines():
        path = ROOT / name
        if path.suffix in {".svg", ".png"} or not path.is_file():
            continue
        files.append(path)
    return files


def test_no_merge_conflict_markers() -> None:
    found = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for m in MARKER.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{path.relative_to(ROOT)}:{line}")
    assert not found, found
