"""Run inside gdb (gdb -batch -x): single-step one system call of a real kernel.

Read by scripts/oracle, never imported.  The settings come as JSON in $ORACLE_CFG:
port, entry (entry_SYSCALL_64), do_syscall_64, rcx (where the scenario's syscall returns:
a hardware breakpoint on the entry fires only for that system call, not for /init's own),
depth ("entry": step over the call to do_syscall_64), exceptions (the addresses of the
asm_exc_* entry points: the trace ends at the first instruction of one), max_steps, out.  Writes
{steps:[{rip, bytes, asm, regs}], pt_regs:{at, after, addr}, null_steps_dropped, end}.
A step's regs are the state before it; the last step is the user state (CS & 3 == 3).
"""

import json
import os

import gdb  # type: ignore[import-not-found]

with open(os.environ["ORACLE_CFG"]) as _f:
    cfg = json.load(_f)
REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
        "fs_base", "gs_base", "k_gs_base", "cr0", "cr2", "cr3", "cr4", "efer")  # fmt: skip
MASK = (1 << 64) - 1


def regs() -> dict:
    frame = gdb.selected_frame()
    out = {}
    for r in REGS:
        v = frame.read_register(r)
        try:
            out[r] = int(v) & MASK
        except gdb.error:  # flags and pointer types
            out[r] = int(v.cast(gdb.lookup_type("long"))) & MASK
    return out


def qwords(addr: int, n: int) -> list:
    raw = gdb.selected_inferior().read_memory(addr, 8 * n).tobytes()
    return [int.from_bytes(raw[8 * i : 8 * i + 8], "little") for i in range(n)]


def main() -> None:
    gdb.execute("set pagination off")
    gdb.execute("set confirm off")
    gdb.execute("set architecture i386:x86-64")
    gdb.execute(f"target remote 127.0.0.1:{cfg['port']}")
    gdb.execute(f"hbreak *{cfg['entry']:#x}")
    gdb.execute(f"condition 1 $rcx == {cfg['rcx']:#x}")
    result: dict = {"steps": [], "pt_regs": {}, "null_steps_dropped": 0, "end": ""}
    try:
        gdb.execute("continue")
        gdb.execute("delete 1")
        arch = gdb.selected_frame().architecture()
        before = regs()
        while True:
            if before["cs"] & 3 == 3:
                result["steps"].append({"rip": before["rip"], "regs": before, "final": True})
                result["end"] = "user mode"
                break
            if len(result["steps"]) >= cfg["max_steps"]:
                result["end"] = "step limit"
                break
            pc = before["rip"]
            if pc in cfg["exceptions"]:  # an exception's entry: the trace says where it went
                result["steps"].append({"rip": pc, "bytes": "", "asm": "", "regs": before,
                                        "exception": True})  # fmt: skip
                result["end"] = "exception entry"
                break
            insn = arch.disassemble(pc)[0]
            code = gdb.selected_inferior().read_memory(pc, insn["length"]).tobytes()
            step = {"rip": pc, "bytes": code.hex(), "asm": insn["asm"], "regs": before}
            result["steps"].append(step)
            is_call = code[:1] == b"\xe8"
            target = (pc + 5 + int.from_bytes(code[1:5], "little", signed=True)) & MASK
            if is_call and target == cfg["do_syscall_64"]:
                addr = before["rdi"]
                result["pt_regs"]["addr"] = addr
                result["pt_regs"]["at"] = qwords(addr, 21)
                if cfg["depth"] == "entry":
                    # Not `nexti`: with a ptrace parent other tasks run (and return from
                    # do_syscall_64) meanwhile; only this task's kernel stack has this RSP.
                    bp = gdb.Breakpoint(f"*{pc + len(code):#x}", type=gdb.BP_HARDWARE_BREAKPOINT,
                                        internal=True)  # fmt: skip
                    bp.condition = f"$rsp == {before['rsp']:#x}"
                    gdb.execute("continue", to_string=True)
                    bp.delete()
                    result["pt_regs"]["after"] = qwords(addr, 21)
                    before = regs()
                    continue
            for _ in range(8):  # QEMU's gdbstub may report a step that ran nothing
                gdb.execute("stepi", to_string=True)
                after = regs()
                if after != before:
                    break
                result["null_steps_dropped"] += 1
            before = after
    except gdb.error as exc:
        result["end"] = f"gdb: {exc}"
    with open(cfg["out"], "w") as f:
        json.dump(result, f)


main()
