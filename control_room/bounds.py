"""What the control room's API accepts: every field's bounds, taken from the column that stores it.

The contract dataclasses (:mod:`steps.core.contract`) stay plain so the in-pod side imports them in
microseconds; here each gets a pydantic model with the same fields and the bounds the database can
hold, so a value either is answered 422 naming the field or is stored, the same on SQLite (which
would store anything) and PostgreSQL (which refuses with an error). One source of truth each:

- a string's longest length is its column's length (``String(100)``: 100 characters);
- an integer's range is its column's type (``Integer``: 32-bit, ``BigInteger``: 64-bit), and
  64-bit where it only goes into a JSON column;
- no string holds NUL (PostgreSQL's text cannot) or a lone surrogate (it has no UTF-8 form);
- floats are finite (JSON has no NaN, PostgreSQL's json refuses it), inside the JSON columns too
  (free-form dicts get models of their own: the declared resources, the sizing decision).

The semantic bounds (``attempt >= 1``, sizes ``>= 0``) are listed next to each contract's fields.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model
from sqlalchemy import BigInteger, Column, Integer, String

from control_room.schema import decisions, events, observations, runs
from steps.core.contract import Observation, Outcome, RunEvent, SizingDecision, SizingRequest

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
#: Field constraints of a 32-bit and a 64-bit integer (the format tells the spec's readers too).
INT32_FIELD: dict[str, Any] = {"ge": INT32[0], "le": INT32[1], "json_schema_extra": {"format": "int32"}}
INT64_FIELD: dict[str, Any] = {"ge": INT64[0], "le": INT64[1], "json_schema_extra": {"format": "int64"}}


def clean_text(value: str) -> str:
    """``value`` when a database can store it: no NUL, no lone surrogate."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (a lone surrogate has no UTF-8 form)") from None
    return value


def json_number(value: Any) -> Any:
    """``value`` when JSON calls it a number: ``true`` and ``"12"`` are not (pydantic's lax mode
    would take them), an integral ``12.0`` is (JSON Schema's integers include it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON number")
    return value


#: What :func:`clean_text` and :func:`named` accept, as the spec says it (JSON Schema patterns);
#: lone surrogates need no pattern, a JSON text cannot carry one that is valid Unicode.
TEXT_PATTERN = "^[^\\u0000]*$"
NAME_PATTERN = "^[^\\u0000]*[^\\u0000\\t\\n\\u000b\\u000c\\r ][^\\u0000]*$"
_BLANK = " \t\n\r\x0b\x0c"


def named(value: str) -> str:
    """``value`` when it names something: not only spaces."""
    if not value.strip(_BLANK):
        raise ValueError("must not be blank")
    return value


def bounded_text(*, name: bool = False, **constraints: Any) -> Any:
    """A string type with ``constraints`` (``max_length``...) that a database can store; a
    ``name`` is not blank either."""
    pattern = NAME_PATTERN if name else TEXT_PATTERN
    field = Field(**constraints, json_schema_extra={"pattern": pattern})
    if name:
        return Annotated[str, field, AfterValidator(clean_text), AfterValidator(named)]
    return Annotated[str, field, AfterValidator(clean_text)]


def column_bounds(column: Column[Any]) -> dict[str, Any]:
    """The pydantic field constraints that make a value fit ``column``."""
    if isinstance(column.type, String) and column.type.length:
        return {"max_length": column.type.length}
    if isinstance(column.type, BigInteger):
        return INT64_FIELD
    if isinstance(column.type, Integer):
        return INT32_FIELD
    return {}


def _bounded(hint: Any, constraints: dict[str, Any]) -> Any:
    """``hint`` with the cleaning every value of its kind gets and the field's ``constraints``."""
    args = typing.get_args(hint)
    optional = type(None) in args
    inner = next((a for a in args if a is not type(None)), hint) if optional else hint
    if inner is str:
        inner, constraints = bounded_text(**constraints), {}
    elif inner is int:
        inner, constraints = Annotated[int, Field(**{**INT64_FIELD, **constraints}), BeforeValidator(json_number)], {}
    elif inner is float:
        inner = Annotated[float, Field(allow_inf_nan=False, **constraints), BeforeValidator(json_number)]
        constraints = {}
    elif typing.get_origin(inner) is list and typing.get_args(inner) == (str,):
        inner = list[bounded_text()]  # type: ignore[misc]
    elif typing.get_origin(inner) is dict:
        raise TypeError(f"a free-form {hint} has no bounds; give the field a model in overrides")
    bounded = Annotated[inner, Field(**constraints)] if constraints else inner
    return bounded | None if optional else bounded


def api_model(
    contract: type[Any],
    columns: dict[str, Column[Any]],
    limits: dict[str, dict[str, Any]],
    overrides: dict[str, Any] | None = None,
) -> type[BaseModel]:
    """A pydantic model with ``contract``'s fields, defaults and docs, each bounded by the column
    that stores it (``columns``, by field name) and by its semantic ``limits``. ``overrides``
    replaces a field's type (a free-form dict that deserves a model)."""
    hints = typing.get_type_hints(contract)
    fields: dict[str, Any] = {}
    for spec in dataclasses.fields(contract):
        constraints = {
            **(column_bounds(columns[spec.name]) if spec.name in columns else {}),
            **limits.get(spec.name, {}),
        }
        hint = (overrides or {}).get(spec.name) or _bounded(hints[spec.name], constraints)
        if spec.default is not dataclasses.MISSING:
            fields[spec.name] = (hint, spec.default)
        elif spec.default_factory is not dataclasses.MISSING:
            fields[spec.name] = (hint, Field(default_factory=spec.default_factory))
        else:
            fields[spec.name] = (hint, ...)
    model: type[BaseModel] = create_model(
        contract.__name__, __config__=ConfigDict(extra="ignore"), __doc__=contract.__doc__, **fields
    )
    return model


def _columns(table: Any, *names: str, **renamed: str) -> dict[str, Column[Any]]:
    found = {name: table.c[name] for name in names}
    found.update({field: table.c[column] for field, column in renamed.items()})
    return found


#: A name has something in it besides spaces.
NAMED = {"min_length": 1, "name": True}
#: The names every body and path carries, as long as their columns allow.
NAME_LENGTHS = {name: int(column_bounds(observations.c[name])["max_length"]) for name in ("pipeline", "task", "run_id")}
POSITIVE = {"ge": 1}
NOT_NEGATIVE = {"ge": 0}


_TEXT: dict[str, Any] = {"pattern": TEXT_PATTERN}
_CPU = column_bounds(decisions.c.cpu)["max_length"]
_MEMORY = column_bounds(decisions.c.memory)["max_length"]
_INSTANCE_TYPE = column_bounds(decisions.c.instance_type)["max_length"]


class Declared(BaseModel):
    """A task's declared resources (``Resources.to_dict()``), bounded like the decision columns
    they may become when the policy falls back to them."""

    model_config = ConfigDict(extra="ignore")

    cpu: Annotated[str, Field(max_length=_CPU, json_schema_extra=_TEXT), AfterValidator(clean_text)] | None = None
    memory: Annotated[str, Field(max_length=_MEMORY, json_schema_extra=_TEXT), AfterValidator(clean_text)] | None = None
    cpu_limit: Annotated[str, Field(max_length=_CPU, json_schema_extra=_TEXT), AfterValidator(clean_text)] | None = None
    memory_limit: (
        Annotated[str, Field(max_length=_MEMORY, json_schema_extra=_TEXT), AfterValidator(clean_text)] | None
    ) = None
    gpu: Annotated[int, Field(**{**INT32_FIELD, **NOT_NEGATIVE}), BeforeValidator(json_number)] | None = None
    instance_type: (
        Annotated[str, Field(max_length=_INSTANCE_TYPE, json_schema_extra=_TEXT), AfterValidator(clean_text)] | None
    ) = None
    instance_count: Annotated[int, Field(**{**INT32_FIELD, **POSITIVE}), BeforeValidator(json_number)] | None = None


SizingRequestBody = api_model(
    SizingRequest,
    _columns(
        decisions,
        "pipeline",
        "task",
        "run_id",
        "attempt",
        "input_bytes",
        previous_instance_type="instance_type",
        previous_instance_count="instance_count",
    ),
    {
        "pipeline": NAMED,
        "task": NAMED,
        "run_id": NAMED,
        "input_bytes": NOT_NEGATIVE,
        "input_rows": NOT_NEGATIVE,
        "attempt": POSITIVE,
        "deadline_seconds": {"gt": 0},
        # A row no bigger than the largest input: bytes x rows stays a finite float.
        "bytes_per_row": {"gt": 0, "le": float(INT64[1])},
        "previous_instance_count": POSITIVE,
    },
    overrides={"declared": Declared, "previous_outcome": Outcome | None},
)

ObservationBody = api_model(
    Observation,
    _columns(
        observations,
        "pipeline",
        "task",
        "run_id",
        "attempt",
        "input_bytes",
        "input_rows",
        "output_bytes",
        "output_rows",
        "instance_type",
        "instance_count",
        "cpu",
        "memory",
        "peak_memory_bytes",
    ),
    {
        "pipeline": NAMED,
        "task": NAMED,
        "run_id": NAMED,
        "attempt": POSITIVE,
        "input_bytes": NOT_NEGATIVE,
        "input_rows": NOT_NEGATIVE,
        "output_bytes": NOT_NEGATIVE,
        "output_rows": NOT_NEGATIVE,
        "instance_count": POSITIVE,
        "duration_seconds": NOT_NEGATIVE,
        "peak_memory_bytes": NOT_NEGATIVE,
        "cost_usd": NOT_NEGATIVE,
    },
)

SizingDecisionBody = api_model(
    SizingDecision,
    _columns(decisions, "instance_type", "instance_count", "cpu", "memory", "predicted_peak_memory_bytes", "source"),
    {
        "instance_count": POSITIVE,
        "predicted_duration_seconds": NOT_NEGATIVE,
        "predicted_peak_memory_bytes": NOT_NEGATIVE,
        "predicted_cost_usd": NOT_NEGATIVE,
    },
)

RunEventBody = api_model(
    RunEvent,
    {**_columns(events, "pipeline", "run_id", "task", "attempt", "event_id"), "url": runs.c.url},
    {
        "pipeline": NAMED,
        "run_id": NAMED,
        "attempt": POSITIVE,
        "at": NOT_NEGATIVE,
        "duration_seconds": NOT_NEGATIVE,
        "output_bytes": NOT_NEGATIVE,
        "output_rows": NOT_NEGATIVE,
    },
    overrides={"sizing": SizingDecisionBody | None},
)


def to_contract(contract: Callable[..., Any], body: BaseModel) -> Any:
    """The contract dataclass a validated body stands for."""
    values = {name: getattr(body, name) for name in type(body).model_fields}
    for name, value in values.items():
        if isinstance(value, BaseModel):
            values[name] = value.model_dump(exclude_none=True)
    return contract(**values)
