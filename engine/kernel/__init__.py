"""The kernel code: the entry_64.S rendition, its macros, and the assembled image."""

#: The kernels a scenario can choose with ``[machine] kernel``, the default first.
KERNELS: tuple[str, ...] = ("v5.8.13",)
