"""The kernel code: the entry_64.S rendition, its macros, and the assembled image."""
