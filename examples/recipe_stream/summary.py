"""The day's summary: rows per class, the sizes the control room chose and why, where outputs are.

Posted to Slack when a Slack token or webhook is configured (``HEADRACE_SLACK_TOKEN`` /
``HEADRACE_SLACK_WEBHOOK_URL``), printed to the task's log otherwise; returned either way, so the
run record keeps it and ``headrace run`` can show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from steps.runtime.context import StepContext
from steps.runtime.values import Artifact

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CHANNEL = "#ml-recipes"


def _size_text(size: Mapping[str, Any]) -> str:
    if size.get("instance_type"):
        return str(size["instance_type"])
    parts = [f"{key} {size[key]}" for key in ("cpu", "memory") if size.get(key)]
    return ", ".join(parts) if parts else "declared size"


def render(run_date: str, pipeline: str, mix: list[dict[str, Any]], reports: Mapping[str, Mapping[str, Any]]) -> str:
    """The summary as plain text, one line per class (pure: tested on its own)."""
    total = sum(int(row["items"]) for row in mix)
    lines = [f"{pipeline} {run_date}: {total:,} items scored"]
    counted = {str(row["predicted_class"]): int(row["items"]) for row in mix}
    for outcome in sorted(set(counted) | set(reports)):
        rows = counted.get(outcome, 0)
        share = rows / total if total else 0.0
        report = reports.get(outcome)
        if report is None:
            lines.append(f"  {outcome:<5} {rows:>9,} ({share:6.1%})  no follow-up task")
            continue
        size = report.get("size", {})
        lines.append(
            f"  {outcome:<5} {rows:>9,} ({share:6.1%})  {report['action']} on {_size_text(size)}: {size.get('reason', '')}"
        )
        lines.append(f"        -> {report['output']}")
    return "\n".join(lines)


def summarize(ctx: StepContext, class_mix: pd.DataFrame, reports: dict[str, Artifact]) -> dict[str, Any]:
    """Build the day's summary from the class distribution and each follow-up's report, then post
    it (Slack) or print it (no Slack configured)."""
    mix = class_mix.to_dict(orient="records")
    loaded = {outcome: artifact.read_json() for outcome, artifact in reports.items()}
    text = render(ctx.run_date.isoformat(), ctx.pipeline, mix, loaded)
    channel = ctx.settings.slack_channel or DEFAULT_CHANNEL
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "```" + text + "```"}}]
    # Through the outbox: a Slack outage or a slow answer never fails the run, nor posts it twice.
    # Slack shows the headline in notifications and the whole summary in the message's blocks.
    sent_to = ctx.notify(text.split("\n")[0], blocks=blocks, channel=channel, key="summary")
    ctx.record(summary=text, summary_sent_to=sent_to)
    classes: dict[str, dict[str, Any]] = {}
    for row in mix:
        outcome = str(row["predicted_class"])
        classes[outcome] = {"rows": int(row["items"])}
        if outcome in loaded:
            classes[outcome].update(size=loaded[outcome]["size"], output=loaded[outcome]["output"])
    return {"run_date": ctx.run_date.isoformat(), "text": text, "sent_to": sent_to, "classes": classes}
