"""examples.drift: seeded, deterministic days whose class mix and volume drift."""

from __future__ import annotations

import datetime as dt
import statistics

from examples.drift import CLASSES, class_mix, class_rows, daily_rows

DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(120)]


def test_the_same_day_and_seed_always_give_the_same_mix_and_volume() -> None:
    day = dt.date(2026, 3, 14)
    assert class_mix(day, 7) == class_mix(day, 7)
    assert daily_rows(day, 1_000_000, 7) == daily_rows(day, 1_000_000, 7)
    assert [class_mix(d, 7) for d in DAYS[:20]] != [class_mix(d, 8) for d in DAYS[:20]]


def test_the_mix_moves_between_an_even_third_each_and_80_15_5() -> None:
    mixes = [class_mix(day, 7) for day in DAYS]
    assert all(abs(sum(m.values()) - 1) < 1e-9 and tuple(m) == CLASSES for m in mixes)
    even = [m for m in mixes if max(m.values()) < 0.34]
    skewed = [sorted(m.values(), reverse=True) for m in mixes if max(m.values()) > 0.79]
    assert len(even) >= 10 and len(skewed) >= 10
    assert all(abs(a - 0.80) < 0.011 and abs(b - 0.15) < 0.011 and abs(c - 0.05) < 0.011 for a, b, c in skewed)


def test_each_class_takes_its_turn_as_the_dominant_one() -> None:
    months = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(200)]
    dominant = {max(m, key=m.__getitem__) for m in (class_mix(day, 7) for day in months) if max(m.values()) > 0.6}
    assert dominant == set(CLASSES)


def test_daily_volume_has_a_heavy_tail_of_spike_days() -> None:
    rows = [daily_rows(day, 1_000_000, 7) for day in DAYS]
    median = statistics.median(rows)
    assert 0.7e6 < median < 1.2e6
    assert max(rows) > 3 * median
    assert sum(r > 2 * median for r in rows) <= 0.15 * len(rows)


def test_class_rows_split_the_day_exactly() -> None:
    day = dt.date(2026, 2, 3)
    counts = class_rows(day, 1_000_000, 7)
    assert sum(counts.values()) == daily_rows(day, 1_000_000, 7)
    mix = class_mix(day, 7)
    assert all(abs(counts[name] / sum(counts.values()) - mix[name]) < 1e-5 for name in CLASSES)
