"""A deterministic, seeded generator of daily data that drifts: the class mix and the volume.

Real ML outputs change size from run to run: one class is a third of the results one day and 80%
the next, and a few days bring several times the usual volume. The sizing simulation
(``benchmarks/sizing_sim.py``) and the reference pipeline's data generator
(``examples/recipe_stream/data.py``) both draw their days from here, so every figure can be
recomputed from ``(day, seed)`` alone.

- :func:`class_mix`: moves between an even mix (33/33/33) and a skewed one (80/15/5) on a slow
  cycle, the dominant class drawn anew for each skewed period;
- :func:`daily_rows`: rows per day around ``base_rows``: a weekly rhythm, log-normal day-to-day
  noise and a heavy (Pareto) tail of spike days.

Only the standard library, so it can be imported anywhere cheaply.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence

#: Default class names, in the order the reference pipeline uses them.
CLASSES: tuple[str, ...] = ("cook", "save", "skip")
EVEN = (1 / 3, 1 / 3, 1 / 3)
SKEWED = (0.80, 0.15, 0.05)
#: Days of one cycle from the even mix to the skewed one and back.
CYCLE_DAYS = 20
#: Share of days that are spikes (the heavy tail), and the Pareto shape of their size.
SPIKE_PROBABILITY = 0.08
SPIKE_SHAPE = 1.6


def _rng(*parts: object) -> random.Random:
    """A generator seeded by ``parts`` (string seeds are hashed with SHA-512: stable everywhere)."""
    return random.Random(":".join(str(p) for p in parts))


def _cycle_position(day: dt.date, seed: int) -> float:
    """Cycles elapsed at ``day`` (the fraction is the position within the current cycle)."""
    return day.toordinal() / CYCLE_DAYS + _rng(seed, "phase").random()


def skew(day: dt.date, seed: int = 0) -> float:
    """How far ``day`` is from the even mix (0) towards the skewed one (1)."""
    wave = 0.5 - 0.5 * math.cos(2 * math.pi * _cycle_position(day, seed))
    noise = _rng(seed, day.toordinal(), "skew").uniform(-0.08, 0.08)
    return min(1.0, max(0.0, 1.25 * wave - 0.12 + noise))


def class_mix(day: dt.date, seed: int = 0, classes: Sequence[str] = CLASSES) -> dict[str, float]:
    """The share of each class on ``day`` (sums to 1): between 33/33/33 and 80/15/5.

    The order of the classes in the skewed mix is drawn anew each cycle (seeded), so over a few
    months each class takes its turn at being most of the data.
    """
    names = tuple(classes)
    if len(names) != 3:
        raise ValueError(f"class_mix needs exactly 3 classes, got {len(names)}: {names}")
    weight = skew(day, seed)
    cycle = math.floor(_cycle_position(day, seed))  # changes where the mix is even: no jump
    order = list(range(3))
    _rng(seed, cycle, "order").shuffle(order)
    shares = [0.0, 0.0, 0.0]
    for rank, index in enumerate(order):
        shares[index] = (1 - weight) * EVEN[rank] + weight * SKEWED[rank]
    total = sum(shares)
    return {name: share / total for name, share in zip(names, shares, strict=True)}


def daily_rows(day: dt.date, base_rows: int, seed: int = 0) -> int:
    """Rows produced on ``day`` around ``base_rows``: weekly rhythm, noise and spike days."""
    if base_rows <= 0:
        return 0
    rng = _rng(seed, day.toordinal(), "rows")
    weekly = 0.75 if day.weekday() >= 5 else 1.0
    noise = math.exp(rng.gauss(0.0, 0.25))
    spike = rng.paretovariate(SPIKE_SHAPE) * 1.5 if rng.random() < SPIKE_PROBABILITY else 1.0
    return max(1, round(base_rows * weekly * noise * min(spike, 8.0)))


def class_rows(day: dt.date, base_rows: int, seed: int = 0, classes: Sequence[str] = CLASSES) -> dict[str, int]:
    """Rows of each class on ``day``: :func:`daily_rows` split by :func:`class_mix` (exact total)."""
    total = daily_rows(day, base_rows, seed)
    mix = class_mix(day, seed, classes)
    counts = {name: int(total * share) for name, share in mix.items()}
    leftover = total - sum(counts.values())
    for name in sorted(mix, key=lambda n: total * mix[n] - counts[n], reverse=True)[:leftover]:
        counts[name] += 1
    return counts
