"""How sizes and durations read, wherever headrace shows them: the terminal, the control room's
page and reasons, Slack. One rule, so the same output shows the same number everywhere.

Sizes are binary and labelled so (``1.5 MiB``, ``11.3 GiB``): Kubernetes quantities and instance
sheets are binary too, so an input size and a memory size compare at a glance.
"""

from __future__ import annotations

_BINARY_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(count: float | None) -> str:
    """``512 B``, ``2.5 KiB``, ``256 MiB``, ``11.3 GiB``; ``-`` when unknown."""
    if count is None:
        return "-"
    value = float(count)
    if abs(value) < 1024:
        return f"{value:.0f} B"
    for unit in _BINARY_UNITS:
        value /= 1024
        if abs(value) < 1024 or unit == _BINARY_UNITS[-1]:
            break
    return f"{_one_decimal(value)} {unit}"


def format_duration(seconds: float | None) -> str:
    """``850ms``, ``12.5s``, ``4s``, ``4m 12s``, ``1h 02m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{_one_decimal(seconds)}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _one_decimal(value: float) -> str:
    """``2.5``, ``256`` (not ``256.0``): one decimal where it says something."""
    return f"{value:.1f}".removesuffix(".0")
