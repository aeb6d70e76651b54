"""Cut the real-kernel reference traces down to what the oracle tests compare.

Usage: python tests/engine/oracle/extract.py TRACES_DIR

TRACES_DIR holds v6.1/ and v6.12/ with case_X_entry.json and case_X_full.json (for
c_side.json: the order of the C functions entered and the kstack offset), and
v6.1/skylake-client/ with case_X_entry.txt, the same 6.1 cases on QEMU's
Skylake-Client model (text only: :func:`from_text` rebuilds the JSON form, writing
skylake-client/v6.1_X.json here),
single-step traces of Debian's 6.1.192 and 6.12.117 kernels under QEMU 7.2 TCG
(-cpu max,la57=off; nokaslr pti=on; no PCID) taken with gdb.  Kept per step: the
instruction (bytes, disassembly, symbol) and the registers before it; pt_regs at
and after the call; the exit.  From the full 6.12 traces, the compiled SYSRET checks
at the end of do_syscall_64.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

KEEP = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "fs_base", "gs_base",
        "k_gs_base", "cr3")  # fmt: skip


def cut(doc: dict) -> dict:
    steps = [
        {
            "sym": s["sym"],
            "bytes": s["bytes"],
            "asm": s["asm"],
            "regs": {k: s["regs"][k] for k in KEEP},
        }
        for s in doc["steps"]
    ]
    pt = {p["where"].split(" (")[0]: p["named"] for p in doc["pt_regs"]}
    return {"case": doc["case"], "exit": doc["exit"].lower(), "steps": steps, "pt_regs": pt}


def compiled_checks(doc: dict) -> list[str]:
    """The instructions of do_syscall_64 from the first read of regs->ip to the sete."""
    body = [s for s in doc["steps"] if s["sym"] and s["sym"].startswith("do_syscall_64+")]
    start = next(i for i, s in enumerate(body) if s["asm"].startswith("mov    0x80(%rbx)"))
    end = next(i for i, s in enumerate(body) if s["asm"].startswith("sete"))
    return [s["asm"] for s in body[start : end + 1]]


def _assignments(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split() if "=" in pair)


def from_text(text: str) -> dict:
    """A trace's text form as :func:`cut` would have made it from the JSON: the state on
    entry in the header, then per line the instruction and what it changed (the
    registers before each step are the entry state with the changes so far applied),
    the last line the full user state, then the two pt_regs dumps."""
    lines = text.splitlines()
    head = _assignments(lines[0])
    head["case"] = lines[0].split()[2]  # "# case a depth=entry exit=SYSRET ..."
    state = _assignments(lines[1].split("state on entry:", 1)[1])
    steps: list[dict] = []
    pt: dict[str, dict[str, str]] = {}
    where = None
    for line in lines[2:]:
        if line.startswith("# pt_regs "):
            where = line[len("# pt_regs ") :].split(" (")[0]
            pt[where] = {}
        elif where is not None and line.strip():
            name, value = line.split()
            pt[where][name] = f"{int(value, 16):#x}"
        elif "[back in user mode]" in line:
            final = _assignments(line.split("[back in user mode]", 1)[1])
            steps.append(
                {"sym": "user", "bytes": None, "asm": None, "regs": {k: final[k] for k in KEEP}}
            )
        elif line[:5].isdigit():
            _index, rip, sym, raw, rest = line.split(None, 4)
            asm, _, changed = rest.partition("=>")
            regs = dict(state, rip=rip)
            steps.append(
                {
                    "sym": sym.strip("<>"),
                    "bytes": raw,
                    "asm": asm.strip(),
                    "regs": {k: regs[k] for k in KEEP},
                }
            )
            state = dict(state, **_assignments(changed))
    return {"case": head["case"], "exit": head["exit"].lower(), "steps": steps, "pt_regs": pt}


#: The entry code's own symbols in the full traces: not C.
ASM_SYMBOLS = (
    "entry_SYSCALL_64", "syscall_return_via_sysret", "entry_SYSRETQ_unsafe_stack",
    "swapgs_restore_regs_and_return_to_usermode", "native_irq_return_iret", "user",
)  # fmt: skip


def c_side(doc: dict, entry: dict) -> dict:
    """From a full trace (stepped into the C): the C functions entered, in order (a step at
    +0x0 of a symbol; the compiler's .constprop suffix dropped), the pt_regs fields the C
    changed (the entry trace's two dumps, *entry*: the full trace has only the first),
    and the random kstack offset's numbers: the offset read,
    what ``sub %rax,%rsp`` moved RSP by, what RDTSC returned, the next offset written."""
    steps = doc["steps"]
    entered = []
    for s in steps:
        name, _, off = (s["sym"] or "").partition("+")
        if off == "0x0" and not name.startswith(ASM_SYMBOLS):
            entered.append(name.split(".")[0])
    pt = {p["where"].split(" (")[0]: p["named"] for p in entry["pt_regs"]}
    at, after = pt["at call do_syscall_64"], pt["after do_syscall_64 returned"]

    def reg_after(i: int, reg: str) -> int:
        return int(steps[i + 1]["regs"][reg], 16)

    asm = [s["asm"] or "" for s in steps]
    read = next(i for i, a in enumerate(asm) if re.match(r"mov\s+0x14[0-9a-f]{2}\(%r\w+\),%eax", a))
    sub = next(i for i, a in enumerate(asm) if a.startswith("sub    %rax,%rsp"))
    tsc = next(i for i, a in enumerate(asm) if a.startswith("rdtsc"))
    write = next(i for i, a in enumerate(asm) if re.match(r"mov\s+%ecx,0x14[0-9a-f]{2}\(%rsi\)", a))
    return {
        "entered": entered,
        "pt_regs_changed": sorted(k for k in at if at[k] != after[k]),
        "kstack": {
            "offset": reg_after(read, "rax") & 0xFFFFFFFF,
            "alloca": int(steps[sub]["regs"]["rax"], 16),
            "tsc": reg_after(tsc, "rax") & 0xFFFFFFFF,
            "next": int(steps[write]["regs"]["rcx"], 16) & 0xFFFFFFFF,
        },
    }


def write_c_side(src: str) -> None:
    """tests/engine/oracle/c_side.json: :func:`c_side` of every full trace."""
    out = {}
    for kernel in ("v6.1", "v6.12"):
        for full in sorted((Path(src) / kernel).glob("case_*_full.json")):
            case = full.name.split("_")[1]
            entry = json.loads((Path(src) / kernel / f"case_{case}_entry.json").read_text())
            out[f"{kernel}_{case}"] = c_side(json.loads(full.read_text()), entry)
    (Path(__file__).parent / "c_side.json").write_text(json.dumps(out, indent=1) + "\n")


def main(src: str) -> None:
    out = Path(__file__).parent
    write_c_side(src)
    for kernel in ("v6.1", "v6.12"):
        for entry in sorted((Path(src) / kernel).glob("case_*_entry.json")):
            case = entry.name.split("_")[1]
            data = cut(json.loads(entry.read_text()))
            full = Path(src) / kernel / f"case_{case}_full.json"
            if kernel == "v6.12" and full.exists():
                data["compiled_checks"] = compiled_checks(json.loads(full.read_text()))
            (out / f"{kernel}_{case}.json").write_text(json.dumps(data, indent=0) + "\n")
    for entry in sorted((Path(src) / "v6.1" / "skylake-client").glob("case_*_entry.txt")):
        case = entry.name.split("_")[1]
        data = from_text(entry.read_text())
        (out / "skylake-client").mkdir(exist_ok=True)
        (out / "skylake-client" / f"v6.1_{case}.json").write_text(json.dumps(data, indent=0) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
