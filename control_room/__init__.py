"""The control room: watches every task's result size and chooses the next task's instance size.

- :mod:`control_room.sizing`: the policy (pure); :mod:`control_room.catalog`: instance catalog
  and rules (YAML, checked by :mod:`control_room.catalog_files`).
- :mod:`control_room.store`: SQLAlchemy store (SQLite or PostgreSQL) with versioned migrations.
- :mod:`control_room.embedded`: the policy over the local store, in-process (the local runner's
  default); :func:`control_room.embedded.connect` picks it or the service.
- :mod:`control_room.app`: the FastAPI service and :mod:`control_room.page`, its page.
- :mod:`control_room.notifications`: Slack, Datadog and the outbox; :mod:`control_room.watch`: the
  Kubernetes watcher.

Pods talk to the service through :mod:`steps.runtime.client` (HTTP only, no database). Importing
this package imports nothing else. Its internal modules (schema, fits, bounds, heap, page, the
watcher's engine, the notification channels and outbox) are imported only from inside it, which
``.importlinter`` checks (contract ``control-room-internals``).
"""

__all__ = ["app", "catalog", "embedded", "notifications", "sizing", "store", "watch"]
