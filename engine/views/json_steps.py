"""Steps written as JSON text directly: the bytes ``json.JSONEncoder().encode(step_json(s))``
writes, without building a dict of dicts per step.

A 100,000-step trace spent most of ``trace --format json`` building those dicts and
walking them in the encoder, although almost every part of a step repeats: the
instruction's fields come back on every turn of a loop, and the stacks and checks are
the very same tuples as the step before's (the recorder shares equal records).  The
encoder here writes each part from the step's own values and keeps the text of a part
that repeats, keyed by those values, so nothing is written that the step does not hold.

Strings are escaped by the json module's own escaper (ASCII output, as the default
encoder), numbers and registers are written as :func:`engine.views.json.step_json`
writes them (``hex()``), and the key order and separators are the encoder's.
``tests/engine/test_json_steps.py`` holds the two equal over every shipped scenario.
"""

from __future__ import annotations

import json
import operator
from json.encoder import encode_basestring_ascii as _quote

from engine.checks import describe
from engine.trace import CheckState, Event, Regs, StackSlot, Step
from engine.views.json import FINAL_REGS, c_json

#: The registers object of a step: ``%#x`` is ``hex()`` for every int, signs included.
_REGS = "{" + ", ".join(f'"{name}": "%#x"' for name in FINAL_REGS) + "}"


#: The registers in that order, in one call.
_values = operator.attrgetter(*FINAL_REGS)


def _regs(regs: Regs) -> str:
    return _REGS % _values(regs)


def _slots(stack: tuple[StackSlot, ...]) -> str:
    return (
        "["
        + ", ".join(
            f'{{"address": "{s.address:#x}", "value": "{s.value:#x}", "slot": {_quote(s.slot)}}}'
            for s in stack
        )
        + "]"
    )


def _checks(checks: tuple[CheckState, ...]) -> str:
    return (
        "["
        + ", ".join(
            f'{{"name": {_quote(c.name)}, "result": {_quote(c.result)}, '
            f'"detail": {_quote(describe(c))}}}'
            for c in checks
        )
        + "]"
    )


def _events(events: tuple[Event, ...]) -> str:
    return (
        "["
        + ", ".join(
            f'{{"kind": {_quote(e.kind)}, "text": {_quote(e.text)}, '
            f'"modelled": {"true" if e.modelled else "false"}}}'
            for e in events
        )
        + "]"
    )


def _null_or(text: str | None) -> str:
    return "null" if text is None else _quote(text)


class StepWriter:
    """Encodes the steps of one trace, in order; one instance per trace written.

    The caches live as long as the writer: a part is looked up by its values (the
    instruction, the changed registers) or, for the records the recorder shares between
    neighbouring steps (registers, stacks, checks), by being the object the step before
    held, which the writer keeps alive so that identity cannot be reused.
    """

    def __init__(self) -> None:
        self._insn: dict[tuple[object, ...], str] = {}
        self._changed: dict[tuple[str, ...], str] = {}
        # (record, its text) of the step before, one pair per shared record
        self._regs: tuple[object, str] = (None, "")
        self._stack: tuple[object, str] = (None, "")
        self._entry: tuple[object, str] = (None, "")
        self._checks: tuple[object, str] = (None, "")

    def _instruction(self, step: Step) -> str:
        key = (
            step.rip, step.code, step.text, step.source_line, step.source, step.macro,
            step.label, step.cpl,
        )  # fmt: skip
        text = self._insn.get(key)
        if text is None:
            line = "null" if step.source_line is None else str(step.source_line)
            text = (
                f'"rip": "{step.rip:#x}", "bytes": "{step.code.hex()}", '
                f'"text": {_quote(step.text)}, "source_line": {line}, '
                f'"source": {_quote(step.source)}, "macro": {_null_or(step.macro)}, '
                f'"label": {_quote(step.label)}, "cpl": {step.cpl}, '
            )
            self._insn[key] = text
        return text

    def _changed_names(self, changed: tuple[str, ...]) -> str:
        text = self._changed.get(changed)
        if text is None:
            text = "[" + ", ".join(map(_quote, changed)) + "]"
            self._changed[changed] = text
        return text

    def encode(self, step: Step) -> str:
        """One step as one line of JSON, equal to ``JSONEncoder().encode(step_json(step))``."""
        # `is`, not ==: an equal record that is not shared is simply encoded again
        if step.regs is not self._regs[0]:
            self._regs = (step.regs, _regs(step.regs))
        if step.stack is not self._stack[0]:
            self._stack = (step.stack, _slots(step.stack))
        if step.entry_stack is not self._entry[0]:
            self._entry = (step.entry_stack, _slots(step.entry_stack))
        if step.checks is not self._checks[0]:
            self._checks = (step.checks, _checks(step.checks))
        regs, stack, entry, checks = (
            self._regs[1], self._stack[1], self._entry[1], self._checks[1]
        )  # fmt: skip
        events = _events(step.events) if step.events else "[]"
        if step.rewritten:
            rewritten = (
                "["
                + ", ".join(
                    f'{{"slot": {_quote(name)}, "old": "{old:#x}", "new": "{new:#x}"}}'
                    for name, old, new in step.rewritten
                )
                + "]"
            )
        else:
            rewritten = "[]"
        cr3 = "null" if step.cr3_written is None else f'"{step.cr3_written:#x}"'
        c = "null" if step.c is None else json.dumps(c_json(step.c))
        return (
            f'{{"step": {step.number}, {self._instruction(step)}"regs": {regs}, '
            f'"changed": {self._changed_names(step.changed)}, "stack": {stack}, '
            f'"entry_stack": {entry}, "checks": {checks}, "events": {events}, '
            f'"modelled": {"true" if step.modelled else "false"}, '
            f'"stack_name": {_quote(step.stack_name)}, "rewritten": {rewritten}, '
            f'"cr3_written": {cr3}, "c": {c}}}'
        )


__all__ = ["StepWriter"]
