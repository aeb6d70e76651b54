"""One Screen per mode of the debugger."""
