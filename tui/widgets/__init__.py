"""Panels of the debugger; each renders one piece of the trace."""
