"""One task attempt on this machine: a child process (the default) or a thread of the runner.

A subprocess attempt runs exactly what an Argo pod runs, ``python -m steps run ...``, in its own
process group (so a timeout or Ctrl-C kills the step and everything it started) with stdout and
stderr in a per-attempt log file. It dies with the runner (``PR_SET_PDEATHSIG``, set by the
entrypoint itself, see :func:`steps.runtime.run.apply_local_limits`), like a pod whose workflow was
deleted, so a killed runner leaves no orphan writing outputs behind ``resume``. Everything the step
starts, detached or not, carries the attempt's marker and ends with it (see :mod:`steps.runtime.procs`):
the task process kills its tree when it ends, and when it was killed first the runner sweeps the
marker. An in-process attempt kills what its thread started when it ends, detached or not (its
thread marks them: :mod:`pipelines.local.marking`).

Memory limits (subprocess mode only): a task's memory limit (the control room's decided
``memory`` when sized, else ``resources.memory_limit``, else ``resources.memory``) becomes
``RLIMIT_AS`` of the child, plus :data:`ADDRESS_SPACE_HEADROOM` because the address-space limit
counts virtual reservations (the interpreter, pyarrow's allocator) that a pod's cgroup limit, which
counts resident memory, does not. Exceeding it makes allocations fail (``MemoryError``), which is
recorded as ``OOMKilled`` just like a kernel OOM kill (exit -9 / 137).

An in-process attempt calls :func:`steps.runtime.task.run_task` in a thread: no start-up cost and
breakpoints work, but no isolation: a timeout marks the attempt failed and abandons its thread,
since Python cannot stop a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.local import marking
from pipelines.local.capture import capture_into
from pipelines.local.forkserver import ForkServer, ForkServerError
from steps.core.contract import ArtifactRef, Outcome, SizingDecision
from steps.core.errors import EXIT_OOM, EXIT_TIMEOUT, HeadraceError
from steps.core.settings import Settings
from steps.runtime.procs import MARKER, kill_descendants, kill_marked
from steps.runtime.run import LOCAL_ADDRESS_SPACE, LOCAL_RUNNER_PID

#: Added to a task's memory limit for RLIMIT_AS: the virtual address space Python and its native
#: libraries reserve without using (about 350 MiB with pandas and pyarrow imported).
ADDRESS_SPACE_HEADROOM = 512 * 1024**2
#: Seconds between SIGTERM and SIGKILL when an attempt is stopped (Kubernetes' grace, shortened).
KILL_GRACE_SECONDS = 2.0
LOG_TAIL_LINES = 20


@dataclass
class AttemptSpec:
    """Everything one attempt needs; built by the runner."""

    spec: str
    cwd: str
    task: str
    run_id: str
    attempt: int
    params: dict[str, str]
    inputs: dict[tuple[str, str], ArtifactRef]
    attempt_dir: Path
    sizing: SizingDecision | None = None
    timeout_seconds: float | None = None
    memory_limit_bytes: int | None = None

    @property
    def marker(self) -> str:
        """What every process of this attempt carries in its environment (see :mod:`steps.runtime.procs`)."""
        return f"{self.run_id}/{self.task}/{self.attempt}"

    @property
    def log_path(self) -> Path:
        return self.attempt_dir / "log.txt"

    @property
    def progress_path(self) -> Path:
        return self.attempt_dir / "progress.jsonl"

    @property
    def outputs_dir(self) -> Path:
        return self.attempt_dir / "outputs"


@dataclass
class AttemptResult:
    """How an attempt ended; ``reason`` is the one line a person reads first."""

    outcome: Outcome
    exit_code: int | None
    reason: str
    duration_seconds: float
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    records: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.outcome is Outcome.SUCCEEDED

    @property
    def retryable(self) -> bool:
        """A bad-input exit (2) and a cancellation are never retried; every other failure may be."""
        return self.outcome not in (Outcome.SUCCEEDED, Outcome.CANCELLED) and self.exit_code != 2


Deliver = Callable[[AttemptResult], None]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a log file (reads at most the last 64 KiB)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def last_progress(path: Path) -> tuple[float, float, str] | None:
    """The latest ``(done, total, message)`` a task reported through its progress file."""
    tail = log_tail(path, 1)
    if not tail:
        return None
    try:
        data = json.loads(tail[-1])
        return float(data["done"]), float(data["total"]), str(data.get("message", ""))
    except (ValueError, KeyError, TypeError):
        return None


def _is_memory_error(failure: str) -> bool:
    return failure.startswith("MemoryError")


class Attempt:
    """A started attempt; :meth:`cancel` stops it; its result arrives through ``deliver`` once."""

    def __init__(self, spec: AttemptSpec, deliver: Deliver) -> None:
        self.spec = spec
        self._deliver_fn = deliver
        self._delivered = False
        self._lock = threading.Lock()
        self.started = time.monotonic()

    def _deliver(self, result: AttemptResult) -> bool:
        with self._lock:
            if self._delivered:
                return False
            self._delivered = True
        self._deliver_fn(result)
        return True

    def cancel(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def progress(self) -> tuple[float, float, str] | None:
        return last_progress(self.spec.progress_path)


class SubprocessAttempt(Attempt):
    """``python -m steps run ...`` in a child process: forked by the run's fork server when there
    is one (see :mod:`pipelines.local.forkserver`), else exec'd. Start it from the main thread."""

    def __init__(
        self, spec: AttemptSpec, deliver: Deliver, *, env: Mapping[str, str], fork_server: ForkServer | None = None
    ) -> None:
        super().__init__(spec, deliver)
        spec.attempt_dir.mkdir(parents=True, exist_ok=True)
        self._stop_reason: str | None = None  # "timeout" | "cancelled"
        self._returncode: int | None = None
        self._timer: threading.Timer | None = None
        address_space = None if spec.memory_limit_bytes is None else spec.memory_limit_bytes + ADDRESS_SPACE_HEADROOM
        self.pid = self._fork(fork_server, address_space) if fork_server is not None else None
        if self.pid is None:
            self.pid = self._exec(env, address_space)
        if spec.timeout_seconds is not None:
            timer = threading.Timer(spec.timeout_seconds, self._stop, args=("timeout",))
            timer.daemon = True
            with self._lock:
                if self._returncode is None:
                    self._timer = timer
                    timer.start()

    def _fork(self, server: ForkServer, address_space: int | None) -> int | None:
        try:
            pid = server.spawn(
                self.command()[3:],
                cwd=self.spec.cwd,
                log=str(self.spec.log_path),
                address_space=address_space,
                marker=self.spec.marker,
                task=self.spec.task,
            )
        except ForkServerError:
            return None
        server.on_exit(pid, self._exited)
        return pid

    def _exec(self, env: Mapping[str, str], address_space: int | None) -> int:
        child_env = {**env, LOCAL_RUNNER_PID: str(os.getpid()), MARKER: self.spec.marker}
        if address_space is not None:
            child_env[LOCAL_ADDRESS_SPACE] = str(address_space)
        with self.spec.log_path.open("wb") as log:
            process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.spec.cwd or None,
                env=child_env,
                start_new_session=True,
            )
        threading.Thread(target=self._wait, args=(process,), name=f"attempt-{self.spec.task}", daemon=True).start()
        return process.pid

    def command(self) -> list[str]:
        spec = self.spec
        cmd = [sys.executable, "-m", "steps", "run", spec.spec, spec.task, "--run-id", spec.run_id]
        cmd += ["--attempt", str(spec.attempt)]
        for key, value in spec.params.items():
            cmd += ["-p", f"{key}={value}"]
        for (task, output), ref in spec.inputs.items():
            cmd += ["--input", f"{task}.{output}={json.dumps(ref.to_dict(), sort_keys=True)}"]
        if spec.sizing is not None:
            cmd += ["--sizing", json.dumps(spec.sizing.to_dict(), sort_keys=True)]
        cmd += ["--outputs-dir", str(spec.outputs_dir), "--progress-file", str(spec.progress_path)]
        return cmd

    def cancel(self) -> None:
        self._stop("cancelled")

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self._delivered or self._stop_reason is not None:
                return
            self._stop_reason = reason
        self._signal(signal.SIGTERM)
        killer = threading.Timer(KILL_GRACE_SECONDS, self._signal, args=(signal.SIGKILL,))
        killer.daemon = True
        killer.start()

    def _signal(self, sig: signal.Signals) -> None:
        with self._lock:
            if self._returncode is not None or self.pid is None:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def _wait(self, process: subprocess.Popen[bytes]) -> None:
        try:
            _, status, usage = os.wait4(process.pid, 0)
            code, peak = os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024
        except ChildProcessError:  # reaped elsewhere; should not happen
            code, peak = process.wait(), None
        process.returncode = code
        self._exited(code, peak)

    def _exited(self, code: int | None, peak: int | None) -> None:
        with self._lock:
            self._returncode = -1 if code is None else code
            timer = self._timer
        if timer is not None:
            timer.cancel()
        if code is None or code < 0 or code >= 128 or self._stop_reason is not None:
            # The task process was killed before it could end its own tree: sweep by marker.
            kill_marked(self.spec.marker)
        duration = time.monotonic() - self.started
        if code is None:
            self._deliver(AttemptResult(Outcome.FAILED, None, "lost: the fork server running it died", duration))
            return
        self._deliver(self._result(code, duration, peak))

    def _result(self, code: int, duration: float, peak: int | None) -> AttemptResult:
        spec = self.spec
        if code == 0 and self._stop_reason is None:
            try:
                data = json.loads((spec.outputs_dir / "_result.json").read_text())
            except (OSError, ValueError) as error:
                return AttemptResult(Outcome.FAILED, code, f"exit code 0 but no result written ({error})", duration)
            return AttemptResult(
                Outcome.SUCCEEDED,
                0,
                "",
                duration,
                outputs={name: ArtifactRef.from_dict(ref) for name, ref in data.get("outputs", {}).items()},
                peak_memory_bytes=int(data.get("peak_memory_bytes") or 0) or peak,
                records=dict(data.get("records", {})),
            )
        try:
            failure = (spec.outputs_dir / "_failure").read_text().strip().splitlines()[0]
        except (OSError, IndexError):
            failure = ""
        if self._stop_reason == "timeout":
            return AttemptResult(
                Outcome.TIMEOUT,
                EXIT_TIMEOUT,
                f"timeout after {_seconds(spec.timeout_seconds)}",
                duration,
                peak_memory_bytes=peak,
            )
        if self._stop_reason == "cancelled":
            return AttemptResult(Outcome.CANCELLED, code, "cancelled", duration, peak_memory_bytes=peak)
        if code in (-signal.SIGKILL, EXIT_OOM) or _is_memory_error(failure):
            detail = f" ({failure})" if failure else ""
            return AttemptResult(Outcome.OOM, EXIT_OOM, f"OOMKilled{detail}", duration, peak_memory_bytes=peak)
        if code < 0:
            reason = f"killed by signal {signal.Signals(-code).name}"
        else:
            reason = f"exit code {code}" + (f": {failure}" if failure else "")
        return AttemptResult(Outcome.FAILED, code, reason, duration, peak_memory_bytes=peak)


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}s"


class InProcessAttempt(Attempt):
    """``run_task`` in a thread of the runner (``--in-process``): fast, debuggable, not isolated."""

    def __init__(self, spec: AttemptSpec, deliver: Deliver, *, pipeline: Any, settings: Settings) -> None:
        super().__init__(spec, deliver)
        spec.attempt_dir.mkdir(parents=True, exist_ok=True)
        self._progress: tuple[float, float, str] | None = None
        self._timer: threading.Timer | None = None
        self._thread_id: int | None = None  # the native id of the step's thread: its processes' parent
        if spec.timeout_seconds is not None:
            self._timer = threading.Timer(spec.timeout_seconds, self._timed_out)
            self._timer.daemon = True
            self._timer.start()
        self._thread = threading.Thread(
            target=self._run, args=(pipeline, settings), name=f"attempt-{spec.task}", daemon=True
        )
        self._thread.start()

    def progress(self) -> tuple[float, float, str] | None:
        return self._progress

    def _report(self, done: float, total: float, message: str) -> None:
        self._progress = (done, total, message)

    def cancel(self) -> None:
        self._deliver(AttemptResult(Outcome.CANCELLED, None, "cancelled", time.monotonic() - self.started))
        self._end_processes()

    def _end_processes(self) -> None:
        """Kill the processes the step's thread started and all they started: those still in the
        thread's tree, then those that left it (a daemon's double fork) by the attempt's marker
        (see :mod:`pipelines.local.marking`)."""
        if self._thread_id is not None and self._thread.is_alive():  # a finished thread's id may be reused
            kill_descendants(thread=self._thread_id)
        if marking.started_any(self.spec.marker):
            marking.forget(self.spec.marker)  # first: a process started during the sweep sets it again
            kill_marked(self.spec.marker)

    def _timed_out(self) -> None:
        result = AttemptResult(
            Outcome.TIMEOUT,
            EXIT_TIMEOUT,
            f"timeout after {_seconds(self.spec.timeout_seconds)}",
            time.monotonic() - self.started,
        )
        if self._deliver(result):
            self._end_processes()
            self._log("timed out; the step's thread is abandoned (in-process mode cannot stop it)")

    def _log(self, line: str) -> None:
        with self.spec.log_path.open("a", encoding="utf-8") as log:
            log.write(line.rstrip("\n") + "\n")

    def _run(self, pipeline: Any, settings: Settings) -> None:
        self._thread_id = threading.get_native_id()
        with marking.marking(self.spec.marker):
            try:
                self._run_step(pipeline, settings)
            finally:
                self._end_processes()

    def _run_step(self, pipeline: Any, settings: Settings) -> None:
        from steps.runtime.task import run_task

        spec = self.spec
        self._log(f"[headrace] {spec.task} attempt {spec.attempt} (in-process)")
        try:
            with capture_into(spec.log_path):
                result = run_task(
                    pipeline,
                    spec.task,
                    run_id=spec.run_id,
                    settings=settings,
                    attempt=spec.attempt,
                    params=spec.params,
                    inputs=spec.inputs,
                    sizing=spec.sizing,
                    progress=self._report,
                )
        except HeadraceError as error:
            self._log(f"error: {error}")
            failure = str(error).splitlines()[0] if str(error) else type(error).__name__
            self._finish_failed(error.exit_code, failure)
            return
        except MemoryError as error:
            self._log(traceback.format_exc())
            self._finish(AttemptResult(Outcome.OOM, EXIT_OOM, f"OOMKilled (MemoryError: {error})", self._elapsed()))
            return
        except Exception as error:
            self._log(traceback.format_exc())
            self._finish_failed(1, f"{type(error).__name__}: {error}")
            return
        self._finish(
            AttemptResult(
                Outcome.SUCCEEDED,
                0,
                "",
                self._elapsed(),
                outputs=result.outputs,
                peak_memory_bytes=result.peak_memory_bytes,
                records=result.records,
            )
        )

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _finish_failed(self, code: int, failure: str) -> None:
        self._finish(AttemptResult(Outcome.FAILED, code, f"exit code {code}: {failure}", self._elapsed()))

    def _finish(self, result: AttemptResult) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._deliver(result)
