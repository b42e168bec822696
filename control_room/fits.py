"""Robust fits of peak memory and duration against input size, for the sizing policy.

Theil-Sen (the median of pairwise slopes) so that one odd run does not bend a line, on log-log
scales for power laws and on the linear scale for an overhead-plus-per-byte law. Pure numerics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LogFit:
    """``log y = intercept + slope * log x``, with ``upper`` added for a high-quantile prediction."""

    intercept: float
    slope: float
    r2: float
    n: int
    upper: float = 0.0
    #: log of the largest size seen; beyond it a cautious prediction grows at least linearly.
    x_max: float = math.inf

    def predict(self, x: float, quantile: bool = False, cautious: bool = False) -> float:
        """y at size ``x``; ``quantile`` adds the high-quantile residual; ``cautious`` assumes at
        least linear growth beyond the largest size seen (a flat fit must not shrink a spike)."""
        log_x = math.log(max(x, 1.0))
        value = self.intercept + self.slope * log_x
        if cautious and log_x > self.x_max and self.slope < 1.0:
            value = self.intercept + self.slope * self.x_max + (log_x - self.x_max)
        return math.exp(value + (self.upper if quantile else 0.0))


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _pairwise_slopes(xs: Sequence[float], ys: Sequence[float], min_dx: float) -> Any:
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    keep = np.abs(dx) > min_dx
    return (y[j] - y[i])[keep] / dx[keep]


def theil_sen(xs: Sequence[float], ys: Sequence[float], prior_slope: float = 1.0) -> tuple[float, float]:
    """Intercept and slope of the Theil-Sen line; ``prior_slope`` when all x are (nearly) equal."""
    slopes = _pairwise_slopes(xs, ys, 1e-3)
    slope = float(np.median(slopes)) if slopes.size else prior_slope
    slope = min(max(slope, 0.0), 2.0)
    intercept = float(np.median(np.asarray(ys, dtype=float) - slope * np.asarray(xs, dtype=float)))
    return intercept, slope


def fit_log(sizes: Sequence[float], values: Sequence[float], quantile: float = 0.5) -> LogFit | None:
    """Fit ``values`` against ``sizes`` on log-log scales; None without usable points."""
    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values, strict=True) if s > 0 and v > 0]
    if not points:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    intercept, slope = theil_sen(xs, ys)
    residuals = [y - (intercept + slope * x) for x, y in points]
    mean = sum(ys) / len(ys)
    total = sum((y - mean) ** 2 for y in ys)
    r2 = 1 - sum(r * r for r in residuals) / total if total > 1e-12 else 1.0
    # Few points say little about the tail: cover the worst one seen, not an interpolated quantile.
    upper = max(residuals) if len(points) < 10 else _quantile(residuals, quantile)
    return LogFit(intercept, slope, max(r2, 0.0), len(points), max(upper, 0.0), max(xs))


@dataclass(frozen=True)
class AffineFit:
    """``y = base + per_unit * x`` (a fixed overhead plus a cost per input byte), with ``upper`` the
    high quantile of ``log(y / fitted)`` for a covering prediction."""

    base: float
    per_unit: float
    upper: float

    def predict(self, x: float, quantile: bool = False) -> float:
        value = max(self.base + self.per_unit * max(x, 0.0), 1.0)
        return value * math.exp(self.upper if quantile else 0.0)


def fit_affine(sizes: Sequence[float], values: Sequence[float], quantile: float = 0.5) -> AffineFit | None:
    """Theil-Sen on the linear scale; None with fewer than two distinct sizes."""
    points = [(float(s), float(v)) for s, v in zip(sizes, values, strict=True) if s > 0 and v > 0]
    if len({p[0] for p in points}) < 2:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    per_unit = max(float(np.median(_pairwise_slopes(xs, ys, 0.0))), 0.0)
    base = max(median([y - per_unit * x for x, y in points]), 0.0)
    ratios = [math.log(y / max(base + per_unit * x, 1.0)) for x, y in points]
    upper = max(ratios) if len(points) < 10 else _quantile(ratios, quantile)
    return AffineFit(base, per_unit, max(upper, 0.0))
