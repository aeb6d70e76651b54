"""A gdb remote stub over a recorded run: gdb steps, reverse-steps and reads memory
of the emulated machine at any step.  Sockets only; no UI code."""

from engine.gdbstub.protocol import Stub
from engine.gdbstub.replay import Replay, ReplayError
from engine.gdbstub.server import DEFAULT_HOST, serve, write_symbol_file

__all__ = ["DEFAULT_HOST", "Replay", "ReplayError", "Stub", "serve", "write_symbol_file"]
