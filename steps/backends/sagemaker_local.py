"""SageMaker's training container contract, reproduced in a local folder and a subprocess.

A framework container (scikit-learn, XGBoost, PyTorch) runs the user's entry script through the
sagemaker-training toolkit with ``/opt/ml`` laid out as below. Here ``/opt/ml`` is a run folder;
everything the script sees is what the toolkit (``sagemaker_training``) gives it for the same
job: the argument vector of ``mapping.to_cmd_args``, the ``SM_*`` variables of
``Environment.to_env_vars`` (compact sorted JSON), ``TRAINING_JOB_NAME``, ``CURRENT_HOST``,
``SAGEMAKER_JOB_NAME``/``SAGEMAKER_REGION``, ``PYTHONPATH`` starting at the code folder, the
code folder as working folder, and ``requirements.txt`` installed before the script starts.
``tests/backends/test_sagemaker.py`` runs the real toolkit beside this module on the same job and
compares the two. Where the two sides must differ, the local side does what SageMaker's own local
mode does: ``sagemaker_submit_directory`` (``SM_MODULE_DIR``) is the local code folder rather than
the ``s3://.../sourcedir.tar.gz`` the cloud request names::

    <run>/input/config/hyperparameters.json   the CreateTrainingJob HyperParameters (JSON strings)
    <run>/input/config/resourceconfig.json    the documented shape: host, instance type and group
    <run>/input/config/inputdataconfig.json   one entry per channel
    <run>/input/data/<channel>/               the channel's files (symbolic links, not copies)
    <run>/code/                               a copy of source_dir; the script's working folder
    <run>/venv/                               only with a requirements.txt: the job's own packages
    <run>/model/                              SM_MODEL_DIR: packed into model.tar.gz on success
    <run>/output/data/                        SM_OUTPUT_DATA_DIR
    <run>/output/failure                      the script writes why it failed; shown to the user

The toolkit sets no ``SM_CHECKPOINT_DIR``; neither does this module (``/opt/ml/checkpoints`` is
SageMaker's path for ``CheckpointConfig``, which only the cloud side sends).
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.backends.model_io import IGNORED, cpu_count
from steps.core.errors import HandoffFailed
from steps.runtime.procs import owned_popen_options
from steps.runtime.warm import popen as warm_popen

HOST = "algo-1"
INSTANCE_GROUP = "homogeneousCluster"
LOG_TAIL_LINES = 40
LOG_LEVEL = 20
#: Hyperparameters the toolkit keeps for itself (``params.SAGEMAKER_HYPERPARAMETERS``); any other
#: ``sagemaker_*`` one is a framework parameter. Neither kind reaches the script's arguments.
TOOLKIT_HYPERPARAMETERS = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)
#: Framework parameters that make the toolkit treat the job as distributed.
DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)
#: ``SAGEMAKER_TRAINING_MODULE`` of AWS's framework containers (their Dockerfiles' ENV line).
FRAMEWORK_MODULES = {
    "sklearn": "sagemaker_sklearn_container.training:main",
    "xgboost": "sagemaker_xgboost_container.training:main",
    "pytorch": "sagemaker_pytorch_container.training:main",
}
#: Left out of the copy of ``source_dir``: caches, VCS folders and headrace's own state folder.
COPY_IGNORED = (*IGNORED, "*.pyc", ".headrace", ".venv")


@dataclass(frozen=True)
class LocalTraining:
    """The outcome of one local training run."""

    exit_code: int
    model_dir: Path
    failure: str
    log_tail: list[str]


def encode_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """JSON-encode each value, as the SageMaker Python SDK does for framework estimators.

    SageMaker's API only carries strings; the toolkit ``json.loads`` each value back.
    """
    return {str(name): json.dumps(value) for name, value in hyperparameters.items()}


def decode_hyperparameters(encoded: Mapping[str, str]) -> dict[str, Any]:
    """What the toolkit does on the container side: JSON values where they parse, plain strings
    where they do not (hyperparameters set by hand in the console)."""
    decoded: dict[str, Any] = {}
    for name, value in encoded.items():
        try:
            decoded[name] = json.loads(value)
        except (ValueError, TypeError):
            decoded[name] = value
    return decoded


def job_hyperparameters(
    hyperparameters: Mapping[str, Any], *, entry_point: str, submit_directory: str, job_name: str, region: str
) -> dict[str, str]:
    """The ``HyperParameters`` of CreateTrainingJob: the user's and the SDK's ``sagemaker_*`` ones.

    One function for both sides: the cloud request sends it, the local side writes it to
    ``hyperparameters.json``; only ``submit_directory`` differs (S3 archive vs. local folder).
    """
    encoded = encode_hyperparameters(hyperparameters)
    encoded.update(
        encode_hyperparameters(
            {
                "sagemaker_program": entry_point,
                "sagemaker_submit_directory": submit_directory,
                "sagemaker_container_log_level": LOG_LEVEL,
                "sagemaker_job_name": job_name,
                "sagemaker_region": region,
            }
        )
    )
    return encoded


def split_hyperparameters(decoded: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the user's, the toolkit's and framework's ``sagemaker_*`` ones), as the toolkit splits them."""
    own = {k: v for k, v in decoded.items() if k in TOOLKIT_HYPERPARAMETERS or k.startswith("sagemaker_")}
    return {k: v for k, v in decoded.items() if k not in own}, own


def _text(value: Any) -> str:
    """The toolkit's ``_decode``: ``None`` is empty, everything else ``str()``."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def cli_arguments(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The toolkit's ``mapping.to_cmd_args``: sorted ``--name value`` pairs (``-n`` for a one-letter
    name), ``str()`` of each value (``True``, not ``true``), a dict as ``k=v,k=v``, ``None`` as ``''``."""
    arguments: list[str] = []
    for name in sorted(hyperparameters):
        text = _text(name)
        flag = ("--" if len(text) > 1 else "-") + text if text else ""
        value = hyperparameters[name]
        pairs = hasattr(value, "items")
        arguments += [flag, ",".join(f"{k}={v}" for k, v in sorted(value.items())) if pairs else _text(value)]
    return arguments


def env_value(value: Any) -> str:
    """The toolkit's ``mapping.to_env_vars`` value: strings as they are, ``None`` empty, anything
    else compact JSON with sorted keys."""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def resource_config(instance_type: str) -> dict[str, Any]:
    """``resourceconfig.json`` in the shape SageMaker documents for a one-instance job."""
    return {
        "current_host": HOST,
        "current_instance_type": instance_type,
        "current_group_name": INSTANCE_GROUP,
        "hosts": [HOST],
        "instance_groups": [{"instance_group_name": INSTANCE_GROUP, "instance_type": instance_type, "hosts": [HOST]}],
        "network_interface_name": "eth0",
    }


def container_environment(
    run_dir: Path,
    encoded: Mapping[str, str],
    resources: Mapping[str, Any],
    data_config: Mapping[str, Any],
    *,
    framework_module: str | None,
    job_name: str,
    cpus: int,
) -> dict[str, str]:
    """The variables the toolkit's ``Environment`` gives the script, from the same config files."""
    decoded = decode_hyperparameters(encoded)
    user, own = split_hyperparameters(decoded)
    framework_params = {k: v for k, v in own.items() if k not in TOOLKIT_HYPERPARAMETERS}
    program = own.get("sagemaker_program")
    module_name = program[:-3] if isinstance(program, str) and program.endswith(".py") else program
    hosts = list(resources["hosts"])
    groups_config = list(resources.get("instance_groups", []))
    group = str(resources.get("current_group_name", INSTANCE_GROUP))
    distributed = any(framework_params.get(flag, False) for flag in DISTRIBUTION_FLAGS)
    distribution_groups = framework_params.get("sagemaker_distribution_instance_groups", [group] if distributed else [])
    if groups_config:
        distribution_hosts = [
            h for g in groups_config if g["instance_group_name"] in distribution_groups for h in g["hosts"]
        ]
    else:
        distribution_hosts = hosts.copy()
    master = (distribution_hosts or hosts)[0]
    channels = {name: str(run_dir / "input" / "data" / name) for name in data_config}
    paths = {
        "input_dir": str(run_dir / "input"),
        "input_config_dir": str(run_dir / "input" / "config"),
        "model_dir": str(run_dir / "model"),
        "output_dir": str(run_dir / "output"),
        "output_data_dir": str(run_dir / "output" / "data"),
        "output_intermediate_dir": str(run_dir / "output" / "intermediate"),
    }
    common: dict[str, Any] = {
        "current_host": resources["current_host"],
        "current_instance_type": resources.get("current_instance_type", "local"),
        "current_instance_group": group,
        "current_instance_group_hosts": next(
            (g["hosts"] for g in groups_config if g["instance_group_name"] == group), []
        ),
        "distribution_instance_groups": distribution_groups,
        "framework_module": framework_module,
        "hosts": hosts,
        "input_data_config": dict(data_config),
        "instance_groups": [g["instance_group_name"] for g in groups_config],
        "instance_groups_dict": {g["instance_group_name"]: g for g in groups_config},
        "is_hetero": len(groups_config) > 1,
        "log_level": own.get("sagemaker_container_log_level", LOG_LEVEL),
        "module_dir": str(own.get("sagemaker_submit_directory", run_dir / "code")),
        "module_name": module_name,
        "network_interface_name": resources.get("network_interface_name", "eth0"),
        "num_cpus": cpus,
        "num_gpus": 0,
        "num_neurons": 0,
        "resource_config": dict(resources),
        "user_entry_point": program,
        **paths,
    }
    training_env = {
        **common,
        "additional_framework_parameters": framework_params,
        "channel_input_dirs": channels,
        "distribution_hosts": distribution_hosts,
        "hyperparameters": user,
        "is_master": resources["current_host"] == master,
        "is_modelparallel_enabled": None,
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": job_name,
        "master_hostname": master,
        "topology": list(resources.get("topology", [])),
    }
    variables: dict[str, Any] = {
        **common,
        "hps": user,
        "framework_params": framework_params,
        "channels": sorted(channels),
        "training_env": training_env,
        "user_args": cli_arguments(user),
    }
    if training_env["topology"]:
        variables["topology"] = training_env["topology"]
    variables.update({f"channel_{name}": path for name, path in channels.items()})
    variables.update({f"hp_{name}": value for name, value in user.items()})
    env = {f"SM_{str(name).upper()}": env_value(value) for name, value in variables.items()}
    env.update(
        {
            "TRAINING_JOB_NAME": job_name,
            "CURRENT_HOST": str(resources["current_host"]),
            "SAGEMAKER_JOB_NAME": str(own.get("sagemaker_job_name", "")),
            "SAGEMAKER_REGION": str(own.get("sagemaker_region", "")),
        }
    )
    return env


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
    region: str = "us-east-1",
) -> dict[str, str]:
    """Lay the run folder out and return the environment the entry script runs with.

    ``run_dir`` may lie inside ``source_dir`` (``source_dir="."`` with the state folder in the
    project): the copy leaves out the state folder and anything at or below ``run_dir``.
    """
    if run_dir.exists():
        shutil.rmtree(run_dir)
    config = run_dir / "input" / "config"
    for folder in (config, run_dir / "model", run_dir / "output" / "data"):
        folder.mkdir(parents=True)
    copy_source(source_dir, run_dir / "code", exclude=[run_dir])
    for name, source in channels.items():
        channel = run_dir / "input" / "data" / name
        channel.mkdir(parents=True)
        items = sorted(source.iterdir()) if source.is_dir() else [source]
        for item in items:
            (channel / item.name).symlink_to(item.resolve())

    encoded = job_hyperparameters(
        hyperparameters,
        entry_point=entry_point,
        submit_directory=str(run_dir / "code"),
        job_name=job_name,
        region=region,
    )
    resources = resource_config(instance_type)
    data_config = {
        name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
        for name in channels
    }
    (config / "hyperparameters.json").write_text(json.dumps(encoded, indent=2))
    (config / "resourceconfig.json").write_text(json.dumps(resources))
    (config / "inputdataconfig.json").write_text(json.dumps(data_config))
    return container_environment(
        run_dir,
        encoded,
        resources,
        data_config,
        framework_module=FRAMEWORK_MODULES.get(framework),
        job_name=job_name,
        cpus=os.cpu_count() or cpu_count(),
    )


def copy_source(source: Path, target: Path, *, exclude: Iterable[Path] = ()) -> None:
    """Copy ``source`` to ``target`` without caches, state folders, or any of ``exclude``
    (resolved paths): a target inside the source is never copied into itself."""
    skipped = {Path(p).resolve() for p in [target, *exclude]}
    patterns = shutil.ignore_patterns(*COPY_IGNORED)

    def ignore(folder: str, names: list[str]) -> set[str]:
        ignored = set(patterns(folder, names))
        return ignored | {name for name in names if (Path(folder) / name).resolve() in skipped}

    shutil.copytree(source, target, ignore=ignore)


def install_requirements(run_dir: Path, python: str, on_line: Callable[[str], None]) -> str:
    """Install ``code/requirements.txt`` as the toolkit does before the script starts; returns the
    interpreter to run the script with.

    The toolkit installs into the container's Python. Here that Python is shared (headrace's, or a
    cached framework environment), so the job gets a virtual environment of its own,
    ``<run>/venv``, which sees ``python``'s packages after its own: what the requirements add or
    pin wins, nothing outside the run folder changes. Without a requirements.txt, ``python`` runs
    the script directly.
    """
    requirements = run_dir / "code" / "requirements.txt"
    if not requirements.is_file():
        return python
    venv = run_dir / "venv"
    _checked([python, "-m", "venv", "--without-pip", str(venv)], "creating the job's environment", on_line)
    job_python = str(venv / "bin" / "python")
    base_paths = subprocess.run(
        [python, "-c", "import json, site, sys; print(json.dumps([p for p in sys.path if p.endswith('-packages')]))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    site_packages = subprocess.run(
        [job_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site_packages, "_headrace_base.pth").write_text("\n".join(json.loads(base_paths)) + "\n")
    on_line("Installing dependencies from requirements.txt")
    _checked(
        [
            python,
            "-m",
            "pip",
            "--python",
            job_python,
            "install",
            "--disable-pip-version-check",
            "-r",
            "requirements.txt",
        ],
        "installing requirements.txt",
        on_line,
        cwd=run_dir / "code",
    )
    return job_python


def _checked(command: list[str], what: str, on_line: Callable[[str], None], cwd: Path | None = None) -> None:
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    for line in (completed.stdout + completed.stderr).splitlines():
        on_line(line)
    if completed.returncode != 0:
        last = next((line for line in reversed(completed.stderr.splitlines()) if line.strip()), "")
        raise HandoffFailed(f"{what} failed (exit {completed.returncode}): {last.strip()}", reason=what + " failed")


def script_arguments(run_dir: Path) -> list[str]:
    """The script's arguments, from ``hyperparameters.json`` exactly as the toolkit derives them."""
    encoded = json.loads((run_dir / "input" / "config" / "hyperparameters.json").read_text())
    return cli_arguments(split_hyperparameters(decode_hyperparameters(encoded))[0])


def run(
    run_dir: Path,
    entry_point: str,
    env: Mapping[str, str],
    *,
    python: str | None = None,
    on_line: Callable[[str], None] = lambda _: None,
    timeout: float | None = None,
) -> LocalTraining:
    """Install ``requirements.txt``, then run the entry script in ``<run>/code`` with ``python``
    (default: this interpreter) and stream its output lines to ``on_line``.

    The command is the toolkit's, ``python -- <entry_point> <arguments>`` in the code folder.
    stdout and stderr are merged (as in CloudWatch) and also kept in ``<run>/output/train.log``.
    A run past ``timeout`` seconds is killed, as SageMaker's MaxRuntimeInSeconds stops a job.
    """
    code = run_dir / "code"
    interpreter = install_requirements(run_dir, python or sys.executable, on_line)
    command = [interpreter, "--", entry_point, *script_arguments(run_dir)]
    python_path = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH", "")]))
    full_env = {**os.environ, **env, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    log_path = run_dir / "output" / "train.log"
    timed_out = False
    # A warm framework interpreter forks the script when the run keeps one (steps.runtime.warm).
    warm = warm_popen(command, cwd=code, env=full_env, merge_stderr=True)
    with (
        log_path.open("w", encoding="utf-8") as log,
        warm
        or subprocess.Popen(
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
