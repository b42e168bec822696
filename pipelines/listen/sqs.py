"""Amazon SQS for ``headrace listen``, through boto3 (``HEADRACE_AWS_ENDPOINT_URL``: a moto
server in the tests, a VPC endpoint in production).

Long polling (1 s, so a stop is noticed quickly) receives at most as many messages as the
listener has free run slots. Acknowledging deletes the message; handing it back makes it visible
again at once; dead letters go to ``<queue>-dead`` (created on first use) with the reason as
the ``headrace-reason`` message attribute. The SQS ``MessageId`` is the same on every delivery of
a message, which is what the run records deduplicate on. A message stays invisible to others for
:data:`VISIBILITY_SECONDS` while its run goes on; runs longer than that should use a queue
whose visibility timeout is longer still (the queue's own setting wins when larger).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.listen.engine import Listener, Subscription
from steps.core.settings import Settings

VISIBILITY_SECONDS = 3600
REASON_ATTRIBUTE = "headrace-reason"


@dataclass
class SqsDelivery:
    source: SqsSource
    receipt: str
    body: bytes
    message_id: str

    def ack(self) -> None:
        self.source.client.delete_message(QueueUrl=self.source.queue_url, ReceiptHandle=self.receipt)

    def release(self) -> None:
        self.source.client.change_message_visibility(
            QueueUrl=self.source.queue_url, ReceiptHandle=self.receipt, VisibilityTimeout=0
        )

    def dead_letter(self, reason: str) -> None:
        self.source.client.send_message(
            QueueUrl=self.source.dead_letter_url(),
            MessageBody=self.body.decode("utf-8", errors="replace"),
            MessageAttributes={REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason}},
        )
        self.ack()


class SqsSource:
    """Polls one SQS queue until :meth:`stop`; transient errors are retried with backoff."""

    def __init__(
        self, subscription: Subscription, listener: Listener, settings: Settings, *, log: Callable[[str], None] = print
    ) -> None:
        from steps.storage.aws import client_for

        trigger = subscription.trigger
        self.subscription = subscription
        self.listener = listener
        self.log = log
        self.queue_name = getattr(trigger, "queue_name", "")
        self.client: Any = client_for(
            "sqs", region=getattr(trigger, "region", "") or settings.aws_region, endpoint_url=settings.aws_endpoint_url
        )
        self.queue_url = ""
        self._dead_url = ""
        self.stopped = threading.Event()
        self.lock = threading.RLock()  # a run that ends at once answers from inside receive

    def call_soon(self, fn: Callable[[], None]) -> None:
        with self.lock:  # boto3 clients are thread-safe; one answer at a time keeps the log ordered
            fn()

    def stop(self) -> None:
        self.stopped.set()

    def dead_letter_url(self) -> str:
        if not self._dead_url:
            self._dead_url = self.client.create_queue(QueueName=_dead_name(self.queue_name))["QueueUrl"]
        return self._dead_url

    def run(self) -> None:
        wait = 0.5
        while True:
            if self.stopped.is_set():
                self.listener.stop()
                if self.listener.running == 0:
                    return
                time.sleep(0.1)
                continue
            try:
                if not self.queue_url:
                    self.queue_url = self.client.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
                    self.log(f"sqs: consuming {self.queue_name}")
                free = self.listener.concurrency - self.listener.running
                if free <= 0:
                    time.sleep(0.05)
                    continue
                answer = self.client.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=min(10, free),
                    WaitTimeSeconds=1,
                    VisibilityTimeout=VISIBILITY_SECONDS,
                )
                wait = 0.5
            except Exception as error:  # endpoint down, throttled: try again, never give up
                self.log(f"sqs {self.queue_name}: {type(error).__name__}: {error}; retrying in {wait:g}s")
                time.sleep(wait)
                wait = min(wait * 2, 15.0)
                continue
            for message in answer.get("Messages", []):
                delivery = SqsDelivery(self, message["ReceiptHandle"], message["Body"].encode(), message["MessageId"])
                with self.lock:
                    self.listener.receive(self.subscription, delivery, self.call_soon)


def _dead_name(name: str) -> str:
    return f"{name.removesuffix('.fifo')}-dead" + (".fifo" if name.endswith(".fifo") else "")
