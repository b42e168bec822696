"""Tables for people and for pipes: a rich table on a terminal, plain aligned lines otherwise.

Piped output is read by ``grep``, ``awk`` and log collectors: box-drawing characters, colour and
cells cut to a terminal width would garble it, so when stdout is not a terminal a table is its
title, a header line and one line per row, columns padded with two spaces and nothing shortened.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.cli.common import console


def plain_lines(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """``columns`` and ``rows`` as left-aligned text lines, each cell whole."""
    widths = [len(c) for c in columns]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in [list(columns), *[list(r) for r in rows]]:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return lines


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


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,000 tasks``."""
    return f"{count:,} {noun if count == 1 else plural_form or noun + 's'}"
