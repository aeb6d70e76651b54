"""The kernel code: the entry_64.S renditions, their macros, and the assembled image.

``KERNELS`` lists the kernels a scenario can choose with ``[machine] kernel``;
``spec(name)`` describes one (see :mod:`engine.kernel.variants`).
"""

from engine.kernel.variants import DEFAULT_KERNEL, KERNELS, SPECS, KernelSpec, spec

__all__ = ["DEFAULT_KERNEL", "KERNELS", "SPECS", "KernelSpec", "spec"]
