"""Plain text for pipes and logs: aligned columns with every cell whole, and counted nouns.

Piped output is read by ``grep``, ``awk`` and log collectors: box-drawing characters, colour and
cells cut to a terminal's width would garble it. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence


def plain_lines(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A header line and one line per row, columns left-aligned and two spaces apart, nothing cut."""
    widths = [len(c) for c in columns]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    return [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [list(columns), *[list(r) for r in rows]]
    ]


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,000 tasks``."""
    return f"{count:,} {noun if count == 1 else plural_form or noun + 's'}"
