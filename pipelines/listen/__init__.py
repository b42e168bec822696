"""``headrace listen``: event triggers on the embedded default.

Each pipeline's triggers are consumed from their broker (:mod:`pipelines.listen.amqp` for
RabbitMQ / Amazon MQ, :mod:`pipelines.listen.sqs` for SQS) and every message becomes a local run
(:func:`pipelines.local.run_pipeline`), with the guarantees of :mod:`pipelines.listen.engine`.
SIGTERM or Ctrl-C stops taking messages and lets the running runs finish (their messages are
then answered); a second one exits at once, handing unanswered messages back to the broker.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pipelines.graph import Pipeline
from pipelines.listen.engine import Listener, RunFunction, Subscription
from pipelines.runs import RunStore
from pipelines.triggers import After
from steps.core.errors import ConfigError
from steps.core.settings import Settings

__all__ = ["listen", "subscriptions"]


def subscriptions(pipelines: Sequence[tuple[str, Pipeline]], settings: Settings) -> dict[str, list[Subscription]]:
    """Every trigger of ``pipelines`` (``(spec, pipeline)`` pairs), grouped by broker URL."""
    grouped: dict[str, list[Subscription]] = {}
    for spec, pipeline in pipelines:
        if not pipeline.triggers:
            raise ConfigError(
                f"pipeline {pipeline.name}: has no triggers; add triggers=[Queue(...)] or listen to another"
            )
        for trigger in pipeline.triggers:
            if isinstance(trigger, After):
                if not settings.events_url:
                    raise ConfigError(
                        f"pipeline {pipeline.name}, trigger {trigger.key}: completions are read from HEADRACE_EVENTS_URL, which is not set; set it to amqp://host:5672/vhost"
                    )
                url, source = settings.events_url, f"{_broker(settings.events_url)} {trigger.queue_for(pipeline.name)}"
            else:
                url = trigger.url
                source = f"{_broker(trigger.url)} {trigger.queue_name}"
            grouped.setdefault(url, []).append(Subscription(pipeline, spec, trigger, source))
    return grouped


def _broker(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"


def listen(
    pipelines: Sequence[tuple[str, Pipeline]],
    settings: Settings,
    run: RunFunction,
    *,
    concurrency: int = 1,
    log: Callable[[str], None] | None = None,
) -> None:
    """Consume until SIGTERM/SIGINT, then return once the running runs ended and were answered.
    A source that cannot work (login refused, a queue declared otherwise) raises :class:`ConfigError`."""
    from pipelines.listen.amqp import AmqpSource
    from pipelines.listen.sqs import SqsSource

    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    grouped = subscriptions(pipelines, settings)
    names = ", ".join(pipeline.name for _, pipeline in pipelines)
    say(f"listening for {names} (concurrency {concurrency}); SIGTERM or Ctrl-C stops")
    store = RunStore.for_settings(settings)
    listener = Listener(store, run, concurrency=concurrency, log=say)
    sources: list[Any] = []
    for url, subs in grouped.items():
        if url.startswith("sqs://"):
            for sub in subs:
                sources.append(SqsSource(sub, listener, settings, log=say))
        else:
            sources.append(AmqpSource(url, subs, listener, settings, log=say))
    threads = [threading.Thread(target=source.run, name="headrace-source", daemon=True) for source in sources]
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stopping.is_set():
            # Now, without waiting for the runs: the broker gets their messages back when the
            # connection drops, and the next listener resumes each run from its records.
            say("second stop: exiting now; messages not answered go back to the broker")
            os._exit(130)
        stopping.set()
        say("stopping: no new messages; waiting for running runs to finish (send the signal again to stop now)")
        for source in sources:
            source.stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        for thread in threads:
            thread.start()
        while True:
            for thread in threads:
                thread.join(0.2)
            fatal = next((s.fatal for s in sources if getattr(s, "fatal", "")), "")
            if fatal:  # credentials, permissions, a queue declared otherwise: no reconnect helps
                for source in sources:
                    source.stop()
                raise ConfigError(fatal)
            if not any(thread.is_alive() for thread in threads):
                break
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        listener.close()
        store.close()
