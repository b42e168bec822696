"""The Slack outbox: messages are written to the control room's store first, then sent.

Why: a Slack outage (or a rate limit that outlasts slack-sdk's retries) must never fail a pipeline
nor lose its notifications. The notifier only *queues*; :class:`OutboxDrainer` sends in the
background, retries with backoff and never sends a message twice:

- every message has an idempotency ``key`` (unique): the same event reported twice (the watcher
  and the exit handler both report a run's failure) queues one message;
- a drain *claims* a row atomically (``UPDATE ... WHERE claim IS NULL OR lease expired``) before
  sending, and marks it sent in the same guarded ``UPDATE``, so two drains (two replicas, or the
  background thread and an explicit drain) never both send it;
- a run's parent message is one row whose ``version`` grows with every change; once posted its
  ``ts`` is kept and later versions become ``chat.update`` calls (only the newest is sent);
- thread replies wait for their parent's ``ts``.

The only duplicate left is the unavoidable one: Slack accepted a post and the process died before
the row was marked sent. The table lives in the control room's schema (``control_room.store``'s
metadata) so it is migrated with the rest and shared by replicas on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from control_room.notifications.slack import RunSummary, SlackMessage, SlackPermanentError, SlackSender, run_message
from control_room.schema import migrate, slack_outbox
from steps.core.errors import TransientError

log = logging.getLogger("headrace.slack")

PENDING, SENT, FAILED = "pending", "sent", "failed"
HELD = "held"  # a summary kept for its run, never sent (webhook mode)
PARENT, REPLY, WEBHOOK = "parent", "reply", "webhook"
MESSAGE = "message"  # a step's own message (``ctx.notify``): posted to the channel, never threaded


@dataclass(frozen=True)
class OutboxRow:
    id: int
    key: str
    run_key: str
    kind: str
    channel: str
    message: SlackMessage
    status: str
    ts: str | None
    version: int
    sent_version: int
    attempts: int
    last_error: str
    created_at: float = 0.0
    #: Claimed by a sender whose lease ran out: it died (or hung) mid-send, maybe after Slack took it.
    claimed: bool = False

    @classmethod
    def from_row(cls, row: Any) -> OutboxRow:
        m = row._mapping
        return cls(
            id=m["id"],
            key=m["key"],
            run_key=m["run_key"],
            kind=m["kind"],
            channel=m["channel"],
            message=SlackMessage.from_dict(m["message"]),
            status=m["status"],
            ts=m["ts"],
            version=m["version"],
            sent_version=m["sent_version"],
            attempts=m["attempts"],
            last_error=m["last_error"],
            created_at=float(m["created_at"] or 0.0),
            claimed=m["claim"] is not None,
        )


class Outbox:
    """Queued Slack messages in the control room's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()  # serialises parent read-modify-write within this process
        migrate(engine)  # the outbox table is in the control room's versioned schema (version 3)

    # ------------------------------------------------------------------ queueing

    def apply_parent(
        self,
        run_key: str,
        channel: str,
        change: Callable[[RunSummary | None], RunSummary | None],
        *,
        post: bool = True,
    ) -> RunSummary | None:
        """Fold a change into the run's parent message; a new version is queued only if it changed.

        ``post=False`` keeps the summary without ever sending it (incoming webhooks, which cannot
        update a message, still want the run's sizes and duration in its final message).
        """
        table = slack_outbox
        now = time.time()
        with self._lock, self.engine.begin() as conn:
            query = select(table).where(table.c.key == _parent_key(run_key))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            old = RunSummary.from_dict(row._mapping["summary"]) if row is not None else None
            new = change(old)
            if new is None or new == old:
                return old
            message = run_message(new).to_dict()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(table).values(
                                key=_parent_key(run_key),
                                run_key=run_key,
                                kind=PARENT,
                                channel=channel,
                                message=message,
                                summary=new.to_dict(),
                                status=PENDING if post else HELD,
                                version=1,
                                sent_version=0,
                                attempts=0,
                                last_error="",
                                next_attempt_at=0.0,
                                created_at=now,
                            )
                        )
                except IntegrityError:  # another replica created it first: update theirs
                    conn.execute(
                        table.update()
                        .where(table.c.key == _parent_key(run_key))
                        .values(message=message, summary=new.to_dict(), version=table.c.version + 1)
                    )
            else:
                conn.execute(
                    table.update()
                    .where(table.c.id == row._mapping["id"])
                    .values(message=message, summary=new.to_dict(), version=table.c.version + 1, next_attempt_at=0.0)
                )
            return new

    def enqueue(self, key: str, run_key: str, kind: str, channel: str, message: SlackMessage) -> bool:
        """Queue one message; ``False`` (and nothing queued) when ``key`` was queued before."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(slack_outbox).values(
                        key=key,
                        run_key=run_key,
                        kind=kind,
                        channel=channel,
                        message=message.to_dict(),
                        status=PENDING,
                        version=1,
                        sent_version=0,
                        attempts=0,
                        last_error="",
                        next_attempt_at=0.0,
                        created_at=time.time(),
                    )
                )
        except IntegrityError:
            return False
        return True

    # ------------------------------------------------------------------ draining

    def due(self, now: float, limit: int = 100, *, ready_by: float | None = None) -> list[OutboxRow]:
        """Rows to send now, oldest first: new messages and posted parents with a newer version.

        ``ready_by`` (default ``now``) is the time by which a backed-off row counts as due again.
        """
        t = slack_outbox
        query = (
            select(t)
            .where(
                _needs_sending(),
                t.c.next_attempt_at <= (now if ready_by is None else ready_by),
                or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
            )
            .order_by(t.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [OutboxRow.from_row(r) for r in conn.execute(query)]

    def get_by_id(self, row_id: int) -> OutboxRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(slack_outbox).where(slack_outbox.c.id == row_id)).first()
        return OutboxRow.from_row(row) if row is not None else None

    def get(self, key: str) -> OutboxRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(slack_outbox).where(slack_outbox.c.key == key)).first()
        return OutboxRow.from_row(row) if row is not None else None

    def parent(self, run_key: str) -> OutboxRow | None:
        return self.get(_parent_key(run_key))

    def claim(
        self, row_id: int, now: float, lease_seconds: float = 60.0, *, ready_by: float | None = None
    ) -> str | None:
        """Take the row for one send; ``None`` when someone else holds it."""
        token = uuid.uuid4().hex
        t = slack_outbox
        with self.engine.begin() as conn:
            result = conn.execute(
                t.update()
                .where(
                    t.c.id == row_id,
                    or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
                    _needs_sending(),
                    t.c.next_attempt_at <= (now if ready_by is None else ready_by),
                )
                .values(claim=token, claimed_until=now + lease_seconds)
            )
        return token if result.rowcount == 1 else None

    def _finish(self, row_id: int, token: str, **values: Any) -> bool:
        t = slack_outbox
        with self.engine.begin() as conn:
            result = conn.execute(
                t.update().where(t.c.id == row_id, t.c.claim == token).values(claim=None, claimed_until=None, **values)
            )
        return result.rowcount == 1

    def mark_sent(self, row_id: int, token: str, *, version: int, ts: str | None = None) -> bool:
        values: dict[str, Any] = {"status": SENT, "sent_version": version, "sent_at": time.time(), "last_error": ""}
        if ts is not None:
            values["ts"] = ts
        return self._finish(row_id, token, **values)

    def retry_later(self, row_id: int, token: str, error: str, *, attempts: int, delay: float) -> None:
        self._finish(row_id, token, attempts=attempts, last_error=error[:2000], next_attempt_at=time.time() + delay)

    def abandon(self, row_id: int, token: str, error: str) -> None:
        """Give the row back after a send whose outcome is unknown (its process is leaving):
        due at once for the next sender, which looks for it in Slack before posting it again."""
        t = slack_outbox
        with self.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.id == row_id, t.c.claim == token)
                .values(
                    claim=None, claimed_until=None, attempts=t.c.attempts + 1, last_error=error, next_attempt_at=0.0
                )
            )

    def retry_now(self) -> None:
        """Make every backed-off row due at once (Slack answered again: send what waited)."""
        t = slack_outbox
        with self.engine.begin() as conn:
            conn.execute(t.update().where(_needs_sending(), t.c.next_attempt_at > 0).values(next_attempt_at=0.0))

    def give_up(self, row_id: int, token: str, error: str) -> None:
        self._finish(row_id, token, status=FAILED, last_error=error[:2000])

    def counts(self) -> dict[str, int]:
        """Rows per status (``pending``, ``sent``, ``failed``); parents awaiting an update count as pending."""
        t = slack_outbox
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
            stale = conn.execute(
                select(func.count()).where(t.c.status == SENT, t.c.kind == PARENT, t.c.version > t.c.sent_version)
            ).scalar()
        counts = {PENDING: 0, SENT: 0, FAILED: 0, **{str(s): int(n) for s, n in rows if s != HELD}}
        counts[PENDING] += int(stale or 0)
        counts[SENT] -= int(stale or 0)
        return counts


def _needs_sending() -> Any:
    """Rows a drain must send: new messages, and posted parents whose newest version is not shown."""
    t = slack_outbox
    return or_(t.c.status == PENDING, (t.c.status == SENT) & (t.c.kind == PARENT) & (t.c.version > t.c.sent_version))


def _parent_key(run_key: str) -> str:
    return f"{run_key}#parent"


class OutboxDrainer:
    """Sends what the outbox holds: now (:meth:`drain`), in a background thread (:meth:`start`),
    and one bounded last time at the end (:meth:`finish`).

    After a transient failure (Slack down) the pass stops and the row backs off exponentially
    (``base_delay`` doubling up to ``max_delay``); the first success afterwards makes every
    backed-off row due again. A permanent failure (bad channel) marks the row failed with a clear
    error logged once per channel and code.

    Exactly once: every post carries the row's key as its Slack metadata id. A row whose earlier
    try may have reached Slack (it failed with an unknown outcome, or its sender died holding
    it) is looked for in the channel or thread first, and only posted when it is not there.
    """

    def __init__(
        self,
        outbox: Outbox,
        sender: SlackSender,
        *,
        interval: float = 5.0,
        base_delay: float = 2.0,
        max_delay: float = 60.0,
        before_drain: Callable[[], object] | None = None,
    ) -> None:
        self.outbox = outbox
        self.sender = sender
        self.interval = interval
        self.base_delay = base_delay
        self.max_delay = max_delay
        #: Called at the start of every pass (the notifier moves steps' spooled messages in).
        self.before_drain = before_drain
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_lock = threading.Lock()
        self._reported: set[tuple[str, str]] = set()
        #: Slack is not answering (a transient failure since the last success): said once, not per try.
        self.failing = False
        self._sending: tuple[int, str] | None = None  # (row id, claim) of the send in flight
        #: The last permanent error per channel, for status pages and tests.
        self.errors: dict[str, str] = {}

    def drain(self, now: float | None = None, *, ignore_backoff: bool = False) -> int:
        """Send every due message once; returns how many were sent. Never raises.

        ``ignore_backoff`` also tries rows still backing off (the last pass before a process exits).
        """
        with self._drain_lock:
            try:
                if self.before_drain is not None:
                    self.before_drain()
                moment = time.time() if now is None else now
                return self._drain(moment, ready_by=float("inf") if ignore_backoff else None)
            except Exception as error:  # the database itself failed: try again next tick
                log.warning("slack outbox: drain failed (%s); retrying in %.0fs", error, self.interval)
                return 0

    def _drain(self, now: float, *, ready_by: float | None) -> int:
        sent = 0
        for row in self.outbox.due(now, ready_by=ready_by):
            thread_ts: str | None = None
            if row.kind == REPLY:
                parent = self.outbox.parent(row.run_key)
                if parent is None or (parent.status == FAILED and parent.ts is None):
                    token = self.outbox.claim(row.id, now, ready_by=ready_by)
                    if token:
                        why = parent.last_error if parent is not None else "the run's message was never queued"
                        self.outbox.give_up(row.id, token, f"parent message not posted: {why}")
                    continue
                if parent.ts is None:
                    continue  # wait for the parent; it is earlier in this pass or backing off
                thread_ts = parent.ts
            token = self.outbox.claim(row.id, now, ready_by=ready_by)
            if token is None:
                continue
            fresh = self.outbox.get_by_id(row.id)  # another drain may have changed it since due()
            if fresh is None:  # pragma: no cover - rows are never deleted
                continue
            row = replace(fresh, claimed=row.claimed)
            self._sending = (row.id, token)
            try:
                self._send(row, token, thread_ts)
                sent += 1
            except SlackPermanentError as error:
                self.outbox.give_up(row.id, token, str(error))
                self.errors[row.channel] = str(error)
                if (row.channel, error.code) not in self._reported:
                    self._reported.add((row.channel, error.code))
                    log.error("%s", error)
            except Exception as error:  # TransientError and anything unexpected: back off, keep it
                attempts = row.attempts + 1
                delay = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
                self.outbox.retry_later(row.id, token, str(error), attempts=attempts, delay=delay)
                level = logging.WARNING if not self.failing or not isinstance(error, TransientError) else logging.DEBUG
                self.failing = True
                log.log(level, "slack: %s (retry %d in %.0fs)", error, attempts, delay)
                break
            finally:
                self._sending = None
        return sent

    def _send(self, row: OutboxRow, token: str, thread_ts: str | None) -> None:
        if row.kind == PARENT and row.ts:
            self.sender.update(row.channel, row.ts, row.message)
            self.outbox.mark_sent(row.id, token, version=row.version)
        else:
            found = None
            if row.attempts > 0 or row.claimed:  # an earlier try may have reached Slack
                found = self.sender.find(row.channel, row.key, thread_ts=thread_ts, oldest=row.created_at - 300)
            if found is not None:
                log.info("slack: %s was already posted (its answer was lost); not posting it again", row.key)
                # A parent found this way may show an older version: sent_version 0 makes it updated.
                self.outbox.mark_sent(row.id, token, version=0 if row.kind == PARENT else row.version, ts=found)
            else:
                ts = self.sender.post(row.channel, row.message, thread_ts=thread_ts, message_id=row.key)
                self.outbox.mark_sent(row.id, token, version=row.version, ts=ts)
        if self.failing:
            self.failing = False
            self.outbox.retry_now()
            log.info("slack: answering again; sending the queued messages")

    def wake(self) -> None:
        """Drain soon (called after queueing) instead of at the next tick."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="headrace-slack-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def finish(self, seconds: float) -> bool:
        """Stop after one last pass that also retries backed-off rows, waiting at most ``seconds``
        (a hung Slack must not hold a finished run); ``True`` when that pass ended in time.

        What is not sent stays queued for the next headrace process that reaches Slack.
        """
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            thread = threading.Thread(
                target=lambda: self.drain(ignore_backoff=True), name="headrace-slack-outbox-last", daemon=True
            )
            thread.start()
        thread.join(max(0.0, seconds))
        self._thread = None
        if not thread.is_alive():
            return True
        sending = self._sending
        if sending is not None:  # Slack did not answer in time: maybe it took the message, maybe not
            with contextlib.suppress(Exception):
                self.outbox.abandon(*sending, "no answer before the process ended; looked for before a new post")
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.drain()
            self._wake.wait(self.interval)
            self._wake.clear()
        self.drain(ignore_backoff=True)  # the last pass: what was queued while stopping
