"""A task owns its processes: everything a step starts ends with the task.

A step may start processes in its own session, detach them (``start_new_session``, a double
fork) or hand work to a child that starts more (local SageMaker training, local Spark's JVM and
Python workers). None of them may outlive the task: a leftover keeps writing outputs behind
``headrace resume`` and holds memory the next task was sized for. Four mechanisms, each for the
case the others miss:

- **a marker in the environment** (:data:`MARKER`, ``<run_id>/<task>/<attempt>``): every
  descendant inherits it, detached or not, so :func:`kill_marked` finds a task's (or a run's)
  processes by scanning ``/proc/*/environ`` after the task process itself is gone;
- **the task process is a child subreaper** (``PR_SET_CHILD_SUBREAPER``): detached grandchildren
  are re-parented to it instead of to init, so at its end :func:`kill_descendants` reaches them
  through ``/proc/<pid>/task/*/children`` without a full scan;
- **parent-death signals** (``PR_SET_PDEATHSIG``): a task process gets SIGTERM when its runner (or
  fork server) dies, and kills its tree before it exits (:func:`own_descendants`); the children
  backends start (:func:`owned_popen_options`) get SIGKILL when the task dies;
- the local runner's keeper (``pipelines.local.keeper``) sweeps the run's marker when the runner
  itself is killed.

Linux only; elsewhere every function is a harmless no-op. Standard library only: this module is
imported by every task process before the step runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:  # imported where used: task processes import this module and never need it
    import subprocess

#: The environment variable that marks every process of a task: ``<run_id>/<task>/<attempt>``.
MARKER = "HEADRACE_TASK"

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_LINUX = sys.platform.startswith("linux")


_libc: Any = None


def _prctl_function() -> Any:
    """libc's ``prctl``, loaded once (a forked child must not import anything: see below)."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc.prctl


def _prctl(option: int, value: int) -> bool:
    if not _LINUX:
        return False
    return bool(_prctl_function()(option, value, 0, 0, 0) == 0)


def set_parent_death_signal(sig: int) -> bool:
    """Have the kernel send ``sig`` to this process when the thread that started it ends."""
    return _prctl(_PR_SET_PDEATHSIG, int(sig))


def become_subreaper() -> bool:
    """Adopt orphaned descendants (detached grandchildren) instead of letting init take them."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's), from ``/proc/<pid>/task/*/children``."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        found.extend(_thread_children(pid, int(tid)))
    return found


def _thread_children(pid: int, tid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
            return [int(item) for item in handle.read().split()]
    except (OSError, ValueError):
        return []


def descendants(pid: int, *, thread: int | None = None) -> list[int]:
    """Every live descendant of ``pid`` (only those started by ``thread`` when given), parents first."""
    first = _thread_children(pid, thread) if thread is not None else children(pid)
    found: list[int] = []
    pending = list(first)
    while pending:
        child = pending.pop(0)
        if child in found:
            continue
        found.append(child)
        pending.extend(children(child))
    return found


def _kill(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def kill_descendants(pid: int | None = None, *, thread: int | None = None, timeout: float = 5.0) -> int:
    """SIGKILL every descendant of ``pid`` (default: this process) until none is left; returns
    how many were killed. Our own children are reaped (no zombies); a descendant that forks while
    it is being killed is caught by the next pass (each pass stops the whole tree first)."""
    me = os.getpid() if pid is None else pid
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = [p for p in descendants(me, thread=thread) if _alive(p)]
        if not tree:
            break
        _kill(tree, signal.SIGSTOP)  # nobody forks while we collect the rest
        tree = [p for p in descendants(me, thread=thread) if _alive(p)] or tree
        _kill(tree)
        killed.update(tree)
        if me == os.getpid():
            _reap(tree)
            _reap(children(me))  # descendants re-parented to us (subreaper) while we killed
        time.sleep(0.01)
    return len(killed)


def _alive(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie (a zombie is only waiting for its parent's wait())."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            state = handle.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def marked(prefix: str, *, exclude: Iterable[int] = ()) -> list[int]:
    """Live processes whose :data:`MARKER` starts with ``prefix`` (e.g. ``run-1/`` for a whole run)."""
    if not _LINUX:
        return []
    skip = {os.getpid(), *exclude}
    needle = f"{MARKER}={prefix}".encode()
    found: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in skip:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if any(item.startswith(needle) for item in environ.split(b"\0")) and _alive(int(name)):
            found.append(int(name))
    return found


def kill_marked(prefix: str, *, timeout: float = 5.0, exclude: Iterable[int] = ()) -> int:
    """SIGKILL every live process marked ``prefix`` (see :func:`marked`) until none is left."""
    if not prefix:
        raise ValueError("kill_marked needs a non-empty prefix")
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = marked(prefix, exclude=exclude)
        if not found:
            break
        _kill(found, signal.SIGSTOP)
        _kill(found)
        killed.update(found)
        _reap(found)
        time.sleep(0.01)
    return len(killed)


def own_descendants(on_exit: Callable[[], None] | None = None) -> None:
    """Make this task process own its tree: adopt orphans, and on SIGTERM (the runner's stop, or
    the parent-death signal when the runner or fork server dies) kill the tree and exit 143.

    The normal end calls :func:`kill_descendants` itself (the entrypoint does, after the step).
    """
    if not _LINUX:
        return
    become_subreaper()

    def stop(signum: int, frame: Any) -> None:
        kill_descendants()
        if on_exit is not None:
            with contextlib.suppress(Exception):
                on_exit()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def owned_popen_options() -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments for a child that must die with the task that starts
    it: its own session (so it can be stopped as a group) and SIGKILL when the thread that
    started it ends (the task process, or an in-process step's thread).

    The pre-exec hook only calls an already-loaded libc function: importing in a child forked
    from a threaded process can deadlock on the import lock.
    """
    if not _LINUX:
        return {"start_new_session": True}
    prctl = _prctl_function()
    kill = int(signal.SIGKILL)

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)

    return {"start_new_session": True, "preexec_fn": die_with_parent}


def keep(prefix: str) -> None:
    """The keeper process (``python -m steps.runtime.procs PREFIX``): wait until the runner closes our
    stdin or dies (end of file either way), then kill every process marked ``prefix``."""
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:  # pragma: no cover - PEP 475 retries reads
            continue
        except OSError:
            break
    kill_marked(prefix)


if __name__ == "__main__":
    keep(sys.argv[1])


def leave_forked_child(work: Callable[[], int], learn: Callable[[], None]) -> NoReturn:
    """Run a child forked from a preloaded server (the fork server, a warm framework interpreter)
    and leave it as ``python`` would: at-exit handlers run and streams flushed, but through
    ``os._exit``, so the libraries the server imported are not torn down in every child (the
    teardown cost ~0.3 s per process). ``learn`` records what the work imported for the server's
    next start. Anything raised, setup included, is printed and exits 1."""
    code = 1
    try:
        code = work()
        import atexit

        atexit._run_exitfuncs()
        learn()
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def address_space() -> int:
    """This process's virtual address space in bytes (0 where /proc cannot tell): what a preloading
    server reserved before forking, added to each child's ``RLIMIT_AS``."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def end_server(*processes: subprocess.Popen[Any]) -> None:
    """End preloading servers (the fork server, warm interpreters): closing its stdin asks each to
    stop, all at once (each takes ~20 ms to leave, at the end of every run); one that has not
    within 5 s is killed."""
    import subprocess
    import time

    for process in processes:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
    deadline = time.monotonic() + 5
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
