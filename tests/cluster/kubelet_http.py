"""The kubelet's HTTPS endpoints of the node agent (node_agent.py), which the API server calls:
``/containerLogs`` (``pods/log``, so ``headrace logs`` reads what a pod's process printed, and
follows it) and ``/exec``, which delivers the signal of Argo's ``kill -<signal> 1`` (how the
controller stops a pod) and runs nothing else."""

from __future__ import annotations

import signal
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

if TYPE_CHECKING:
    from tests.cluster.node_agent import Agent


def serve(agent: Agent, cert: str, key: str) -> ThreadingHTTPServer:
    class Kubelet(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _plain(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            if url.path == "/healthz":
                self._plain(200, "ok")
            elif parts[0] == "containerLogs" and len(parts) == 4:
                self.logs(parts[1], parts[2], parts[3], parse_qs(url.query))
            elif parts[0] == "exec":
                self.exec(parts, parse_qs(url.query))
            else:
                self._plain(404, "not found")

        do_POST = do_GET

        def exec(self, parts: list[str], query: dict[str, list[str]]) -> None:
            """Argo's controller stops a pod by exec'ing ``kill -<signal> 1`` in it: deliver the
            signal to the process; nothing else is run, and no stream is opened."""
            command = query.get("command", [])
            running = agent.find(parts[1], parts[2]) if len(parts) >= 3 else None
            if running is not None and "kill" in " ".join(command):
                numbers = [c.lstrip("-") for c in command if c.lstrip("-").isdigit() and c != "1"]
                agent.kill(running, int(numbers[0]) if numbers else signal.SIGTERM)
            self._plain(400, "this node runs no exec streams; the signal, if any, was delivered")

        def logs(self, namespace: str, name: str, container: str, query: dict[str, list[str]]) -> None:
            running = agent.find(namespace, name)
            if running is None:
                self._plain(404, f"pod {namespace}/{name} is not on this node")
                return
            follow = query.get("follow", ["false"])[0] == "true"
            stamps = query.get("timestamps", ["false"])[0] == "true"
            tail = int(query.get("tailLines", ["-1"])[0])
            since = query.get("sinceTime", [""])[0]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def send(line: bytes) -> None:
                stamp, _, text = line.partition(b" ")
                if since and stamp.decode() < since:
                    return
                chunk = line if stamps else text
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()

            try:
                if container == "main":
                    with running.log.open("rb") as handle:
                        lines = handle.readlines()
                        for line in lines[-tail:] if tail >= 0 else lines:
                            send(line)
                        while follow:
                            line = handle.readline()
                            if line:
                                send(line)
                            elif running.done.is_set():
                                break
                            else:
                                time.sleep(0.1)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", agent.port), Kubelet)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
