"""Kubernetes quantities and durations, parsed once so every part agrees on their meaning."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

_BINARY: dict[str, int] = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, Decimal | int] = {
    "m": Decimal("0.001"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


class QuantityError(ValueError):
    """A quantity or duration that can not be parsed; the message says the accepted forms."""


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity as a number: ``"500m"`` is 0.5, ``"2Gi"`` is 2147483648."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 4Gi)")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Decimal(number)
    except InvalidOperation as error:  # pragma: no cover - the regex admits only decimals
        raise QuantityError(f"{value!r} is not a number") from error
    factor: Decimal | int = _BINARY.get(suffix) or _DECIMAL[suffix]
    return base * Decimal(factor)


def cpu_cores(value: str | int | float) -> float:
    """CPU quantity in cores; only plain numbers and millicores make sense for CPU."""
    text = str(value).strip()
    if not re.match(r"^[0-9]+(\.[0-9]+)?m?$", text):
        raise QuantityError(f"{value!r} is not a CPU quantity (e.g. 250m, 1, 2.5)")
    return float(parse_quantity(text))


def memory_bytes(value: str | int | float) -> int:
    """Memory quantity in bytes (``512Mi``, ``2Gi``, ``1G``); millibytes are refused."""
    text = str(value).strip()
    if text.endswith("m"):
        raise QuantityError(f"{value!r} is not a memory quantity (e.g. 512Mi, 4Gi, 1G)")
    return int(parse_quantity(text))


def format_memory(num_bytes: int) -> str:
    """Bytes as the largest binary unit that divides them (rounded up to whole Mi)."""
    mebibytes = -(-num_bytes // 2**20)
    if mebibytes % 1024 == 0:
        return f"{mebibytes // 1024}Gi"
    return f"{mebibytes}Mi"


def format_cpu(cores: float) -> str:
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def parse_duration(value: str | int | float | dt.timedelta) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1h30m"``, ``"1d"`` or a timedelta."""
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        match = _DURATION.match(text)
        if not text or not match or not any(match.groups()):
            if re.match(r"^\d+(\.\d+)?$", text):
                return float(text)
            raise QuantityError(f"{value!r} is not a duration (e.g. 90, 90s, 15m, 2h, 1h30m)")
        days, hours, minutes, secs = match.groups()
        seconds = int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
    if seconds <= 0:
        raise QuantityError(f"{value!r} must be a positive duration")
    return seconds
