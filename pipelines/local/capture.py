"""In-process attempts print into their own task log, as subprocess attempts do.

A step run in a thread of the runner (``--in-process``) shares the runner's ``sys.stdout`` and
``sys.stderr``; without this its ``print()`` lands on the terminal, under the live view, and
``headrace logs`` shows nothing. :func:`capture_into` swaps both streams once for a router that
sends what a registered thread writes to that thread's log file and everything else to the
original stream, so the live view and the runner's own output are untouched.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO


class _Router:
    """A text stream writing to the calling thread's log file, else to ``original``."""

    def __init__(self, original: TextIO, targets: dict[int, TextIO]) -> None:
        self.original = original
        self._targets = targets

    def _stream(self) -> TextIO:
        return self._targets.get(threading.get_ident(), self.original)

    def write(self, text: str) -> int:
        return self._stream().write(text)

    def flush(self) -> None:
        self._stream().flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the original's
        return getattr(self.original, name)


_targets: dict[int, TextIO] = {}
_install_lock = threading.Lock()


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, _targets)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, _targets)


@contextmanager
def capture_into(log_path: Path) -> Iterator[None]:
    """While the block runs, this thread's prints (stdout and stderr) go to ``log_path``."""
    _install()
    ident = threading.get_ident()
    with log_path.open("a", encoding="utf-8", buffering=1) as log:
        _targets[ident] = log
        try:
            yield
        finally:
            _targets.pop(ident, None)
