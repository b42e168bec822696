"""In-process attempts mark what they start with their own marker, so it ends with the task.

A subprocess attempt's processes inherit ``<run_id>/<task>/<attempt>`` from the task process's
environment (see :mod:`steps.runtime.procs`). In-process attempts share the runner's process and so its
environment, which carries only the run's marker (``<run_id>/in-process``, set by
:mod:`pipelines.local.keeper`). A child the step's thread starts is found through that thread's
process tree, but one it detaches (fork, ``setsid``, fork again: a daemon) is re-parented to init
and leaves the tree; with only the run's marker it lived until the run ended. So, installed once
in the runner's process when its first in-process attempt starts:

- ``os.register_at_fork``: a child forked by an attempt's thread (``os.fork``, multiprocessing's
  ``fork`` start method, a daemonizing library) puts the attempt's marker in its environment
  before any of the step's code runs in it, and everything it starts or execs inherits it;
- ``subprocess.Popen`` (``asyncio``'s subprocesses and ``os.popen`` go through it): called from an
  attempt's thread, the child's environment (the runner's, or the ``env`` given) gets the
  attempt's marker.

At its end (success, failure, timeout, cancel) the attempt kills what carries its marker
(:func:`steps.runtime.procs.kill_marked`), only when it started something: the ``/proc`` scan costs
5-50 ms. Not covered, and ended with the run instead: processes started by a thread the step
itself starts, and those started through ``os.system`` or ``os.posix_spawn`` with the runner's
environment (neither runs Python code in the parent or the child).
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

from steps.runtime.procs import MARKER

#: The attempt marker of each registered thread (``threading.get_ident()``).
_markers: dict[int, str] = {}
#: Markers whose thread started at least one process (their attempt's end sweeps ``/proc``).
_started: set[str] = set()
_install_lock = threading.Lock()
_installed = False


def _current() -> str | None:
    return _markers.get(threading.get_ident())


def _before_fork() -> None:
    marker = _current()
    if marker is not None:
        _started.add(marker)


def _after_fork_in_child() -> None:
    # The child's only thread is the one that forked, with the same ident.
    marker = _current()
    if marker is not None:
        os.environ[MARKER] = marker


def _marked_popen_init(original: Any) -> Any:
    @functools.wraps(original)
    def __init__(self: subprocess.Popen[Any], args: Any, *positional: Any, **options: Any) -> None:
        marker = _current()
        if marker is not None and len(positional) < 10:  # else ``env`` was given by position: left as is
            env = options.get("env")
            options["env"] = {**(os.environ if env is None else env), MARKER: marker}
            _started.add(marker)
        original(self, args, *positional, **options)

    return __init__


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        subprocess.Popen.__init__ = _marked_popen_init(subprocess.Popen.__init__)  # type: ignore[method-assign]
        _installed = True


@contextlib.contextmanager
def marking(marker: str) -> Iterator[None]:
    """While the block runs, processes this thread starts carry ``marker`` (and all they start)."""
    _install()
    ident = threading.get_ident()
    _markers[ident] = marker
    try:
        yield
    finally:
        _markers.pop(ident, None)


def started_any(marker: str) -> bool:
    """Whether the thread marking with ``marker`` started a process (worth a sweep at its end)."""
    return marker in _started


def forget(marker: str) -> None:
    """The attempt is over and swept: drop what was kept about it."""
    _started.discard(marker)
