"""A real local HTTP server speaking the slice of Slack's Web API headrace uses.

``auth.test``, ``chat.postMessage``, ``chat.update`` and an incoming-webhook path, with Slack's
own answers: ``invalid_auth`` for an unknown token, ``channel_not_found`` for an unknown channel,
HTTP 429 with ``Retry-After`` when told to rate-limit. Every request is recorded for assertions.
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
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # ts -> message
    _seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_ts(self) -> str:
        self._seq += 1
        return f"1700000000.{self._seq:06d}"

    def posted(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == "chat.postMessage"]

    def updates(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == "chat.update"]


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
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(body, bytes) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                content_type = self.headers.get("Content-Type", "")
                if "json" in content_type and raw:
                    body = json.loads(raw)
                else:
                    body = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                path = urllib.parse.urlparse(self.path).path
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
                        self._reply(200, {"ok": True, "user": "headrace", "team": "T000", "user_id": "U000"})
                    elif method in ("chat.postMessage", "chat.update"):
                        channel = body.get("channel", "")
                        if channel not in state.channels:
                            self._reply(200, {"ok": False, "error": "channel_not_found"})
                            return
                        if method == "chat.update":
                            ts = body["ts"]
                            if ts not in state.messages:
                                self._reply(200, {"ok": False, "error": "message_not_found"})
                                return
                        else:
                            ts = state.next_ts()
                        state.messages[ts] = body
                        self._reply(200, {"ok": True, "channel": channel, "ts": ts, "message": body})
                    else:
                        self._reply(200, {"ok": False, "error": "unknown_method"})

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
