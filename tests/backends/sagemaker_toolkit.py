"""The real SageMaker training toolkit (``sagemaker-training`` from PyPI), run on this machine.

SageMaker's framework containers start the user's script through this toolkit; moto runs no
container. So where a test needs "what SageMaker gives the script", it runs the toolkit itself,
in a virtual environment of its own (the toolkit pins its own boto3/numpy), built once and cached
outside the repository in ``~/.cache/headrace-sagemaker-toolkit`` (``HEADRACE_TOOLKIT_VENV``).

What the tests add around it, and why:

* ``SAGEMAKER_BASE_DIR`` points the toolkit at a folder instead of ``/opt/ml`` (its own switch).
* ``SM_STUDIO_LOCAL_MODE=true`` skips its DNS wait for the host ``algo-1`` (no such host here).
* ``SAGEMAKER_TRAINING_MODULE`` names ``sagemaker_sklearn_container.training:main`` as AWS's
  scikit-learn image does; that package is not on PyPI, so :data:`CONTAINER_MODULE` stands in with
  what its ``main`` does: ``entry_point.run`` with the environment's module folder, entry point,
  arguments and variables.
* ``TRAINING_JOB_NAME`` is set, as the SageMaker platform sets it in every training container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

TOOLKIT = "sagemaker-training==5.1.4"
CONTAINER_MODULE = """\
from sagemaker_training import entry_point, environment, runner


def main():
    env = environment.Environment()
    entry_point.run(
        uri=env.module_dir,
        user_entry_point=env.user_entry_point,
        args=env.to_cmd_args(),
        env_vars=env.to_env_vars(),
        runner_type=runner.ProcessRunnerType,
    )
"""
#: What the toolkit's own process sets that a script may read besides ``SM_*``.
CONTRACT_VARIABLES = ("TRAINING_JOB_NAME", "CURRENT_HOST", "SAGEMAKER_JOB_NAME", "SAGEMAKER_REGION")
#: Set by the tests to run the toolkit outside a container (see the module docstring).
TEST_ONLY_VARIABLES = frozenset({"SM_STUDIO_LOCAL_MODE"})

#: An entry script that records what it was given: argv, working folder, variables.
DUMP_SCRIPT = """\
import json, os, sys
from pathlib import Path

seen = {"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}
Path(os.environ["SM_MODEL_DIR"], "seen.json").write_text(json.dumps(seen))
"""


def toolkit_python() -> Path:
    """The cached toolkit environment's interpreter, built on first use (a few minutes: pip builds
    its C extension with gcc)."""
    venv = Path(os.environ.get("HEADRACE_TOOLKIT_VENV", Path.home() / ".cache" / "headrace-sagemaker-toolkit"))
    python = venv / "bin" / "python"
    marker = venv / ".headrace-installed"
    if marker.is_file() and marker.read_text() == TOOLKIT and python.is_file():
        return python
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", TOOLKIT], check=True)
    marker.write_text(TOOLKIT)
    print(f"built {TOOLKIT} in {venv} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return python


def run_toolkit(base_dir: Path, job_name: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the toolkit's ``train`` on the job laid out in ``base_dir``; return what ``DUMP_SCRIPT``
    recorded (the entry script must be it)."""
    python = toolkit_python()
    shim = base_dir.parent / f"{base_dir.name}-container"
    (shim / "sagemaker_sklearn_container").mkdir(parents=True, exist_ok=True)
    (shim / "sagemaker_sklearn_container" / "__init__.py").write_text("")
    (shim / "sagemaker_sklearn_container" / "training.py").write_text(CONTAINER_MODULE)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "SAGEMAKER_BASE_DIR": str(base_dir),
        "SM_STUDIO_LOCAL_MODE": "true",
        "SAGEMAKER_TRAINING_MODULE": "sagemaker_sklearn_container.training:main",
        "TRAINING_JOB_NAME": job_name,
        "PYTHONPATH": str(shim),
        **(extra_env or {}),
    }
    train = python.parent / "train"
    completed = subprocess.run([str(train)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    seen: dict[str, Any] = json.loads((base_dir / "model" / "seen.json").read_text())
    return seen


def contract_of(seen: dict[str, Any]) -> dict[str, Any]:
    """What a script may rely on: argv, working folder, ``SM_*`` and the toolkit's own variables,
    and where ``PYTHONPATH`` starts."""
    env = seen["env"]
    variables = {
        k: v
        for k, v in env.items()
        if (k.startswith("SM_") or k in CONTRACT_VARIABLES) and k not in TEST_ONLY_VARIABLES
    }
    return {
        "argv": seen["argv"],
        "cwd": seen["cwd"],
        "env": variables,
        "pythonpath_head": env.get("PYTHONPATH", "").split(os.pathsep)[0],
    }


def lay_out_job(description: dict[str, Any], s3: Any, base_dir: Path) -> None:
    """Do what SageMaker does before the container starts: write ``input/config/*.json`` from the
    job's description and download each S3 channel into ``input/data/<channel>``."""
    config = base_dir / "input" / "config"
    config.mkdir(parents=True)
    (base_dir / "model").mkdir()
    (base_dir / "output" / "data").mkdir(parents=True)
    instance_type = description["ResourceConfig"]["InstanceType"]
    resources = {
        "current_host": "algo-1",
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1"],
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": ["algo-1"]}
        ],
        "network_interface_name": "eth0",
    }
    channels = {}
    for channel in description["InputDataConfig"]:
        name = channel["ChannelName"]
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        folder = base_dir / "input" / "data" / name
        folder.mkdir(parents=True)
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            relative = item["Key"][len(prefix) :].lstrip("/") or item["Key"].rsplit("/", 1)[-1]
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target))
        channels[name] = {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    (config / "hyperparameters.json").write_text(json.dumps(description["HyperParameters"]))
    (config / "resourceconfig.json").write_text(json.dumps(resources))
    (config / "inputdataconfig.json").write_text(json.dumps(channels))


def pack_model(base_dir: Path, target: Path) -> Path:
    """``model.tar.gz`` of the model folder, as SageMaker packs it after the script ends."""
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted((base_dir / "model").rglob("*")):
            archive.add(path, arcname=str(path.relative_to(base_dir / "model")), recursive=False)
    return target
