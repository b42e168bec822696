"""What the watcher does with what it sees, in the control room: store, then notify."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from steps.core.contract import Observation, RunEvent

log = logging.getLogger("headrace.watch")


class Recorder:
    """What the watcher does in the control room: store each event (closing runs whose exit handler
    never reported), then notify; store each OOM observation (enriched with the input size and
    instance the sizing decision of that attempt recorded) so the retry is sized one step up.
    Errors are logged; the watch goes on."""

    def __init__(self, store: Any, notifier: Callable[[RunEvent], None] | None) -> None:
        self.store = store
        self.notifier = notifier

    def __call__(self, event: RunEvent) -> None:
        repeat = False
        try:
            repeat = bool(self.store.add_event(event).repeat)
        except Exception as error:
            log.warning("watch: could not store %s of %s: %s", event.kind.value, event.run_id, error)
        if self.notifier is not None and not repeat:  # the exit handler already reported this end
            self.notifier(event)

    def observe(self, observation: Observation) -> None:
        try:
            self.store.add_observation(with_decision(observation, self._decisions(observation)))
        except Exception as error:
            log.warning("watch: could not store the OOM of %s/%s: %s", observation.run_id, observation.task, error)

    def _decisions(self, observation: Observation) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = self.store.decisions(
                pipeline=observation.pipeline, task=observation.task, run_id=observation.run_id
            )
            return found
        except Exception as error:
            log.info("watch: no decisions for %s/%s (%s)", observation.run_id, observation.task, error)
            return []


def with_decision(observation: Observation, decisions: list[dict[str, Any]]) -> Observation:
    """``observation`` with the input size (and instance type) of the sizing decision behind the
    attempt, so the OOM also teaches a floor at that input size; unchanged without decisions.

    The decision behind it is the newest one of the run with the pod's memory, else of the same
    attempt, else the newest; its instance type is kept only when its memory is the pod's (the
    pod's own limit is what was too small).
    """
    if not decisions:
        return observation
    matching = [d for d in decisions if observation.memory and d.get("memory") == observation.memory]
    same = [d for d in decisions if d.get("attempt") == observation.attempt]
    chosen = (matching or same or decisions)[0]  # newest first
    trusted = bool(matching) or not observation.memory
    return dataclasses.replace(
        observation,
        input_bytes=int(chosen.get("input_bytes") or 0),
        instance_type=(str(chosen.get("instance_type") or "") or None) if trusted else None,
        memory=observation.memory or chosen.get("memory"),
        cpu=observation.cpu or chosen.get("cpu"),
    )


def recorder(store: Any, notifier: Callable[[RunEvent], None] | None) -> Recorder:
    """The watcher's notifier for the control room (see :class:`Recorder`)."""
    return Recorder(store, notifier)
