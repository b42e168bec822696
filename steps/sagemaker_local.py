"""SageMaker's training container contract, reproduced in a local folder and a subprocess.

A framework container (scikit-learn, XGBoost, PyTorch) runs the user's entry script with
``/opt/ml`` laid out as below and ``SM_*`` variables describing it; the sagemaker-training toolkit
also passes every hyperparameter as ``--name value``. Here ``/opt/ml`` is a run folder, the rest
is the same, so a script that trains locally trains on SageMaker unchanged::

    <run>/input/config/hyperparameters.json   string values, JSON-encoded, as SageMaker writes them
    <run>/input/config/resourceconfig.json    {"current_host": "algo-1", "hosts": ["algo-1"], ...}
    <run>/input/config/inputdataconfig.json   one entry per channel
    <run>/input/data/<channel>/               the channel's files (symbolic links, not copies)
    <run>/code/                               a copy of source_dir; the script's working folder
    <run>/model/                              SM_MODEL_DIR: packed into model.tar.gz on success
    <run>/output/data/                        SM_OUTPUT_DATA_DIR
    <run>/output/failure                      the script writes why it failed; shown to the user
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.model_io import IGNORED, cpu_count
from steps.procs import owned_popen_options

HOST = "algo-1"
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class LocalTraining:
    """The outcome of one local training run."""

    exit_code: int
    model_dir: Path
    failure: str
    log_tail: list[str]


def encode_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """JSON-encode each value, as the SageMaker Python SDK does for framework estimators.

    SageMaker's API only carries strings; framework containers ``json.loads`` each value back.
    """
    return {str(name): json.dumps(value) for name, value in hyperparameters.items()}


def decode_hyperparameters(encoded: Mapping[str, str]) -> dict[str, Any]:
    """What the sagemaker-training toolkit does on the container side: JSON values where they
    parse, plain strings where they do not (hyperparameters set by hand in the console)."""
    decoded: dict[str, Any] = {}
    for name, value in encoded.items():
        try:
            decoded[name] = json.loads(value)
        except ValueError:
            decoded[name] = value
    return decoded


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def cli_arguments(hyperparameters: Mapping[str, Any]) -> list[str]:
    """``--name value`` pairs for the user's hyperparameters, as framework containers pass them."""
    arguments: list[str] = []
    for name, value in hyperparameters.items():
        arguments += [f"--{name}", _env_value(value)]
    return arguments


def prepare(
    run_dir: Path,
    source_dir: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, Any],
    entry_point: str,
    *,
    framework: str,
    instance_type: str,
    job_name: str,
) -> dict[str, str]:
    """Lay the run folder out and return the environment the entry script runs with."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    config = run_dir / "input" / "config"
    for folder in (config, run_dir / "model", run_dir / "output" / "data", run_dir / "checkpoints"):
        folder.mkdir(parents=True)
    shutil.copytree(source_dir, run_dir / "code", ignore=shutil.ignore_patterns(*IGNORED, "*.pyc"))
    for name, source in channels.items():
        channel = run_dir / "input" / "data" / name
        channel.mkdir(parents=True)
        items = sorted(source.iterdir()) if source.is_dir() else [source]
        for item in items:
            (channel / item.name).symlink_to(item.resolve())

    user = dict(hyperparameters)
    encoded = encode_hyperparameters(user)
    encoded["sagemaker_program"] = json.dumps(entry_point)
    encoded["sagemaker_job_name"] = json.dumps(job_name)
    resource = {"current_host": HOST, "hosts": [HOST], "network_interface_name": "eth0"}
    data_config = {
        name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
        for name in channels
    }
    (config / "hyperparameters.json").write_text(json.dumps(encoded, indent=2))
    (config / "resourceconfig.json").write_text(json.dumps(resource))
    (config / "inputdataconfig.json").write_text(json.dumps(data_config))

    paths = {
        "SM_MODEL_DIR": run_dir / "model",
        "SM_INPUT_DIR": run_dir / "input",
        "SM_INPUT_CONFIG_DIR": config,
        "SM_OUTPUT_DIR": run_dir / "output",
        "SM_OUTPUT_DATA_DIR": run_dir / "output" / "data",
        "SM_MODULE_DIR": run_dir / "code",
        "SM_CHECKPOINT_DIR": run_dir / "checkpoints",
    }
    cpus = cpu_count()
    training_env = {
        "channel_input_dirs": {name: str(run_dir / "input" / "data" / name) for name in channels},
        "current_host": HOST,
        "hosts": [HOST],
        "hyperparameters": user,
        "input_data_config": data_config,
        "job_name": job_name,
        "framework_module": framework,
        "model_dir": str(paths["SM_MODEL_DIR"]),
        "module_dir": str(paths["SM_MODULE_DIR"]),
        "module_name": Path(entry_point).stem,
        "num_cpus": cpus,
        "num_gpus": 0,
        "output_data_dir": str(paths["SM_OUTPUT_DATA_DIR"]),
        "output_dir": str(paths["SM_OUTPUT_DIR"]),
        "resource_config": resource,
        "user_entry_point": entry_point,
        "current_instance_type": instance_type,
    }
    env = {name: str(path) for name, path in paths.items()}
    env.update(
        {
            "SM_CHANNELS": json.dumps(sorted(channels)),
            "SM_HPS": json.dumps(user),
            "SM_HOSTS": json.dumps([HOST]),
            "SM_CURRENT_HOST": HOST,
            "SM_CURRENT_INSTANCE_TYPE": instance_type,
            "SM_NUM_CPUS": str(cpus),
            "SM_NUM_GPUS": "0",
            "SM_NETWORK_INTERFACE_NAME": "eth0",
            "SM_RESOURCE_CONFIG": json.dumps(resource),
            "SM_INPUT_DATA_CONFIG": json.dumps(data_config),
            "SM_USER_ENTRY_POINT": entry_point,
            "SM_MODULE_NAME": Path(entry_point).stem,
            "SM_FRAMEWORK_MODULE": framework,
            "SM_USER_ARGS": json.dumps(cli_arguments(user)),
            "SM_TRAINING_ENV": json.dumps(training_env),
            "SM_LOG_LEVEL": "20",
        }
    )
    for name in channels:
        env[f"SM_CHANNEL_{name.upper()}"] = str(run_dir / "input" / "data" / name)
    for name, value in user.items():
        env[f"SM_HP_{name.upper()}"] = _env_value(value)
    return env


def run(
    run_dir: Path,
    entry_point: str,
    env: Mapping[str, str],
    hyperparameters: Mapping[str, Any],
    *,
    on_line: Callable[[str], None] = lambda _: None,
    timeout: float | None = None,
) -> LocalTraining:
    """Run the entry script in ``<run>/code`` and stream its output lines to ``on_line``.

    stdout and stderr are merged (as in CloudWatch) and also kept in ``<run>/output/train.log``.
    A run past ``timeout`` seconds is killed, as SageMaker's MaxRuntimeInSeconds stops a job.
    """
    code = run_dir / "code"
    script = code / entry_point
    command = [sys.executable, "-u", str(script), *cli_arguments(hyperparameters)]
    python_path = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH", "")]))
    full_env = {**os.environ, **env, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    log_path = run_dir / "output" / "train.log"
    timed_out = False
    with (
        log_path.open("w", encoding="utf-8") as log,
        subprocess.Popen(
            command,
            cwd=code,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            **owned_popen_options(),  # dies with the task, even a killed one
        ) as process,
    ):
        timer = None
        if timeout is not None:
            import threading

            def kill() -> None:
                nonlocal timed_out
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # the script and anything it started

            timer = threading.Timer(timeout, kill)
            timer.start()
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                log.write(raw)
                tail.append(line)
                on_line(line)
            exit_code = process.wait()
        finally:
            if timer is not None:
                timer.cancel()
    failure_file = run_dir / "output" / "failure"
    failure = failure_file.read_text(errors="replace").strip() if failure_file.is_file() else ""
    if timed_out:
        failure = failure or f"MaxRuntimeExceeded: the script ran longer than {timeout:.0f} s and was stopped"
    return LocalTraining(exit_code, run_dir / "model", failure, list(tail))
