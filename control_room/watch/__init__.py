"""The watcher: Argo Workflows and their pods in one namespace -> run events and OOM observations.

:mod:`~control_room.watch.engine` (pure transitions), :mod:`~control_room.watch.kube` (the
Kubernetes list/watch loop, the only user of the ``kubernetes`` client here) and
:mod:`~control_room.watch.record` (store, then notify).
"""

__all__ = ["engine", "kube", "record"]
