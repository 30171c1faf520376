"""The ``condensa`` command line."""

from condensa.cli.main import main

__all__ = ["main"]
