"""The package version: part of every cache key, and the one place it is written down."""

__version__ = "0.1.0"
