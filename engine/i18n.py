"""The one place where learner-facing text is translated (GNU gettext catalogues).

The engine keeps producing English: every English string is the msgid.  Text that
carries values is built with :func:`msg` (a ``str`` that is the English sentence and
also remembers its template and values), so that the UI, the CLI and exporters can
render it in the current language with :func:`tr` at the moment they draw it.  Records
stay plain data: comparing, hashing and JSON-dumping a :class:`Msg` treats it as the
English string it is.

Catalogues live in ``engine/locale/<lang>/LC_MESSAGES/syscall_tui.po``.  A built wheel
carries the compiled ``.mo`` next to each ``.po`` (see ``hatch_build.py``); a source
checkout has only the ``.po``, which is compiled in memory with Babel on first use.
``scripts/i18n-extract`` lists every msgid of the source tree (Python and the ``///``
notes of engine/kernel/*.S); a test fails when one has no Japanese translation.
"""

from __future__ import annotations

import gettext
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

DOMAIN = "syscall_tui"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

#: Languages the UI offers, with the name each goes by in its own language.
LANGUAGES: dict[str, str] = {"en": "English", "ja": "日本語"}

_language = "en"
_catalogues: dict[str, gettext.NullTranslations] = {}


def N_(message: str) -> str:
    """Mark *message* for extraction without translating it (translated when shown)."""
    return message


class Msg(str):
    """English text with the template and values it was made from.

    ``str(m)`` and every string operation see the English sentence; :func:`tr` formats
    the translated template with the same values (which may be Msg themselves).
    """

    template: str
    values: dict[str, Any]

    def __new__(cls, template: str, /, **values: Any) -> Msg:
        self = super().__new__(cls, template.format(**values))
        self.template = template
        self.values = values
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.template, self.values))


def _rebuild(template: str, values: dict[str, Any]) -> Msg:
    return Msg(template, **values)


class Literal(str):
    """A value that is a name, not a message (a system call's name, a C expression): the
    same in every language.  :func:`tr` never looks it up, so that ``exit`` stays
    ``exit(0)`` although "exit" is also a msgid (the status line's word)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (Literal, (str.__str__(self),))


def literal(text: str) -> Literal:
    """*text* as a :class:`Literal`: shown as it is whatever the language."""
    return Literal(text)


class Joined(str):
    """Parts joined by a separator, each translated on its own."""

    sep: str
    parts: tuple[str, ...]

    def __new__(cls, sep: str, parts: Iterable[str]) -> Joined:
        items = tuple(parts)
        self = super().__new__(cls, sep.join(items))
        self.sep = sep
        self.parts = items
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Joined, (self.sep, self.parts))


def msg(template: str, /, **values: Any) -> Msg:
    """An English sentence from *template* (a msgid in str.format syntax) and *values*."""
    return Msg(template, **values)


def joined(sep: str, parts: Iterable[str]) -> Joined:
    return Joined(sep, parts)


def language_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The UI language the locale asks for: LANGUAGE, LC_ALL, LC_MESSAGES, LANG, as
    gettext reads them (the first one set wins); "ja" for any ja_* locale, else "en"."""
    env = os.environ if environ is None else environ
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if value:
            first = value.split(":", 1)[0]
            code = first.split(".", 1)[0].split("@", 1)[0].split("_", 1)[0].lower()
            return code if code in LANGUAGES else "en"
    return "en"


def set_language(lang: str) -> None:
    """Make *lang* ("en" or "ja") the language :func:`tr` and :func:`_` render in."""
    global _language
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    _language = lang


def get_language() -> str:
    return _language


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_po(po: Path) -> bytes:
    """The .mo image of *po* (Babel's reader and writer, as the build hook uses them)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fp:
        catalog = read_po(fp)
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def catalogue(lang: str) -> gettext.NullTranslations:
    """The translations for *lang*: the compiled .mo when installed, else the .po compiled
    in memory (a source checkout); English, and any language without a catalogue, is
    the identity."""
    cached = _catalogues.get(lang)
    if cached is not None:
        return cached
    cat: gettext.NullTranslations
    mo = po_path(lang).with_suffix(".mo")
    po = po_path(lang)
    if lang == "en":
        cat = gettext.NullTranslations()
    elif mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fp:
            cat = gettext.GNUTranslations(fp)
    elif po.is_file():
        try:
            cat = gettext.GNUTranslations(io.BytesIO(compile_po(po)))
        except ImportError:
            # No Babel (a checkout without the test extra): an older .mo beats none.
            cat = _read_mo(mo)
    else:
        cat = gettext.NullTranslations()
    _catalogues[lang] = cat
    return cat


def _read_mo(mo: Path) -> gettext.NullTranslations:
    if not mo.is_file():
        return gettext.NullTranslations()
    with mo.open("rb") as fp:
        return gettext.GNUTranslations(fp)


def forget_catalogues() -> None:
    """Drop loaded catalogues (after a .po changed, e.g. in tests)."""
    _catalogues.clear()


def _(message: str) -> str:
    """*message* (an English msgid) in the current language; a :class:`Msg` or
    :class:`Joined` from the engine is rendered as :func:`tr` does."""
    if _language == "en" or not message:
        return message
    if isinstance(message, Msg | Joined | Literal):
        return tr(message)
    return catalogue(_language).gettext(message)


def pgettext(context: str, message: str) -> str:
    """*message* in the current language, in *context*: for a short English word that
    means two things (the status line's "exit" path, the exit() call)."""
    if _language == "en" or not message:
        return message
    return catalogue(_language).pgettext(context, message)


def tr(text: str, lang: str | None = None) -> str:
    """Render *text* in *lang* (default: the current language).

    A :class:`Msg` is formatted from its translated template, its values rendered the
    same way; a :class:`Joined` translates each part; a plain string is looked up as a
    msgid (strings that are not messages, such as register names, come back as they are).
    """
    lang = _language if lang is None else lang
    if lang == "en" or not text:
        return str.__str__(text)
    cat = catalogue(lang)
    if isinstance(text, Msg):
        values = {
            k: tr(v, lang) if isinstance(v, str) and not isinstance(v, Literal) else v
            for k, v in text.values.items()
        }
        try:
            return cat.gettext(text.template).format(**values)
        except (KeyError, IndexError, ValueError):
            # A translation whose placeholders do not match its msgid (the catalogue test
            # catches these) falls back to English rather than breaking the screen.
            return text.template.format(**text.values)
    if isinstance(text, Joined):
        return text.sep.join(tr(part, lang) for part in text.parts)
    if isinstance(text, Literal):
        return str.__str__(text)
    return cat.gettext(str.__str__(text))


__all__ = [
    "DOMAIN", "LANGUAGES", "LOCALE_DIR", "N_", "Joined", "Literal", "Msg", "_", "catalogue",
    "compile_po", "forget_catalogues", "get_language", "joined", "language_from_env", "literal",
    "msg", "pgettext",
    "po_path", "set_language", "tr",
]  # fmt: skip
