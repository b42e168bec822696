"""Which tasks of a run may start now, kept up to date event by event.

The runner used to rescan every task, and every task's upstream list, after every event: fine at
ten tasks, quadratic at a thousand (a 1,000-way fan-out took 45-57x a 100-way one). The frontier
computes each task's upstream and dependents once per run and then touches, on each event, only
the dependents of the task that changed, so a run costs O(tasks + edges) in scheduling work.

Tasks start in topological order when several are startable at once (a heap keyed by their rank),
as before; a retry waits in a second heap keyed by the time it is due, then joins the first.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence


class Frontier:
    """The startable tasks of one run; pure bookkeeping, no I/O, used from the runner's thread."""

    def __init__(self, upstream: Mapping[str, Sequence[str]], order: Sequence[str], succeeded: Iterable[str]) -> None:
        self.rank = {name: index for index, name in enumerate(order)}
        self.upstream: dict[str, tuple[str, ...]] = {
            name: tuple(u for u in upstream[name] if u in self.rank) for name in order
        }
        self.dependents: dict[str, list[str]] = {name: [] for name in order}
        for name in order:
            for parent in self.upstream[name]:
                self.dependents[parent].append(name)
        done = set(succeeded)
        self._unmet = {name: sum(1 for u in self.upstream[name] if u not in done) for name in order}
        self._startable: list[tuple[int, str]] = [
            (self.rank[name], name) for name in order if name not in done and self._unmet[name] == 0
        ]
        heapq.heapify(self._startable)
        self._retries: list[tuple[float, int, str]] = []

    def succeeded(self, name: str) -> None:
        """``name`` succeeded: dependents with nothing else to wait for become startable."""
        for child in self.dependents[name]:
            self._unmet[child] -= 1
            if self._unmet[child] == 0:
                heapq.heappush(self._startable, (self.rank[child], child))

    def retry_at(self, name: str, when: float) -> None:
        """``name`` failed and is retried once the monotonic clock reaches ``when``."""
        heapq.heappush(self._retries, (when, self.rank[name], name))

    def pop_startable(self, now: float) -> str | None:
        """The first task (in topological order) that may start at ``now``, or None."""
        while self._retries and self._retries[0][0] <= now:
            _, rank, name = heapq.heappop(self._retries)
            heapq.heappush(self._startable, (rank, name))
        if not self._startable:
            return None
        return heapq.heappop(self._startable)[1]

    def next_retry_at(self) -> float | None:
        """When the earliest waiting retry is due, or None when none waits."""
        return self._retries[0][0] if self._retries else None

    def descendants(self, name: str) -> list[str]:
        """Every task downstream of ``name``, each once, in topological order."""
        seen: set[str] = set()
        stack = list(self.dependents[name])
        while stack:
            child = stack.pop()
            if child not in seen:
                seen.add(child)
                stack.extend(self.dependents[child])
        return sorted(seen, key=self.rank.__getitem__)
