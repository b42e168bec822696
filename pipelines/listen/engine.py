"""What ``headrace listen`` does with one message, whatever broker it came from.

Guarantees (each has a test against a real RabbitMQ, and SQS through moto):

- A message is acknowledged only after its run is recorded finished.
- A redelivered message never starts a second run: the message (its id, or the SHA-256 of its
  body when the publisher set none) is claimed in the run records before the run starts
  (:meth:`~pipelines.runs.RunStore.claim_message`). A redelivery finds the claim: a finished run
  acknowledges it, a run still going here keeps it until it ends, a run whose listener died is
  resumed (its succeeded tasks are kept), never started again.
- A message that does not decode, lacks a mapped field or carries a bad value is dead-lettered
  with the one-line reason, and the listener goes on.
- A failed run is resumed ``trigger.retries`` times, then dead-lettered with its failure.
- At most ``concurrency`` runs at once (the broker sees the same bound as prefetch).

Broker I/O is not here: a source hands each message in as a :class:`Delivery` whose
``ack``/``dead_letter``/``release`` it implements, and runs ``call_soon`` callbacks on its own
thread (pika's connection is not thread-safe).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from pipelines.graph import Pipeline
from pipelines.local.start import resolve_run_params
from pipelines.local.summary import RunSummary
from pipelines.runs import RunStore, new_run_id
from pipelines.triggers import Trigger, matches, message_params
from steps.core.errors import HeadraceError

#: How long a message whose run another live listener is running waits before it goes back.
RECHECK_SECONDS = 5.0


class Delivery(Protocol):
    """One delivery of a message by a broker; the methods are called on the source's thread."""

    body: bytes
    message_id: str

    def ack(self) -> None: ...

    def dead_letter(self, reason: str) -> None: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class Subscription:
    """One pipeline's trigger, as a source consumes it. ``source`` names the queue uniquely (the
    key message ids are deduplicated under)."""

    pipeline: Pipeline
    spec: str
    trigger: Trigger
    source: str


#: Runs one message's run: (subscription, params, run id, resume?) -> the run's summary.
RunFunction = Callable[[Subscription, dict[str, str], str, bool], RunSummary]


def message_key(delivery: Delivery) -> str:
    return delivery.message_id or "sha256:" + hashlib.sha256(delivery.body).hexdigest()


@dataclass
class _Active:
    run_id: str
    delivery: Delivery
    future: Future[RunSummary] | None = None


@dataclass
class Listener:
    """The broker-independent core of ``headrace listen``; see the module docstring."""

    store: RunStore
    run: RunFunction
    concurrency: int = 1
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    active: dict[tuple[str, str], _Active] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="headrace-run")
        self.lock = threading.Lock()
        self.stopping = False

    # -- a message arrives (on the source's thread)

    def receive(
        self, subscription: Subscription, delivery: Delivery, call_soon: Callable[[Callable[[], None]], None]
    ) -> None:
        pipeline, trigger = subscription.pipeline, subscription.trigger
        where = f"pipeline {pipeline.name}, trigger {trigger.key}"
        key = (subscription.source, message_key(delivery))
        with self.lock:
            current = self.active.get(key)
            if current is not None:  # redelivered while its run goes on here: answer when it ends
                current.delivery = delivery
                return
        if self.stopping:
            delivery.release()
            return
        try:
            message = json.loads(delivery.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            self._dead(delivery, f"{where}: message is not JSON ({error})")
            return
        if not matches(trigger, message):
            self.log(f"{where}: message {key[1]} does not pass the filter; acknowledged without a run")
            delivery.ack()
            return
        try:
            params = message_params(pipeline.name, trigger, message)
            resolve_run_params(pipeline, params)
            pipeline.convert_params(pipeline.resolve_params(params))
        except (ValueError, HeadraceError) as error:
            line = str(error)
            self._dead(delivery, line if line.startswith("pipeline ") else f"{where}: {line}")
            return
        run_id = ""
        while not run_id:  # a new run id can clash with another's (same second, 1 in 65536)
            run_id = self.store.claim_message(
                new_run_id(pipeline.name), trigger=trigger.label, source=subscription.source, message_id=key[1]
            )
        record = self.store.get_run(run_id)
        resume = record is not None
        if record is not None and record.status != "running":
            self._settle(where, record.id, record.status, delivery, already=True)
            return
        if record is not None and record.runner_alive:  # another listener runs it: ask again later
            self.log(
                f"{where}: run {run_id} is going on in process {record.pid}; message handed back in {RECHECK_SECONDS:g}s"
            )
            timer = threading.Timer(RECHECK_SECONDS, lambda: call_soon(delivery.release))
            timer.daemon = True
            timer.start()
            return
        active = _Active(run_id, delivery)
        with self.lock:
            self.active[key] = active
        self.log(f"{where}: message {key[1]} {'resumes' if resume else 'starts'} run {run_id}")
        active.future = self.pool.submit(self._run, subscription, params, run_id, resume)
        active.future.add_done_callback(lambda future: call_soon(lambda: self._done(where, key, future)))

    def _run(self, subscription: Subscription, params: dict[str, str], run_id: str, resume: bool) -> RunSummary:
        """The run, resumed after a failure up to the trigger's ``retries``."""
        summary = self.run(subscription, params, run_id, resume)
        for retry in range(subscription.trigger.retries):
            if summary.status != "failed":
                break
            self.log(f"run {run_id} failed; resuming it (retry {retry + 1} of {subscription.trigger.retries})")
            summary = self.run(subscription, params, run_id, True)
        return summary

    # -- a run ended (back on the source's thread)

    def _done(self, where: str, key: tuple[str, str], future: Future[RunSummary]) -> None:
        with self.lock:
            active = self.active.pop(key)
        error = future.exception()
        if error is not None:
            self.log(
                f"{where}: run {active.run_id} could not run ({type(error).__name__}: {error}); message handed back"
            )
            active.delivery.release()
            return
        summary = future.result()
        self._settle(where, active.run_id, summary.status, active.delivery, reason=_failure(summary))

    def _settle(
        self, where: str, run_id: str, status: str, delivery: Delivery, *, reason: str = "", already: bool = False
    ) -> None:
        if status == "succeeded":
            if already:
                self.log(f"{where}: message {message_key(delivery)} already ran as run {run_id}; acknowledged")
            delivery.ack()
            return
        self._dead(delivery, f"{where}: run {run_id} {status}" + (f": {reason}" if reason else ""))

    def _dead(self, delivery: Delivery, reason: str) -> None:
        self.log(f"dead-lettered: {reason}")
        delivery.dead_letter(reason)

    # -- the end

    @property
    def running(self) -> int:
        with self.lock:
            return len(self.active)

    def stop(self) -> None:
        """Take no more messages; runs already going on finish (see :meth:`close`)."""
        self.stopping = True

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _failure(summary: RunSummary) -> str:
    failed = summary.failed_tasks
    return f"task {failed[0].name}: {failed[0].reason}" if failed else ""
