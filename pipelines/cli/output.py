"""Tables for people and for pipes: a rich table on a terminal, plain aligned lines otherwise
(:mod:`pipelines.plain`): when stdout is not a terminal a table is its title, a header line and
one line per row, nothing shortened."""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.cli.common import console
from pipelines.plain import plain_lines


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on a terminal; on a pipe, ``title`` then :func:`plain_lines`."""
    if console.is_terminal:
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    out = console.file
    out.write(title + "\n")
    for line in plain_lines(columns, rows):
        out.write(line + "\n")
    out.flush()
