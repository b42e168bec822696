"""The in-pod runtime: what ``python -m steps`` runs in an Argo pod or a local subprocess.

- :mod:`~steps.runtime.run` (``run``), :mod:`~steps.runtime.sizing_node` (``size``) and
  :mod:`~steps.runtime.exit_handler` (``exit-handler``): the commands;
- :mod:`~steps.runtime.task`: binds a task's inputs, calls its function, stores and describes its
  outputs (the library the ``run`` command and the local runner's in-process mode share);
- :mod:`~steps.runtime.context` and :mod:`~steps.runtime.values`: what a step function receives;
- :mod:`~steps.runtime.client`: the control room's HTTP client (a pod never opens a database);
- :mod:`~steps.runtime.reporting`, :mod:`~steps.runtime.notices`, :mod:`~steps.runtime.events`:
  what a task tells the control room and the event bus.

Light on purpose: no Hera, no pandas, no SQLAlchemy; a trivial task starts in milliseconds.
"""

__all__ = [
    "client",
    "context",
    "events",
    "exit_handler",
    "loader",
    "notices",
    "procs",
    "reporting",
    "run",
    "sizing_node",
    "task",
    "values",
]
