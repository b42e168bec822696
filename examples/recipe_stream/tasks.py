"""The recipe stream's own steps: sample data, weekly training, per-class follow-ups.

The heavy lifting is done by headrace's backends (BigQuery, SageMaker, Glue, Athena); these are
the few functions a team writes around them. Each takes the task's
:class:`~steps.runtime.context.StepContext` and stays small enough to read in one sitting.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.core.contract import ArtifactRef
from steps.core.errors import NotFoundError, UserError
from steps.runtime.context import StepContext
from steps.runtime.values import Artifact, write_value
from steps.storage.artifacts import ArtifactStore

if TYPE_CHECKING:  # pandas is imported by the steps that use it: the entrypoint stays light
    import pandas as pd

HERE = Path(__file__).resolve().parent
MODEL_SOURCE = HERE / "model"
RETRAIN_CHOICES = ("weekly", "always", "never")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

#: What each predicted outcome triggers downstream, and the in-memory work per item behind it.
FOLLOW_UPS: dict[str, str] = {
    "cook": "shopping-lists",  # ingredient lists and store availability for each recipe
    "save": "reminders",  # a reminder push to the users who saved it
    "skip": "refresh",  # queue the recipe's photo and title for an editorial refresh
}


def local_tables_dir(ctx: StepContext) -> Path:
    """The folder local BigQuery/Athena SQL reads tables from (``settings.local_tables``, else
    ``<state_dir>/tables``)."""
    configured = ctx.settings.local_tables
    return Path(configured).expanduser() if configured else ctx.settings.state_path / "tables"


def sample_data(ctx: StepContext, rows: int, seed: int) -> dict[str, Any]:
    """Write yesterday's events and today's items to the local warehouse (local profile only).

    On the embedded default there is no warehouse, so this task writes the day's partitions the
    extract SQL reads, deterministically from ``(run_date, rows, seed)``. On the aws profile the
    real warehouse already holds them and the task only says so.
    """
    if not ctx.is_local:
        ctx.log.info("profile %s reads the real warehouse; no sample data written", ctx.profile)
        return {"written": False, "profile": ctx.profile, "tables": {}}
    if rows < 1:
        raise UserError(f"pipeline {ctx.pipeline}, task {ctx.task}: parameter sample_rows is {rows}; give 1 or more")
    from . import data

    root = local_tables_dir(ctx)
    ctx.progress(0, 2, f"writing {rows:,} rows a table under {root}")
    written = data.write_day(root, ctx.run_date, rows, seed)
    ctx.progress(2, 2, "sample data ready")
    tables = {t.name: {"path": str(t.path), "rows": t.rows, "classes": t.classes} for t in written}
    ctx.record(sample_rows=rows, sample_seed=seed)
    return {"written": True, "profile": ctx.profile, "root": str(root), "tables": tables}


#: How far back a run looks for a model trained on or before its date: a weekly retrain leaves
#: six days between models; past this a run trains its own.
MODEL_LOOKBACK_DAYS = 35


def _latest_model_key(ctx: StepContext) -> str:
    """The most recently trained model, for people to find; no run reads it (see :func:`model_as_of`)."""
    return f"{ctx.pipeline}/models/latest.json"


def model_key(pipeline: str, day: dt.date) -> str:
    """Where the reference of the model trained by the run for ``day`` is kept."""
    return f"{pipeline}/models/by-date/{day.isoformat()}.json"


def model_as_of(store: ArtifactStore, pipeline: str, day: dt.date) -> tuple[dt.date, str] | None:
    """The newest model trained for a date on or before ``day`` (its date and reference URI).

    Point in time: a run for ``day`` (a backfill too) never sees a model trained on later data,
    however recently that model was made.
    """
    for back in range(MODEL_LOOKBACK_DAYS + 1):
        trained_for = day - dt.timedelta(days=back)
        uri = store.uri_for(model_key(pipeline, trained_for))
        if store.exists(uri):
            return trained_for, uri
    return None


def train_due(retrain: str, train_weekday: str, weekday: str, have_model: bool) -> tuple[bool, str]:
    """Whether this run trains, and why in a few words (kept with the run record)."""
    if retrain not in RETRAIN_CHOICES:
        raise UserError(f"parameter retrain: {retrain!r} is not one of {', '.join(RETRAIN_CHOICES)}")
    if train_weekday.lower() not in WEEKDAYS:
        raise UserError(f"parameter train_weekday: {train_weekday!r} is not a weekday name such as monday")
    if retrain == "always":
        return True, "retrain=always"
    if not have_model:
        if retrain == "never":
            raise NotFoundError(
                "parameter retrain=never, but no model was trained for this run date or before; "
                "run once with retrain=always"
            )
        return True, "no model trained for this run date or before"
    if retrain == "weekly" and weekday == train_weekday.lower():
        return True, f"weekly retrain on {weekday}"
    return False, f"reusing the latest model (retrain={retrain}, trains on {train_weekday.lower()}s)"


def train_model(ctx: StepContext, data: Artifact, retrain: str, train_weekday: str) -> ArtifactRef:
    """Train the outcome classifier on SageMaker once a week; other days reuse the latest model.

    Training is the expensive step and the catalogue's features move slowly, so a daily retrain
    buys little. Each trained model's reference is kept under
    ``<pipeline>/models/by-date/<run_date>.json`` in the artifact store, on both profiles; a run
    reuses the newest one trained for its own date or earlier (:func:`model_as_of`).
    """
    from steps import sagemaker  # the hand-off module; imported only by the task that trains

    store = ctx.store
    found = model_as_of(store, ctx.pipeline, ctx.run_date)
    due, why = train_due(retrain, train_weekday, ctx.run_date.strftime("%A").lower(), found is not None)
    ctx.record(trained=due, train_decision=why)
    if not due:
        assert found is not None
        trained_for, uri = found
        ctx.record(model_trained_for=trained_for.isoformat())
        ctx.log.info("%s: the model trained for %s", why, trained_for)
        return ArtifactRef.from_dict(json.loads(store.read_bytes(uri)))
    model = sagemaker.train(
        ctx,
        entry_point="train.py",
        source_dir=str(MODEL_SOURCE),
        data=data,
        framework="sklearn",
        framework_version="1.2-1",
        instance_type="ml.m5.large",
        hyperparameters={"max_iter": 15, "label": "outcome", "seed": 7},
        max_runtime="30m",
    )
    pointer = json.dumps(model.to_dict(), sort_keys=True).encode()
    store.put_bytes(pointer, model_key(ctx.pipeline, ctx.run_date), format="json")
    store.put_bytes(pointer, _latest_model_key(ctx), format="json")
    ctx.record(model_trained_for=ctx.run_date.isoformat())
    return model


#: Each item's card (a 128 x 128 RGBA thumbnail with its title and lists drawn in) is rendered in
#: memory before the work list is written: 64 KiB a row, the memory a follow-up really needs per
#: item. The pipeline declares 4x that (``FOLLOW_UP_BYTES_PER_ROW``), as a first guess would.
CARD_SHAPE = (128, 128, 4)
CARD_BYTES = CARD_SHAPE[0] * CARD_SHAPE[1] * CARD_SHAPE[2]


def render_cards(recipe_ids: Any, confidence: Any) -> Any:
    """Every item's card as one ``(rows, 128, 128, 4)`` uint8 array, all of it written (so it is
    resident memory, as a real renderer's output is), and a checksum per card."""
    import numpy as np

    ids = np.asarray(recipe_ids, dtype=np.int64)
    cards = np.empty((len(ids), *CARD_SHAPE), dtype=np.uint8)
    cards[...] = (ids % 251).astype(np.uint8)[:, None, None, None]
    cards[:, :, :, 3] = (np.asarray(confidence, dtype=np.float64) * 255).astype(np.uint8)[:, None, None]
    checksums = cards.reshape(len(ids), -1).sum(axis=1, dtype=np.uint64)
    return checksums


def follow_up(ctx: StepContext, items: pd.DataFrame, outcome: str) -> dict[str, Any]:
    """Turn one class's items into that class's work list, at the size the control room chose.

    ``items`` is the class's share of today's catalogue, and every item's card is rendered in
    memory (:data:`CARD_BYTES` each), so this task's peak memory follows the day's class mix:
    what the control room learns. The report says what was done, on what size and why; the
    summary task reads it.
    """
    action = FOLLOW_UPS.get(outcome)
    if action is None:
        raise UserError(
            f"pipeline {ctx.pipeline}, task {ctx.task}: outcome {outcome!r} is not one of {', '.join(FOLLOW_UPS)}"
        )
    import pandas as pd

    ordered = items.sort_values(["confidence", "recipe_id"], ascending=[False, True], kind="stable")
    actions = pd.DataFrame(
        {
            "recipe_id": ordered["recipe_id"].to_numpy(),
            "action": action,
            "priority": range(1, len(ordered) + 1),
            "confidence": ordered["confidence"].to_numpy(),
            "card_checksum": render_cards(ordered["recipe_id"].to_numpy(), ordered["confidence"].to_numpy()),
        }
    )
    ctx.progress(len(actions), max(len(actions), 1), f"{len(actions):,} {action}")
    stored = write_value(ctx.store, ctx.output_key("actions"), actions)
    sizing = ctx.sizing
    size = {
        "instance_type": sizing.instance_type if sizing else None,
        "cpu": sizing.cpu if sizing else ctx.resources.get("cpu"),
        "memory": sizing.memory if sizing else ctx.resources.get("memory"),
        "reason": sizing.reason if sizing else "declared resources (not sized)",
        "source": sizing.source if sizing else "declared",
    }
    report = {"outcome": outcome, "action": action, "rows": len(actions), "output": stored.uri, "size": size}
    return {"actions": stored, "report": report}
