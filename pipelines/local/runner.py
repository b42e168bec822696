"""Run a whole pipeline on this machine: the scheduler behind ``headrace run`` and ``resume``.

Tasks start in topological order as soon as everything they wait for has succeeded, at most
``parallel`` at a time. A failed attempt (an exception, a non-zero exit, an OOM kill, a timeout)
is retried after the task's backoff, ``duration * factor**(n-1)`` capped at ``max_duration``, never
after exit code 2 (bad input); ``Retry.on`` is not consulted, since the cluster errors it tells
apart from step failures do not exist on one machine. A task that finally fails stops its dependents (``upstream-failed``) while
independent branches run on. Ctrl-C (or SIGTERM) stops every running attempt and marks the run
``cancelled``. Every state change is written to the run records first, so a killed runner leaves
a run ``resume`` can finish.

Only the main thread forks children and touches the scheduler state; attempts report back
through a queue.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.graph import Pipeline, Task
from pipelines.local import control
from pipelines.local.attempt import AttemptResult, AttemptSpec, InProcessAttempt, SubprocessAttempt, log_tail
from pipelines.local.forkserver import ForkServer
from pipelines.local.frontier import Frontier
from pipelines.local.keeper import RunKeeper
from pipelines.local.summary import RunSummary, TaskSummary
from pipelines.runs import RunStore
from steps.core.contract import (
    ArtifactRef,
    ControlRoom,
    EventKind,
    Observation,
    Outcome,
    SizingDecision,
    SizingRequest,
    artifact_totals,
)
from steps.core.quantities import memory_bytes, parse_duration
from steps.core.settings import Settings
from steps.runtime.procs import end_server
from steps.runtime.run import LOCAL_RUNNER_PID
from steps.runtime.warm import WarmServer, environment

BLOCKING = ("failed", "upstream-failed", "cancelled", "not-run")


def backoff_seconds(task: Task, retry_number: int) -> float:
    """Wait before retry ``retry_number`` (1-based): duration * factor^(n-1), capped."""
    backoff = task.retry.backoff
    wait = parse_duration(backoff.duration) * backoff.factor ** (retry_number - 1)
    if backoff.max_duration is not None:
        wait = min(wait, parse_duration(backoff.max_duration))
    return float(wait)


def memory_limit(task: Task, sizing: SizingDecision | None) -> int | None:
    """The limit a subprocess attempt runs under: the decided memory, else the declared limit (as a
    pod's: a fallback to the declared resources keeps the declared limit, see ``pod_spec_patch``)."""
    decided = sizing.memory if sizing is not None and sizing.source != "declared" else None
    value = decided or task.resources.memory_limit or task.resources.memory
    return memory_bytes(value) if value else None


def child_environment(settings: Settings, parallel: int = 1) -> dict[str, str]:
    """The environment of a task process: ours, plus every setting as ``HEADRACE_*`` so the
    child resolves exactly the runner's settings (flags included), for ``parallel`` tasks at once."""
    env = {**os.environ, **settings.environment()}
    env.setdefault("PYTHONUNBUFFERED", "1")
    # A local memory limit is an address-space limit (see pipelines.local.attempt). pyarrow's
    # default allocator reserves about 1 GiB of address space on the first Parquet read and
    # glibc one arena per thread, which made a task using 140 MiB fail a 1Gi limit; with the
    # system allocator and two arenas the reservation stays near 400 MiB, which the limit's
    # headroom covers, so a local OOM means the task really used too much.
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    env.setdefault("MALLOC_ARENA_MAX", "2")
    # OpenMP threads (scikit-learn's tree ensembles, for one) spin while they wait by default:
    # on a machine other work shares, a 0.1 s fit took 2-4 s of CPU spinning. Local tasks share.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # ...and each parallel region wakes every thread: with one thread per core, the README's
    # 0.1 s fit took 0.9-1.1 s on an idle 2-core machine. Each of the tasks running at once gets
    # its share of the cores, as a container's CPU limit gives a pod's libraries theirs.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, parallel))))
    return env


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run the way Ctrl-C does (only possible from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _interrupts_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Runner:
    """One invocation of a run (a fresh run or a resume)."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        spec: str,
        cwd: str,
        settings: Settings,
        store: RunStore,
        summary: RunSummary,
        parallel: int,
        in_process: bool,
        control_room: ControlRoom | None,
        first_attempts: Mapping[str, int],
        fork_server: bool = True,
        started_by: str = "",
    ) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.cwd = cwd
        self.settings = settings
        self.store = store
        self.summary = summary
        self.parallel = max(1, parallel)
        self.in_process = in_process
        self.worker = control.RoomWorker(control_room) if control_room is not None else None
        self.room: ControlRoom | None = self.worker
        self.first_attempts = first_attempts
        # The caller checked the pipeline; the order and each task's upstream are computed once.
        self.order = pipeline._order()
        self.frontier = Frontier(
            {name: task.upstream for name, task in pipeline.tasks.items()},
            self.order,
            succeeded=[name for name, state in summary.tasks.items() if state.status == "succeeded"],
        )
        self.running = 0
        self.events: queue.Queue[tuple[str, AttemptResult]] = queue.Queue()
        self.env = child_environment(settings, self.parallel)
        self.runs_dir = settings.state_path / "runs" / summary.run_id
        self.use_fork_server = fork_server and not in_process and sys.platform.startswith("linux")
        self.fork_server: ForkServer | None = None
        self.warm: list[WarmServer] = []
        self.started_by = started_by

    # -- the loop

    def run(self) -> RunSummary:
        self._warm()  # first: its imports (the slowest) overlap the first tasks
        self._server()  # started now, so its imports overlap the run's own start
        self._emit(EventKind.RUN_STARTED, reason=self.started_by)
        keeper = RunKeeper(self.summary.run_id, in_process=self.in_process, resumed=bool(self.first_attempts)).start()
        try:
            try:
                with _sigterm_as_interrupt():
                    self._loop()
            except KeyboardInterrupt:
                with _interrupts_ignored():  # a second Ctrl-C must not leave the records half-written
                    self._cancel()
                    return self._finish("cancelled")
            except BaseException:
                self._cancel()
                self._finish("failed")
                raise
            ok = all(t.status == "succeeded" for t in self.summary.tasks.values())
            return self._finish("succeeded" if ok else "failed")
        finally:
            servers: list[ForkServer | WarmServer] = [*([self.fork_server] if self.fork_server else []), *self.warm]
            end_server(*(server.process for server in servers))  # all asked at once, then awaited
            for warm in self.warm:
                warm.close_listener()
            keeper.close()
            if self.worker is not None:
                self.worker.drain()

    def _server(self) -> ForkServer | None:
        """The run's fork server, started with the first subprocess attempt; None to exec."""
        if not self.use_fork_server:
            return None
        if self.fork_server is None or not self.fork_server.alive:
            try:
                from pipelines.local.preload import learned_file

                learned = learned_file(self.settings.cache_path, self.pipeline.name, self.cwd)
                learned.parent.mkdir(parents=True, exist_ok=True)
                self.fork_server = ForkServer(
                    {**self.env, LOCAL_RUNNER_PID: str(os.getpid())},
                    self.cwd,
                    preload=self._preload(),
                    learned_file=str(learned),
                )
            except OSError:
                self.use_fork_server = False
                return None
        return self.fork_server

    def _warm(self) -> None:
        """Start the warm framework interpreters the steps name (:mod:`steps.runtime.warm`), and tell
        the tasks where they are."""
        if not self.use_fork_server:
            return
        from pipelines.local.preload import pipeline_module, warm_servers

        own = pipeline_module(self.pipeline)
        steps = [task.fn.__module__ for task in self.pipeline.tasks.values()]
        self.warm = warm_servers([*([own] if own else []), *steps], self.cwd, self.env)
        self.env.update(environment(self.warm))

    def _preload(self) -> list[str]:
        """What the fork server imports before forking: this pipeline's module (so no task
        builds the graph again), then what its steps import (the server adds what earlier runs'
        tasks imported, from the learned file)."""
        from pipelines.local.preload import modules_to_preload, pipeline_module

        own = pipeline_module(self.pipeline)
        steps = [task.fn.__module__ for task in self.pipeline.tasks.values()]
        modules = modules_to_preload([*([own] if own else []), *steps], self.cwd)
        return list(dict.fromkeys([self.spec, *modules]))

    def _running(self) -> list[TaskSummary]:
        return [t for t in self.summary.tasks.values() if t.status == "running"]

    def _loop(self) -> None:
        tasks = self.summary.tasks
        while True:
            while self.running < self.parallel:
                name = self.frontier.pop_startable(time.monotonic())
                if name is None:
                    break
                if tasks[name].status in ("pending", "retrying"):
                    self._start(name)
            due = self.frontier.next_retry_at()
            if self.running == 0 and due is None:
                return
            timeout = max(0.0, due - time.monotonic()) if due is not None else 0.5
            try:
                name, result = self.events.get(timeout=min(timeout, 0.5))
            except queue.Empty:
                continue
            self._finished(name, result)
            while True:
                try:
                    name, result = self.events.get_nowait()
                except queue.Empty:
                    break
                self._finished(name, result)

    def _settled(self, name: str) -> None:
        """``name`` reached its final status for this run: free its dependents, or block them."""
        status = self.summary.tasks[name].status
        if status == "succeeded":
            self.frontier.succeeded(name)
            return
        if status == "cancelled":  # the whole run is stopping: the rest become not-run
            return
        tasks = self.summary.tasks
        for child in self.frontier.descendants(name):
            state = tasks[child]
            if state.status != "pending":
                continue
            blocked = [u for u in self.frontier.upstream[child] if tasks[u].status in BLOCKING]
            if not blocked:
                continue
            state.status = "upstream-failed"
            state.reason = f"upstream task {blocked[0]} did not succeed"
            self.store.set_task(self.summary.run_id, child, state.status, reason=state.reason)

    # -- starting an attempt

    def _inputs(self, task: Task) -> dict[tuple[str, str], ArtifactRef]:
        return {(ref.task, ref.output): self.summary.tasks[ref.task].outputs[ref.output] for ref in task.input_refs()}

    def _start(self, name: str) -> None:
        task = self.pipeline.tasks[name]
        state = self.summary.tasks[name]
        state.tries_this_run += 1
        attempt_number = self.first_attempts.get(name, 1) + state.tries_this_run - 1
        inputs = self._inputs(task)
        sizing = self._size(task, state, inputs, attempt_number) if task.sizing == "auto" else None
        state.sizing = sizing
        spec = AttemptSpec(
            spec=self.spec,
            cwd=self.cwd,
            task=name,
            run_id=self.summary.run_id,
            attempt=attempt_number,
            params=self.summary.params,
            inputs=inputs,
            attempt_dir=self.runs_dir / name / f"attempt-{attempt_number}",
            sizing=sizing,
            timeout_seconds=task.timeout_seconds,
            memory_limit_bytes=None if self.in_process else memory_limit(task, sizing),
        )
        self.store.start_attempt(
            self.summary.run_id,
            name,
            attempt_number,
            log_path=str(spec.log_path),
            sizing=sizing.to_dict() if sizing is not None else None,
        )
        state.status = "running"
        self.running += 1
        state.attempts = attempt_number
        state.log_path = str(spec.log_path)
        state.started_at = time.monotonic()
        state.reason = ""
        self._emit(EventKind.TASK_STARTED, task=name, attempt=attempt_number)

        def deliver(result: AttemptResult) -> None:
            self.events.put((name, result))

        try:
            if self.in_process:
                state.attempt = InProcessAttempt(spec, deliver, pipeline=self.pipeline, settings=self.settings)
            else:
                state.attempt = SubprocessAttempt(spec, deliver, env=self.env, fork_server=self._server())
        except OSError as error:  # could not even start the process
            deliver(AttemptResult(Outcome.FAILED, None, f"could not start: {error}", 0.0))
        if self.worker is not None:
            self.worker.open()  # the control room connects once the run is under way

    def _size(
        self, task: Task, state: TaskSummary, inputs: Mapping[tuple[str, str], ArtifactRef], attempt: int
    ) -> SizingDecision | None:
        if self.room is None:
            return None
        input_bytes, input_rows = artifact_totals(inputs.values())
        request = SizingRequest(
            pipeline=self.pipeline.name,
            task=task.name,
            run_id=self.summary.run_id,
            target=task.target,
            input_bytes=input_bytes,
            input_rows=input_rows,
            attempt=attempt,
            declared=task.resources.to_dict(),
            deadline_seconds=task.timeout_seconds,
            bytes_per_row=task.bytes_per_row,
            previous_outcome=state.previous_outcome,
            previous_instance_type=state.sizing.instance_type if state.sizing is not None else None,
            retries_left=max(task.retry.limit + 1 - state.tries_this_run, 0),
            run_date=self.summary.params.get("run_date", ""),
        )
        decision = control.size(self.room, request)
        self._emit(
            EventKind.SIZING_DECIDED, task=task.name, attempt=attempt, sizing=decision.to_dict(), reason=decision.reason
        )
        return decision

    # -- an attempt ended

    def _finished(self, name: str, result: AttemptResult) -> None:
        task = self.pipeline.tasks[name]
        state = self.summary.tasks[name]
        if state.status != "running":  # a late result after cancellation
            return
        run_id = self.summary.run_id
        self.store.finish_attempt(
            run_id,
            name,
            state.attempts,
            status=_attempt_status(result),
            duration=result.duration_seconds,
            exit_code=result.exit_code,
            reason=result.reason,
            records=result.records,
            peak_memory_bytes=result.peak_memory_bytes,
            outputs=result.outputs if result.succeeded else None,
        )
        self.running -= 1
        state.duration = result.duration_seconds
        state.started_at = None
        state.attempt = None
        self._observe(task, state, result)
        self._record_end(name, task, state, result)
        if state.status != "retrying":
            self._settled(name)

    def _record_end(self, name: str, task: Task, state: TaskSummary, result: AttemptResult) -> None:
        run_id = self.summary.run_id
        if result.succeeded:
            state.outputs = dict(result.outputs)
            state.records = dict(result.records)
            state.status = "succeeded"
            self.store.set_task(run_id, name, "succeeded", attempts=state.attempts)
            self._emit(
                EventKind.TASK_SUCCEEDED,
                task=name,
                attempt=state.attempts,
                duration_seconds=result.duration_seconds,
                output_bytes=state.output_bytes,
                output_rows=state.output_rows,
                sizing=state.sizing.to_dict() if state.sizing else None,
            )
            return
        state.reason = result.reason
        state.log_tail = log_tail(Path(state.log_path or ""))
        state.previous_outcome = result.outcome.value
        if result.outcome is Outcome.CANCELLED:
            state.status = "cancelled"
            self.store.set_task(run_id, name, "cancelled", attempts=state.attempts, reason=result.reason)
            return
        if result.retryable and state.tries_this_run <= task.retry.limit:
            wait = backoff_seconds(task, state.tries_this_run)
            state.status = "retrying"
            state.next_try_at = time.monotonic() + wait
            self.frontier.retry_at(name, state.next_try_at)
            self.store.set_task(run_id, name, "retrying", attempts=state.attempts, reason=result.reason)
            self._emit(
                EventKind.TASK_RETRYING,
                task=name,
                attempt=state.attempts,
                reason=f"{result.reason}; retrying in {wait:g}s",
                log_tail=state.log_tail,
                duration_seconds=result.duration_seconds,
            )
            return
        state.status = "failed"
        self.store.set_task(run_id, name, "failed", attempts=state.attempts, reason=result.reason)
        self._emit(
            EventKind.TASK_FAILED,
            task=name,
            attempt=state.attempts,
            reason=result.reason,
            log_tail=state.log_tail,
            duration_seconds=result.duration_seconds,
        )

    def _observe(self, task: Task, state: TaskSummary, result: AttemptResult) -> None:
        if self.room is None:
            return
        input_bytes, input_rows = artifact_totals(self._inputs(task).values())
        output_bytes, output_rows = artifact_totals(result.outputs.values())
        sizing = state.sizing
        declared = task.resources
        control.observe(
            self.room,
            Observation(
                pipeline=self.pipeline.name,
                task=task.name,
                run_id=self.summary.run_id,
                attempt=state.attempts,
                outcome=result.outcome,
                input_bytes=input_bytes,
                input_rows=input_rows,
                output_bytes=output_bytes,
                output_rows=output_rows,
                target=task.target,
                instance_type=(sizing.instance_type if sizing else None) or declared.instance_type,
                instance_count=sizing.instance_count if sizing else declared.instance_count,
                cpu=(sizing.cpu if sizing else None) or declared.cpu,
                memory=(sizing.memory if sizing else None) or declared.memory_limit or declared.memory,
                duration_seconds=result.duration_seconds,
                peak_memory_bytes=result.peak_memory_bytes,
                reason=result.reason,
            ),
        )

    # -- the end

    def _cancel(self) -> None:
        """Stop every running attempt, wait briefly for them to go, record them cancelled."""
        running = self._running()
        for state in running:
            if state.attempt is not None:
                state.attempt.cancel()
        deadline = time.monotonic() + 5.0
        while any(t.status == "running" for t in running) and time.monotonic() < deadline:
            try:
                name, result = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            self._finished(name, result if result.outcome is Outcome.CANCELLED else _cancelled(result))
        for state in running:
            if state.status == "running":  # did not report back in time
                self._finished(state.name, AttemptResult(Outcome.CANCELLED, None, "cancelled", 0.0))
        for state in self.summary.tasks.values():
            if state.status in ("pending", "retrying"):
                state.status = "not-run"
                state.reason = "run cancelled"
                self.store.set_task(self.summary.run_id, state.name, "not-run", reason="run cancelled")

    def _finish(self, status: str) -> RunSummary:
        summary = self.summary
        for state in summary.tasks.values():
            if state.status == "pending":
                state.status = "not-run"
                self.store.set_task(summary.run_id, state.name, "not-run")
        summary.status = status
        summary.duration = time.monotonic() - summary.started
        self.store.finish_run(summary.run_id, status)
        kind = {
            "succeeded": EventKind.RUN_SUCCEEDED,
            "failed": EventKind.RUN_FAILED,
            "cancelled": EventKind.RUN_CANCELLED,
        }[status]
        failed = summary.failed_tasks
        self._emit(
            kind,
            duration_seconds=summary.duration,
            reason=f"task {failed[0].name}: {failed[0].reason}" if failed else "",
            log_tail=failed[0].log_tail if failed else [],
        )
        return summary

    def _emit(self, kind: EventKind, **fields: Any) -> None:
        control.emit(self.room, kind, self.pipeline.name, self.summary.run_id, **fields)


def _attempt_status(result: AttemptResult) -> str:
    return {
        Outcome.SUCCEEDED: "succeeded",
        Outcome.CANCELLED: "cancelled",
        Outcome.OOM: "oom",
        Outcome.TIMEOUT: "timeout",
    }.get(result.outcome, "failed")


def _cancelled(result: AttemptResult) -> AttemptResult:
    if result.succeeded:
        return result
    return dataclasses.replace(result, outcome=Outcome.CANCELLED, reason="cancelled")
