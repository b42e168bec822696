"""The recipe stream: the daily ML pipeline headrace exists for, end to end.

Every morning at 03:00 Tokyo time, for ``run_date``:

1. ``sample-data``: on the embedded default only, write the day's tables into the local
   warehouse folder (deterministic, with a class mix that drifts by day; see :mod:`.data`).
   A task rather than a set-up step of ``headrace run``: the first run shows where its data
   comes from, any ``run_date`` gets its day, and on the aws profile the task does nothing.
2. ``extract-events`` / ``extract-items`` (BigQuery SQL, ``@run_date``): yesterday's events, the
   training data, and today's catalogue snapshot.
3. ``train`` (SageMaker, scikit-learn): learn each recipe's likely outcome (cook, save, skip) from
   yesterday's events, on ``train_weekday`` (or whenever ``retrain=always``); other days reuse the
   latest model.
4. ``score`` (Glue): predict the outcome of every catalogue item with :func:`.scoring.score`.
5. ``class-mix`` and ``items-<class>`` (Athena SQL): the day's class distribution and each class's
   items.
6. ``shopping-lists`` / ``reminders`` / ``refresh``: one follow-up per class, each sized by the
   control room (``sizing="auto"``) from its input rows, because today's class mix decides how
   big each one is: a class may be a third of the catalogue one day and 80% of it a week later.
7. ``summary``: rows per class, the sizes chosen and why, where the outputs are; to Slack when
   configured, else printed.

Run it here: ``headrace run examples/recipe_stream:pipeline -p run_date=2026-11-22``; compile it for
Argo: ``headrace compile examples/recipe_stream:pipeline``.
"""

from __future__ import annotations

from pathlib import Path

from pipelines import Notify, Pipeline, Resources, Retry, Schedule, step
from steps import athena, bigquery, glue

from . import scoring, summary, tasks

SQL = Path(__file__).resolve().parent / "sql"

#: Memory one item is guessed to take in a follow-up task (each holds the recipe's card, photo
#: and lists): what the control room sizes from before it has history. A guess, deliberately 4x
#: the 64 KiB a card really takes (``tasks.CARD_BYTES``): the control room's learned sizes, from
#: the fourth run on, follow the peaks the tasks really reach.
FOLLOW_UP_BYTES_PER_ROW = 256 * 1024


def sql(name: str) -> str:
    """The text of ``sql/<name>.sql``: SQL lives in files so reviewers and editors see SQL."""
    return (SQL / f"{name}.sql").read_text(encoding="utf-8")


sample_data = step(tasks.sample_data, name="sample-data", resources=Resources(cpu="1", memory="1Gi"), timeout="30m")
extract = step(
    bigquery.extract,
    name="extract",
    resources=Resources(cpu="500m", memory="1Gi"),
    retry=Retry(limit=2, on="failure"),
    timeout="1h",
)
train = step(
    tasks.train_model,
    name="train",
    target="sagemaker",
    resources=Resources(instance_type="ml.m5.large"),
    retry=Retry(limit=1, on="failure"),
    timeout="2h",
)
batch_infer = step(
    glue.batch_infer,
    name="score",
    resources=Resources(cpu="500m", memory="1Gi", instance_type="G.1X", instance_count=2),
    retry=Retry(limit=1, on="failure"),
    timeout="2h",
)
query = step(athena.query, name="athena", resources=Resources(cpu="250m", memory="1Gi"), timeout="30m")
follow_up = step(
    tasks.follow_up,
    name="follow-up",
    outputs=("actions", "report"),
    sizing="auto",
    bytes_per_row=FOLLOW_UP_BYTES_PER_ROW,
    resources=Resources(cpu="500m", memory="1Gi"),
    retry=Retry(limit=2, on="failure"),
    timeout="1h",
)
summarize = step(summary.summarize, name="summary", resources=Resources(cpu="250m", memory="1Gi"), timeout="10m")


with Pipeline(
    "recipe-stream",
    schedule=Schedule("0 3 * * *", timezone="Asia/Tokyo"),
    notify=Notify(slack_channel=summary.DEFAULT_CHANNEL),
    labels={"team": "recipes"},
    description="Daily recipe outcome classifier: extract, train weekly, score, split by class, follow up.",
) as pipeline:
    rows = pipeline.param("sample_rows", 10_000, "Catalogue rows the local sample data has (local profile only)")
    seed = pipeline.param("sample_seed", 7, "Seed of the local sample data (local profile only)")
    retrain = pipeline.param("retrain", "weekly", "weekly (on train_weekday), always, or never")
    weekday = pipeline.param("train_weekday", "monday", "The weekday the model is retrained on")

    seeded = sample_data(rows=rows, seed=seed)
    by_day = {"run_date": pipeline.run_date}
    events = extract(name="extract-events", sql=sql("events"), params=by_day, after=[seeded])
    items = extract(name="extract-items", sql=sql("items"), params=by_day, after=[seeded])
    model = train(data=events, retrain=retrain, train_weekday=weekday)
    scored = batch_infer(score=scoring.score, model=model, data=items, worker_type="G.1X", number_of_workers=2)
    class_mix = query(name="class-mix", sql=sql("class_mix"), tables={"scored": scored})
    reports = {}
    for outcome, action in tasks.FOLLOW_UPS.items():
        class_items = query(
            name=f"items-{outcome}", sql=sql("class_items"), params={"outcome": outcome}, tables={"scored": scored}
        )
        reports[outcome] = follow_up(name=action, items=class_items, outcome=outcome)["report"]
    summarize(class_mix=class_mix, reports=reports)

__all__ = ["pipeline"]
