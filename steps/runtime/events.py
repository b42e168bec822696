"""A finished run announces itself on the broker: what ``After("pipeline")`` triggers listen to.

Both ends of a run publish here: the local runner when a run ends, and the Argo exit handler in
the workflow's last pod. The message goes to the topic exchange :data:`EVENTS_EXCHANGE` with
routing key ``<pipeline>.<outcome>``, persistent, with the run id as message id (a listener that
sees it twice starts one run), and is confirmed by the broker before this returns.

Publishing never fails a run: a broker that is down costs one warning line on stderr.
Credentials come from ``broker_username`` / ``broker_password`` (``HEADRACE_BROKER_*``, the
``headrace-secrets`` Secret in the cluster), never from the URL in code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from steps.core.settings import Settings

#: The topic exchange run completions go to (routing key ``<pipeline>.<outcome>``).
EVENTS_EXCHANGE = "headrace.runs"


def connection_parameters(url: str, settings: Settings, *, heartbeat: int = 30) -> Any:
    """pika's connection parameters for ``url`` with the settings' credentials (the URL's own,
    when it carries them, win: local tests use ``amqp://guest:guest@...``)."""
    import pika

    parameters = pika.URLParameters(url)
    if settings.broker_username and "@" not in url:
        parameters.credentials = pika.PlainCredentials(settings.broker_username, settings.broker_password)
    parameters.heartbeat = heartbeat
    parameters.connection_attempts = 1
    parameters.socket_timeout = 5
    parameters.blocked_connection_timeout = 30
    return parameters


def routing_key(pipeline: str, outcome: str) -> str:
    return f"{pipeline}.{outcome}"


def completion_message(
    pipeline: str, run_id: str, run_date: str, outcome: str, outputs: Mapping[str, Mapping[str, int | None]]
) -> dict[str, Any]:
    """What a finished run publishes: ``outcome`` is succeeded, failed or cancelled; ``outputs``
    maps ``task.output`` to its ``bytes`` and ``rows`` (empty when the publisher does not know them)."""
    return {
        "pipeline": pipeline,
        "run": run_id,
        "date": run_date,
        "outcome": outcome,
        "outputs": {name: dict(sizes) for name, sizes in outputs.items()},
    }


def publish_completion(settings: Settings, message: Mapping[str, Any], *, url: str = "") -> bool:
    """Publish a run's completion message; True once the broker confirmed it, False (and one
    warning line) when it could not be delivered."""
    target = url or settings.events_url
    if not target:
        return False
    try:
        import pika

        connection = pika.BlockingConnection(connection_parameters(target, settings))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)
            channel.basic_publish(
                EVENTS_EXCHANGE,
                routing_key(str(message["pipeline"]), str(message["outcome"])),
                json.dumps(dict(message)).encode(),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=f"completion:{message['run']}:{message['outcome']}",
                ),
            )
        finally:
            connection.close()
    except Exception as error:  # a completion that cannot be sent never fails the run
        print(
            f"warning: run {message.get('run')}: completion not published ({type(error).__name__}: {error})",
            file=sys.stderr,
            flush=True,
        )
        return False
    return True
