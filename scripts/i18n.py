#!/usr/bin/env python3
"""The message catalogues: extract every msgid of the source tree, update the .po files.

    python scripts/i18n.py extract          print the template (.pot) to stdout
    python scripts/i18n.py update           merge new msgids into every .po; changed ones
                                            come back fuzzy, vanished ones go obsolete
    python scripts/i18n.py missing [LANG]   list msgids without a translation (exit 1 if any)

Msgids come from two kinds of source: Python (``_()``, ``N_()``, ``msg()`` and
``gettext()`` calls in engine/ and tui/, via Babel's extractor) and the ``///`` notes of
engine/kernel/*.S, which the kernel image joins into one note per source line exactly
as :func:`extract_notes` does.  Run it from the repository root (Babel is in '.[test]').
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "engine" / "locale"
DOMAIN = "syscall_tui"

#: The functions whose first argument is a msgid (pgettext: a context, then the msgid).
KEYWORDS: dict[str, Any] = {
    "_": None, "N_": None, "msg": None, "gettext": None, "pgettext": ((1, "c"), 2),
}  # fmt: skip


def note_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, note) for each run of ``///`` lines, joined with spaces as the image
    does: a note belongs to the next line that has code, so comment and blank lines
    between the ``///`` lines and that code do not end it."""
    note: list[str] = []
    first = 0
    in_comment = False
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("///"):
            if not note:
                first = number
            note.append(stripped[3:].strip())
            continue
        code = stripped
        if in_comment:
            if "*/" in code:
                in_comment = False
            continue
        if code.startswith("/*"):
            in_comment = "*/" not in code
            code = ""
        if code and note:
            yield first, " ".join(note)
            note = []
    if note:
        yield first, " ".join(note)


def extract_notes(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel extraction method for the kernel renditions' ``///`` notes."""
    text = fileobj.read().decode("utf-8")
    for number, note in note_lines(text):
        yield number, "", note, []


def template() -> Any:
    """The catalogue template (babel Catalog) of the current source tree."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    catalog = Catalog(project="syscall-tui", domain=DOMAIN, charset="utf-8")
    method_map: list[tuple[str, Any]] = [("**.py", "python"), ("**.S", extract_notes)]
    for folder in ("engine", "tui"):
        for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / folder, method_map=method_map, keywords=KEYWORDS, strip_comment_tags=True
        ):
            if not message:
                continue
            location = (f"{folder}/{filename}", lineno)
            catalog.add(message, None, [location], auto_comments=comments, context=context)
    return catalog


def msgids() -> set[str]:
    return {m.id for m in template() if m.id}


def languages() -> list[str]:
    return sorted(p.name for p in LOCALE.iterdir() if (p / "LC_MESSAGES").is_dir())


def read(lang: str) -> Any:
    from babel.messages.pofile import read_po

    with (LOCALE / lang / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as fp:
        return read_po(fp, locale=lang)


def write(lang: str, catalog: Any) -> None:
    from babel.messages.pofile import write_po

    out = io.BytesIO()
    write_po(
        out, catalog, width=100, sort_by_file=True, ignore_obsolete=True, include_previous=True
    )
    (LOCALE / lang / "LC_MESSAGES" / f"{DOMAIN}.po").write_bytes(out.getvalue())


def missing(lang: str) -> list[str]:
    """Msgids of the source tree that *lang*'s catalogue does not translate (or only fuzzily);
    one in a context is listed as "context|msgid"."""
    catalog = read(lang)
    out = []
    for wanted in template():
        if not wanted.id:
            continue
        m = catalog.get(wanted.id, context=wanted.context)
        if m is None or not m.string or m.fuzzy:
            out.append(f"{wanted.context}|{wanted.id}" if wanted.context else wanted.id)
    return sorted(out)


def main(argv: list[str]) -> int:
    from babel.messages.pofile import write_po

    cmd = argv[0] if argv else "missing"
    if cmd == "extract":
        out = io.BytesIO()
        write_po(out, template(), width=100, sort_by_file=True)
        sys.stdout.write(out.getvalue().decode("utf-8"))
        return 0
    if cmd == "update":
        tpl = template()
        for lang in languages():
            catalog = read(lang)
            catalog.update(tpl, no_fuzzy_matching=False)
            write(lang, catalog)
            print(f"{lang}: {len(missing(lang))} untranslated or fuzzy")
        return 0
    if cmd == "missing":
        langs = argv[1:] or languages()
        bad = 0
        for lang in langs:
            for mid in missing(lang):
                bad += 1
                print(f"{lang}: {mid!r}")
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
