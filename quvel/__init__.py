"""The ``quvel`` command line and the end-to-end demo, built on :mod:`quvel_store` and :mod:`quvel_ws`."""

from quvel._version import __version__

__all__ = ["__version__"]
