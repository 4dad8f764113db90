"""Tables the CLI prints: every id, address and host whole, on one line, ready to copy.

rich fits a table to the terminal (80 columns when the output is piped) by shortening cells
with "…" or folding them over lines, which made ids unusable in the next command. Here a column
whose cells are single words (ids, addresses, hosts, statuses) never wraps nor shrinks; columns
of prose wrap between words, and no word is cut. A table still too wide for the terminal is not
cropped: its lines run on (the terminal wraps them). Piped output is as wide as its content.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

# A prose column keeps its longest word whole up to this width (a URL in an error message).
LONGEST_KEPT_WORD = 60


def make_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, show_header: bool = True) -> Table:
    """A rich table of ``rows`` under ``headers`` (strings; empty headers allowed)."""
    cells = [list(row) for row in rows]
    table = Table(show_header=show_header, header_style="bold")
    for index, header in enumerate(headers):
        column = [row[index] for row in cells]
        words = [word for cell in column for word in cell.split()]
        longest = max((len(word) for word in words), default=0)
        if all(len(cell.split()) <= 1 for cell in column):
            table.add_column(header, no_wrap=True, min_width=max(longest, len(header)))
        else:
            table.add_column(header, min_width=min(longest, LONGEST_KEPT_WORD), overflow="fold")
    for row in cells:
        table.add_row(*row)
    return table


def console() -> Console:
    """A terminal's own width; piped output (``| grep``, a file) is never cut to 80 columns."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=10_000)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, show_header: bool = True) -> None:
    table = make_table(headers, rows, show_header=show_header)
    console().print(table, highlight=False, markup=False, crop=False)
