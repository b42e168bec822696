"""A real local HTTP server speaking the Kubernetes list/watch API for workflows and pods.

Enough of the API server's contract for the watcher: ``GET`` lists with
``metadata.resourceVersion``; ``?watch=true&resourceVersion=N`` streams newline-delimited
``{"type", "object"}`` events after ``N``, then waits for more until ``timeoutSeconds``; a version
older than the compaction horizon gets an ``ERROR`` event with ``410 Gone`` (what etcd compaction
does); :meth:`drop_watches` cuts every open stream mid-flight (a load balancer's idle timeout).
"""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORKFLOWS = "/apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows"
PODS = "/api/v1/namespaces/{ns}/pods"


@dataclass
class Request:
    resource: str  # workflows | pods
    watch: bool
    resource_version: str


class KubeServer:
    def __init__(self, port: int, namespace: str = "ml") -> None:
        self.port = port
        self.namespace = namespace
        self.version = 100
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"workflows": {}, "pods": {}}
        self.log: dict[str, list[tuple[int, str, dict[str, Any]]]] = {"workflows": [], "pods": []}
        self.compacted_below = 0  # watches from a version below this get 410 Gone
        self.requests: list[Request] = []
        self.cond = threading.Condition()
        self._generation = 0  # bumped by drop_watches()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- test controls
    def put(self, resource: str, obj: dict[str, Any]) -> int:
        """Create or replace an object; returns its new resourceVersion."""
        with self.cond:
            self.version += 1
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
            obj["metadata"].setdefault("namespace", self.namespace)
            name = obj["metadata"]["name"]
            kind = "MODIFIED" if name in self.objects[resource] else "ADDED"
            self.objects[resource][name] = obj
            self.log[resource].append((self.version, kind, obj))
            self.cond.notify_all()
            return self.version

    def compact(self) -> None:
        """Forget history: any watch from an older version now gets 410 Gone."""
        with self.cond:
            self.compacted_below = self.version
            self.cond.notify_all()

    def drop_watches(self) -> None:
        with self.cond:
            self._generation += 1
            self.cond.notify_all()

    def watch_requests(self, resource: str) -> list[Request]:
        return [r for r in self.requests if r.resource == resource and r.watch]

    def list_requests(self, resource: str) -> list[Request]:
        return [r for r in self.requests if r.resource == resource and not r.watch]

    # -- the server
    def start(self) -> KubeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parsed = urllib.parse.urlparse(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                resource = {
                    WORKFLOWS.format(ns=server.namespace): "workflows",
                    PODS.format(ns=server.namespace): "pods",
                }.get(parsed.path)
                if parsed.path.rstrip("/") == "/version":
                    self._json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"})
                    return
                if resource is None:
                    self._json(404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": parsed.path})
                    return
                watch = query.get("watch", "").lower() in ("true", "1")
                since = query.get("resourceVersion", "")
                server.requests.append(Request(resource, watch, since))
                if not watch:
                    with server.cond:
                        items = [copy.deepcopy(o) for o in server.objects[resource].values()]
                        body = {"kind": "List", "metadata": {"resourceVersion": str(server.version)}, "items": items}
                    self._json(200, body)
                    return
                self._stream(resource, int(since or 0), float(query.get("timeoutSeconds") or 30))

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _stream(self, resource: str, since: int, timeout: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                deadline = time.monotonic() + timeout
                with server.cond:
                    generation = server._generation
                    if since < server.compacted_below:
                        status = {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "message": f"too old resource version: {since} ({server.compacted_below})",
                            "reason": "Expired",
                            "code": 410,
                        }
                        self._chunk((json.dumps({"type": "ERROR", "object": status}) + "\n").encode())
                        self.wfile.write(b"0\r\n\r\n")
                        return
                sent = since
                while True:
                    with server.cond:
                        pending = [e for e in server.log[resource] if e[0] > sent]
                        if not pending:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                break
                            server.cond.wait(min(remaining, 0.2))
                            if server._generation != generation:
                                self.close_connection = True
                                return  # cut mid-stream: no terminating chunk
                            continue
                    for version, kind, obj in pending:
                        self._chunk((json.dumps({"type": kind, "object": obj}) + "\n").encode())
                        sent = version
                self.wfile.write(b"0\r\n\r\n")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.drop_watches()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
