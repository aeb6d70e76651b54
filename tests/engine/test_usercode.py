"""A scenario's own code: data anywhere, typos refused, errors that quote the statement,
and nothing but instructions, labels and data directives ever reaching Keystone."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ScenarioError, parse_scenario, run_scenario
from engine.asm import AsmResult, assemble_untrusted
from engine.scenario import usercode
from engine.scenario.model import DATA_DIRECTIVES
from engine.views.json import trace_json
from engine.views.markdown import trace_markdown
from tests.conftest import ROOT
from tests.engine.test_scenarios import cli

WRITE_HI = """name = "write hi"
[user]
code = '''
mov $1, %eax
mov $1, %edi
lea msg(%rip), %rsi
mov $3, %edx
syscall
msg: .ascii "hi\\n"
'''
"""


def scenario(code: str, quotes: str = "'''") -> str:
    return f'name = "x"\n[user]\ncode = {quotes}\n{code}\n{quotes}\n'


def error_of(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    return info.value


# -- data -----------------------------------------------------------------------------


def test_data_after_the_last_instruction_runs_and_stays_data() -> None:
    sc = parse_scenario(WRITE_HI, "write-hi.toml")
    assert sc.code is not None
    kinds = [(line.kind, line.text) for line in sc.code.listing]
    assert kinds[-2:] == [("label", "msg:"), ("data", '.ascii "hi\\n"')]
    assert sc.code.listing[-1].code == b"hi\n"
    # the data is not among the instructions, and nothing decoded it as code
    assert [text for _, _, text in sc.code.lines][-1] == "syscall"
    t = run_scenario(sc)
    assert t.output == b"hi\n" and t.exit == "sysret"
    assert [s.source for s in t.steps if s.cpl == 3][2] == "lea msg(%rip), %rsi"
    assert t.user_code == sc.code.listing


@pytest.mark.parametrize(
    "data", ['.ascii "hi\\n"', ".byte 0x68", '.asciz "hello"', ".quad 0", ".short 1, 2, 3"]
)
def test_any_data_may_follow_the_code(data: str) -> None:
    sc = parse_scenario(scenario(f"syscall\nmsg: {data}"))
    assert sc.code is not None and sc.code.listing[-1].kind == "data"


def test_strings_keep_their_semicolons_hashes_and_digits() -> None:
    """`;` and `#` inside a string are characters, not a separator and a comment, and
    digits in a string are not numbers to rewrite as hex."""
    sc = parse_scenario(scenario('syscall\n.ascii "a;b # 12"'))
    assert sc.code is not None and sc.code.listing[-1].code == b"a;b # 12"


def test_non_ascii_in_a_string_is_its_utf8_bytes() -> None:
    sc = parse_scenario(scenario('syscall\n.ascii "é日"'))
    assert sc.code is not None and sc.code.listing[-1].code == "é日".encode()


def test_data_jumped_into_shows_its_statement() -> None:
    t = run_scenario(parse_scenario(scenario(".byte 0x0f, 0x05")))
    assert t.exit == "sysret"
    assert t.steps[0].text == "syscall" and t.steps[0].source == ".byte 0x0f, 0x05"


# -- errors quote the statement, in one wording -------------------------------------------

QUOTED = [
    ("mov $39, %eax\nsyscal", "'syscal' does not assemble (no such instruction 'syscal';", 5),
    ("cmpxchg8 (%rax)\nsyscall", "'cmpxchg8 (%rax)' does not assemble (no such instruction", 4),
    ("nop\nmvo $1, %eax", "'mvo $1, %eax' does not assemble (no such instruction 'mvo')", 5),
    ("movq $1, %rdii\nsyscall", "'movq $1, %rdii' does not assemble (", 4),
    ("nop\n.fill 3", "directive '.fill' is not allowed", 5),
    ("nop\n.byte 4/2", "'.byte 4/2': '/' is not accepted", 5),
    ("rep\nmovsb", "'rep': a prefix goes on the line of its instruction", 4),
    ("syscall\n.quad (", "'.quad (' does not assemble (Keystone made 0 bytes of it, not 8)", 5),
]


@pytest.mark.parametrize(("code", "message", "line"), QUOTED, ids=[q[1][:20] for q in QUOTED])
def test_an_error_quotes_its_statement_on_its_line(code: str, message: str, line: int) -> None:
    err = error_of(scenario(code))
    assert message in str(err) and err.line == line, str(err)


@pytest.mark.parametrize(
    "code",
    [
        "mov $1, %eax; movl $1, %eax; push %rax; pushq %rax; pop %rax; ret",
        "lea 8(%rsp), %rsi; leaq 8(%rsp), %rsi; call 1f; 1: callq 1f; 1: jmp *%rax",
        "cwtl; cwde; cltq; cdqe; cqto; cqo; cbw; cbtw; cwd; cwtd; cltd; cdq",
        "shl %rax; sal %rax; shlq $2, %rax; movzbl %al, %eax; movzb %al, %eax; movzx %al, %eax",
        "pushf; pushfq; popf; popfq; iret; iretq; sysret; sysretq; leave; leaveq",
        "rep movsb; repz ret; lock incl (%rax); stos %al, %es:(%rdi); stosb; cmpxchg8b (%rax)",
        "sete %al; setz %al; cmove %rbx, %rax; cmovz %rbx, %rax; jz 1f; 1: jnz 1b; syscall",
        "movabs $0x1122334455667788, %rax; int $0x80; int3; hlt; in $0x60, %al; inb $0x60, %al",
    ],
)
def test_mnemonics_gnu_as_accepts_are_accepted(code: str) -> None:
    parse_scenario(scenario(code))


def test_all_assembler_errors_share_one_wording() -> None:
    for code in ("mvo $1, %eax", "movq $1, %rdii", "syscal", "jmp nowhere"):
        message = error_of(scenario(code)).message
        assert re.fullmatch(r"'[^']+' does not assemble \(.+\)", message), message


# -- the TOML trap --------------------------------------------------------------------


def test_a_string_split_by_a_toml_escape_says_so() -> None:
    text = scenario('jmp start\nmsg: .ascii "hi\\n"\nstart:\nsyscall', quotes='"""')
    err = error_of(text)
    assert "the string was broken by a TOML escape" in str(err) and "'''" in str(err)
    assert "'msg: .ascii \"hi'" in str(err) or "'.ascii \"hi'" in str(err)
    assert err.line == 5  # the .ascii line, not `code =`
    # written with ''' the same code runs
    assert run_scenario(parse_scenario(text.replace('"""', "'''"))).exit == "sysret"


def test_an_unclosed_string_in_a_literal_string_has_no_toml_hint() -> None:
    err = error_of(scenario('syscall\n.ascii "hi'))
    assert "not closed on its line" in str(err) and "TOML escape" not in str(err)


# -- labels as Keystone reads them ------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["a?b: .text", "a@b: .fill 0x7fffffff", "q@q: .set foo, 0x1234", "@x: nop", "a?b: nop"]
)
def test_a_label_keystone_reads_with_at_or_question_mark_is_refused(code: str) -> None:
    err = error_of(scenario(code))
    assert "label " in err.message and "is not allowed" in err.message


@pytest.mark.parametrize(
    "code", ["a : .text", "x:y: .data", '"quoted": .text', "a/**/: .text", "nop /* x */ ; .text"]
)
def test_every_other_way_to_a_directive_is_refused(code: str) -> None:
    error_of(scenario(code))


# -- the boundary: what reaches Keystone ------------------------------------------------

_KS_IDENT = r"[A-Za-z_.$@?][A-Za-z0-9_.$@?]*"
_KS_LABEL = re.compile(rf'\s*(?:{_KS_IDENT}|[0-9]+|"(?:[^"\\]|\\.)*")\s*:')


def keystone_statements(text: str) -> Iterator[str]:
    """The statements Keystone's parser sees in *text*, by its lexer's rules (written from
    LLVM's AsmLexer, not from the code under test): `/* */` comments anywhere, `#` and
    `//` to the end of the line, `;` and newlines end a statement, none of it in strings;
    then every leading label (an identifier of [\\w.$@?], a number or a quoted name, then
    a colon) is a statement of its own."""
    out: list[str] = []
    current: list[str] = []
    i, in_string = 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            current.append(ch)
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            current.append(ch)
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        elif ch == "#" or text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif ch in "\n;":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    for statement in out:
        while m := _KS_LABEL.match(statement):
            statement = statement[m.end() :]
        yield statement.strip()


def directives_in(text: str) -> list[str]:
    return [s.split(None, 1)[0].lower() for s in keystone_statements(text) if s.startswith(".")]


def test_the_keystone_model_sees_the_hidden_directives() -> None:
    """The model finds what the old filter let through (so the property below can fail)."""
    assert directives_in("a?b: .text") == [".text"]
    assert directives_in("a@b: .fill 0x7fffffff") == [".fill"]
    assert directives_in('x/**/: y : "z": .set foo, 1 # .data') == [".set"]
    assert directives_in('.ascii "a;.text"') == [".ascii"]


LABEL_CHARS = "ab_.$@?19"
DIRECTIVES = [
    *DATA_DIRECTIVES, ".text", ".data", ".section", ".fill", ".set", ".equ", ".space",
    ".skip", ".zero",
    ".incbin", ".include", ".rept", ".endr", ".org", ".align", ".p2align", ".macro",
    ".irp", ".err", ".globl", ".Text", ".BYTE", ".byte@x",
]  # fmt: skip
labels = st.one_of(
    st.text(LABEL_CHARS, min_size=1, max_size=5),
    st.sampled_from(['"q"', "a/**/", "1", "x y"]),
)
glue = st.sampled_from([":", " :", ": ", ":\t", "/**/:", "::"])
bodies = st.one_of(
    st.builds(
        lambda d, arg: f"{d} {arg}",
        st.sampled_from(DIRECTIVES),
        st.sampled_from(["1", "0x7fffffff", '"s"', "foo, 0x1234", "1, 2", '"a;.text"', ""]),
    ),
    st.sampled_from(
        ["nop", "syscall", "mov $1, %eax", "jmp 1f", "lea msg(%rip), %rsi", "a = 1", "-1"]
    ),
    st.text("ab.:;#/*\"'@?$ %=\\", max_size=8),
)
statements = st.builds(
    lambda ls, g, body, comment: "".join(f"{label}{g}" for label in ls) + body + comment,
    st.lists(labels, max_size=3),
    glue,
    bodies,
    st.sampled_from(["", " # .text", " /* .data */", "; .text"]),
)
programs = st.lists(statements, min_size=1, max_size=5).map("\n".join)


@pytest.fixture
def keystone_inputs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text handed to Keystone by the user-code path, recorded at the boundary."""
    seen: list[str] = []

    def recording(texts: Sequence[str], address: int) -> tuple[AsmResult, ...]:
        seen.extend(texts)
        return assemble_untrusted(texts, address)

    monkeypatch.setattr(usercode, "assemble_untrusted", recording)
    return seen


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(programs)
def test_no_directive_outside_the_allowed_list_reaches_keystone(
    keystone_inputs: list[str], code: str
) -> None:
    keystone_inputs.clear()
    try:
        parse_scenario(scenario(code), "p.toml")
    except ScenarioError as exc:
        assert "\n" not in str(exc)
    for text in keystone_inputs:
        assert set(directives_in(text)) <= set(DATA_DIRECTIVES), (code, text)
        assert not re.search(r"(?m)^\s*" + _KS_IDENT + r"\s*=", text), (code, text)


def test_the_boundary_is_instrumented(keystone_inputs: list[str]) -> None:
    parse_scenario(scenario('nop\nmsg: .ascii "x"\nsyscall'))
    assert any("syscall" in text for text in keystone_inputs)


# -- values and counts ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["ip", "sp", "flags", "cs", "ss"])
def test_a_negative_address_or_selector_is_an_error(field: str) -> None:
    err = error_of(f'name = "x"\n[handler.set]\n{field} = -1\n')
    assert f"handler.set.{field}: value -1 is negative" in str(err)


def test_a_negative_register_value_is_its_twos_complement() -> None:
    sc = parse_scenario('name = "x"\n[handler.set]\nax = -14\n')
    assert sc.handler_set["ax"] == 2**64 - 14


def test_counts_are_given_in_decimal() -> None:
    assert "step_cap: value 0 out of range 1..100000" in str(error_of('name = "x"\nstep_cap = 0\n'))
    err = error_of('name = "x"\n[handler]\npid = 0\n')
    assert "value 0 out of range 1..4194304" in str(err)


def test_the_write_example_runs_from_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "write-hi.toml"
    path.write_text(WRITE_HI)
    r = cli("trace", str(path))
    assert r.returncode == 0, r.stderr
    assert "lea msg(%rip), %rsi" in r.stdout


def test_json_and_markdown_show_the_program_as_written() -> None:
    t = run_scenario(parse_scenario(WRITE_HI))
    entries = trace_json(t)["user_code"]
    assert entries[-1] == {
        "address": "0x401018",
        "kind": "data",
        "text": '.ascii "hi\\n"',
        "bytes": "68690a",
        "line": 6,
    }
    assert [e["kind"] for e in entries].count("instruction") == 5
    md = trace_markdown(t)
    assert '0000000000401018      .ascii "hi\\n"   /* 68 69 0a */' in md
    assert "from `lea msg(%rip), %rsi`" in md  # the step names the user's line


def test_the_documented_write_example_runs_as_the_docs_say(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "scenarios.md").read_text()
    section = doc[doc.index("## User code") :]
    example = section[
        section.index("```toml\n") + 8 : section.index("```", section.index("```toml") + 7)
    ]
    assert "code = '''" in example
    path = tmp_path / "write-hi.toml"
    path.write_text(example)
    r = cli("trace", str(path))
    assert r.returncode == 0, r.stderr
    said = re.search(r"`(write\(1, 0x[0-9a-f]+, 3\) wrote \"hi\\n\" = 3)`", section)
    assert said is not None and said.group(1) in r.stdout


def test_many_data_statements_cost_one_keystone_text_each_distinct_string(
    keystone_inputs: list[str],
) -> None:
    """The child has 2 s: 20,000 data lines must not mean 20,000 Keystone calls."""
    code = "\n".join([".byte 1", '.ascii "ab"'] * 9_000 + ["syscall"])
    sc = parse_scenario(scenario(code))
    assert sc.code is not None and len(sc.code.code) == 27_002
    assert len(keystone_inputs) == 2  # the program, and '.ascii "ab"' alone for its size


def test_a_statement_is_placed_on_its_own_line_not_an_earlier_one_that_quotes_it() -> None:
    err = error_of(scenario("nop  # the next line is nop $1\nnop\nnop $1"))
    assert err.line == 6, str(err)
    # an escaped newline puts two code lines on one file line: the line that holds it
    err = error_of('name = "x"\n[user]\ncode = """nop\\nnop\nnop $1"""\n')
    assert err.line == 4, str(err)
