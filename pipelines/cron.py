"""The cron grammar Argo's CronWorkflow accepts (robfig/cron: five fields, names, ``@daily``,
``@every``), checked before anything is compiled so a bad schedule is one line naming the field."""

from __future__ import annotations

import re

from steps.core.quantities import QuantityError, parse_duration

CRON_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron Argo v4 accepts, or None when it is fine."""
    text = expression.strip()
    if text in CRON_DESCRIPTORS:
        return None
    if text.startswith("@every "):
        try:
            parse_duration(text.removeprefix("@every ").strip())
        except QuantityError:
            return "has an invalid @every interval; use e.g. '@every 1h30m'"
        return None
    if text.startswith("@"):
        return f"is not a descriptor Argo knows; use one of {', '.join(sorted(CRON_DESCRIPTORS))} or '@every 1h'"
    fields = text.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields; Argo takes 5 (minute hour day-of-month month day-of-week) or @daily-style descriptors"
    for position, (value, spec) in enumerate(zip(fields, _CRON_FIELDS, strict=True)):
        problem = _cron_field_problem(value, *spec, allow_question=position in (2, 4))
        if problem:
            return problem
    from croniter import croniter  # small, pure; only needed to validate

    if not croniter.is_valid(text):
        return "is not a valid cron expression; check each field's range (e.g. '0 3 * * *')"
    return None


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: (field name, lowest, highest, names) as Argo's cron parser (robfig/cron) reads them.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_CRON_ITEM = re.compile(r"^(?:(\*|\?)|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/([0-9]+))?$")


def _cron_field_problem(
    value: str, field_name: str, low: int, high: int, names: tuple[str, ...], *, allow_question: bool
) -> str | None:
    """Why one cron field is not what Argo's parser accepts (no L, W, # or H; ranges in bounds)."""
    for item in value.split(","):
        match = _CRON_ITEM.match(item)
        if not match or (match.group(1) == "?" and not allow_question):
            return f"has {field_name} {value!r}; use numbers, ranges (1-5), steps (*/15) or lists (1,3) (Argo supports no L, W, # or H)"
        for token in (match.group(2), match.group(3)):
            if token is None:
                continue
            number = names.index(token.upper()) + (low if names is _MONTHS else 0) if token.upper() in names else None
            if number is None:
                if not token.isdigit():
                    return f"has {field_name} {value!r}; {token!r} is not a number{' or name' if names else ''} (Argo supports no L, W, # or H)"
                number = int(token)
            if not low <= number <= high:
                return f"has {field_name} {value!r}; {token} is outside {low}-{high}"
        if match.group(2) and match.group(3):
            first, last = (
                names.index(t.upper()) if t.upper() in names else int(t) for t in (match.group(2), match.group(3))
            )
            if first > last:
                return f"has {field_name} {value!r}; a range must go from low to high"
        if match.group(4) is not None and int(match.group(4)) == 0:
            return f"has {field_name} {value!r}; a step of 0 never fires"
    return None
