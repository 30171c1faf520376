"""Printing results for people: tables that stay whole in pipes and log files."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` whole: in a pipe or a file it is never squeezed into cut-short cells.

    In a terminal rich fits the table to the window; elsewhere the table gets the width
    it needs, so numbers such as ``22,710,528`` never become ``22,71…``.
    """
    width = None if console.is_terminal else max(console.width, console.measure(table).maximum)
    console.print(table, width=width)
