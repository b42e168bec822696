"""Slack: Block Kit messages for run events, and the slack-sdk client that sends them.

Two halves with one job each:

- *building* (pure, no I/O): :class:`RunSummary` folds a run's events into the state its one
  channel message shows (status, duration, failing task and reason, last log lines, chosen sizes,
  Argo link); :func:`run_message` renders it, :func:`reply_message` renders the thread reply for a
  task/retry/failure event, :func:`webhook_message` the stand-alone message an incoming webhook
  posts (webhooks cannot thread or update, so they only carry run starts, run ends and failures).
- *sending* (:class:`SlackSender`): ``chat.postMessage`` / ``chat.update`` through ``WebClient``
  with a bot token, or ``WebhookClient`` with an incoming-webhook URL. Rate limits (HTTP 429) are
  retried by slack-sdk's ``RateLimitErrorRetryHandler``, which sleeps for the ``Retry-After`` the
  server sent; dropped connections by its ``ConnectionErrorRetryHandler``. Errors are translated:
  :class:`SlackPermanentError` (a :class:`~steps.core.errors.ConfigError`: bad token, unknown channel,
  the bot not in the channel; a retry never helps) versus :class:`~steps.core.errors.TransientError`
  (Slack down, still rate limited; the control room's outbox retries later).

slack-sdk is imported lazily: ``steps`` is imported by every pod and most never talk to Slack.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from steps.core.contract import EventKind, RunEvent
from steps.core.display import format_bytes, format_duration
from steps.core.errors import ConfigError, TransientError

#: Slack API error codes after which no retry can help: someone must fix the configuration.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_arguments",
        "restricted_action",
        "message_not_found",
        "cant_update_message",
        "invalid_token",  # webhook: revoked URL
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "action_prohibited",
    }
)

#: How each error code is explained to the person who must fix it.
_FIXES = {
    "invalid_auth": "Slack rejected the token; create a bot token (xoxb-...) and set HEADRACE_SLACK_TOKEN",
    "not_authed": "no token was sent; set HEADRACE_SLACK_TOKEN to a bot token (xoxb-...)",
    "token_revoked": "the token was revoked; create a new bot token and set HEADRACE_SLACK_TOKEN",
    "token_expired": "the token expired; create a new bot token and set HEADRACE_SLACK_TOKEN",
    "account_inactive": "the token's app or user was deactivated; reinstall the Slack app",
    "missing_scope": "the bot token lacks the chat:write scope; add it and reinstall the app",
    "channel_not_found": "no such channel; fix slack_channel (or slack_channels / Notify(slack_channel=...))",
    "not_in_channel": "the bot is not a member; invite it with /invite @<bot> in that channel",
    "is_archived": "the channel is archived; unarchive it or pick another slack_channel",
    "invalid_token": "the incoming webhook URL was revoked; create a new one and set HEADRACE_SLACK_WEBHOOK_URL",
    "no_service": "the incoming webhook URL was revoked; create a new one and set HEADRACE_SLACK_WEBHOOK_URL",
}

STATUS_EMOJI = {
    "running": ":arrow_forward:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "cancelled": ":no_entry_sign:",
}

LOG_TAIL_LINES = 20
#: The metadata every posted message carries: ``{"event_type": ..., "event_payload": {"headrace_id": ...}}``.
METADATA_EVENT = "headrace_message"
METADATA_KEY = "headrace_id"
_FIND_PAGES = 5  # 1,000 messages: far more than a channel gets between a lost answer and the retry
_MAX_SECTION_TEXT = 2900  # Slack's section text limit is 3000 characters


class SlackPermanentError(ConfigError):
    """Slack refused the message for a reason no retry fixes (token, channel, membership).

    ``code`` is Slack's error code (``invalid_auth``, ``channel_not_found``...).
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- building (pure)


def format_size(sizing: Mapping[str, Any] | None) -> str:
    """A sizing decision in a few words: ``ml.m5.xlarge x2`` or ``2 cpu / 4Gi``."""
    if not sizing:
        return ""
    target = str(sizing.get("target") or "pod")
    count = int(sizing.get("instance_count") or 1)
    if target == "pod" and (sizing.get("cpu") or sizing.get("memory")):
        return f"{sizing.get('cpu') or '?'} cpu / {sizing.get('memory') or '?'}"
    kind = str(sizing.get("instance_type") or "?")
    return f"{kind} x{count}" if count > 1 else kind


def argo_url(ui_url: str, namespace: str, run_id: str) -> str | None:
    """The Argo UI page of one workflow, or ``None`` without a configured UI."""
    if not ui_url:
        return None
    return f"{ui_url.rstrip('/')}/workflows/{namespace}/{run_id}"


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_block(lines: Sequence[str]) -> str:
    body = "\n".join(lines[-LOG_TAIL_LINES:]).replace("```", "'''")
    if len(body) > _MAX_SECTION_TEXT - 8:
        body = "…" + body[-(_MAX_SECTION_TEXT - 9) :]
    return f"```{body}```"


@dataclass(frozen=True)
class SlackMessage:
    """One message as Slack takes it: fallback ``text`` (notifications) and Block Kit ``blocks``."""

    text: str
    blocks: list[dict[str, Any]]
    #: Also show a thread reply in the channel (used for run failures, so mentions are seen).
    broadcast: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks, "broadcast": self.broadcast}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlackMessage:
        return cls(text=str(data["text"]), blocks=list(data["blocks"]), broadcast=bool(data.get("broadcast")))


@dataclass(frozen=True)
class RunSummary:
    """What a run's one channel message shows; folded from its events by :meth:`apply`.

    JSON round-trips through :meth:`to_dict` / :meth:`from_dict` so the control room's outbox can
    keep it between events (and across restarts).
    """

    pipeline: str
    run_id: str
    status: str = "running"  # running | succeeded | failed | cancelled
    started_at: float | None = None
    duration_seconds: float | None = None
    current_task: str | None = None
    failed_task: str | None = None
    reason: str = ""
    log_tail: list[str] = field(default_factory=list)
    #: task name → the chosen size in a few words (in the order sizes were decided).
    sizes: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    mentions: list[str] = field(default_factory=list)
    #: What started the run (``"started by amqp queue recipes.ready, message 42"``); empty by hand or cron.
    started_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def apply(self, event: RunEvent, *, default_url: str | None = None) -> RunSummary:
        """This summary after ``event``; a final status is never overwritten by a late task event."""
        changes: dict[str, Any] = {}
        url = event.url or self.url or default_url
        if url != self.url:
            changes["url"] = url
        if event.sizing and event.task:
            size = format_size(event.sizing)
            if size and self.sizes.get(event.task) != size:
                changes["sizes"] = {**self.sizes, event.task: size}
        final = self.status in ("succeeded", "failed", "cancelled")
        kind = event.kind
        if kind is EventKind.RUN_STARTED:
            if self.started_at is None and event.at:
                changes["started_at"] = event.at
            if event.reason.startswith("started by ") and not self.started_by:
                changes["started_by"] = event.reason
        elif kind in (EventKind.TASK_STARTED, EventKind.TASK_RETRYING) and not final:
            changes["current_task"] = event.task
        elif kind is EventKind.TASK_FAILED:
            changes["failed_task"] = event.task
            changes["reason"] = event.reason
            changes["log_tail"] = list(event.log_tail[-LOG_TAIL_LINES:])
        elif kind in (EventKind.RUN_SUCCEEDED, EventKind.RUN_FAILED, EventKind.RUN_CANCELLED):
            changes["status"] = {
                EventKind.RUN_SUCCEEDED: "succeeded",
                EventKind.RUN_FAILED: "failed",
                EventKind.RUN_CANCELLED: "cancelled",
            }[kind]
            changes["current_task"] = None
            if event.duration_seconds is not None:
                changes["duration_seconds"] = event.duration_seconds
            elif self.started_at is not None and event.at:
                changes["duration_seconds"] = max(0.0, event.at - self.started_at)
            if kind is EventKind.RUN_FAILED:
                if event.task:
                    changes["failed_task"] = event.task
                if event.reason:
                    changes["reason"] = event.reason
                if event.log_tail:
                    changes["log_tail"] = list(event.log_tail[-LOG_TAIL_LINES:])
            elif kind is EventKind.RUN_SUCCEEDED:
                changes.update(failed_task=None, reason="", log_tail=[])
        return dataclasses.replace(self, **changes) if changes else self


def run_message(summary: RunSummary) -> SlackMessage:
    """The run's one channel message: header, facts, failure, log tail, sizes, Argo button."""
    emoji = STATUS_EMOJI.get(summary.status, ":grey_question:")
    run_link = f"<{summary.url}|{summary.run_id}>" if summary.url else f"`{summary.run_id}`"
    status = summary.status
    if summary.status == "running" and summary.current_task:
        status = f"running `{summary.current_task}`"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{emoji} {summary.pipeline} · {summary.status}", "emoji": True},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Pipeline*\n{summary.pipeline}"},
                {"type": "mrkdwn", "text": f"*Run*\n{run_link}"},
                {"type": "mrkdwn", "text": f"*Status*\n{status}"},
                {"type": "mrkdwn", "text": f"*Duration*\n{format_duration(summary.duration_seconds)}"},
            ],
        },
    ]
    if summary.status == "failed" and (summary.failed_task or summary.reason):
        task = f"`{summary.failed_task}`" if summary.failed_task else "the run"
        reason = _mrkdwn_escape(summary.reason) if summary.reason else "no reason reported"
        mentions = (" ".join(summary.mentions) + " ") if summary.mentions else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{mentions}*Failed:* {task} — {reason}"}})
        if summary.log_tail:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _code_block(summary.log_tail)}})
    if summary.started_by:
        text = _mrkdwn_escape(summary.started_by[0].upper() + summary.started_by[1:])
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
    if summary.sizes:
        sizes = " · ".join(f"{task}: {size}" for task, size in summary.sizes.items())
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"*Sizes* {sizes}"}]})
    if summary.url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in Argo"},
                        "url": summary.url,
                        "action_id": "open_argo",
                    }
                ],
            }
        )
    text = f"{summary.pipeline} run {summary.run_id} {summary.status}"
    if summary.duration_seconds is not None:
        text += f" in {format_duration(summary.duration_seconds)}"
    if summary.status == "failed" and summary.failed_task:
        text += f": {summary.failed_task} — {summary.reason or 'failed'}"
    return SlackMessage(text=text, blocks=blocks)


def _task_facts(event: RunEvent) -> str:
    facts: list[str] = []
    if event.duration_seconds is not None:
        facts.append(f"in {format_duration(event.duration_seconds)}")
    if event.output_bytes is not None:
        rows = f", {event.output_rows:,} rows" if event.output_rows is not None else ""
        facts.append(f"{format_bytes(event.output_bytes)}{rows}")
    size = format_size(event.sizing)
    if size:
        facts.append(f"on {size}")
    return " · ".join(facts)


def reply_message(event: RunEvent, *, mentions: Sequence[str] = ()) -> SlackMessage | None:
    """The thread reply for ``event``, or ``None`` when the parent's update says it all.

    Task successes, failures and retries and the run's failure get a reply; starts, sizing
    decisions and the run's success only update the parent message (no flood).
    """
    task = f"`{event.task}`" if event.task else "the run"
    attempt = f" (attempt {event.attempt})" if event.attempt and event.attempt > 1 else ""
    reason = _mrkdwn_escape(event.reason) if event.reason else ""
    kind = event.kind
    if kind is EventKind.TASK_SUCCEEDED:
        facts = _task_facts(event)
        text = f":white_check_mark: {task} succeeded{attempt}" + (f" {facts}" if facts else "")
        return SlackMessage(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
    if kind is EventKind.TASK_RETRYING:
        text = f":repeat: {task} retrying{attempt}" + (f": {reason}" if reason else "")
        return SlackMessage(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
    if kind in (EventKind.TASK_FAILED, EventKind.RUN_FAILED):
        who = "" if kind is EventKind.TASK_FAILED else "run failed: "
        prefix = (" ".join(mentions) + " ") if mentions and kind is EventKind.RUN_FAILED else ""
        text = f"{prefix}:x: {who}{task} failed{attempt}" + (f": {reason}" if reason else "")
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        if event.log_tail:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _code_block(event.log_tail)}})
        return SlackMessage(text=text, blocks=blocks, broadcast=kind is EventKind.RUN_FAILED)
    return None


def webhook_message(event: RunEvent, summary: RunSummary, *, mentions: Sequence[str] = ()) -> SlackMessage | None:
    """What an incoming webhook posts for ``event``: run starts and ends, task failures; else ``None``.

    Webhooks can neither thread nor update, so task successes and retries are left out.
    """
    if event.kind in (EventKind.RUN_STARTED, EventKind.RUN_SUCCEEDED, EventKind.RUN_CANCELLED):
        return run_message(summary)
    if event.kind is EventKind.RUN_FAILED:
        return run_message(dataclasses.replace(summary, mentions=list(mentions)))
    if event.kind is EventKind.TASK_FAILED:
        message = reply_message(event)
        if message is None:  # pragma: no cover - task failures always have a reply
            return None
        context = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{event.pipeline} · {event.run_id}"}]}
        return SlackMessage(text=f"{event.pipeline} {event.run_id}: {message.text}", blocks=[context, *message.blocks])
    return None


# --------------------------------------------------------------------------- sending (slack-sdk)


class SlackSender:
    """Sends :class:`SlackMessage` s with a bot token (threads, updates) or an incoming webhook.

    Rate limits are retried in place (``Retry-After`` honoured, up to ``rate_limit_retries``);
    everything else raises: :class:`SlackPermanentError` or :class:`~steps.core.errors.TransientError`.
    """

    def __init__(
        self,
        *,
        token: str = "",
        webhook_url: str = "",
        base_url: str = "",
        timeout: int = 10,
        rate_limit_retries: int = 3,
        connection_retries: int = 1,
        check_timeout: int = 3,
    ) -> None:
        if not token and not webhook_url:
            raise ConfigError("slack: set HEADRACE_SLACK_TOKEN (bot token) or HEADRACE_SLACK_WEBHOOK_URL")
        from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

        # A dropped connection is not retried in place for posts: Slack may have taken the message
        # (the answer was lost), and only the outbox, which looks for it first, may post it again.
        rate_limits = RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries)
        handlers = [rate_limits, ConnectionErrorRetryHandler(max_retry_count=connection_retries)]
        self.threads = bool(token)
        self._web: Any = None
        self._post_web: Any = None
        self._webhook: Any = None
        self._channel_ids: dict[str, str] = {}
        if token:
            from slack_sdk import WebClient

            kwargs: dict[str, Any] = {"base_url": base_url.rstrip("/") + "/"} if base_url else {}
            self._web = WebClient(token=token, timeout=timeout, retry_handlers=handlers, **kwargs)
            self._post_web = WebClient(token=token, timeout=timeout, retry_handlers=[rate_limits], **kwargs)
            self._check_web = WebClient(token=token, timeout=check_timeout, retry_handlers=[], **kwargs)
        else:
            from slack_sdk.webhook import WebhookClient

            self._webhook = WebhookClient(url=webhook_url, timeout=timeout, retry_handlers=handlers)

    def check(self) -> str:
        """Verify the bot token now (``auth.test``), so a bad token fails at start-up, not at 3 a.m.

        Returns the bot's user name. Webhooks have no test endpoint: nothing to check.
        """
        if self._web is None:
            return "incoming-webhook"
        try:
            response = self._call("auth.test", self._check_web.auth_test)
        except TransientError as error:
            raise TransientError(
                f"slack is not reachable ({_cause(error)}); the run goes on and its messages are "
                "queued until Slack answers"
            ) from error
        return str(response.get("user") or response.get("bot_id") or "bot")

    def post(
        self, channel: str, message: SlackMessage, *, thread_ts: str | None = None, message_id: str = ""
    ) -> str | None:
        """Post ``message``; returns its ``ts`` (``None`` for webhooks, which return none).

        ``message_id`` travels in the message's metadata (``headrace_id``) so :meth:`find` can
        tell, after a lost answer, whether Slack took the message.
        """
        if self._webhook is not None:
            self._send_webhook(message)
            return None
        kwargs: dict[str, Any] = {"channel": channel, "text": message.text, "blocks": message.blocks}
        if message_id:
            kwargs["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {METADATA_KEY: message_id}}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
            if message.broadcast:
                kwargs["reply_broadcast"] = True
        response = self._call("chat.postMessage", lambda: self._post_web.chat_postMessage(**kwargs), channel=channel)
        if response.get("channel"):
            self._channel_ids[channel] = str(response["channel"])
        return str(response["ts"])

    def find(self, channel: str, message_id: str, *, thread_ts: str | None = None, oldest: float = 0.0) -> str | None:
        """The ``ts`` of the message posted with ``message_id`` (see :meth:`post`), or ``None``.

        Reads the thread (``conversations.replies``) or the channel's history since ``oldest``
        (``conversations.history``) with ``include_all_metadata``; needs the ``channels:history``
        (and ``groups:history`` for private channels) scope. Webhooks cannot read: always ``None``.
        """
        if self._web is None:
            return None
        channel_id = self.channel_id(channel)
        cursor = None
        for _ in range(_FIND_PAGES):
            page: dict[str, Any] = {"channel": channel_id, "include_all_metadata": True, "limit": 200}
            if cursor:
                page["cursor"] = cursor
            if thread_ts:
                response = self._call(
                    "conversations.replies",
                    functools.partial(self._web.conversations_replies, ts=thread_ts, **page),
                    channel=channel,
                )
            else:
                response = self._call(
                    "conversations.history",
                    functools.partial(self._web.conversations_history, oldest=f"{oldest:.6f}", **page),
                    channel=channel,
                )
            for item in response.get("messages") or []:
                payload = (item.get("metadata") or {}).get("event_payload") or {}
                if payload.get(METADATA_KEY) == message_id:
                    return str(item["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def channel_id(self, channel: str) -> str:
        """The id (``C0123``) of a channel given by name (``#ml-alerts``): reading history needs it."""
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        name = channel.removeprefix("#")
        if not channel.startswith("#") and name[:1] in ("C", "G", "D") and name.upper() == name:
            return channel
        cursor = None
        while True:
            response = self._call(
                "conversations.list",
                functools.partial(
                    self._web.conversations_list,
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                ),
                channel=channel,
            )
            for item in response.get("channels") or []:
                if item.get("name") == name:
                    self._channel_ids[channel] = str(item["id"])
                    return self._channel_ids[channel]
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                raise SlackPermanentError(
                    f"slack channel {channel!r}: channel_not_found — {_FIXES['channel_not_found']}",
                    code="channel_not_found",
                )

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """Replace the message ``ts`` in ``channel`` (the run's parent message) with ``message``."""
        if self._web is None:
            raise ConfigError("slack: incoming webhooks cannot update messages; use a bot token")
        channel_id = self._channel_ids.get(channel, channel)
        self._call(
            "chat.update",
            lambda: self._web.chat_update(channel=channel_id, ts=ts, text=message.text, blocks=message.blocks),
            channel=channel,
        )

    def _send_webhook(self, message: SlackMessage) -> None:
        try:
            response = self._webhook.send(text=message.text, blocks=message.blocks)
        except Exception as error:  # urllib's URLError, socket errors: Slack unreachable
            raise TransientError(f"slack webhook: not reachable ({error}); the message stays queued") from error
        if response.status_code == 200:
            return
        body = str(response.body or "").strip()
        if response.status_code in (400, 403, 404, 410) and body:
            raise SlackPermanentError(f"slack webhook: {body} — {_FIXES.get(body, 'check the webhook URL')}", code=body)
        raise TransientError(f"slack webhook: HTTP {response.status_code} {body}; the message stays queued")

    def _call(self, method: str, call: Any, *, channel: str = "") -> Any:
        from slack_sdk.errors import SlackApiError

        try:
            return call()
        except SlackApiError as error:
            code = str(error.response.get("error") or f"HTTP {error.response.status_code}")
            where = f"slack channel {channel!r}" if channel and "channel" in code else "slack_token"
            if code in PERMANENT_ERRORS:
                fix = _FIXES.get(code, f"see https://api.slack.com/methods/{method}#errors")
                raise SlackPermanentError(f"{where}: {code} — {fix}", code=code) from error
            raise TransientError(f"slack {method}: {code}; the message stays queued and is retried") from error
        except Exception as error:  # connection refused/reset, timeouts: Slack is unreachable
            raise TransientError(f"slack {method}: not reachable ({error}); the message stays queued") from error


def _cause(error: BaseException) -> str:
    """The root cause of a wrapped error in a few words (``Connection refused``, ``timed out``)."""
    while error.__cause__ is not None:
        error = error.__cause__
    response = getattr(error, "response", None)  # slack-sdk's SlackApiError: Slack's own answer
    if response is not None:
        return f"HTTP {getattr(response, 'status_code', '?')} {response.get('error') or ''}".strip()
    reason = getattr(error, "reason", None)
    text = str(reason if reason is not None else error) or type(error).__name__
    return text.splitlines()[0][:120]
