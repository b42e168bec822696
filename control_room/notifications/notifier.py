"""The one notifier: every :class:`~steps.core.contract.RunEvent` becomes Slack messages and Datadog metrics.

Runners, the in-pod entrypoint (through the control room's API), the watcher and the exit handler
all emit the same events; this module decides what people see:

- **Slack, bot token**: one message per run in its pipeline's channel, kept current with
  ``chat.update``; task successes, failures and retries as thread replies under it; the run's
  failure also broadcast to the channel with the configured mentions.
- **Slack, incoming webhook**: webhooks can neither thread nor update, so only run starts, run ends
  and task failures are posted, each as its own message.
- **Datadog**: see ``docs/metrics.md``.
- **Console** (the local default, with no Slack and no Datadog): one rich line per event.

Slack messages go through the outbox (:mod:`control_room.notifications.outbox`) so an outage never fails or
blocks a pipeline; :meth:`Notifier.__call__` never raises.

Channel per pipeline, highest first: the pipeline's ``Notify(slack_channel=...)`` (registered
with :meth:`Notifier.register`), then ``slack_channels`` (``"recipes=#ml-recipes, churn=#ml"``),
then ``slack_channel``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from control_room.notifications.slack import (
    RunSummary,
    SlackSender,
    argo_url,
    format_size,
    reply_message,
    webhook_message,
)
from steps.core.contract import EventKind, Observation, RunEvent
from steps.core.display import format_bytes, format_duration
from steps.core.errors import ConfigError, TransientError
from steps.core.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

    from control_room.notifications.datadog import Metrics
    from control_room.notifications.outbox import Outbox, OutboxDrainer

log = logging.getLogger("headrace.notify")

FAILURE_KINDS = frozenset({EventKind.TASK_FAILED, EventKind.RUN_FAILED})
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Route:
    """Where one pipeline's events go and how."""

    channel: str
    failures_only: bool = False
    mentions: tuple[str, ...] = ()


def parse_channels(text: str) -> dict[str, str]:
    """``"recipes=#ml-recipes, churn=#ml"`` → ``{"recipes": "#ml-recipes", "churn": "#ml"}``."""
    mapping: dict[str, str] = {}
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        pipeline, sep, channel = item.partition("=")
        if not sep or not pipeline.strip() or not channel.strip():
            raise ConfigError(
                f'slack_channels: {item!r} is not PIPELINE=CHANNEL; write e.g. slack_channels = "recipes=#ml-recipes"'
            )
        mapping[pipeline.strip()] = channel.strip()
    return mapping


def _mentions(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def reply_key(event: RunEvent) -> str:
    """The idempotency key of an event's Slack message: one per (run, kind, task, attempt)."""
    return f"{event.pipeline}/{event.run_id}/{event.kind.value}/{event.task or ''}/{event.attempt or ''}"


class Notifier:
    """Consumes :class:`RunEvent` s; plug it wherever events are produced (``notifier(event)``).

    ``slack`` and ``outbox`` go together (bot token or webhook); ``metrics`` is a
    :class:`control_room.notifications.datadog.Metrics`; ``console`` prints one line per event when given.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        slack: SlackSender | None = None,
        outbox: Outbox | None = None,
        metrics: Metrics | None = None,
        console: Console | None = None,
        drainer: OutboxDrainer | None = None,
        background: bool = True,
    ) -> None:
        if slack is not None and outbox is None:
            from control_room.notifications.outbox import Outbox
            from control_room.store import database_url, make_engine

            outbox = Outbox(make_engine(database_url(settings.control_room_db, settings.state_dir)))
        if slack is not None and outbox is not None and drainer is None:
            from control_room.notifications.outbox import OutboxDrainer

            drainer = OutboxDrainer(outbox, slack)
        if drainer is not None and drainer.before_drain is None:
            drainer.before_drain = self.ingest_spooled
        self.settings = settings
        #: Drain the outbox in a background thread (started at the first message); without it,
        #: messages are sent by :meth:`flush` and :meth:`close` only (tests, one-shot commands).
        self.background = background
        self.slack = slack
        self.outbox = outbox
        self.drainer = drainer
        self.metrics = metrics
        self.console = console
        self.channels = parse_channels(settings.slack_channels)
        self.failures_only = settings.slack_failures_only
        self.mentions = _mentions(settings.slack_mentions)
        self._routes: dict[str, Route] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ configuration

    def register(self, pipeline: Any) -> None:
        """Use a pipeline's ``notify`` (channel, failures-only, mentions) for its events.

        Duck-typed on ``pipeline.name`` and ``pipeline.notify`` so the control room needs no
        import of the pipeline model.
        """
        notify = getattr(pipeline, "notify", None)
        if notify is None:
            return
        channel = (
            getattr(notify, "slack_channel", None) or self.channels.get(pipeline.name) or self.settings.slack_channel
        )
        self._routes[pipeline.name] = Route(
            channel=channel or "",
            failures_only=bool(getattr(notify, "failures_only", False)) or self.failures_only,
            mentions=tuple(getattr(notify, "mentions", ()) or ()) or self.mentions,
        )

    def route(self, pipeline: str) -> Route:
        if pipeline in self._routes:
            return self._routes[pipeline]
        return Route(
            channel=self.channels.get(pipeline) or self.settings.slack_channel,
            failures_only=self.failures_only,
            mentions=self.mentions,
        )

    # ------------------------------------------------------------------ events

    def __call__(self, event: RunEvent) -> None:
        """Notify about one event. Never raises: a notification problem must not fail a run."""
        for name, part in (("metrics", self._metrics), ("slack", self._slack), ("console", self._console)):
            try:
                part(event)
            except Exception as error:
                self._warn_once(
                    name, f"notify: {name} failed for {event.kind.value} of {event.pipeline}/{event.run_id}: {error}"
                )

    def observe(self, observation: Observation, predicted_cost_usd: float | None = None) -> None:
        """Task metrics only observations carry (actual cost, peak memory). Never raises."""
        if self.metrics is None:
            return
        try:
            self.metrics.observation(observation, predicted_cost_usd=predicted_cost_usd)
        except Exception as error:
            self._warn_once("observe", f"notify: metrics failed for an observation: {error}")

    def _metrics(self, event: RunEvent) -> None:
        if self.metrics is not None:
            self.metrics.event(event)

    def _slack(self, event: RunEvent) -> None:
        if self.slack is None or self.outbox is None:
            return
        route = self.route(event.pipeline)
        if not route.channel:
            self._warn_once(
                f"channel:{event.pipeline}",
                f"slack: no channel for pipeline {event.pipeline!r}; set slack_channel, slack_channels or "
                "Notify(slack_channel=...)",
            )
            return
        if route.failures_only and event.kind not in FAILURE_KINDS:
            return
        run_key = f"{event.pipeline}/{event.run_id}"
        default_url = argo_url(self.settings.argo_ui_url, self.settings.argo_namespace, event.run_id)
        mentions = list(route.mentions)

        def change(old: RunSummary | None) -> RunSummary:
            base = old or RunSummary(pipeline=event.pipeline, run_id=event.run_id, mentions=mentions)
            return base.apply(event, default_url=default_url)

        if self.slack.threads:
            self.outbox.apply_parent(run_key, route.channel, change)
            message = reply_message(event, mentions=route.mentions)
            if message is not None:
                self.outbox.enqueue(reply_key(event), run_key, "reply", route.channel, message)
        else:
            from control_room.notifications.outbox import WEBHOOK

            # The summary is still folded (no message of its own) so run ends show sizes and duration.
            summary = self.outbox.apply_parent(run_key, route.channel, change, post=False)
            if summary is None:  # pragma: no cover - change() always returns a summary
                return
            webhook = webhook_message(event, summary, mentions=route.mentions)
            if webhook is not None:
                self.outbox.enqueue(reply_key(event), run_key, WEBHOOK, route.channel, webhook)
        if self.drainer is not None and self.background:
            self.drainer.start()  # no-op once running: queued messages never wait for a start() call
            self.drainer.wake()

    def message(self, notice: dict[str, Any]) -> bool:
        """Queue a step's own message (``ctx.notify``, see :mod:`steps.runtime.notices`): posted to its
        channel (default: the pipeline's), once per ``id``. ``False`` when already queued or when
        Slack is not configured here. Never raises."""
        if self.slack is None or self.outbox is None:
            return False
        try:
            from control_room.notifications.outbox import MESSAGE
            from control_room.notifications.slack import SlackMessage

            pipeline, run_id = str(notice["pipeline"]), str(notice["run_id"])
            channel = str(notice.get("channel") or "") or self.route(pipeline).channel
            if not channel and self.slack.threads:
                self._warn_once(f"channel:{pipeline}", f"slack: no channel for {notice['id']}; set slack_channel")
                return False
            message = SlackMessage(text=str(notice["text"]), blocks=list(notice.get("blocks") or []))
            queued = self.outbox.enqueue(f"message:{notice['id']}", f"{pipeline}/{run_id}", MESSAGE, channel, message)
        except Exception as error:
            self._warn_once("message", f"notify: could not queue a step's message: {error}")
            return False
        if self.drainer is not None and self.background:
            self.drainer.start()
            self.drainer.wake()
        return queued

    def ingest_spooled(self) -> int:
        """Move the messages local steps left in ``<state_dir>/outbox/`` into the outbox."""
        from steps.runtime.notices import read_spooled, spool_dir

        moved = 0
        for path, notice in read_spooled(spool_dir(self.settings)):
            self.message(notice)
            try:
                path.unlink()
            except OSError:
                continue
            moved += 1
        return moved

    def _console(self, event: RunEvent) -> None:
        if self.console is None or event.kind is EventKind.TASK_STARTED:
            return
        self.console.print(console_line(event), highlight=False)

    def _warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("%s", message)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background outbox drain now (it also starts by itself at the first message),
        so messages queued before a restart are sent without waiting for a new event."""
        if self.drainer is not None:
            self.drainer.start()

    def flush(self, *, ignore_backoff: bool = False) -> int:
        """Send what is queued now (a local run calls this before it exits); returns how many."""
        return self.drainer.drain(ignore_backoff=ignore_backoff) if self.drainer is not None else 0

    def close(self, seconds: float | None = None) -> None:
        """Send what is queued for at most ``seconds`` (default ``slack_drain_seconds``), then stop.

        What Slack did not take in that time stays queued in the control room's store and is
        sent by the next headrace process that reaches Slack."""
        if self.drainer is not None:
            self.ingest_spooled()  # into the shared store now, whatever Slack does next
            budget = seconds if seconds is not None else self.settings.slack_drain_seconds
            told = self.drainer.failing  # the user already read that Slack is not answering
            if not self.drainer.finish(budget) and not told:
                self._warn_once(
                    "drain",
                    f"slack: not answering within {budget:g}s; the queued messages are kept and sent by "
                    "the next headrace process that reaches Slack",
                )
        if self.metrics is not None:
            self.metrics.close()


_STYLE = {
    EventKind.RUN_STARTED: ("▶", "bold"),
    EventKind.RUN_SUCCEEDED: ("✔", "bold green"),
    EventKind.RUN_FAILED: ("✘", "bold red"),
    EventKind.RUN_CANCELLED: ("■", "yellow"),
    EventKind.TASK_STARTED: ("·", "dim"),
    EventKind.TASK_SUCCEEDED: ("✔", "green"),
    EventKind.TASK_FAILED: ("✘", "red"),
    EventKind.TASK_RETRYING: ("↻", "yellow"),
    EventKind.SIZING_DECIDED: ("⚖", "cyan"),
}


def console_line(event: RunEvent) -> str:
    """One rich-markup line per event for a terminal (the local profile's notifier)."""
    from rich.markup import escape

    symbol, style = _STYLE.get(event.kind, ("·", ""))
    who = f"{event.pipeline}/{event.run_id}" + (f" {event.task}" if event.task else "")
    what = event.kind.value
    facts: list[str] = []
    if event.attempt and event.attempt > 1:
        facts.append(f"attempt {event.attempt}")
    if event.duration_seconds is not None:
        facts.append(format_duration(event.duration_seconds))
    if event.output_bytes is not None:
        facts.append(format_bytes(event.output_bytes))
    if event.output_rows is not None:
        facts.append(f"{event.output_rows:,} rows")
    size = format_size(event.sizing)
    if size:
        facts.append(size)
    if event.reason:
        facts.append(event.reason)
    tail = f" — {escape(', '.join(facts))}" if facts else ""
    return f"[{style}]{symbol} {escape(what)}[/] {escape(who)}{tail}"


def _want_datadog(settings: Settings, environ: Any) -> bool:
    if settings.datadog is not None:
        return settings.datadog
    return bool(environ.get("DD_AGENT_HOST") or environ.get("DD_DOGSTATSD_URL")) or settings.profile == "aws"


def build_notifier(
    settings: Settings,
    *,
    engine: Engine | None = None,
    console: Console | None = None,
    check: bool = True,
    environ: Any = None,
    start: bool = False,
    background: bool = True,
    quiet: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Notifier:
    """The notifier the settings ask for: Slack (bot token or webhook) and/or Datadog, else console.

    With a bot token, ``auth.test`` runs now (``check``): an invalid token is a
    :class:`~steps.core.errors.ConfigError` at start-up ("slack_token: invalid_auth ..."), not a
    silent failure at the first run. ``engine`` is the control room store's engine (the outbox's
    table lives there); without one the state folder's database is used. ``background=False``
    leaves sending to :meth:`Notifier.flush` / :meth:`Notifier.close`. ``quiet`` drops the console
    fallback (a caller with its own live terminal view, like ``headrace run``). Slack not
    answering ``auth.test`` (down, throttled, hung past a short timeout) is one line to ``warn``
    (default: the log) and nothing more: messages are queued and the run goes on.
    """
    env = os.environ if environ is None else environ
    slack: SlackSender | None = None
    unreachable = False
    if settings.slack_token or settings.slack_webhook_url:
        timeout = max(1, round(settings.slack_timeout_seconds))
        slack = SlackSender(
            token=settings.slack_token,
            webhook_url=settings.slack_webhook_url,
            base_url=settings.slack_api_url,
            timeout=timeout,
            check_timeout=min(3, timeout),
        )
        if check:
            try:
                slack.check()
            except TransientError as error:
                (warn or log.warning)(str(error))
                unreachable = True
    outbox = None
    if slack is not None:
        from control_room.notifications.outbox import Outbox
        from control_room.store import database_url, make_engine

        outbox = Outbox(engine or make_engine(database_url(settings.control_room_db, settings.state_dir)))
    metrics = None
    if _want_datadog(settings, env):
        from control_room.notifications.datadog import Metrics

        metrics = Metrics(environ=env)
    if console is None and slack is None and metrics is None and not quiet:
        from rich.console import Console

        console = Console(stderr=True)
    notifier = Notifier(settings, slack=slack, outbox=outbox, metrics=metrics, console=console, background=background)
    if unreachable and notifier.drainer is not None:
        notifier.drainer.failing = True  # one line says Slack is down; the drainer adds none
    if start:
        notifier.start()
    return notifier


def send_queued(settings: Settings | None = None) -> threading.Thread | None:
    """Send, in the background, what earlier headrace processes left queued (their run ended
    while Slack was down, or they were killed): every ``headrace`` command calls this, so any
    process that reaches Slack empties the outbox of the control room's store, whichever folder
    it runs in. At exit the process waits for it at most ``slack_drain_seconds``, and only
    while it is still sending (Slack down ends the pass at its first failure). Never raises."""
    try:
        if settings is None:
            from steps.core.settings import load_settings

            settings = load_settings()
        if not (settings.slack_token or settings.slack_webhook_url):
            return None
    except Exception:  # a broken configuration is the command's to report, not this
        return None
    chosen = settings

    def work() -> None:
        try:
            notifier = build_notifier(chosen, check=False, quiet=True, background=False)
            notifier.flush(ignore_backoff=True)
        except Exception as error:
            log.debug("slack outbox: could not send queued messages: %s", error)

    thread = threading.Thread(target=work, name="headrace-slack-queued", daemon=True)
    thread.start()
    import atexit

    atexit.register(thread.join, settings.slack_drain_seconds)
    return thread


def notify_all(notifiers: Iterable[Callable[[RunEvent], None]]) -> Callable[[RunEvent], None]:
    """Fan one event out to several notifiers (e.g. the control room's and a test's)."""
    chosen = list(notifiers)

    def notify(event: RunEvent) -> None:
        for notifier in chosen:
            notifier(event)

    return notify
