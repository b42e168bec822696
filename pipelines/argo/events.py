"""Triggers on Argo: one Argo Events ``EventSource`` and one ``Sensor`` per pipeline.

The EventSource reads each trigger's queue (``spec.amqp.<trigger>`` for RabbitMQ / Amazon MQ and
for ``After``, ``spec.sqs.<trigger>`` for SQS) and puts every message on the EventBus; the Sensor
has one dependency per trigger, filtered like the local listener filters, and one
``argoWorkflow`` trigger per dependency (``conditions`` names it, so each fires alone) that
submits a Workflow from the pipeline's WorkflowTemplate with the mapped message fields as
arguments. Message bodies are JSON (``jsonBody``), so ``$.date`` is the event's ``body.date``.

Secrets stay out of the objects: the AMQP credentials and the completions URL are keys of the
``headrace-secrets`` Secret (``HEADRACE_BROKER_USERNAME``, ``HEADRACE_BROKER_PASSWORD``,
``HEADRACE_EVENTS_URL``), the same keys the pods read as environment. The EventBus
(``default``), the ServiceAccounts and RBAC are in ``manifests/events``.

Delivery on Argo is Argo Events' own: the EventSource acknowledges a message once it is on the
EventBus (JetStream, durable), and the Sensor submits at least once (``atLeastOnce``) with
retries. Workflows started by a trigger carry the ``headrace.dev/trigger`` label, which the
watcher and the control room show as what started the run.
"""

from __future__ import annotations

from typing import Any

from pipelines.argo.client import Kind
from pipelines.argo.workflow import labels
from pipelines.graph import Pipeline
from pipelines.triggers import After, Queue, Trigger, message_filter
from steps.core.naming import TRIGGER_LABEL
from steps.core.settings import Settings
from steps.runtime.events import EVENTS_EXCHANGE

API_VERSION = "argoproj.io/v1alpha1"
EVENT_BUS = "default"
SECRET = "headrace-secrets"
#: Runs the EventSource pods (no Kubernetes API access needed; on EKS, annotate it for SQS).
EVENT_SOURCE_ACCOUNT = "headrace-events"
#: Runs the Sensor pods: may create Workflows from WorkflowTemplates in the namespace, nothing else.
SENSOR_ACCOUNT = "headrace-sensor"
SQS_WAIT_SECONDS = 20


def body_path(path: str) -> str:
    """A trigger's ``$.a.b`` as the path into an Argo Events event (``body.a.b``)."""
    return "body" + path[1:]


def _metadata(pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": pipeline.name, "labels": labels(pipeline)}
    namespace = pipeline.namespace or settings.argo_namespace
    if namespace:
        meta["namespace"] = namespace
    return meta


def _secret(key: str) -> dict[str, str]:
    return {"name": SECRET, "key": key}


def _amqp(pipeline: Pipeline, trigger: Trigger) -> dict[str, Any]:
    if isinstance(trigger, After):
        endpoint: dict[str, Any] = {"urlSecret": _secret("HEADRACE_EVENTS_URL")}
        exchange, queue = EVENTS_EXCHANGE, trigger.queue_for(pipeline.name)
    else:
        endpoint = {
            "url": trigger.url,
            "auth": {"username": _secret("HEADRACE_BROKER_USERNAME"), "password": _secret("HEADRACE_BROKER_PASSWORD")},
        }
        exchange, queue = trigger.exchange, trigger.queue
    return {
        **endpoint,
        "jsonBody": True,
        "exchangeName": exchange,
        "exchangeType": "topic",
        "routingKey": trigger.binding_key,
        "exchangeDeclare": {"durable": True, "autoDelete": False, "internal": False, "noWait": False},
        # Durable and shared, the same queue `headrace listen` declares: messages wait while nobody reads.
        "queueDeclare": {"name": queue, "durable": True, "autoDelete": False, "exclusive": False, "noWait": False},
        "connectionBackoff": {"duration": "1s", "factor": 2, "jitter": 0.2, "steps": 10},
    }


def _sqs(trigger: Queue, settings: Settings) -> dict[str, Any]:
    return {
        "region": trigger.region or settings.aws_region,
        "queue": trigger.queue_name,
        "waitTimeSeconds": SQS_WAIT_SECONDS,
        "jsonBody": True,
    }


def event_source(pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    """The EventSource reading every trigger of ``pipeline``."""
    spec: dict[str, Any] = {"eventBusName": EVENT_BUS, "template": {"serviceAccountName": EVENT_SOURCE_ACCOUNT}}
    for trigger in pipeline.triggers:
        if isinstance(trigger, Queue) and trigger.kind == "sqs":
            spec.setdefault("sqs", {})[trigger.key] = _sqs(trigger, settings)
        else:
            spec.setdefault("amqp", {})[trigger.key] = _amqp(pipeline, trigger)
    return {"apiVersion": API_VERSION, "kind": "EventSource", "metadata": _metadata(pipeline, settings), "spec": spec}


def _dependency(pipeline: Pipeline, trigger: Trigger) -> dict[str, Any]:
    dependency: dict[str, Any] = {"name": trigger.key, "eventSourceName": pipeline.name, "eventName": trigger.key}
    conditions = message_filter(trigger)
    if conditions:
        dependency["filters"] = {
            "data": [
                {"path": body_path(path), "type": "string", "value": list(values)}
                for path, values in conditions.items()
            ]
        }
    return dependency


def _workflow(pipeline: Pipeline, trigger: Trigger) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{pipeline.name}-",
            "labels": {**labels(pipeline), TRIGGER_LABEL: trigger.key},
        },
        "spec": {
            "workflowTemplateRef": {"name": pipeline.name},
            "arguments": {"parameters": [{"name": name, "value": ""} for name in trigger.field_params]},
        },
    }


def _trigger(pipeline: Pipeline, trigger: Trigger) -> dict[str, Any]:
    return {
        "template": {
            "name": trigger.key,
            "conditions": trigger.key,
            "argoWorkflow": {
                "operation": "submit",
                "source": {"resource": _workflow(pipeline, trigger)},
                "parameters": [
                    {
                        "src": {"dependencyName": trigger.key, "dataKey": body_path(path)},
                        "dest": f"spec.arguments.parameters.{index}.value",
                    }
                    for index, path in enumerate(trigger.field_params.values())
                ],
            },
        },
        "atLeastOnce": True,
        "retryStrategy": {"duration": "2s", "factor": 2, "steps": 5},
    }


def sensor(pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    """The Sensor submitting the pipeline's WorkflowTemplate for each trigger's events."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Sensor",
        "metadata": _metadata(pipeline, settings),
        "spec": {
            "eventBusName": EVENT_BUS,
            "template": {"serviceAccountName": SENSOR_ACCOUNT},
            "dependencies": [_dependency(pipeline, t) for t in pipeline.triggers],
            "triggers": [_trigger(pipeline, t) for t in pipeline.triggers],
        },
    }


def event_objects(pipeline: Pipeline, settings: Settings) -> list[tuple[Kind, dict[str, Any]]]:
    """``(kind plural, object)`` for deploy and render: nothing when the pipeline has no triggers."""
    if not pipeline.triggers:
        return []
    return [("eventsources", event_source(pipeline, settings)), ("sensors", sensor(pipeline, settings))]
