"""Warm interpreters: a framework environment's Python with its libraries imported once per run.

Local training and scoring run under the model's framework version, in its own cached
environment (:mod:`steps.backends.frameworks`), so each is a fresh interpreter: about 1.4 s of imports
(pandas, pyarrow, scikit-learn) before the script's first line, on every train and every score,
which the run's fork server can not save (it is headrace's interpreter, not the framework's).
A warm server is that environment's Python, started by the runner when the run begins (so its
imports overlap the first tasks), that imports the environment's libraries once and then forks
one child per script a task starts, as :mod:`pipelines.local.forkserver` does for tasks.

The child is what ``python <argv>`` would have been for the task that asked for it: the task's
command line (``-c CODE ...`` or ``[--] SCRIPT ...``), working folder, environment (the task's
marker included, inherited by whatever it starts), standard output and error (the task's pipes,
passed over the socket), memory limit (the task's, plus what the preloaded libraries reserved),
and its own session, so the task stops it as a group. It dies with the task that asked for it
(it watches that process) and with the server (a parent-death signal, the server's own dying with
the runner). The server learns which modules its children imported beyond the preloaded ones
(installed ones only, never the project's), in the environment's folder, for the next run.

Standard library only: the server runs under the framework's Python, the client in task processes.
Protocol, one connection per child: the task sends one JSON line ``{"argv", "cwd", "env",
"address_space", "owner"}`` with its stdout and stderr descriptors; the server answers
``{"pid"}`` once forked and ``{"exit": code}`` when the child ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from steps.runtime.procs import address_space, end_server

#: The task environment's map of warm interpreters: JSON ``{python path: abstract socket name}``.
ENV = "HEADRACE_WARM"
#: The listening socket's descriptor, passed from the runner to the server it starts.
_FD_ENV = "HEADRACE_WARM_FD"
#: What every framework environment holds (steps.backends.frameworks.COMPANIONS) and a task imports there.
BASE_PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "joblib")
#: Beside the environment's ``bin/``: the modules earlier children imported, one a line.
LEARNED_NAME = ".headrace-warm-imports.txt"
_HEADRACE_ROOT = str(Path(__file__).resolve().parent.parent)


# ----------------------------------------------------------------------------- the runner's side


class WarmServer:
    """One framework Python kept warm for a run; :meth:`close` ends it (and any child left)."""

    def __init__(
        self, python: str, preload: Sequence[str], env: Mapping[str, str], cwd: str, learned_file: str | None = None
    ) -> None:
        """Start ``python`` importing ``preload`` (module names) and what ``learned_file`` lists
        (default: beside the environment's ``bin/``), where its children add what they imported."""
        self.python = python
        self.name = f"headrace-warm-{uuid.uuid4().hex}"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind("\0" + self.name)  # abstract: no file, no path length limit
        self._listener.listen(64)  # tasks may connect before the server finished importing
        fd = self._listener.fileno()
        existing = env.get("PYTHONPATH", "")
        server_env = {
            **env,
            _FD_ENV: str(fd),
            "PYTHONPATH": os.pathsep.join([_HEADRACE_ROOT, existing] if existing else [_HEADRACE_ROOT]),
        }
        from steps.runtime.procs import owned_popen_options

        self.process = subprocess.Popen(
            [
                python,
                "-m",
                "steps.runtime.warm",
                learned_file or str(Path(python).parent.parent / LEARNED_NAME),
                *preload,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=server_env,
            cwd=cwd or None,
            pass_fds=(fd,),
            **owned_popen_options(),  # its own session; dies with the runner
        )

    def close(self) -> None:
        """End the server: its children are the tasks', and the run is over."""
        self.close_listener()
        end_server(self.process)

    def close_listener(self) -> None:
        """Stop taking requests (the runner ends the process itself, with its other servers)."""
        with contextlib.suppress(OSError):
            self._listener.close()


def environment(servers: Sequence[WarmServer]) -> dict[str, str]:
    """The task environment entry naming the run's warm servers (empty when there are none)."""
    return {ENV: json.dumps({server.python: server.name for server in servers})} if servers else {}


# ----------------------------------------------------------------------------- the task's side


class WarmProcess:
    """A child forked by a warm server, used like :class:`subprocess.Popen` (text pipes)."""

    def __init__(self, connection: socket.socket, pid: int, stdout: IO[str], stderr: IO[str] | None) -> None:
        self._connection = connection
        self.pid = pid
        self.stdout: IO[str] | None = stdout
        self.stderr: IO[str] | None = stderr
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._connection.settimeout(timeout)
            try:
                message = _read_line(self._connection)
            except TimeoutError:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0) from None
            # The server gone without an answer: the child died with it (its parent-death signal).
            self.returncode = int(json.loads(message)["exit"]) if message else -int(signal.SIGKILL)
            self._connection.close()
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            ready, _, _ = select.select([self._connection], [], [], 0)
            if not ready:
                return None
        return self.wait()

    def kill(self) -> None:
        """SIGKILL to the child's session: the script and anything it started."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def communicate(self) -> tuple[str, str]:
        """Both outputs in full once the child ended (stderr read on a thread: no pipe stalls)."""
        assert self.stdout is not None and self.stderr is not None
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.append(self.stderr.read() if self.stderr else ""))
        reader.start()
        out = self.stdout.read()
        reader.join()
        self.wait()
        return out, "".join(errors)

    def __enter__(self) -> WarmProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.wait()


def popen(
    command: Sequence[str], *, cwd: str | os.PathLike[str], env: Mapping[str, str], merge_stderr: bool
) -> WarmProcess | None:
    """Start ``command`` (``[python, ...]``) as a fork of the run's warm server for that
    ``python``; ``None`` when there is none (or its form is not one a server runs): the caller
    starts the process itself. ``merge_stderr`` sends stderr to the stdout pipe."""
    try:
        servers = json.loads(env.get(ENV, "") or os.environ.get(ENV, "") or "{}")
    except ValueError:
        return None
    name = servers.get(str(command[0])) if isinstance(servers, dict) else None
    if not name or not _supported(list(command[1:])):
        return None
    import resource

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    request = {
        "argv": list(command[1:]),
        "cwd": os.fspath(cwd),
        "env": dict(env),
        "address_space": None if limit == resource.RLIM_INFINITY else limit,
        "owner": os.getpid(),
    }
    out_r, out_w = os.pipe()
    err_r, err_w = (out_r, out_w) if merge_stderr else os.pipe()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect("\0" + name)
        socket.send_fds(connection, [json.dumps(request).encode() + b"\n"], [out_w, err_w])
        answer = _read_line(connection)
    except OSError:
        answer = b""
    finally:
        os.close(out_w)
        if not merge_stderr:
            os.close(err_w)
    if not answer:  # the server is gone: start the process the ordinary way
        connection.close()
        os.close(out_r)
        if not merge_stderr:
            os.close(err_r)
        return None
    stdout = open(out_r, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by WarmProcess
    stderr = None if merge_stderr else open(err_r, encoding="utf-8", errors="replace")  # noqa: SIM115
    return WarmProcess(connection, int(json.loads(answer)["pid"]), stdout, stderr)


def _supported(argv: list[str]) -> bool:
    """The command lines a server runs: ``-c CODE ...``, ``-- SCRIPT ...`` and ``SCRIPT ...``."""
    if argv[:1] == ["-c"]:
        return len(argv) >= 2
    if argv[:1] == ["--"]:
        argv = argv[1:]
    return bool(argv) and not argv[0].startswith("-")


def _read_line(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


# ----------------------------------------------------------------------------- the server process

_PRELOADED: frozenset[str] = frozenset()
_PRELOADED_ADDRESS_SPACE = 0


#: Set by the server before it forks: where children add what they imported.
_LEARNED_FILE = ""


def _preload(modules: Sequence[str]) -> None:
    """Import ``modules`` and what earlier children imported; a module that fails is skipped
    (the script that needs it reports the error). Their output goes nowhere: stdout is closed."""
    global _PRELOADED, _PRELOADED_ADDRESS_SPACE
    import importlib

    learned: list[str] = []
    with contextlib.suppress(OSError):
        learned = list(dict.fromkeys(line.strip() for line in Path(_LEARNED_FILE).read_text("utf-8").splitlines()))
        Path(_LEARNED_FILE).write_text("".join(f"{name}\n" for name in learned), "utf-8")  # kept short
    before = address_space()
    import gc

    gc.disable()  # importing makes few cycles; each collection would walk every module object so far
    for name in dict.fromkeys([*modules, *learned]):
        if name and all(part.isidentifier() for part in name.split(".")):
            with contextlib.suppress(BaseException):
                importlib.import_module(name)
    _PRELOADED_ADDRESS_SPACE = max(0, address_space() - before)
    _PRELOADED = frozenset(sys.modules)
    gc.freeze()  # the preloaded objects stay shared with every child instead of copied on write
    gc.enable()


def _learn() -> None:
    """Append the installed modules (at most two levels deep, none private) this child imported
    beyond the preloaded ones: one ``O_APPEND`` write, whole lines with children ending together."""
    import sysconfig

    installed = tuple(
        str(Path(p).resolve()) for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    )
    new = []
    for name in set(sys.modules) - _PRELOADED:
        parts = name.split(".")
        if len(parts) > 2 or any(part.startswith("_") for part in parts) or parts[0] in sys.stdlib_module_names:
            continue
        file = getattr(sys.modules.get(name), "__file__", None)
        if file and str(Path(file).resolve()).startswith(installed):
            new.append(name)
    if new:
        with contextlib.suppress(OSError):
            fd = os.open(_LEARNED_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, ("\n".join(sorted(new)) + "\n").encode())
            finally:
                os.close(fd)


def _child(request: dict[str, Any], fds: list[int], keep_out: list[int], server_path: list[str]) -> None:
    """In the forked child: become the task's ``python <argv>``, run it, never return."""
    from steps.runtime.procs import leave_forked_child

    leave_forked_child(lambda: _task(request, fds, keep_out, server_path), _learn)


def _task(request: dict[str, Any], fds: list[int], keep_out: list[int], server_path: list[str]) -> int:
    """The child's setup (signals, session, pipes, limits, folder, environment) and the script."""
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in keep_out:
        with contextlib.suppress(OSError):
            os.close(fd)
    os.setsid()
    from steps.runtime.procs import set_parent_death_signal

    set_parent_death_signal(signal.SIGKILL)  # dies with the server
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in {null, *fds}:
        os.close(fd)
    _watch(int(request["owner"]))
    if request.get("address_space"):
        import resource

        limit = int(request["address_space"]) + _PRELOADED_ADDRESS_SPACE
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if os.environ.get("PYTHONUNBUFFERED"):
        sys.stdout.reconfigure(line_buffering=True, write_through=True)  # type: ignore[union-attr]
        sys.stderr.reconfigure(line_buffering=True, write_through=True)  # type: ignore[union-attr]
    return _run(list(request["argv"]), server_path)


def _watch(owner: int) -> None:
    """End this child's session as soon as the task process that asked for it is gone."""
    try:
        pidfd = os.pidfd_open(owner)
    except ProcessLookupError:
        os._exit(137)
    except OSError:  # a kernel before 5.3: the server's parent-death signal still ends it
        return

    def wait() -> None:
        select.select([pidfd], [], [])
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=wait, name="owner-watch", daemon=True).start()


def _run(argv: list[str], server_path: list[str]) -> int:
    """Run ``python <argv>`` in this process: the ``__main__`` module, ``sys.argv`` and
    ``sys.path`` as that command line would have them; the exit code it would have had."""
    import types

    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    try:
        if argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            sys.path[:] = ["", *extra, *server_path]
            exec(compile(argv[1], "<string>", "exec"), main.__dict__)
        else:
            import runpy

            script = argv[1:] if argv[0] == "--" else argv
            sys.argv = list(script)
            sys.path[:] = [str(Path(script[0]).resolve().parent), *extra, *server_path]
            runpy.run_path(script[0], run_name="__main__")
    except SystemExit as stop:
        if stop.code is None:
            return 0
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def serve(learned_file: str, modules: Sequence[str]) -> None:
    """The server's loop: preload, then fork on each request and report each child's exit.
    It ends when the runner closes its stdin (or dies: the parent-death signal)."""
    global _LEARNED_FILE, _STARTING_ENV
    _LEARNED_FILE = learned_file
    listener = socket.socket(fileno=int(os.environ.pop(_FD_ENV)))
    _STARTING_ENV = dict(os.environ)
    own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # sys.path as a script's would be without the server's own entries: the child adds its own.
    server_path = [p for p in sys.path[1:] if p not in own]
    _preload(modules)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    children: dict[int, socket.socket] = {}
    while True:
        readable, _, _ = select.select([0, listener.fileno(), wake_r], [], [], 1.0)
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        _reap(children)
        if 0 in readable and not os.read(0, 4096):
            break
        if listener.fileno() in readable:
            others = [listener.fileno(), wake_r, wake_w, *(c.fileno() for c in children.values())]
            _accept(listener, children, others, server_path)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


#: Environment variables libraries read once, when loaded: a script whose environment sets them
#: otherwise than the server's would not get what it asked for from the preloaded libraries, so
#: the server declines it (and the task starts a fresh interpreter).
LOAD_TIME_PREFIXES = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "NUMEXPR_", "ARROW_", "MALLOC_", "LD_")
LOAD_TIME_NAMES = ("PYTHONHASHSEED", "PYTHONWARNINGS", "PYTHONOPTIMIZE")


#: The server's environment before it imported anything (scikit-learn sets ``KMP_*`` on import).
_STARTING_ENV: dict[str, str] = {}


def _declined(env: Mapping[str, str]) -> list[str]:
    """The load-time variables ``env`` sets otherwise than this server was started with and than
    its preloaded libraries set them (a task that imported scikit-learn itself has its ``KMP_*``)."""
    return sorted(
        name
        for name in {*env, *_STARTING_ENV}
        if (name.startswith(LOAD_TIME_PREFIXES) or name in LOAD_TIME_NAMES)
        and env.get(name) not in (_STARTING_ENV.get(name), os.environ.get(name))
    )


def _accept(
    listener: socket.socket, children: dict[int, socket.socket], keep_out: list[int], server_path: list[str]
) -> None:
    connection, _ = listener.accept()
    try:
        connection.settimeout(10)
        data, fds, _, _ = socket.recv_fds(connection, 1 << 20, 2)
        while data and not data.endswith(b"\n"):
            chunk = connection.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        request = json.loads(data)
    except (OSError, ValueError):
        connection.close()
        return
    if len(fds) != 2 or _declined(request.get("env", {})):
        for fd in fds:
            os.close(fd)
        connection.close()  # no answer: the task starts the script itself
        return
    pid = os.fork()
    if pid == 0:
        _child(request, fds, [*keep_out, connection.fileno()], server_path)
    for fd in fds:
        os.close(fd)
    children[pid] = connection
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _reap(children: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = children.pop(pid, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
            connection.close()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
    os._exit(0)  # no teardown of the preloaded libraries: the runner waits for this process
