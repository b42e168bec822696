"""The independent BigQuery emulator (``bqemulator`` from PyPI), run from a venv of its own.

bqemulator pins an older sqlglot than headrace, so it lives in its own venv, built once and cached
outside the repository (``~/.cache/headrace-bqemulator``, or ``HEADRACE_BQEMULATOR_VENV``). It is
started on 127.0.0.1 with its DuckDB spatial extension load switched off (GEOGRAPHY is not used
here, and loading it downloads the extension) and without its optional Avro extension, so it needs
no network beyond the loopback. ``with BigQueryEmulator() as emulator:`` gives ``emulator.url``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

VERSION = "1.4.0"
LAUNCH = """
import sys
from bqemulator.storage import engine
engine.DuckDBEngine._load_spatial = lambda self: None  # GEOGRAPHY only; loading downloads it
from bqemulator.cli import main
sys.argv = ["bqemulator", "start", *sys.argv[1:]]
main()
"""


def venv_dir() -> Path:
    return Path(os.environ.get("HEADRACE_BQEMULATOR_VENV", Path.home() / ".cache" / "headrace-bqemulator"))


def ensure_venv() -> Path:
    """The emulator's Python, installing bqemulator (and numpy, which its UDFs need) the first time."""
    root = venv_dir()
    python = root / "bin" / "python"
    ready = root / f".headrace-bqemulator-{VERSION}"
    if ready.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"bqemulator=={VERSION}", "numpy>=1.26"],
        check=True,
        timeout=1200,
    )
    ready.touch()
    return python


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BigQueryEmulator:
    """Starts bqemulator for the duration of a ``with`` block; stops (and reaps) it after."""

    def __init__(self, project: str = "test-project") -> None:
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BigQueryEmulator:
        python = ensure_venv()
        env = {
            **os.environ,
            "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
            "BQEMU_LOG_LEVEL": "warning",
            "BQEMU_METRICS_ENABLED": "false",
        }
        listen = ["--rest-host", "127.0.0.1", "--rest-port", str(self.port)]
        listen += ["--grpc-host", "127.0.0.1", "--grpc-port", str(free_port()), "--project", self.project]
        self.process = subprocess.Popen(
            [str(python), "-c", LAUNCH, *listen],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 90
        probe = f"{self.url}/bigquery/v2/projects/{self.project}/datasets"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode()[-2000:] if self.process.stderr else ""
                raise RuntimeError(f"bqemulator exited with {self.process.returncode}: {error}")
            try:
                with urllib.request.urlopen(probe, timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        self.__exit__(None, None, None)
        raise RuntimeError(f"bqemulator did not answer on {self.url} within 90 s")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None
