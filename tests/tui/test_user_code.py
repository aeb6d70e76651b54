"""The user program panel shows the scenario's code as written: labels, the user's own
operands (`jmp start`, `lea msg(%rip)`), data as its bytes, never decoded as code."""

from __future__ import annotations

from engine import parse_scenario, run_scenario
from tests.tui.helpers import SCENARIOS, run_async
from tui.app import SyscallTuiApp
from tui.widgets.source import Listing, SourceListing

WRITE_HI = """name = "write hi"
[user]
code = '''
jmp start
msg: .ascii "hi\\n"
start:
mov $1, %eax
mov $1, %edi
lea msg(%rip), %rsi
mov $3, %edx
syscall
'''
"""


def user_rows(listing: Listing) -> list[str]:
    rows = []
    for row in listing.rows[1:]:
        if row.kind != "user":
            break
        rows.append(row.text)
    return rows


def test_the_user_rows_are_the_scenarios_lines() -> None:
    listing = Listing.from_trace(run_scenario(parse_scenario(WRITE_HI)))
    rows = user_rows(listing)
    assert rows == [
        "0000000000401000      jmp start",
        "0000000000401002  msg:",
        '0000000000401002      .ascii "hi\\n"   /* 68 69 0a */',
        "0000000000401005  start:",
        "0000000000401005      mov $1, %eax",
        "000000000040100a      mov $1, %edi",
        "000000000040100f      lea msg(%rip), %rsi",
        "0000000000401016      mov $3, %edx",
        "000000000040101b      syscall",
    ]
    assert [r.is_label for r in listing.rows[1:10]].count(True) == 2
    assert not any("0x401005" in r or "leaq" in r for r in rows)


def test_executed_data_lights_its_data_row() -> None:
    trace = run_scenario(parse_scenario('name = "x"\n[user]\ncode = ".byte 0x0f, 0x05"\n'))
    listing = Listing.from_trace(trace)
    assert listing.rows[listing.row_of_step[0]].text.endswith(".byte 0x0f, 0x05   /* 0f 05 */")


@run_async
async def test_the_panel_follows_the_users_lines() -> None:
    trace = run_scenario(parse_scenario(WRITE_HI))
    app = SyscallTuiApp(trace, scenario_dirs=(SCENARIOS,))
    async with app.run_test(size=(160, 50)) as pilot:
        listing = app.query_one(SourceListing)
        assert listing.next_row is not None
        assert listing.rows[listing.next_row].text.endswith("jmp start")
        await pilot.press("s")
        await pilot.pause()
        assert listing.ran_row is not None and listing.next_row is not None
        assert listing.rows[listing.ran_row].text.endswith("jmp start")
        assert listing.rows[listing.next_row].text.endswith("mov $1, %eax")
        for _ in range(3):
            await pilot.press("s")
        await pilot.pause()
        assert listing.rows[listing.next_row].text.endswith("mov $3, %edx")
        assert listing.rows[listing.ran_row].text.endswith("lea msg(%rip), %rsi")
