"""The emulated machine: Unicorn with real paging, a GDT, MSRs and a per-CPU area (core), fast
register access (regfile), the page tables and their walker (paging), the CPU rules Unicorn
does not follow, modelled per the SDM and APM (modelled), and exceptions as recorded (faults)."""
