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

- ``os.posix_spawn``/``os.posix_spawnp``: the ``env`` they are given gets the attempt's marker;
- ``os.system`` (C ``system()`` forks without Python's at-fork hooks): from an attempt's thread,
  the command runs through ``/bin/sh -c`` as ``system()`` does, with the marker in its environment
  and the same return value (the wait status);
- ``threading.Thread.start``: a thread started from an attempt's thread marks with the attempt's
  marker too, so what a step's own threads (or its thread pools) start is the attempt's.

At its end (success, failure, timeout, cancel) the attempt kills what carries its marker
(:func:`steps.runtime.procs.kill_marked`), only when it started something: the ``/proc`` scan costs
5-50 ms. A thread the step started and left running keeps the attempt's marker; what it starts
after the attempt's end carries the run's prefix all the same and ends with the run.
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


def _marked_spawn(original: Any) -> Any:
    @functools.wraps(original)
    def spawn(path: Any, argv: Any, env: Any, *positional: Any, **options: Any) -> int:
        marker = _current()
        if marker is not None:
            env = {**env, MARKER: marker}
            _started.add(marker)
        return int(original(path, argv, env, *positional, **options))

    return spawn


def _marked_system(original: Any) -> Any:
    @functools.wraps(original)
    def system(command: str) -> int:
        marker = _current()
        if marker is None:
            return int(original(command))
        _started.add(marker)
        code = subprocess.call(["/bin/sh", "-c", command], env={**os.environ, MARKER: marker})
        return code << 8 if code >= 0 else -code  # system()'s wait status, as os.system returns it

    return system


def _marked_thread_start(original: Any) -> Any:
    @functools.wraps(original)
    def start(self: threading.Thread) -> None:
        marker = _current()
        if marker is not None:
            run = self.run

            def marked_run() -> None:
                ident = threading.get_ident()
                _markers[ident] = marker
                try:
                    run()
                finally:
                    _markers.pop(ident, None)

            self.run = marked_run  # type: ignore[method-assign]
        original(self)

    return start


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        subprocess.Popen.__init__ = _marked_popen_init(subprocess.Popen.__init__)  # type: ignore[method-assign]
        os.posix_spawn = _marked_spawn(os.posix_spawn)
        os.posix_spawnp = _marked_spawn(os.posix_spawnp)
        os.system = _marked_system(os.system)
        threading.Thread.start = _marked_thread_start(threading.Thread.start)  # type: ignore[method-assign]
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
