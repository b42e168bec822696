"""A real local HTTP server speaking the slice of Slack's Web API headrace uses.

``auth.test``, ``chat.postMessage`` (with message metadata), ``chat.update``,
``conversations.history`` / ``conversations.replies`` (metadata only with
``include_all_metadata``, as Slack documents), ``conversations.list`` and an incoming-webhook path,
with Slack's own answers: ``invalid_auth`` for an unknown token, ``channel_not_found`` for an
unknown channel, HTTP 429 with ``Retry-After`` when told to rate-limit.

Faults, as Slack has them: ``fail_status`` answers every call with that HTTP status (500: Slack
down); ``hang_seconds`` holds every call that long without doing it (a hung connection);
``slow_seconds`` does the call, then answers that late (past the client's timeout, the answer is
lost but the message is posted); :meth:`SlackServer.stop` refuses connections. Every request is
recorded for assertions.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VALID_TOKEN = "xoxb-valid-token"


@dataclass
class Call:
    method: str  # auth.test, chat.postMessage, chat.update, webhook
    body: dict[str, Any]
    at: float


@dataclass
class SlackState:
    channels: set[str] = field(default_factory=lambda: {"#ml-alerts", "#ml-recipes", "C0123"})
    rate_limit_next: int = 0  # answer the next N calls with 429
    retry_after: int = 1
    fail_status: int = 0  # answer every call with this HTTP status (e.g. 500)
    hang_seconds: float = 0.0  # hold every call this long, then drop it undone
    slow_seconds: float = 0.0  # do every post, then answer this late
    slow_next: int = -1  # only the next N posts are slow (-1: all of them)
    #: name -> id, as Slack resolves "#ml-alerts" (ids answer for themselves)
    channel_ids: dict[str, str] = field(
        default_factory=lambda: {"#ml-alerts": "C0ALERTS", "#ml-recipes": "C0RECIPES", "C0123": "C0123"}
    )
    #: every message as stored, in posting order: {"channel": id, "ts", "thread_ts", "metadata", ...}
    stored: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # ts -> message
    _seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_ts(self) -> str:
        """Slack's ``ts``: the posting time in seconds with microseconds, unique per channel."""
        self._seq = max(self._seq + 1, int(time.time() * 1_000_000))
        return f"{self._seq // 1_000_000}.{self._seq % 1_000_000:06d}"

    def posted(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == "chat.postMessage"]

    def updates(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == "chat.update"]

    def delivered_ids(self) -> list[str]:
        """The ``headrace_id`` of every message Slack stored (one entry per stored message)."""
        return [
            str(m["metadata"]["event_payload"]["headrace_id"])
            for m in self.stored
            if (m.get("metadata") or {}).get("event_payload", {}).get("headrace_id")
        ]

    def heal(self) -> None:
        """Slack answers normally again."""
        with self.lock:
            self.fail_status = 0
            self.hang_seconds = 0.0
            self.slow_seconds = 0.0
            self.rate_limit_next = 0


class SlackServer:
    """Start with :meth:`start`, stop with :meth:`stop`; restartable on the same port."""

    def __init__(self, port: int, state: SlackState | None = None) -> None:
        self.port = port
        self.state = state or SlackState()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/XXXX"

    def start(self) -> SlackServer:
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header(
                        "Content-Type", "application/json" if not isinstance(body, bytes) else "text/plain"
                    )
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (timeout)
                    self.close_connection = True

            def do_GET(self) -> None:
                query = urllib.parse.urlparse(self.path).query
                self._handle({k: v[0] for k, v in urllib.parse.parse_qs(query).items()})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                content_type = self.headers.get("Content-Type", "")
                if "json" in content_type and raw:
                    body = json.loads(raw)
                else:
                    body = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                self._handle(body)

            def _handle(self, body: dict[str, Any]) -> None:
                path = urllib.parse.urlparse(self.path).path
                with state.lock:
                    hang, failing = state.hang_seconds, state.fail_status
                if hang:
                    time.sleep(hang)
                    self.close_connection = True  # the call is dropped undone
                    return
                if failing:
                    with state.lock:
                        state.calls.append(Call(f"HTTP {failing}", body, time.time()))
                    self._reply(failing, {"ok": False, "error": "fatal_error"})
                    return
                late = 0.0
                with state.lock:
                    if state.rate_limit_next > 0:
                        state.rate_limit_next -= 1
                        state.calls.append(Call("429", body, time.time()))
                        self._reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(state.retry_after)})
                        return
                    if path.startswith("/services/"):
                        state.calls.append(Call("webhook", body, time.time()))
                        self._reply(200, b"ok")
                        return
                    method = path.removeprefix("/api/")
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                    if token != VALID_TOKEN:
                        state.calls.append(Call(method, body, time.time()))
                        self._reply(200, {"ok": False, "error": "invalid_auth"})
                        return
                    state.calls.append(Call(method, body, time.time()))
                    if method == "auth.test":
                        answer: dict[str, Any] = {"ok": True, "user": "headrace", "team": "T000", "user_id": "U000"}
                    elif method in ("chat.postMessage", "chat.update"):
                        channel = body.get("channel", "")
                        channel_id = state.channel_ids.get(channel, channel)
                        named = {i for n, i in state.channel_ids.items() if n in state.channels}
                        if channel not in state.channels and channel not in named:
                            self._reply(200, {"ok": False, "error": "channel_not_found"})
                            return
                        if method == "chat.update":
                            ts = body["ts"]
                            if ts not in state.messages:
                                self._reply(200, {"ok": False, "error": "message_not_found"})
                                return
                            for item in state.stored:
                                if item["ts"] == ts:
                                    item.update(text=body.get("text"), blocks=body.get("blocks"))
                        else:
                            ts = state.next_ts()
                            metadata = body.get("metadata")
                            if isinstance(metadata, str):
                                metadata = json.loads(metadata)
                            state.stored.append(
                                {
                                    "channel": channel_id,
                                    "ts": ts,
                                    "thread_ts": body.get("thread_ts"),
                                    "text": body.get("text"),
                                    "blocks": body.get("blocks"),
                                    "metadata": metadata,
                                }
                            )
                            if state.slow_seconds and state.slow_next != 0:
                                late = state.slow_seconds
                                state.slow_next -= 1
                        state.messages[ts] = body
                        answer = {"ok": True, "channel": channel_id, "ts": ts, "message": body}
                    elif method in ("conversations.history", "conversations.replies"):
                        answer = self._read(method, body)
                    elif method == "conversations.list":
                        channels = [{"id": i, "name": n.removeprefix("#")} for n, i in state.channel_ids.items()]
                        answer = {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}
                    else:
                        answer = {"ok": False, "error": "unknown_method"}
                if late:
                    time.sleep(late)
                self._reply(200, answer)

            def _read(self, method: str, query: dict[str, Any]) -> dict[str, Any]:
                channel = query.get("channel", "")
                if channel not in state.channel_ids.values():
                    return {"ok": False, "error": "channel_not_found"}
                with_metadata = str(query.get("include_all_metadata", "")).lower() in ("1", "true")
                items = [m for m in state.stored if m["channel"] == channel]
                if method == "conversations.replies":
                    thread = query.get("ts")
                    items = [m for m in items if m["ts"] == thread or m["thread_ts"] == thread]
                else:
                    oldest = float(query.get("oldest") or 0)
                    items = [m for m in items if not m["thread_ts"] and float(m["ts"]) >= oldest]
                    items.reverse()  # newest first, as Slack answers
                messages = [
                    {
                        "type": "message",
                        "ts": m["ts"],
                        "text": m["text"],
                        **({"thread_ts": m["thread_ts"]} if m["thread_ts"] else {}),
                        **({"metadata": m["metadata"]} if with_metadata and m["metadata"] else {}),
                    }
                    for m in items
                ]
                return {"ok": True, "messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
