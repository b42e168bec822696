"""The recipe stream on events: it runs when the day's data is ready, and its end starts the next.

- ``daily`` is :mod:`examples.recipe_stream`'s pipeline, unchanged (same tasks, parameters and
  03:00 schedule), also started by a "data ready" message on the ``recipes.ready`` queue:
  ``{"date": "2026-12-01"}`` runs that day as soon as the upstream export lands, instead of
  waiting for the clock.
- ``digest`` runs after each ``recipe-stream`` run that succeeded, for the same day, from the
  completion message the finished run publishes (its run id and every output's size).

On this machine (RabbitMQ on 127.0.0.1:5672, guest/guest)::

    HEADRACE_EVENTS_URL=amqp://127.0.0.1:5672/ headrace listen \\
        examples/recipe_events:daily examples/recipe_events:digest --concurrency 2
    python -m examples.recipe_events 2026-12-01      # another terminal: the data is ready

On a cluster ``headrace deploy examples/recipe_events:daily`` adds an Argo Events EventSource and
Sensor next to the CronWorkflow. The broker comes from ``RECIPES_BROKER_URL`` (credentials from
``HEADRACE_BROKER_USERNAME`` / ``HEADRACE_BROKER_PASSWORD``), never from code.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from typing import Any

from examples import recipe_stream
from pipelines import After, Pipeline, Queue, StepContext, step

BROKER = os.environ.get("RECIPES_BROKER_URL", "amqp://127.0.0.1:5672/")
READY_QUEUE = "recipes.ready"


def with_triggers(base: Pipeline, *triggers: Any) -> Pipeline:
    """``base`` with ``triggers`` added: the same tasks, parameters and schedule (a shallow copy,
    so the pipeline it came from is left as it was)."""
    triggered = copy.copy(base)
    triggered.triggers = (*base.triggers, *triggers)
    return triggered


daily = with_triggers(recipe_stream.pipeline, Queue(BROKER, queue=READY_QUEUE, params={"run_date": "$.date"}))


@step
def write_digest(ctx: StepContext, day: str, upstream_run: str, upstream_outputs: str) -> dict[str, Any]:
    """One line per task of the finished run, from the sizes its completion message carried."""
    outputs = json.loads(upstream_outputs or "{}")
    rows = {name: sizes.get("rows") for name, sizes in outputs.items()}
    scored = sum(r or 0 for name, r in rows.items() if name.startswith("score."))
    line = f"{day}: run {upstream_run} produced {len(outputs)} outputs, {scored:,} items scored"
    ctx.record(summary=line)
    ctx.log.info(line)
    return {"day": day, "run": upstream_run, "rows": rows}


with Pipeline(
    "recipe-digest",
    triggers=[
        After(
            "recipe-stream",
            outcome="succeeded",
            params={"run_date": "$.date", "upstream_run": "$.run", "upstream_outputs": "$.outputs"},
        )
    ],
    description="A digest of each day's recipe stream run, started by its completion.",
) as digest:
    write_digest(
        day=digest.run_date,
        upstream_run=digest.param("upstream_run", ""),
        upstream_outputs=digest.param("upstream_outputs", "{}"),
    )


def publish_ready(day: str, url: str = BROKER) -> None:
    """Send the "data ready" message for ``day`` (what the upstream export would send)."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(READY_QUEUE, durable=True)
        channel.basic_publish(
            "",
            READY_QUEUE,
            json.dumps({"date": day}).encode(),
            pika.BasicProperties(message_id=f"recipes-ready-{day}", delivery_mode=pika.DeliveryMode.Persistent),
        )
    finally:
        connection.close()


if __name__ == "__main__":
    publish_ready(sys.argv[1] if len(sys.argv) > 1 else "2026-12-01")
    print(f"published: data ready for {sys.argv[1] if len(sys.argv) > 1 else '2026-12-01'} on {READY_QUEUE}")
