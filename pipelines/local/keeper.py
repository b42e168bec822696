"""The run's keeper: no process of a local run outlives it, even when the runner is killed.

Every process a run's tasks start carries the run's marker in its environment (see
:mod:`steps.runtime.procs`): subprocess attempts get ``<run_id>/<task>/<attempt>``; in-process attempts,
which share the runner's process, get ``<run_id>/in-process`` through the runner's environment,
and what their threads start gets the attempt's own (:mod:`pipelines.local.marking`).
At the end of the run the runner kills what is still marked (processes a step detached).

A SIGKILL of the runner ends nothing by itself, so the runner also starts a keeper: a small
process in its own session (``python -m steps.runtime.procs <run_id>/``, standard library only, ~20 ms
of CPU) that blocks reading a pipe only the runner writes to. When the runner ends, normally or
not, the pipe closes and the keeper kills everything marked with the run's prefix. A resume
sweeps the same prefix before it starts, for the case where the keeper was killed too.

A sweep scans ``/proc/*/environ`` (5-50 ms with ~150 processes, measured on a loaded 2-core
machine), so the runner itself sweeps only where it must: before a resume, and at the end of an
in-process run (whose tasks share its process, so no task process ended their trees). Subprocess
tasks end their own trees, and an attempt that was killed is swept when it ends
(:mod:`pipelines.local.attempt`); the keeper's own sweep at the end costs the runner nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading

from steps.runtime.procs import MARKER, kill_marked


class RunKeeper:
    """Start with :meth:`start` when the run starts; :meth:`close` when it ends."""

    def __init__(self, run_id: str, *, in_process: bool, resumed: bool = False) -> None:
        self.prefix = f"{run_id}/"
        self.in_process = in_process
        self.resumed = resumed
        self._process: subprocess.Popen[bytes] | None = None
        self._previous_marker: str | None = None

    def start(self) -> RunKeeper:
        if not sys.platform.startswith("linux"):
            return self
        if self.resumed:
            kill_marked(self.prefix)  # leftovers of an earlier runner of this run
        env = {k: v for k, v in os.environ.items() if k != MARKER}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "steps.runtime.procs", self.prefix],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C and a kill of the runner's group leave it running
            )
        except OSError:
            self._process = None
        if self.in_process:
            self._previous_marker = os.environ.get(MARKER)
            os.environ[MARKER] = f"{self.prefix}in-process"
        return self

    def close(self) -> None:
        """Kill what the run left behind, then let the keeper go."""
        if self.in_process:
            if self._previous_marker is None:
                os.environ.pop(MARKER, None)
            else:
                os.environ[MARKER] = self._previous_marker
        if self.in_process and sys.platform.startswith("linux"):
            exclude = [self._process.pid] if self._process is not None else []
            kill_marked(self.prefix, exclude=exclude)
        if self._process is not None:
            if self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()  # the keeper sweeps once more and exits
            threading.Thread(target=self._process.wait, name="run-keeper-reaper", daemon=True).start()
            self._process = None
