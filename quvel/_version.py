"""The distribution version; quvel_ws owns it so the library never imports the CLI package."""

from quvel_ws._version import __version__

__all__ = ["__version__"]
