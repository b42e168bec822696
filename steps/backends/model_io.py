"""Model artifacts: packing a trained model folder and loading it back where it is used.

SageMaker's contract is a ``model.tar.gz`` holding whatever the training script wrote to
``SM_MODEL_DIR``; headrace keeps that one format on both sides, so a model trained locally scores
on Glue and the reverse. :func:`load_model` accepts that archive, a folder, or a bare
``.joblib``/``.pkl`` file, and caches per process: a Glue executor or a local worker process pays
for unpacking and unpickling once, however many batches it scores.

This module imports only the standard library (joblib lazily), because it is shipped to Glue next
to the generated job script, where headrace itself is not installed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from steps.core.errors import NotFoundError, UserError

#: File names tried, in order, inside an unpacked model folder.
MODEL_FILES = ("model.joblib", "model.pkl", "model.pickle")
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")
#: Files and folders never part of a code hash or a source archive.
IGNORED = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".mypy_cache", ".DS_Store"})

_cache: dict[tuple[str, float], Any] = {}


def pack_dir(folder: Path, target: Path) -> Path:
    """Write ``folder``'s contents (not the folder itself) to the gzipped tar ``target``.

    Entries are relative (``model.joblib``, not ``model/model.joblib``), as SageMaker packs
    ``/opt/ml/model`` and expects ``sourcedir.tar.gz``; ``__pycache__`` and VCS folders are left out.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if IGNORED & set(relative.parts) or path.suffix == ".pyc":
                continue
            archive.add(path, arcname=str(relative), recursive=False)
    return target


def tree_sha256(folder: Path) -> str:
    """A stable SHA-256 of a folder: relative paths and contents, sorted; caches left out.

    The code hash recorded with a training run: the same sources give the same hash on any
    machine, whatever the files' timestamps.
    """
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if IGNORED & set(relative.parts) or path.suffix == ".pyc" or not path.is_file():
            continue
        digest.update(relative.as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def unpack(archive: Path, folder: Path) -> Path:
    """Extract a model/source archive safely (no absolute paths, no links leaving ``folder``)."""
    try:
        with tarfile.open(archive, "r:*") as handle:
            handle.extractall(folder, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise UserError(
            f"model artifact {archive}: not a readable tar.gz ({error}); re-run the training task"
        ) from error
    return folder


def find_model_file(folder: Path) -> Path:
    """The model file inside an unpacked folder: ``model.joblib``/``model.pkl`` first, else the
    only ``*.joblib``/``*.pkl`` found."""
    for name in MODEL_FILES:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.rglob("*") if p.suffix in MODEL_SUFFIXES and p.is_file())
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(p.relative_to(folder).as_posix() for p in candidates) or "nothing"
    raise NotFoundError(
        f"model artifact {folder}: expected model.joblib or one *.pkl file, found {found}; "
        "save the model as model.joblib in SM_MODEL_DIR"
    )


def _load_file(path: Path) -> Any:
    if path.suffix == ".joblib":
        import joblib

        return joblib.load(path)
    with path.open("rb") as handle:
        return pickle.load(handle)


def load_model(path: str | Path) -> Any:
    """Load a model from ``model.tar.gz``, a folder, or a ``.joblib``/``.pkl`` file; once per process.

    Only load artifacts your own pipeline wrote: unpickling runs code.
    """
    source = Path(str(path).removeprefix("file://"))
    if not source.exists():
        raise NotFoundError(f"model artifact {path}: not found; run the training task first or fix the model path")
    key = (str(source.resolve()), source.stat().st_mtime)
    if key in _cache:
        return _cache[key]
    if source.is_dir():
        model = _load_file(find_model_file(source))
    elif source.name.endswith((".tar.gz", ".tgz", ".tar")):
        folder = Path(tempfile.mkdtemp(prefix="headrace-model-"))
        model = _load_file(find_model_file(unpack(source, folder)))
    elif source.suffix in MODEL_SUFFIXES:
        model = _load_file(source)
    else:
        raise UserError(f"model artifact {path}: unknown format; give a model.tar.gz, a folder, or a .joblib/.pkl file")
    _cache[key] = model
    return model


def clear_cache() -> None:
    """Forget loaded models (tests, long-lived processes that reload a retrained model)."""
    _cache.clear()


def cpu_count() -> int:
    """CPUs this process may use (respects affinity masks and cgroup-pinned sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
