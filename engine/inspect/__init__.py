"""Questions about a recorded run at any step: memory (x), page walks, descriptor tables.

Layered above engine.run: ``machine_at`` (the run, its memory log, the step's
registers), ``pagewalk`` (the walk under a root), ``expr`` (address expressions),
``examine`` (``x``), ``info`` (``info gdt|tss|idt|cr|msr``).  Results are frozen
dataclasses; the UI and the CLI only render them.
"""
