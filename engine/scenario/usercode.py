"""A scenario's ``[user] code``: read statement by statement, assembled, and checked.

The text is untrusted and Keystone is native code that does not survive all of it (see
engine/asm.py), so nothing reaches Keystone that this module has not read to the end and
classified as one of three kinds of statement:

* a **label**: ``name:`` with a name of letters, digits, ``_ . $`` (not starting with a
  digit), or a GNU as local label ``1:``.  Keystone's lexer also takes ``@`` and ``?`` in
  names and reads ``a?b: .text`` as a label and then a directive, so a label is found
  the way Keystone finds one (an identifier of its characters, spaces, a colon) and one
  with any other character is refused, never passed on as an instruction;
* an **instruction**: a mnemonic (with prefixes: ``rep movsb``) and operands made only of
  letters, digits, whitespace and ``_ . $ % ( ) , * + - : ~ < > | & ^``: no ``/`` (which
  starts a ``/* */`` or ``//`` comment in Keystone, where a label and a directive could
  hide), no ``=``, ``@``, ``?``, quotes or backslashes;
* a **data directive** from :data:`DATA_DIRECTIVES`: strings for ``.ascii``/``.asciz``/
  ``.string``, expressions of the instruction operand characters for the others;
* a **mode directive**, ``.code32`` or ``.code64`` (:data:`MODE_DIRECTIVES`): the
  statements after it are 32-bit code for compatibility mode (reached by a far return or
  jump to ``__USER32_CS``, 0x23) or 64-bit code again, as GNU as reads them; Keystone
  switches the same way, and each statement is decoded in its own mode.

Statements end at a newline or a ``;`` and a ``#`` starts a comment, except inside a
string, as in Keystone; a string must close on its own line.  The statements are joined
again for Keystone (labels and local labels renamed, decimals rewritten as hex: keystone
#569, non-ASCII bytes in strings as octal escapes: Keystone's binding takes ASCII only).

Keystone assembles the whole program at once (labels resolve, branches relax); then the
bytes are walked statement by statement: a data statement takes as many bytes as it
assembles to alone, an instruction the one instruction Capstone decodes there.  So data
may sit anywhere (``msg: .ascii "hi\\n"`` after the last ``syscall``) and is never decoded
as code for display, and every instruction is checked against the statement it came from:

* its mnemonic, as GNU as would read it.  Keystone (like LLVM's parser it comes from)
  retries an unknown mnemonic with a size suffix appended, so ``syscal`` assembles as
  ``syscall`` (``syscal`` + ``l``) and ``cmpxchg8`` as ``cmpxchg8b``; GNU as strips a
  suffix instead and rejects both.  A suffix is taken as one only where Capstone's
  Intel-syntax name (which never carries one) differs from its AT&T name;
* every number written in it (a silently wrong byte, keystone#569 and friends).

Keystone also drops a bad statement without a word (keystone#293, an invalid one followed
by valid ones; #532, no bytes and no error for an operand it does not know; ``.quad (``
gives no bytes), so a program whose walk does not add up is assembled again statement by
statement to name the one at fault.  Every problem is a :class:`UserCodeError` that
quotes the statement as written.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.asm import (
    MAX_USER_CODE,
    TOO_LARGE,
    AsmResult,
    AssemblerFailed,
    assemble_untrusted,
    capstone,
    capstone_intel,
    hexify_decimals,
)
from engine.constants import MASK64
from engine.scenario.model import DATA_DIRECTIVES, MAX_STATEMENTS, UserCode
from engine.trace import UserLine

#: What Keystone's lexer reads as one identifier (a label, a mnemonic, a symbol).
KS_IDENT = r"[A-Za-z_.$@?][A-Za-z0-9_.$@?]*"
#: A label definition at the start of a statement, as Keystone finds one.
_LABEL_DEF = re.compile(rf"({KS_IDENT}|[0-9]+)[ \t]*:")
#: The label names accepted (GNU as symbol characters, or a numeric local label).
_GOOD_LABEL = re.compile(r"[A-Za-z_.$][A-Za-z0-9_.$]*|[0-9]+")
_ASSIGNMENT = re.compile(rf"{KS_IDENT}[ \t]*=")
_DIRECTIVE = re.compile(r"\.[A-Za-z0-9_.$@?]*")
_MNEMONIC = re.compile(r"[A-Za-z][A-Za-z0-9]*")
#: Characters an instruction's operands or a numeric directive's values may use.
_OPERAND_CHARS = re.compile(r"[A-Za-z0-9_.$%(),*+\-:~<>|&^ \t]*")
_STRING = r'"(?:[^"\\]|\\.)*"'
_STRINGS = re.compile(rf"[ \t]*{_STRING}(?:[ \t]*,[ \t]*{_STRING})*[ \t]*")
STRING_DIRECTIVES = (".ascii", ".asciz", ".string")
#: Bytes per value of the numeric data directives.
_WIDTHS = {".byte": 1, ".short": 2, ".word": 2, ".value": 2, ".long": 4, ".int": 4, ".quad": 8}
#: Instruction prefixes that stand before a mnemonic on its line.
PREFIXES = frozenset(
    ("rep", "repe", "repz", "repne", "repnz", "lock", "notrack", "data16", "data32", "addr32",
     "rex", "rex64", "xacquire", "xrelease")
)  # fmt: skip
_IDENT_REF = re.compile(r"(?<![%$\w.])[A-Za-z_.$][\w.$]*")


class UserCodeError(Exception):
    """A statement of the user's code that cannot be used.

    *line* is the statement's 1-based line in the code string; *broken_string* is set
    when a string does not close on its line (a TOML escape may have split it).
    """

    def __init__(self, message: str, line: int | None = None, broken_string: bool = False):
        super().__init__(message)
        self.message = message
        self.line = line
        self.broken_string = broken_string


@dataclass(frozen=True, slots=True)
class Statement:
    kind: str  # "label" | "instruction" | "data" | "mode"
    text: str  # as written (labels: ``name:``)
    line: int  # 1-based line in the code string
    asm: str = ""  # what Keystone is given (set once local labels are renamed)


def _show(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "…")


def does_not_assemble(stmt: Statement, reason: str) -> UserCodeError:
    """The one wording of every assembler error: the statement, then why."""
    return UserCodeError(f"{_show(stmt.text)} does not assemble ({reason})", stmt.line)


# -- reading statements --------------------------------------------------------------


def _pieces(code: str) -> list[tuple[int, str, bool]]:
    """(line, text, string left open) per statement: split at newlines and ``;``, ``#``
    comments dropped, both only outside strings, as Keystone's lexer does."""
    out: list[tuple[int, str, bool]] = []
    for number, line in enumerate(code.split("\n"), 1):
        line = line.removesuffix("\r")
        current: list[str] = []
        in_string = escaped = False
        for ch in line:
            if in_string:
                current.append(ch)
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
                continue
            if ch == '"':
                in_string = True
            elif ch == "#":
                break
            elif ch == ";":
                out.append((number, "".join(current).strip(), False))
                current = []
                continue
            current.append(ch)
        out.append((number, "".join(current).strip(), in_string))
    return [p for p in out if p[1]]


def _for_keystone(text: str) -> str:
    """Non-ASCII characters of a string as octal escapes of their UTF-8 bytes."""
    if text.isascii():
        return text
    return "".join(
        ch if ch.isascii() else "".join(f"\\{b:03o}" for b in ch.encode()) for ch in text
    )


def _bad_char(text: str, allowed: re.Pattern[str]) -> str | None:
    m = allowed.match(text)
    assert m is not None  # a pattern ending in * matches the empty prefix
    return None if m.end() == len(text) else text[m.end()]


def _operand_problem(rest: str) -> str | None:
    bad = _bad_char(rest, _OPERAND_CHARS)
    if bad is None:
        return None
    if bad == "/":
        return "'/' is not accepted in user code (Keystone reads /* and // as comments)"
    if not bad.isascii():
        return f"character {bad!r} (U+{ord(bad):04X}) is not ASCII"
    return f"{bad!r} is not accepted here"


#: Digits in one number of user code: 2**64 has 20; Python refuses to convert more than
#: 4,300 (a ValueError), and no value of this machine needs more than this many.
MAX_DIGITS = 40
_LONG_NUMBER = re.compile(
    rf"(?<!\w)(?:0[xX][0-9A-Fa-f]{{{MAX_DIGITS + 1},}}|\d{{{MAX_DIGITS + 1},}})"
)


#: The directives that switch between 64-bit code and 32-bit code (compatibility mode).
MODE_DIRECTIVES = (".code32", ".code64")


def read_statements(code: str) -> list[Statement]:
    """The statements of *code*, each classified, or a :class:`UserCodeError`."""
    out: list[Statement] = []
    for number, text, open_string in _pieces(code):
        if m := _LONG_NUMBER.search(text):
            raise UserCodeError(
                f"{_show(text[:60])}: a number of {len(m.group(0))} characters; "
                f"at most {MAX_DIGITS} digits",
                number,
            )
        if open_string:
            raise UserCodeError(
                f"{_show(text)}: the string is not closed on its line", number, True
            )
        while m := _LABEL_DEF.match(text):
            name = m.group(1)
            if not _GOOD_LABEL.fullmatch(name):
                raise UserCodeError(
                    f"label {_show(name)} is not allowed: a label is letters, digits, "
                    "_ . and $, not starting with a digit (or a local label such as 1:)",
                    number,
                )
            out.append(Statement("label", f"{name}:", number))
            text = text[m.end() :].strip()
        if not text:
            continue
        if _ASSIGNMENT.match(text):
            raise UserCodeError(f"symbol assignment is not allowed: {_show(text)}", number)
        if text.lower() in MODE_DIRECTIVES:
            out.append(Statement("mode", text.lower(), number))
            continue
        out.append(_data(text, number) if text.startswith(".") else _instruction(text, number))
    return out


def _bits(statements: list[Statement], start: int = 64) -> list[int]:
    """The mode (64 or 32) each statement is assembled and decoded in, the program
    starting in *start*."""
    bits, out = start, []
    for st in statements:
        if st.kind == "mode":
            bits = 32 if st.text == ".code32" else 64
        out.append(bits)
    return out


def _data(text: str, number: int) -> Statement:
    """A data directive (``.ascii "hi"``, ``.quad 1``), checked."""
    directive = _DIRECTIVE.match(text)
    assert directive is not None
    name, rest = directive.group(0), text[directive.end() :]
    if name.lower() not in DATA_DIRECTIVES:
        raise UserCodeError(
            f"directive {_show(name)} is not allowed; user code may use "
            f"instructions, labels and the data directives {' '.join(DATA_DIRECTIVES)}",
            number,
        )
    if name.lower() in STRING_DIRECTIVES:
        if not _STRINGS.fullmatch(rest):
            raise UserCodeError(
                f"{_show(text)}: {name} takes strings in double quotes, separated by commas",
                number,
            )
        if any(not (ch.isprintable() or ch == "\t") for ch in rest):
            raise UserCodeError(
                f"{_show(text)}: a control character in a string "
                "(write it as an escape, \\n or \\033)",
                number,
            )
    elif (problem := _operand_problem(rest)) or not rest.strip():
        raise UserCodeError(
            f"{_show(text)}: {problem or f'{name} takes one or more values'}", number
        )
    elif rest[:1] not in (" ", "\t"):
        raise UserCodeError(f"expected a space after {name} in {_show(text)}", number)
    return Statement("data", text, number)


def _instruction(text: str, number: int) -> Statement:
    """An instruction, checked for what Keystone would misread or take as a directive."""
    mnemonic = _MNEMONIC.match(text)
    rest = text[mnemonic.end() :] if mnemonic else text
    if mnemonic is None or (rest and rest[0] not in " \t"):
        raise UserCodeError(
            f"expected an instruction, a label or a data directive, got {_show(text)}",
            number,
        )
    if problem := _operand_problem(rest):
        raise UserCodeError(f"{_show(text)}: {problem}", number)
    words = text.split()
    if words[0].lower() in PREFIXES and len(words) == 1:
        raise UserCodeError(
            f"{_show(text)}: a prefix goes on the line of its instruction (rep movsb)",
            number,
        )
    return Statement("instruction", text, number)


def _rename_local_labels(statements: list[Statement]) -> list[Statement]:
    """GNU as numeric local labels (``1:``, ``jmp 1f``, ``jne 1b``) as names Keystone knows,
    and the text for Keystone of every statement."""
    defs: dict[str, list[int]] = {}  # label number -> statement indexes defining it, in order
    for i, st in enumerate(statements):
        if st.kind == "label" and st.text[:-1].isdigit():
            defs.setdefault(st.text[:-1], []).append(i)
    out = []
    for i, st in enumerate(statements):
        if st.kind == "label":
            name = st.text[:-1]
            asm = f"local_{name}_{i}:" if name.isdigit() else st.text
            out.append(Statement(st.kind, st.text, st.line, asm))
            continue

        def ref(m: re.Match[str], i: int = i) -> str:
            places = defs.get(m.group(1), [])
            if m.group(2) == "b":
                k = bisect.bisect_left(places, i)
                return f"local_{m.group(1)}_{places[k - 1]}" if k > 0 else m.group(0)
            k = bisect.bisect_right(places, i)
            return f"local_{m.group(1)}_{places[k]}" if k < len(places) else m.group(0)

        text = st.text
        if st.kind == "instruction" or not st.text.lower().startswith(STRING_DIRECTIVES):
            if defs:
                text = re.sub(r"(?<![\w$])(\d+)([bf])\b", ref, text)
            text = hexify_decimals(text)
        out.append(Statement(st.kind, st.text, st.line, _for_keystone(text)))
    return out


# -- assembling and checking ---------------------------------------------------------


def _alone(st: Statement, labels: set[str]) -> str:
    """*st* for Keystone on its own: the labels it names defined after it, so that it
    assembles (to the same size, for data) without the rest of the program."""
    named = [n for n in dict.fromkeys(_IDENT_REF.findall(st.asm)) if n in labels]
    return "\n".join([st.asm, *(f"{n}:" for n in named)])


def _assemble(texts: list[str], address: int) -> tuple[AsmResult, ...]:
    try:
        return assemble_untrusted(texts, address)
    except AssemblerFailed as exc:
        raise UserCodeError(str(exc)) from None


def _reason(result: AsmResult, st: Statement | None = None) -> str:
    """Keystone's complaint in words (its error codes are for C programmers)."""
    if result == b"":
        return "Keystone produced no bytes for it: an operand it does not know?"
    assert isinstance(result, str)
    if "KS_ERR_ASM_MNEMONICFAIL" in result and st is not None:
        return f"no such instruction {_mnemonic_of(st.text)!r}"
    return re.sub(r"\s*\(KS_ERR_\w+\)", "", result).strip().lower() or "Keystone refused it"


def _size_problem(st: Statement, own: bytes) -> str | None:
    """Whether a numeric data statement came out at its size (``.quad (`` gives no bytes
    and no error)."""
    width = _width(st)
    if width is None or len(own) == width * _values(st):
        return None
    return f"Keystone made {len(own)} bytes of it, not {width * _values(st)}"


def _width(st: Statement) -> int | None:
    """Bytes per value of a numeric data statement (None: a string directive)."""
    return _WIDTHS.get(st.text.split()[0].lower())


def _values(st: Statement) -> int:
    return len(st.text.split(None, 1)[1].split(","))


def _culprit(
    statements: list[Statement], labels: set[str], address: int, start: int = 64
) -> UserCodeError | None:
    """The first statement that fails on its own (an error, or no bytes), if any."""
    modes = dict(zip(map(id, statements), _bits(statements, start), strict=True))
    real = [st for st in statements if st.kind not in ("label", "mode")]
    # each alone in its own mode, as in the whole program
    singles = _assemble(
        [(".code32\n" if modes[id(st)] == 32 else "") + _alone(st, labels) for st in real],
        address,
    )
    for st, single in zip(real, singles, strict=True):
        if single == TOO_LARGE:
            return UserCodeError(TOO_LARGE, st.line)
        if isinstance(single, str) or (single == b"" and st.kind == "instruction"):
            return does_not_assemble(st, _reason(single, st))
        if st.kind == "data" and (problem := _size_problem(st, single)):
            return does_not_assemble(st, problem)
    return None


_CC = {"z": "e", "nz": "ne", "c": "b", "nae": "b", "nc": "ae", "nb": "ae",
       "na": "be", "nbe": "a", "nge": "l", "nl": "ge", "ng": "le", "nle": "g", "pe": "p",
       "po": "np"}  # fmt: skip
_SAME = {"sal": "shl", "salb": "shlb", "salw": "shlw", "sall": "shll", "salq": "shlq",
         "pushf": "pushfq", "popf": "popfq", "fwait": "wait"}  # fmt: skip
_STRING_OP = re.compile(r"(movs|stos|lods|scas|cmps|ins|outs)[bwlq]")


def _canonical(mnemonic: str) -> str:
    """One name per opcode: condition-code synonyms (``jz``/``je``) and aliases."""
    m = mnemonic.lower()
    m = _SAME.get(m, m)
    if m.startswith("movabs"):
        # Keystone encodes `mov (0x10), %rax` with the 8-byte moffs form, which Capstone
        # names movabs; GNU as picks a disp32 form of the same load.  Both are `mov`.
        m = "mov" + m[len("movabs") :]
    for family in ("cmov", "set", "j"):
        if m.startswith(family) and m != "jmp":
            cc = m[len(family) :]
            if cc in _CC:
                return family + _CC[cc]
            if family != "j" and cc[:-1] in _CC and cc[-1:] in "bwlq":
                return family + _CC[cc[:-1]] + cc[-1]
    return m


def mnemonic_matches(written: str, att: str, intel: str) -> bool:
    """Whether GNU as reads the mnemonic *written* as the instruction Capstone decoded
    (AT&T name *att*, Intel name *intel*: the last word of each, prefixes aside)."""
    u, d, i = _canonical(written), _canonical(att), _canonical(intel)
    if u in (d, i):
        return True
    if u[-1:] in "bwlq" and u[:-1] in (d, i):  # a suffix Capstone does not print (leaveq)
        return True
    # Capstone's AT&T suffix on a bare mnemonic (iret: iretl): only where the last letter
    # is a suffix, not part of the name (syscall, cmpxchg8b), i.e. the Intel name lacks it.
    return d[-1:] in "bwlq" and d[:-1] == u and (d != i or bool(_STRING_OP.fullmatch(d)))


def _mnemonic_of(text: str) -> str:
    """The mnemonic of a statement or a decoded text, prefixes skipped."""
    words = text.split()
    k = 0
    while k < len(words) - 1 and words[k].lower() in PREFIXES:
        k += 1
    return words[k]


_NUM = re.compile(r"(?<![\w.])(?:-?0x[0-9a-fA-F]+|-?\d+)")


def _numbers_problem(st: Statement, insn_text: str, op_str: str, mnemonic: str) -> str | None:
    """A number the user wrote that Capstone's reading lacks (keystone#569 and friends)."""
    if mnemonic.startswith(("j", "call", "loop")) or " " not in st.asm:
        return None
    wanted = [int(n, 0) for n in _NUM.findall(st.asm.split(" ", 1)[-1])]
    got = {int(n, 0) & MASK64 for n in _NUM.findall(op_str)}
    # Sign-extended immediates read back as 64-bit; compare the low parts too.
    got |= {g & 0xFFFFFFFF for g in got} | {g & 0xFF for g in got} | {1, 2, 4, 8}
    if all(_encoded(w, got) for w in wanted):
        return None
    return f"Keystone encoded it as {insn_text!r}: refusing a silently wrong byte"


def _encoded(number: int, got: set[int]) -> bool:
    """Whether *number* as the user wrote it is among Capstone's operands *got*.

    A negative immediate comes back at its operand's width (``movl $-1, %eax`` reads
    ``$0xffffffff``): it matches its two's complement at any width it fits in.
    """
    if number >= 0:
        return number & MASK64 in got
    return any(
        number & ((1 << bits) - 1) in got
        for bits in (64, 32, 16, 8)
        if number >= -(1 << (bits - 1))
    )


def _decoded(
    st: Statement,
    whole: bytes,
    offset: int,
    at: int,
    fail: Callable[[Statement, str], UserCodeError],
    bits: int = 64,
) -> tuple[str, int]:
    """What instruction statement *st* assembled to (Capstone's text, its size) in *bits*-bit
    code, held to what was written: the same mnemonic (or its Intel name), the same numbers."""
    # (at most one instruction's 15 bytes: a copy of the rest per statement is quadratic)
    insn = next(capstone(bits).disasm(whole[offset : offset + 15], at, 1), None)
    if insn is None:
        raise fail(st, "its bytes do not decode as an instruction")
    text, size = f"{insn.mnemonic} {insn.op_str}".strip(), insn.size
    written, att = _mnemonic_of(st.text), _mnemonic_of(insn.mnemonic)
    if _canonical(written) != _canonical(att):  # then the Intel name decides
        intel = next(capstone_intel(bits).disasm(whole[offset : offset + size], at, 1))
        if not mnemonic_matches(written, att, _mnemonic_of(intel.mnemonic)):
            raise fail(
                st,
                f"no such instruction {written!r}; Keystone took it for {att!r}, GNU as rejects it",
            )
    if problem := _numbers_problem(st, text, insn.op_str, insn.mnemonic):
        raise fail(st, problem)
    return text, size


def _with_symbols(statements: list[Statement], symbols: Mapping[str, int]) -> list[Statement]:
    """The instructions that name one of *symbols* (``call __kernel_vsyscall``) with its
    address for Keystone; the listing keeps the name as written.  A label of the program
    with the same name is the program's own and wins."""
    own = {st.asm[:-1] for st in statements if st.kind == "label"}
    known = {k: v for k, v in symbols.items() if k not in own}
    if not known:
        return statements
    pattern = re.compile(r"(?<![\w.$])(" + "|".join(map(re.escape, known)) + r")(?![\w.$])")

    def named(st: Statement) -> bool:  # an instruction, or data of numbers (a pointer)
        return st.kind == "instruction" or (
            st.kind == "data" and not st.text.lower().startswith(STRING_DIRECTIVES)
        )

    return [
        Statement(st.kind, st.text, st.line, pattern.sub(lambda m: f"{known[m[1]]:#x}", st.asm))
        if named(st)
        else st
        for st in statements
    ]


def assemble_user_code(
    source: str, address: int, bits: int = 64, symbols: Mapping[str, int] | None = None
) -> UserCode:
    """Assemble the user's AT&T code at *address*, statement by statement checked: the
    whole program once through Keystone, then each statement's bytes held to what it
    says (a loop over the kinds of statement, whose state is the offset it walks).
    *bits* 32: the program starts as 32-bit code ([user] mode = "compat").  *symbols*:
    addresses outside the program it may name (a 32-bit task's vDSO entry)."""
    statements = read_statements(source)
    if len(statements) > MAX_STATEMENTS:
        raise UserCodeError(f"more than {MAX_STATEMENTS} statements")
    statements = _with_symbols(_rename_local_labels(statements), symbols or {})
    if not any(st.kind != "label" for st in statements):
        raise UserCodeError("expected at least one instruction")
    labels = {st.asm[:-1] for st in statements if st.kind == "label"}
    # A string's size needs Keystone's reading of its escapes: each distinct one is
    # assembled alone too, in the same child.  A number's is its width (_size_problem holds
    # Keystone to it), so 20,000 `.byte` lines cost no 20,000 Keystone calls.
    strings = list(
        dict.fromkeys(
            _alone(st, labels) for st in statements if st.kind == "data" and _width(st) is None
        )
    )
    program = "\n".join(st.asm for st in statements)
    if bits == 32:
        program = ".code32\n" + program
    whole, *sizes = _assemble([program, *strings], address)
    if whole == TOO_LARGE:
        raise UserCodeError(TOO_LARGE)
    if isinstance(whole, str) or whole == b"":
        raise _culprit(statements, labels, address, bits) or UserCodeError(
            f"does not assemble ({_reason(whole)})"
        )
    assert len(whole) <= MAX_USER_CODE
    string_bytes = dict(zip(strings, sizes, strict=True))

    def fail(st: Statement, reason: str) -> UserCodeError:
        # A statement Keystone dropped silently shifts every later one: name that one.
        return _culprit(statements, labels, address, bits) or does_not_assemble(st, reason)

    lines: list[tuple[int, str, str]] = []
    listing: list[UserLine] = []
    data_insns: list[tuple[int, str]] = []
    offset = 0
    for st, mode in zip(statements, _bits(statements, bits), strict=True):
        at = address + offset
        if st.kind in ("label", "mode"):
            listing.append(UserLine(at, st.kind, st.text, b"", st.line))
            continue
        if st.kind == "data":
            width = _width(st)
            if width is None:
                own = string_bytes[_alone(st, labels)]
                if isinstance(own, str):
                    raise does_not_assemble(st, _reason(own, st))
                size = len(own)
            else:
                size = width * _values(st)
            chunk = whole[offset : offset + size]
            if len(chunk) != size:
                raise fail(st, "its bytes are missing from the program")
            listing.append(UserLine(at, "data", st.text, chunk, st.line))
            # What it would execute as, if the program jumps into it (no display shows it).
            data_insns.extend(
                (i.address, f"{i.mnemonic} {i.op_str}".strip())
                for i in capstone(mode).disasm(chunk, at)
            )
            offset += len(chunk)
            continue
        text, size = _decoded(st, whole, offset, at, fail, mode)
        lines.append((at, st.text, text))
        listing.append(UserLine(at, "instruction", st.text, whole[offset : offset + size], st.line))
        offset += size
    if offset != len(whole):
        raise UserCodeError(
            f"the program assembled to {len(whole)} bytes, its statements to {offset}"
        )
    return UserCode(source, address, whole, tuple(lines), tuple(listing), tuple(data_insns))
