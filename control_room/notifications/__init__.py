"""What people see: every run event becomes Slack messages (:mod:`~control_room.notifications.slack`,
delivered through the :mod:`~control_room.notifications.outbox`) and Datadog metrics
(:mod:`~control_room.notifications.datadog`), decided in one place
(:mod:`~control_room.notifications.notifier`). Only the control room's server side imports it."""

__all__ = ["datadog", "notifier", "outbox", "slack"]
