"""The serving process's garbage collector: kept off the request path, and measured.

Python's full collection walks every tracked object. After its imports (FastAPI, pydantic,
SQLAlchemy, numpy, psycopg) a control-room process holds about 120k of them, so each full
collection stopped every request for 15-80 ms on this project's 2-core machine; at 200
requests/s that put a dozen requests past the 99th percentile. It was the PostgreSQL
observation tail of the load benchmark: the stalls lined up with generation-2 collections of the
server process, not with the database.

:func:`settle_heap` moves everything alive at start-up into the permanent generation
(``gc.freeze``): those objects live as long as the process, so visiting them again frees nothing.
Collections still run, over what requests create. :class:`CollectorPauses` counts the pauses so
``/metrics`` shows whether they come back (``headrace_control_room_gc_pause_seconds_total``).
"""

from __future__ import annotations

import gc
import time
from typing import Any


def settle_heap() -> None:
    """Collect once, then hide every surviving object from later collections."""
    gc.collect()
    gc.freeze()


class CollectorPauses:
    """Seconds and count of garbage collections per generation, from ``gc.callbacks``.

    The callback runs inside whatever allocation triggered the collection, possibly while that
    thread holds a lock, so it takes none: it only adds to two lists (the GIL makes each update
    whole; a rare lost update would shift a counter by one collection).
    """

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self.longest = [0.0, 0.0, 0.0]
        self._began = 0.0

    def install(self) -> CollectorPauses:
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)
        return self

    def uninstall(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        generation = int(info["generation"])
        pause = time.perf_counter() - self._began
        self.seconds[generation] += pause
        self.collections[generation] += 1
        if pause > self.longest[generation]:
            self.longest[generation] = pause

    def exposition(self) -> str:
        """The pauses in the Prometheus text format (appended to ``/metrics``)."""
        series: list[tuple[str, str, str, list[float] | list[int]]] = [
            ("gc_pause_seconds_total", "counter", "Seconds requests waited for garbage collection", self.seconds),
            ("gc_collections_total", "counter", "Garbage collections", self.collections),
            ("gc_longest_pause_seconds", "gauge", "Longest single collection since start", self.longest),
        ]
        lines: list[str] = []
        for name, kind, help_text, values in series:
            metric = f"headrace_control_room_{name}"
            lines += [f"# HELP {metric} {help_text}, by generation", f"# TYPE {metric} {kind}"]
            lines += [f'{metric}{{generation="{g}"}} {value!r}' for g, value in enumerate(values)]
        lines += [
            "# HELP headrace_control_room_gc_frozen_objects Start-up objects kept out of collections (gc.freeze)",
            "# TYPE headrace_control_room_gc_frozen_objects gauge",
            f"headrace_control_room_gc_frozen_objects {gc.get_freeze_count()}",
        ]
        return "\n".join(lines) + "\n"
