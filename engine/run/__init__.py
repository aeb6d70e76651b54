"""One SYSCALL round trip on the machine: entering user mode (launch), the session that drives
the machine and dispatches its hooks (session), the step recorder (recorder), the modelled C
side of do_syscall_64 (syscalls), and traces served from the on-disk store (cached)."""
