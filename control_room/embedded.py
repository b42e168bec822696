"""The control room in-process: the sizing policy over the local SQLite store, no HTTP.

What ``headrace run`` uses on a laptop when no ``control_room_url`` is set: the same decisions the
service would make, stored in ``<state_dir>/control-room.db`` so history accumulates across local
runs and ``headrace control-room serve`` can show it later.
"""

from __future__ import annotations

import logging

from control_room.catalog import load_catalog, load_rules
from control_room.sizing import Policy
from control_room.store import Store
from steps.core.contract import ControlRoom, Notifier, Observation, RunEvent, SizingDecision, SizingRequest
from steps.core.settings import Settings
from steps.runtime.client import http_room

log = logging.getLogger("headrace.control_room")


class EmbeddedControlRoom:
    """:class:`steps.core.contract.ControlRoom` backed by a :class:`Store` and a :class:`Policy`."""

    def __init__(self, store: Store, policy: Policy, notifier: Notifier | None = None) -> None:
        self.store = store
        self.policy = policy
        self.notifier = notifier

    @classmethod
    def from_settings(cls, settings: Settings, notifier: Notifier | None = None) -> EmbeddedControlRoom:
        catalog = load_catalog(settings.control_room_catalog or None)
        rules = load_rules(settings.control_room_rules or None, catalog)
        store = Store.open(settings.control_room_db or None, settings.state_dir)
        return cls(store, Policy(catalog, rules), notifier)

    def size(self, request: SizingRequest) -> SizingDecision:
        decision = self.policy.decide(
            request,
            self.store.recent_history(request.pipeline, request.task, recheck=request.attempt > 1),
            related=lambda: self.store.pipeline_history(request.pipeline),
        )
        self.store.add_decision(request, decision)
        return decision

    def observe(self, observation: Observation) -> None:
        try:
            self.store.add_observation(observation)
        except Exception as error:  # never fail a pipeline for the control room
            log.warning("could not record the observation of %s/%s: %s", observation.pipeline, observation.task, error)

    def emit(self, event: RunEvent) -> None:
        repeat = False
        try:
            repeat = self.store.add_event(event).repeat
        except Exception as error:
            log.warning("could not record event %s of %s: %s", event.kind, event.run_id, error)
        if self.notifier is not None and not repeat:
            try:
                self.notifier(event)
            except Exception as error:
                log.warning("notifier failed on %s of %s: %s", event.kind, event.run_id, error)

    def close(self) -> None:
        self.store.close()


def connect(settings: Settings, notifier: Notifier | None = None) -> ControlRoom:
    """The control room to use: the service at ``control_room_url``, else the embedded one.

    ``notifier`` receives every emitted event in the embedded case (the service has its own).
    """
    room = http_room(settings)
    if room is not None:
        return room
    return EmbeddedControlRoom.from_settings(settings, notifier=notifier)
