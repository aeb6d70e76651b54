"""Address expressions: ``0x401000``, ``entry_SYSCALL_64+4``, ``$rsp-8``, ``regs->ip``.

A term is a number (hex with ``0x``, else decimal), a kernel label, a register of
the step (``$rax`` ... ``$r15``, ``$rip``/``$pc``, ``$rsp``/``$sp``, ``$rflags``,
``$cs``, ``$ss``, ``$fs_base``, ``$gs_base``, ``$kernel_gs_base``, ``$cr3``) or the
*address* of a struct pt_regs slot (``regs->ip``, or ``regs.ip`` where a shell would
read ``>`` as a redirection: the slot at the top of the task stack); terms join with
``+`` and ``-``, and brackets group.  A breakpoint's condition (:func:`holds`) compares
expressions with ``==`` ``!=`` ``<`` ``>`` ``<=`` ``>=`` and joins them with ``&&`` and
``||``.  Values wrap at 64 bits.  Anything else is an
:class:`ExprError` whose one line says what was wrong and where.  The text is
untrusted: its length is bounded, and it is only tokenised, never evaluated as code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.constants import PT_REGS_FIELDS, PT_REGS_OFFSET
from engine.errors import EngineError
from engine.trace import REG_NAMES, Regs

#: The longest expression accepted (a person types them; a script need not be longer).
MAX_EXPR = 256

#: gdb's names for the program counter and the stack pointer.
REG_ALIASES = {"pc": "rip", "sp": "rsp", "eflags": "rflags"}

_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F_]+|\d[\d_]*)|(?P<reg>\$[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<slot>regs(?:->|\.)[A-Za-z_][A-Za-z0-9_]*)|(?P<label>[A-Za-z_.][A-Za-z0-9_.$]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+()<>]))"
)

MASK64 = (1 << 64) - 1


class ExprError(EngineError):
    """An address expression that does not parse or names nothing known."""


@dataclass(frozen=True, slots=True)
class ExprContext:
    """What the names in an expression mean at one step."""

    regs: Regs
    symbols: Mapping[str, int]
    pt_regs_base: int


def register_names() -> tuple[str, ...]:
    """Every ``$name`` an expression may use (for completion)."""
    return (*REG_NAMES, *REG_ALIASES)


def slot_names() -> tuple[str, ...]:
    """Every ``regs->name`` (for completion)."""
    return tuple(f"regs->{f}" for f in PT_REGS_FIELDS)


def _tokens(text: str) -> Iterable[tuple[str, str, int]]:
    pos = 0
    while pos < len(text):
        if text[pos:].isspace():
            return
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExprError(f"unexpected {text[pos]!r} at column {pos + 1} of {text!r}")
        kind = m.lastgroup
        assert kind is not None
        yield kind, m.group(kind), m.start(kind)
        pos = m.end()


#: The comparisons a condition may use, and what each means of two unsigned values.
COMPARE = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
}  # fmt: skip


def evaluate(text: str, ctx: ExprContext) -> int:
    """The 64-bit value of address expression *text* in *ctx*."""
    return _evaluate(text, ctx, condition=False)


def holds(text: str, ctx: ExprContext) -> bool:
    """Whether condition *text* holds in *ctx*: comparisons of expressions (``==``,
    ``!=``, ``<``, ``>``, ``<=``, ``>=``, unsigned as gdb compares addresses) joined by
    ``&&`` and ``||``; a bare expression holds when it is not zero."""
    return bool(_evaluate(text, ctx, condition=True))


def _evaluate(text: str, ctx: ExprContext, *, condition: bool) -> int:
    """A recursive-descent parser in one function: its rules (term, expr, comparison,
    conjunction, disjunction) are nested functions sharing the token position, which is
    why it is longer than a function usually is here."""
    if len(text) > MAX_EXPR:
        raise ExprError(f"expression longer than {MAX_EXPR} characters")
    if not text.strip():
        raise ExprError("empty address expression")
    toks = list(_tokens(text))
    pos = 0

    def peek() -> tuple[str, str, int] | None:
        return toks[pos] if pos < len(toks) else None

    def term() -> int:
        nonlocal pos
        tok = peek()
        if tok is None:
            raise ExprError(f"{text!r} ends where a value was expected")
        kind, value, col = tok
        pos += 1
        if kind == "op" and value == "(":
            v = expr()
            close = peek()
            if close is None or close[1] != ")":
                raise ExprError(f"unclosed '(' at column {col + 1} of {text!r}")
            pos += 1
            return v
        if kind == "op" and value in "+-":
            v = term()
            return -v if value == "-" else v
        if kind == "num":
            return int(value.replace("_", ""), 0) if value[:2].lower() == "0x" else int(value)
        if kind == "reg":
            name = value[1:].lower()
            name = REG_ALIASES.get(name, name)
            if name not in REG_NAMES:
                raise ExprError(f"no register {value} (try $rsp, $rip, $rax ... $r15, $cr3)")
            return int(getattr(ctx.regs, name))
        if kind == "slot":
            name = value.removeprefix("regs->").removeprefix("regs.")
            if name not in PT_REGS_OFFSET:
                raise ExprError(
                    f"pt_regs has no slot {name!r} (slots: {', '.join(PT_REGS_FIELDS)})"
                )
            return ctx.pt_regs_base + PT_REGS_OFFSET[name]
        if kind == "label":
            if value not in ctx.symbols:
                raise ExprError(f"no kernel label {value!r}")
            return ctx.symbols[value]
        raise ExprError(f"unexpected {value!r} at column {col + 1} of {text!r}")

    def expr() -> int:
        nonlocal pos
        v = term()
        while (tok := peek()) is not None and tok[0] == "op" and tok[1] in "+-":
            pos += 1
            v = v + term() if tok[1] == "+" else v - term()
        return v

    def comparison() -> int:
        nonlocal pos
        v = expr()
        tok = peek()
        if tok is not None and tok[0] == "op" and tok[1] in COMPARE:
            pos += 1
            return int(COMPARE[tok[1]](v & MASK64, expr() & MASK64))
        return v

    def conjunction() -> int:
        nonlocal pos
        v = comparison()
        while (tok := peek()) is not None and tok[1] == "&&":
            pos += 1
            right = comparison()
            v = int(bool(v) and bool(right))
        return v

    def disjunction() -> int:
        nonlocal pos
        v = conjunction()
        while (tok := peek()) is not None and tok[1] == "||":
            pos += 1
            right = conjunction()
            v = int(bool(v) or bool(right))
        return v

    value = disjunction() if condition else expr()
    if pos != len(toks):
        _, extra, col = toks[pos]
        raise ExprError(f"unexpected {extra!r} at column {col + 1} of {text!r}")
    return value & MASK64


__all__ = [
    "MAX_EXPR", "ExprContext", "ExprError", "evaluate", "holds", "register_names",
    "slot_names",
]  # fmt: skip
