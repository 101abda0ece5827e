"""The ``mmst`` command line: ``index``, ``search`` and ``info``, built on the public API only."""

from .main import main

__all__ = ["main"]
