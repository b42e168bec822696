"""Event triggers: what starts a pipeline besides its schedule. Pure data, validated, no I/O.

A pipeline may list triggers next to (or instead of) its schedule::

    Pipeline(
        "recipe-stream",
        schedule=Schedule("0 3 * * *"),
        triggers=[
            Queue("amqp://mq.internal:5672/ml", queue="recipes.ready", params={"run_date": "$.date"}),
            Queue("sqs://recipes-ready?region=eu-west-1", params={"run_date": "$.date"}),
            After("recipe-features", outcome="succeeded"),
        ],
    )

Each message is a JSON object. ``params`` maps pipeline parameters to fields of it (``$.date``,
``$.batch.day``); ``filter`` keeps only messages whose fields equal one of the given values
(``{"$.kind": "recipes"}``). :class:`After` listens to the completion messages every headrace run
publishes (:func:`steps.runtime.events.completion_message`) on the events exchange; by default it hands on the
finished run's ``date`` as ``run_date``.

The same model compiles to Argo Events objects (:mod:`pipelines.argo.events`) and drives
``headrace listen`` on one machine (:mod:`pipelines.listen`), so a trigger means the same in both.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The exchange a :class:`Queue` trigger's queue is bound to (besides the default exchange).
DEFAULT_EXCHANGE = "headrace.events"
OUTCOMES = ("succeeded", "failed", "cancelled")
AFTER_OUTCOMES = (*OUTCOMES, "any")
AMQP_SCHEMES = ("amqp", "amqps")
SQS_SCHEME = "sqs"
#: A message field: ``$`` followed by ``.name`` parts (letters, digits, ``_``, ``-``).
FIELD_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_-]*)+$")
AMQP_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")
SQS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class _Missing:
    """A field the message does not have (``None`` is a value a message may carry)."""


MISSING = _Missing()


@dataclass(frozen=True)
class Queue:
    """Start a run for each message on a queue: RabbitMQ / Amazon MQ (``amqp://``, ``amqps://``)
    or Amazon SQS (``sqs://<queue-name>?region=<region>``).

    For AMQP, ``queue`` is declared durable and bound to ``exchange`` (a topic exchange) with
    ``routing_key`` (default: the queue's name); a message sent to the queue directly arrives too.
    Credentials never go in the URL: ``HEADRACE_BROKER_USERNAME`` / ``HEADRACE_BROKER_PASSWORD``
    locally, the ``headrace-secrets`` Secret on the cluster. ``retries``: a failed run is resumed
    (its failed tasks run again) this many times before the message is dead-lettered.
    """

    url: str
    queue: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    filter: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    exchange: str = DEFAULT_EXCHANGE
    routing_key: str = ""
    retries: int = 0
    name: str = ""

    @property
    def scheme(self) -> str:
        return urllib.parse.urlsplit(self.url).scheme.lower()

    @property
    def kind(self) -> str:
        return "sqs" if self.scheme == SQS_SCHEME else "amqp"

    @property
    def queue_name(self) -> str:
        """The AMQP queue, or the SQS queue named by the URL's host part."""
        if self.kind == "sqs":
            return urllib.parse.urlsplit(self.url).hostname or ""
        return self.queue

    @property
    def region(self) -> str:
        """The SQS region from ``?region=`` (empty: the settings' ``aws_region``)."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)
        return (query.get("region") or [""])[0]

    @property
    def binding_key(self) -> str:
        return self.routing_key or self.queue

    @property
    def label(self) -> str:
        """How run records and notifications name this trigger."""
        if self.kind == "sqs":
            return f"sqs queue {self.queue_name}"
        return f"amqp queue {self.queue}"

    @property
    def key(self) -> str:
        """A Kubernetes-name-safe key for this trigger, unique in its pipeline."""
        return self.name or _slug(f"{self.kind}-{self.queue_name}")

    @property
    def field_params(self) -> Mapping[str, str]:
        return self.params


@dataclass(frozen=True)
class After:
    """Start a run when another headrace pipeline finishes with ``outcome`` (``"succeeded"``,
    ``"failed"``, ``"cancelled"`` or ``"any"``). Without ``params`` the finished run's day is
    handed on (``{"run_date": "$.date"}``)."""

    pipeline: str
    outcome: str = "succeeded"
    params: Mapping[str, str] | None = None
    filter: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    retries: int = 0
    name: str = ""

    kind = "after"

    @property
    def field_params(self) -> Mapping[str, str]:
        return {"run_date": "$.date"} if self.params is None else self.params

    @property
    def binding_key(self) -> str:
        return f"{self.pipeline}.{'*' if self.outcome == 'any' else self.outcome}"

    @property
    def label(self) -> str:
        return f"after {self.pipeline} {self.outcome}"

    @property
    def key(self) -> str:
        return self.name or _slug(f"after-{self.pipeline}")

    def queue_for(self, pipeline: str) -> str:
        """The queue the listening pipeline reads completions from (one per listener and upstream)."""
        return f"headrace.after.{pipeline}.{self.pipeline}"


Trigger = Queue | After


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return slug[:40].strip("-") or "trigger"


# ----------------------------------------------------------------------------- messages


def field_value(message: Any, path: str) -> Any:
    """The value at ``path`` (``$.a.b``) in a decoded JSON message, or :data:`MISSING`."""
    value = message
    for part in path.split(".")[1:]:
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def as_text(value: Any) -> str:
    """A message value as the string a parameter receives: JSON's true/false stay lowercase, an
    object or a list arrives as its JSON text (as Argo Events hands it on)."""
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def filter_values(allowed: str | Sequence[str]) -> tuple[str, ...]:
    return (allowed,) if isinstance(allowed, str) else tuple(allowed)


def message_filter(trigger: Trigger) -> dict[str, tuple[str, ...]]:
    """Every field condition of ``trigger``; :class:`After` adds its outcome (unless ``"any"``)."""
    conditions = {path: filter_values(allowed) for path, allowed in trigger.filter.items()}
    if isinstance(trigger, After):
        conditions["$.pipeline"] = (trigger.pipeline,)
        if trigger.outcome != "any":
            conditions["$.outcome"] = (trigger.outcome,)
    return conditions


def matches(trigger: Trigger, message: Any) -> bool:
    """Whether ``message`` passes the trigger's filter (each field equals one allowed value)."""
    for path, allowed in message_filter(trigger).items():
        value = field_value(message, path)
        if value is MISSING or as_text(value) not in allowed:
            return False
    return True


def message_params(pipeline: str, trigger: Trigger, message: Any) -> dict[str, str]:
    """The raw parameter values ``message`` gives a run; raises :class:`ValueError` with one line
    naming pipeline, trigger and field when a mapped field is missing."""
    if not isinstance(message, Mapping):
        raise ValueError(
            f'pipeline {pipeline}, trigger {trigger.key}: message is not a JSON object; send one like {{"date": "2026-12-01"}}'
        )
    values: dict[str, str] = {}
    for param, path in trigger.field_params.items():
        value = field_value(message, path)
        if value is MISSING:
            raise ValueError(
                f"pipeline {pipeline}, trigger {trigger.key}: message has no field {path} for parameter {param}"
            )
        values[param] = as_text(value)
    return values


# ----------------------------------------------------------------------------- validation


def trigger_problems(pipeline: str, triggers: Sequence[Any], params: Mapping[str, Any]) -> list[str]:
    """Every rule the triggers break, one line each naming pipeline, trigger and field."""
    found: list[str] = []
    keys: dict[str, int] = {}
    for index, trigger in enumerate(triggers):
        if not isinstance(trigger, Queue | After):
            found.append(
                f"pipeline {pipeline}: triggers[{index}] is a {type(trigger).__name__}; use Queue(...) or After(...)"
            )
            continue
        key = trigger.key
        where = f"pipeline {pipeline}, trigger {key}"
        keys[key] = keys.get(key, 0) + 1
        if keys[key] == 2:
            found.append(f"{where}: defined twice; give one of them name='...'")
        if trigger.name and (not K8S_NAME.match(trigger.name) or len(trigger.name) > 40):
            found.append(
                f"{where}: name {trigger.name!r} is not a valid name; use lowercase letters, digits and '-' (at most 40)"
            )
        found += (
            _queue_problems(where, trigger) if isinstance(trigger, Queue) else _after_problems(where, pipeline, trigger)
        )
        for param, path in trigger.field_params.items():
            if param not in params:
                found.append(
                    f"{where}: params maps unknown parameter {param!r}; parameters are {', '.join(sorted(params))}"
                )
            if not isinstance(path, str) or not FIELD_PATH.match(path):
                found.append(f"{where}: params[{param!r}] {path!r} is not a message field; write it like '$.date'")
        for path, allowed in trigger.filter.items():
            if not isinstance(path, str) or not FIELD_PATH.match(path):
                found.append(f"{where}: filter field {path!r} is not a message field; write it like '$.kind'")
            values = filter_values(allowed) if isinstance(allowed, str | list | tuple) else ()
            if not values or not all(isinstance(v, str) for v in values):
                found.append(f"{where}: filter[{path!r}] must be a string or a list of strings")
        if not isinstance(trigger.retries, int) or trigger.retries < 0:
            found.append(f"{where}: retries is {trigger.retries!r}; it must be 0 or more")
    return found


def _queue_problems(where: str, trigger: Queue) -> list[str]:
    found: list[str] = []
    try:
        parts = urllib.parse.urlsplit(trigger.url)
        port = parts.port
    except ValueError as error:
        return [f"{where}: url {trigger.url!r} is not a URL ({error})"]
    if parts.scheme.lower() not in (*AMQP_SCHEMES, SQS_SCHEME):
        return [f"{where}: url {trigger.url!r} has scheme {parts.scheme!r}; use amqp://, amqps:// or sqs://"]
    if parts.password:
        found.append(
            f"{where}: url carries a password; remove it and set HEADRACE_BROKER_PASSWORD (the headrace-secrets Secret on the cluster)"
        )
    if trigger.kind == "sqs":
        if not SQS_NAME.match(trigger.queue_name):
            found.append(
                f"{where}: url {trigger.url!r} names no valid SQS queue; write sqs://<queue-name>?region=<region>"
            )
        if trigger.queue:
            found.append(f"{where}: queue is for AMQP; an SQS queue is named in the url (sqs://{trigger.queue})")
        if port is not None:
            found.append(
                f"{where}: url {trigger.url!r} has a port; the SQS endpoint comes from HEADRACE_AWS_ENDPOINT_URL"
            )
        return found
    if not parts.hostname:
        found.append(f"{where}: url {trigger.url!r} names no host; write amqp://host:5672/vhost")
    if not trigger.queue:
        found.append(f"{where}: queue is not set; name the queue, e.g. queue='recipes.ready'")
    elif not AMQP_NAME.match(trigger.queue) or trigger.queue.startswith("amq."):
        found.append(
            f"{where}: queue {trigger.queue!r} is not a valid queue name; use letters, digits, '.', '_', '-', ':' (not starting with 'amq.')"
        )
    if not AMQP_NAME.match(trigger.exchange) or trigger.exchange.startswith("amq."):
        found.append(
            f"{where}: exchange {trigger.exchange!r} is not a valid exchange name; use letters, digits, '.', '_', '-'"
        )
    if trigger.routing_key and not re.match(r"^[A-Za-z0-9_.*#:-]{1,255}$", trigger.routing_key):
        found.append(f"{where}: routing_key {trigger.routing_key!r} is not a valid routing key")
    return found


def _after_problems(where: str, pipeline: str, trigger: After) -> list[str]:
    found: list[str] = []
    if not isinstance(trigger.pipeline, str) or not K8S_NAME.match(trigger.pipeline):
        found.append(f"{where}: pipeline {trigger.pipeline!r} is not a pipeline name; use the other pipeline's name")
    elif trigger.pipeline == pipeline:
        found.append(f"{where}: the pipeline would start itself after every run; name another pipeline")
    if trigger.outcome not in AFTER_OUTCOMES:
        found.append(f"{where}: outcome {trigger.outcome!r} is not one of {', '.join(AFTER_OUTCOMES)}")
    return found
