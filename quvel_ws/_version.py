"""The version of the quvel distribution, owned by the library (the CLI package re-exports it)."""

__version__ = "0.1.0"
