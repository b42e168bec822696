"""A fork server for subprocess attempts: the entrypoint's imports paid once per run, not per task.

Starting ``python -m steps run ...`` costs ~60 ms of CPU before the step runs (the interpreter,
``site``, then headrace's own modules), which is most of a trivial task, and a real task then
imports the pipeline module (which builds the whole graph: O(tasks) per task) and its libraries
(pyarrow, pandas, DuckDB, scikit-learn: seconds). Like the ``forkserver`` start method of
:mod:`multiprocessing` with preloading, the runner starts one server process per run that imports
the entrypoint and the pipeline's module, then what its steps will import (:mod:`pipelines.local.preload`)
one module at a time between requests, and forks one child per attempt (a task forked before a
library was preloaded imports it itself). The child is a fresh process in its own session, with its own log
file (starting with what the preloaded imports printed), working folder, memory limit (plus the
address space the preloaded libraries reserved) and death signal, and runs the very
``steps.__main__.main(["run", ...])`` the command line runs; it finds its modules already imported,
as a pod finds them installed on its image, and its step runs on a fresh copy of their state.

A task is forked once what it imported itself in earlier runs (its ``needs``, learned per task:
:func:`pipelines.local.preload.read_learned`) is imported here: a task forked before the libraries
it uses were preloaded would import them again in its own process, on the same cores, while the
server imports them too (the first task of the README's job spent 0.35 s of its 0.6 s that way).

Protocol (JSON lines): the runner writes ``{"id", "argv", "cwd", "log", "address_space", "marker",
"task", "needs"}`` on the server's stdin and reads ``{"id", "pid"}`` when the child started, ``{"exit": pid, "code",
"maxrss"}`` when it ended. When the server cannot start or dies, the runner falls back to exec.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from steps.runtime.procs import (
    MARKER,
    address_space,
    become_subreaper,
    end_server,
    kill_descendants,
    leave_forked_child,
    set_parent_death_signal,
)

#: headrace modules imported before forking; the pipeline's own come after (pipelines.local.preload).
PRELOAD = ("steps.__main__", "steps.runtime.run", "steps.runtime.task", "steps.runtime.values", "pipelines")

#: (exit code, peak RSS bytes); the code is None when the server died and the child's end is unknown.
ExitCallback = Callable[[int | None, int | None], None]


class ForkServerError(RuntimeError):
    """The fork server is gone or answered nonsense; the caller falls back to exec."""


class ForkServer:
    """The runner's handle on its fork server; use from the runner's main thread."""

    def __init__(
        self, env: Mapping[str, str], cwd: str, preload: Sequence[str] = (), learned_file: str | None = None
    ) -> None:
        """Start the server; it imports ``preload`` (module names, the pipeline's ``module:object``
        before its first fork, the others between requests), then what ``learned_file`` says earlier
        runs' tasks imported themselves; children append theirs to it, for the next run's server."""
        self._needs: dict[str, list[str]] = {}
        if learned_file:
            from pathlib import Path

            from pipelines.local.preload import read_learned

            learned = read_learned(Path(learned_file))
            preload = list(dict.fromkeys([*preload, *learned.modules]))
            self._needs = learned.needs
        command = [sys.executable, "-m", "pipelines.local.forkserver", *preload]
        if learned_file:
            command[3:3] = ["--learned", learned_file]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd or None,
            start_new_session=True,  # Ctrl-C is the runner's to handle, not the server's
        )
        self._lock = threading.Lock()
        self._callbacks: dict[int, ExitCallback] = {}
        self._early: dict[int, tuple[int | None, int | None]] = {}
        self._replies: dict[int, int] = {}
        self._reply_ready = threading.Condition(self._lock)
        self._next_id = 0
        self._dead = False
        threading.Thread(target=self._read, name="forkserver-reader", daemon=True).start()

    @property
    def alive(self) -> bool:
        return not self._dead and self.process.poll() is None

    def spawn(
        self,
        argv: list[str],
        *,
        cwd: str,
        log: str,
        address_space: int | None,
        marker: str = "",
        task: str = "",
        timeout: float = 30.0,
    ) -> int:
        """Start ``python -m steps <argv>`` as a forked child; returns its pid (= its process group).

        ``marker`` becomes the child's :data:`steps.runtime.procs.MARKER` (inherited by all it starts);
        the server first imports what ``task`` imported itself in earlier runs, and the child
        records what it imports beyond that under ``task``."""
        if not self.alive or self.process.stdin is None:
            raise ForkServerError("the fork server is not running")
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
        request = {"id": request_id, "argv": argv, "cwd": cwd, "log": log, "address_space": address_space}
        line = json.dumps({**request, "marker": marker, "task": task, "needs": self._needs.get(task, [])})
        try:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            self._dead = True
            raise ForkServerError(f"the fork server went away ({error})") from error
        with self._reply_ready:
            if not self._reply_ready.wait_for(lambda: request_id in self._replies or self._dead, timeout):
                # Kill it so the request can never run late next to the exec fallback (a child it
                # forked meanwhile dies with it: PR_SET_PDEATHSIG).
                self._dead = True
                self.process.kill()
                raise ForkServerError("the fork server did not answer")
            if request_id not in self._replies:
                raise ForkServerError("the fork server died")
            return self._replies.pop(request_id)

    def on_exit(self, pid: int, callback: ExitCallback) -> None:
        """Call ``callback(code, maxrss)`` once child ``pid`` ended (at once if it already did)."""
        with self._lock:
            early = self._early.pop(pid, None)
            if early is None:
                self._callbacks[pid] = callback
        if early is not None:
            callback(*early)

    def close(self) -> None:
        end_server(self.process)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if "exit" in message:
                pid = int(message["exit"])
                result: tuple[int | None, int | None] = (int(message["code"]), message.get("maxrss"))
                with self._lock:
                    callback = self._callbacks.pop(pid, None)
                    if callback is None:
                        self._early[pid] = result
                if callback is not None:
                    callback(*result)
            elif "pid" in message:
                with self._reply_ready:
                    self._replies[int(message["id"])] = int(message["pid"])
                    self._reply_ready.notify_all()
        with self._reply_ready:
            self._dead = True
            orphans = list(self._callbacks.items())
            self._callbacks.clear()
            self._reply_ready.notify_all()
        for _, callback in orphans:  # the server died: its children died with it
            callback(None, None)


# ----------------------------------------------------------------------------- the server process


#: The runner's end of the protocol: a copy of the server's stdout made at start, because fd 1
#: itself is pointed at a capture file while a module is imported.
_PROTOCOL_FD = 1
#: The children not yet reported, and whether the loop is itself reaping, forking or writing (the
#: SIGCHLD handler then leaves the reaping to it).
_TASKS: set[int] = set()
_BUSY = False


def _send(message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        written = os.write(_PROTOCOL_FD, data)
        data = data[written:]


def _reap() -> None:
    """Report every ended child: ``{"exit": pid, "code", "maxrss"}``; orphans are reaped silently."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            _TASKS.clear()
            return
        if pid == 0:
            return
        if pid in _TASKS:  # else an adopted orphan, reaped and forgotten
            _TASKS.discard(pid)
            _send({"exit": pid, "code": os.waitstatus_to_exitcode(status), "maxrss": usage.ru_maxrss * 1024})


def _on_child_exit(signum: int, frame: Any) -> None:
    """Report an ended task at once, even in the middle of a preloaded import (Python runs the
    handler between the imported module's bytecodes): the runner's next task would otherwise wait
    for the import to finish (up to 0.09 s at each task boundary early in a run)."""
    if not _BUSY:  # else the loop is reaping or forking: it reports this one next
        _reap_here()


def _child(request: dict[str, Any], wake_fds: tuple[int, int], server: int) -> None:
    """In the forked child: become an isolated task process, run the entrypoint, never return."""
    leave_forked_child(lambda: _task(request, wake_fds, server), lambda: _learn_imports(request))


def _task(request: dict[str, Any], wake_fds: tuple[int, int], server: int) -> int:
    """The child's setup (its session, log, marker, limits) and the entrypoint; its exit code."""
    gc.enable()  # the server's collector was off; the preloaded objects stay frozen (never scanned)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server's own; the entrypoint sets the task's
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in (*wake_fds, _PROTOCOL_FD):
        os.close(fd)
    os.setsid()
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    if request.get("cwd"):
        before = os.getcwd()
        os.chdir(request["cwd"])
        if sys.path and sys.path[0] in ("", before):  # as `python -m` would have set it
            sys.path[0] = request["cwd"]
    if request.get("marker"):
        os.environ[MARKER] = request["marker"]
    # Die with the fork server (and so with the runner), ending the task's tree first.
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != server:  # the server died before prctl took effect
        os._exit(137)
    if request.get("address_space"):
        import resource

        # the preloaded libraries' reservations are the server's, not the step's
        limit = int(request["address_space"]) + _PRELOADED_ADDRESS_SPACE
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if _PRELOAD_OUTPUT:  # what importing the preloaded modules printed, as if imported here
        os.write(1, _PRELOAD_OUTPUT)
    from steps.__main__ import main

    sys.argv = ["python -m steps", *request["argv"]]
    try:
        code = main(list(request["argv"]))
    except SystemExit as stop:  # argparse and friends
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    return code


#: Set once in the server before it forks; children read them.
_PRELOAD_OUTPUT = b""
_PRELOADED_ADDRESS_SPACE = 0
_PRELOADED_MODULES: frozenset[str] = frozenset()
_BEFORE_PRELOAD = 0
_LEARNED_FILE = ""


def _preload_first(modules: list[str]) -> list[str]:
    """Import headrace's entrypoint and the pipeline's module (``module:object`` names: no task
    may build the graph again); returns the rest, imported one by one between requests."""
    global _BEFORE_PRELOAD, _PRELOADED_MODULES
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    _BEFORE_PRELOAD = address_space()
    _PRELOADED_MODULES = frozenset(sys.modules)
    first = [name for name in modules if ":" in name]
    for name in first:
        _import_captured(name)
    return [name for name in modules if ":" not in name]


def _import_captured(*names: str) -> None:
    """Import modules (or load one ``module:object``) with their output kept aside (stdout is
    the protocol) and replayed into the log of every child forked after it. Names already
    imported cost a lookup: a task's needs list every module it imported, most of them loaded
    with their package."""
    global _PRELOAD_OUTPUT, _PRELOADED_ADDRESS_SPACE, _PRELOADED_MODULES
    import importlib
    import tempfile

    missing = [name for name in names if ":" in name or name not in sys.modules]
    if not missing:
        return
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            for name in missing:
                with contextlib.suppress(BaseException):  # the task that needs it reports the error
                    if ":" in name:
                        from steps.runtime.loader import load_object

                        load_object(name)
                    else:
                        importlib.import_module(name)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        capture.seek(0)
        _PRELOAD_OUTPUT += capture.read()
    _PRELOADED_ADDRESS_SPACE = max(0, address_space() - _BEFORE_PRELOAD)
    _PRELOADED_MODULES = frozenset(sys.modules)


#: Never imported ahead of a task: headrace's own (the server has them), and modules whose import
#: acts (a browser, a window, a poem on stdout) rather than defines.
_NOT_LEARNED = frozenset({"pipelines", "steps", "control_room", "__main__", "__mp_main__", "this", "antigravity"})
_NOT_LEARNED_PREFIXES = ("idlelib", "tkinter", "turtle")


def learnable(name: str) -> bool:
    """Whether a module a task imported is one the next run's server may import before forking it:
    public names only (a private module comes with its public parent)."""
    parts = name.split(".")
    return (
        parts[0] not in _NOT_LEARNED
        and not parts[0].startswith(_NOT_LEARNED_PREFIXES)
        and all(part.isidentifier() and not part.startswith("_") for part in parts)
    )


def _learn_imports(request: dict[str, Any]) -> None:
    """Append the modules this task imported itself (beyond those preloaded when it was forked, its
    ``needs`` included) to the learned file as ``task<TAB>module`` lines (one ``O_APPEND`` write:
    whole lines even with tasks ending together), for the next run's server to import before
    forking it."""
    if not _LEARNED_FILE:
        return
    task = str(request.get("task") or "")
    new = [name for name in sys.modules if name not in _PRELOADED_MODULES and learnable(name)]
    if new:
        prefix = f"{task}\t" if task else ""
        with contextlib.suppress(OSError):
            fd = os.open(_LEARNED_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, "".join(f"{prefix}{name}\n" for name in new).encode())
            finally:
                os.close(fd)


def serve(argv: list[str]) -> None:
    """The fork server's loop: preload, then fork on request, report every child's exit."""
    global _LEARNED_FILE
    from steps.runtime.run import apply_local_limits

    apply_local_limits()  # die with the runner
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The tasks' supervisor: orphans of a task killed mid-way are adopted here, and when the runner
    # dies (the parent-death SIGTERM) every task and all they started are killed, even a task
    # whose own SIGTERM handler cannot run (its thread stuck in C code holding the GIL).
    become_subreaper()
    # The server only imports and forks (its garbage is a few requests); with the collector off
    # while it imports and everything frozen before each fork, a child's collections never walk the
    # preloaded libraries' objects, which would copy every page they sit on into the child.
    gc.disable()
    signal.signal(signal.SIGTERM, _end_everything)
    global _PROTOCOL_FD
    _PROTOCOL_FD = os.dup(1)
    if argv[:1] == ["--learned"]:
        _LEARNED_FILE, argv = argv[1], argv[2:]
    # The libraries are imported one at a time between requests, so the first tasks start while
    # the server is still importing what later tasks need (a task forked early imports the rest
    # itself, as an exec'd one would).
    pending = _preload_first(argv)
    server = os.getpid()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, _on_child_exit)
    buffer = b""
    open_input = True
    # After a fork the runner often sends the next request at once (tasks freed together): wait
    # this long for it before the next preloaded import, which it would otherwise wait behind.
    quiet_until = 0.0
    while open_input or _TASKS:
        timeout = max(0.0, quiet_until - time.monotonic()) if pending and open_input else 1.0
        readable, _, _ = select.select([0, wake_r] if open_input else [wake_r], [], [], timeout)
        if not readable and pending and open_input:
            _import_captured(pending.pop(0))
            while pending and pending[0] in sys.modules:  # loaded with its package: nothing to do
                pending.pop(0)
            continue
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        _reap_here()
        if 0 in readable:
            chunk = os.read(0, 65536)
            if not chunk:
                open_input = False
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                _fork(json.loads(line), (wake_r, wake_w), server)
                quiet_until = time.monotonic() + AFTER_FORK_SECONDS


#: How long the server waits after a fork before importing the next preloaded module.
AFTER_FORK_SECONDS = 0.03


def _reap_here() -> None:
    """:func:`_reap`, with the SIGCHLD handler kept out while it runs."""
    global _BUSY
    _BUSY = True
    try:
        _reap()
    finally:
        _BUSY = False


def _fork(request: dict[str, Any], wake_fds: tuple[int, int], server: int) -> None:
    """Import what the task needs, fork it, tell the runner its pid. The SIGCHLD handler stays
    out meanwhile: a child that ends at once must be known as a task before it is reaped."""
    global _BUSY
    _import_captured(*request.get("needs", ()))
    gc.freeze()
    _BUSY = True
    try:
        pid = os.fork()
        if pid == 0:
            _child(request, wake_fds, server)
        _TASKS.add(pid)
        _send({"id": request["id"], "pid": pid})
    finally:
        _BUSY = False
    _reap_here()  # one that ended while the handler stood aside


def _end_everything(signum: int, frame: Any) -> None:
    kill_descendants()
    os._exit(128 + signum)


if __name__ == "__main__":
    serve(sys.argv[1:])
    # Every child has been reported; tearing down the preloaded libraries would only delay the
    # runner, which waits for this process at the end of every run.
    os._exit(0)
