"""Model framework versions: recorded with the model, and the Python that has them.

A pickled scikit-learn model is only safe to load under the version that trained it (a 1.2.1
model fails ``predict_proba`` under 1.5 and 1.9). So the framework travels with the model:

* training records ``{"framework": "sklearn", "version": "1.2-1", "package": "scikit-learn",
  "package_version": "1.2.1"}`` next to the artifact, as ``<model uri>.framework.json``;
* local training runs the entry script under that version, scoring (Arrow, local Spark) loads
  the model under it, and the Glue job gets ``scikit-learn==1.2.1`` in its
  ``--additional-python-modules``.

Where this interpreter already has the package at that version it is used as it is. Otherwise a
virtual environment per framework version is built once (pip, wheels only: a version without a
wheel for this Python is refused at once instead of compiled for an hour) and cached
outside the project, in ``~/.cache/headrace-frameworks/<package>-<version>-py<major><minor>``
(``HEADRACE_FRAMEWORK_CACHE`` moves it). A version pip can not install for this Python is one
line naming the version and what to do, never a silently different model.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from steps.core.errors import ConfigError, UserError

RECORD_SUFFIX = ".framework.json"

#: SageMaker framework container versions → the package and its version inside that container
#: (the containers' release notes; scikit-learn ``1.2-1`` ships scikit-learn 1.2.1). On Python 3.11
#: PyPI has wheels for scikit-learn 1.2.1 and 1.4.2, none for 0.23.2 or 1.0.2 (refused locally).
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "sklearn": ("scikit-learn", {"0.23-1": "0.23.2", "1.0-1": "1.0.2", "1.2-1": "1.2.1", "1.4-2": "1.4.2"}),
    "xgboost": ("xgboost", {"1.5-1": "1.5.2", "1.7-1": "1.7.6", "2.0-1": "2.0.3"}),
    "pytorch": ("torch", {}),  # the container version is the torch version
}
#: What else the environment holds: the script's and the scorer's imports, in versions that build
#: with the framework on this Python (scikit-learn before 1.4.2 was built against NumPy 1).
COMPANIONS: dict[str, list[str]] = {
    "numpy1": ["numpy<2", "scipy<1.12", "pandas>=2.2,<2.3", "pyarrow>=15,<21", "joblib"],
    "default": ["pandas>=2.2", "pyarrow>=15", "joblib"],
}
#: The name a framework's package is imported by, where it differs from the package's.
IMPORT_NAMES = {"scikit-learn": "sklearn"}
NUMPY1_PACKAGES = {("scikit-learn", v) for v in ("0.23.2", "1.0.2", "1.2.1")} | {("xgboost", "1.5.2")}


@dataclass(frozen=True)
class Framework:
    """A model's framework: SageMaker's name and container version, the package and its version."""

    framework: str
    version: str
    package: str
    package_version: str

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.package_version}"


def framework_for(framework: str, version: str, *, where: str = "") -> Framework | None:
    """The framework of a SageMaker ``framework``/``version`` pair; ``None`` for a custom image.

    A container version whose package version headrace does not know is a :class:`UserError`:
    guessing would pin a model to the wrong library.
    """
    if framework not in PACKAGES:
        return None
    package, versions = PACKAGES[framework]
    if versions and version not in versions:
        prefix = f"{where}: " if where else ""
        raise UserError(
            f"{prefix}framework_version {version!r}: headrace does not know which {package} the SageMaker {framework} "
            f"{version} container ships; use one of {', '.join(versions)} or add it to steps.backends.frameworks.PACKAGES"
        )
    return Framework(framework, version, package, versions.get(version, version))


def record(framework: Framework) -> bytes:
    return json.dumps(asdict(framework), sort_keys=True).encode()


def record_uri(model_uri: str) -> str:
    """Where a model's framework record lives: beside the artifact."""
    return model_uri.rstrip("/") + RECORD_SUFFIX


def read_model_framework(store: Any, model_uri: str) -> Framework | None:
    """The framework recorded for the model at ``model_uri`` (``None`` when none was recorded:
    a model from outside headrace)."""
    uri = record_uri(model_uri)
    if not store.exists(uri):
        return None
    data = json.loads(store.read_bytes(uri))
    return Framework(**{k: str(data[k]) for k in ("framework", "version", "package", "package_version")})


def read_local_framework(model_path: Path) -> Framework | None:
    """The framework recorded beside a model file on this machine (``None`` when none)."""
    sidecar = Path(str(model_path) + RECORD_SUFFIX)
    if not sidecar.is_file():
        return None
    data = json.loads(sidecar.read_text())
    return Framework(**{k: str(data[k]) for k in ("framework", "version", "package", "package_version")})


def installed_here(framework: Framework) -> bool:
    """Whether this interpreter already has the framework's package at the recorded version."""
    try:
        return metadata.version(framework.package) == framework.package_version
    except metadata.PackageNotFoundError:
        return False


def cache_root() -> Path:
    from steps.core.settings import load_settings

    return Path(load_settings().framework_cache or Path.home() / ".cache" / "headrace-frameworks")


def _environment(framework: Framework) -> Path:
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache_root() / f"{framework.package}-{framework.package_version}-{tag}"


def built_python(framework: Framework) -> str | None:
    """The cached environment's interpreter if it is already built (never builds it); ``None``
    when this interpreter has the version itself or the environment is not there yet."""
    if installed_here(framework):
        return None
    venv = _environment(framework)
    python = venv / "bin" / "python"
    return str(python) if (venv / ".headrace-ready").is_file() and python.is_file() else None


def python_for(framework: Framework, *, where: str = "") -> str:
    """The interpreter to train or score ``framework`` with: this one when it has the version,
    else the cached environment's, built on first use. A version that does not install here is
    a :class:`ConfigError` in one line."""
    if installed_here(framework):
        return sys.executable
    venv = _environment(framework)
    python = venv / "bin" / "python"
    marker = venv / ".headrace-ready"
    if marker.is_file() and python.is_file():
        return str(python)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel tasks wait for one build instead of racing it
        if not (marker.is_file() and python.is_file()):
            _build(framework, venv, where)
    return str(python)


def _build(framework: Framework, venv: Path, where: str) -> None:
    python = venv / "bin" / "python"
    prefix = f"{where}: " if where else ""
    key = "numpy1" if (framework.package, framework.package_version) in NUMPY1_PACKAGES else "default"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--only-binary=:all:"]
    install = subprocess.run(
        [*pip, framework.pin, *COMPANIONS[key]],
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        last = next((line for line in reversed(install.stderr.splitlines()) if line.strip()), "pip failed")
        raise ConfigError(
            f"{prefix}model framework {framework.framework} {framework.version} needs {framework.pin}, which does not "
            f"install for Python {sys.version_info.major}.{sys.version_info.minor} here ({last.strip()}); "
            "use a framework_version whose package installs on this Python, or train and score on the aws profile"
        )
    (venv / ".headrace-ready").write_text(f"{framework.pin} built in {time.monotonic() - started:.0f} s\n")


def spark_path(python: str) -> str:
    """A folder holding only this interpreter's ``pyspark`` and ``py4j`` (links), for a framework
    environment that runs Spark without a copy of it: on ``PYTHONPATH`` it adds those two
    packages and nothing that could shadow the environment's own."""
    import importlib.util

    folder = Path(python).parent.parent / "headrace-spark"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("pyspark", "py4j"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"local Spark needs {name}; install headrace[spark]")
        source = Path(next(iter(spec.submodule_search_locations)))
        link = folder / name
        if link.is_symlink() and link.resolve() != source.resolve():
            link.unlink()
        if not link.exists():
            link.symlink_to(source)
    return str(folder)
