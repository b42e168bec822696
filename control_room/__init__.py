"""The control room: watches every task's result size and chooses the next task's instance size.

- :mod:`control_room.client`: what runners and pods use (HTTP, or the embedded room; a fallback
  that never fails a pipeline). Light: standard library and ``steps`` only.
- :mod:`control_room.sizing`: the policy (pure); :mod:`control_room.catalog`: instance catalog
  and rules (YAML).
- :mod:`control_room.store`: SQLAlchemy store (SQLite or PostgreSQL) with versioned migrations.
- :mod:`control_room.app`: the FastAPI service and :mod:`control_room.page`, its page.
- :mod:`control_room.notify`, :mod:`control_room.watch`, :mod:`control_room.outbox`: Slack,
  Datadog and the Kubernetes watcher.

Importing this package imports nothing else, so ``import control_room.client`` stays cheap.
"""
