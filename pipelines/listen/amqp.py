"""RabbitMQ / Amazon MQ (AMQP 0-9-1) for ``headrace listen``, through pika.

One connection and one channel per broker URL. Each :class:`~pipelines.triggers.Queue` trigger's
queue is declared durable and bound to its topic exchange; each ``After`` trigger gets a durable
queue of its own bound to the completions exchange. The channel's prefetch (global) is the
listener's concurrency, so the broker never hands out more messages than can run.

Dead letters go to ``<queue>.dead`` (declared durable), with the reason in the
``x-headrace-reason`` header and the body unchanged; the original is acknowledged after the
broker confirmed the dead letter.

A lost connection (broker restart, ``rabbitmqctl close_all_connections``) is re-opened with
exponential backoff (0.5 s doubling to 15 s). Unacknowledged messages go back to the queue with
the connection; runs still going on finish, and their redelivered messages are answered from the
run records (see :mod:`pipelines.listen.engine`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.listen.engine import Listener, Subscription
from pipelines.triggers import After
from steps.core.settings import Settings
from steps.runtime.events import EVENTS_EXCHANGE, connection_parameters

REASON_HEADER = "x-headrace-reason"
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0


def dead_letter_queue(name: str) -> str:
    return f"{name}.dead"


def queue_of(subscription: Subscription) -> str:
    trigger = subscription.trigger
    return trigger.queue_for(subscription.pipeline.name) if isinstance(trigger, After) else trigger.queue


def declare(channel: Any, subscription: Subscription) -> str:
    """Declare the subscription's exchange, queue, binding and dead-letter queue; the queue's name."""
    trigger = subscription.trigger
    name = queue_of(subscription)
    exchange = EVENTS_EXCHANGE if isinstance(trigger, After) else trigger.exchange
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, exchange, routing_key=trigger.binding_key)
    channel.queue_declare(dead_letter_queue(name), durable=True)
    return name


@dataclass
class AmqpDelivery:
    """One message as pika delivered it; acknowledging on a channel that has closed since does
    nothing (the broker redelivers the message, and the run records answer it)."""

    source: AmqpSource
    channel: Any
    tag: int
    queue: str
    body: bytes
    message_id: str
    properties: Any

    def _open(self) -> bool:
        return bool(self.channel.is_open) and self.channel is self.source.channel

    def ack(self) -> None:
        if self._open():
            self.channel.basic_ack(self.tag)

    def release(self) -> None:
        if self._open():
            self.channel.basic_nack(self.tag, requeue=True)

    def dead_letter(self, reason: str) -> None:
        import pika

        if not self._open():
            return
        headers = dict(self.properties.headers or {})
        headers[REASON_HEADER] = reason
        self.channel.basic_publish(
            "",
            dead_letter_queue(self.queue),
            self.body,
            pika.BasicProperties(
                content_type=self.properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=self.properties.message_id,
                headers=headers,
            ),
        )
        self.channel.basic_ack(self.tag)


class AmqpSource:
    """Consumes every subscription on one broker until :meth:`stop`; reconnects on its own."""

    def __init__(
        self,
        url: str,
        subscriptions: Sequence[Subscription],
        listener: Listener,
        settings: Settings,
        *,
        log: Callable[[str], None] = print,
    ) -> None:
        self.url = url
        self.subscriptions = list(subscriptions)
        self.listener = listener
        self.settings = settings
        self.log = log
        self.channel: Any = None
        self.connection: Any = None
        self.calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.stopped = threading.Event()
        self.connected = threading.Event()
        self.consumer_tags: list[str] = []
        #: Why this source gave up: what no reconnect can fix (credentials, permissions, a queue or
        #: exchange declared otherwise). ``listen`` turns it into one line and exit code 2.
        self.fatal = ""

    # -- thread-safe entry points

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the consuming thread (pika's channel is not thread-safe)."""
        self.calls.put(fn)
        connection = self.connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(lambda: None)  # wakes the loop
            except Exception:  # closed: the loop drains the calls when it reconnects
                return

    def stop(self) -> None:
        self.stopped.set()
        self.call_soon(lambda: None)

    # -- the loop

    def run(self) -> None:
        """Consume until stopped, reconnecting with backoff; returns once every run ended and was
        answered, or at once with :attr:`fatal` set when no reconnect can help."""
        import pika.exceptions

        wait = BACKOFF_FIRST
        while True:
            try:
                self._consume()
                return
            except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError) as error:
                self.fatal = (
                    f"broker {self._shown_url()}: login refused ({error}); "
                    "check HEADRACE_BROKER_USERNAME and HEADRACE_BROKER_PASSWORD"
                )
            except pika.exceptions.ProbableAccessDeniedError as error:
                self.fatal = f"broker {self._shown_url()}: access refused ({error}); grant the user the virtual host"
            except pika.exceptions.ChannelClosedByBroker as error:
                if self.connected.is_set() or error.reply_code not in (403, 404, 406):
                    if self._lost(error, wait):
                        return
                    wait = min(wait * 2, BACKOFF_MAX)
                    continue
                self.fatal = (
                    f"broker {self._shown_url()}: {error.reply_text}; "
                    "fix the trigger's queue or exchange, or remove the broker's one declared otherwise"
                )
            except (pika.exceptions.AMQPError, OSError) as error:
                if self._lost(error, wait):
                    return
                wait = min(wait * 2, BACKOFF_MAX)
                continue
            self._close_quietly()
            self.connected.set()  # nobody waits for a source that gave up
            return

    def _lost(self, error: BaseException, wait: float) -> bool:
        """Forget the connection and wait ``wait`` seconds (answering finished runs meanwhile);
        True when there is nothing left to reconnect for."""
        self._close_quietly()
        self.connected.clear()
        self.channel = None
        self.connection = None
        if self.stopped.is_set() and self.listener.running == 0:
            return True
        self.log(f"broker {self._shown_url()}: connection lost ({type(error).__name__}); reconnecting in {wait:g}s")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            self._drain()
            time.sleep(0.05)
        return False

    def _close_quietly(self) -> None:
        connection = self.connection
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # already going away
                return

    def _consume(self) -> None:
        import pika

        self.connection = pika.BlockingConnection(connection_parameters(self.url, self.settings))
        channel = self.connection.channel()
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=max(1, self.listener.concurrency), global_qos=True)
        self.consumer_tags = []
        for subscription in self.subscriptions:
            name = declare(channel, subscription)
            self.consumer_tags.append(channel.basic_consume(name, self._on_message(subscription, name), auto_ack=False))
        self.channel = channel
        self.connected.set()
        self.log(f"broker {self._shown_url()}: consuming {', '.join(queue_of(s) for s in self.subscriptions)}")
        cancelled = False
        while True:
            self._drain()
            if self.stopped.is_set():
                if not cancelled:
                    for tag in self.consumer_tags:
                        channel.basic_cancel(tag)
                    self.listener.stop()
                    cancelled = True
                if self.listener.running == 0:
                    self._drain()
                    self.connection.close()
                    return
            self.connection.process_data_events(time_limit=0.2)

    def _drain(self) -> None:
        while True:
            try:
                fn = self.calls.get_nowait()
            except queue.Empty:
                return
            fn()

    def _on_message(self, subscription: Subscription, name: str) -> Callable[..., None]:
        def handle(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            delivery = AmqpDelivery(
                self, channel, method.delivery_tag, name, body, properties.message_id or "", properties
            )
            self.listener.receive(subscription, delivery, self.call_soon)

        return handle

    def _shown_url(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 5672}{parts.path}"
