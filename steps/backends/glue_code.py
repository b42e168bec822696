"""What a Glue job ships: the scoring function's module or package, found from the function
itself, and the parts of headrace its script imports. Shared by the local Spark run and the cloud
hand-off (:mod:`steps.backends.glue`, :mod:`steps.backends.glue_cloud`) without either importing
the other.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steps.core.errors import UserError

#: Besides every module of ``steps`` (light at import: standard library only), the pipeline DSL's
#: pure model is shipped too (everything ``import pipelines`` loads), so a scoring function living
#: in a pipeline module imports on Glue.
SHIPPED_DSL = (
    "pipelines/__init__.py",
    "pipelines/graph.py",
    "pipelines/triggers.py",
    "pipelines/validation.py",
    "pipelines/cron.py",
)

ScoreFunction = Callable[[Any, Any], Any]


def score_reference(score: ScoreFunction | str) -> tuple[str, Path | None]:
    """How a job script finds ``score``: (``module:function``, the file or package to ship).

    A function in a module that stands on its own (no relative imports, no import of its own
    package) is shipped as that one file, a top-level module named by its stem: importing it on
    Glue then never runs its package's ``__init__`` (which may read files or import what Glue
    lacks). Otherwise the whole top-level package is shipped. A function defined in a script run
    as ``__main__`` is named by the script's stem.
    """
    if isinstance(score, str):
        module_name, _, qualname = score.partition(":")
        if module_name.endswith(".py"):
            return f"{Path(module_name).stem}:{qualname}", Path(module_name).resolve()
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            spec = None
        file = Path(spec.origin).resolve() if spec and spec.origin and spec.has_location else None
    else:
        module_name = getattr(score, "__module__", "") or ""
        qualname = getattr(score, "__qualname__", "")
        if "<locals>" in qualname or "<lambda>" in qualname or not module_name:
            raise UserError(
                f"score {qualname or score!r}: must be a module-level function, so Glue workers can import it"
            )
        try:
            file = Path(inspect.getfile(score)).resolve()
        except (TypeError, OSError):
            file = None
        if module_name == "__main__":
            if file is None:
                raise UserError("score: a function typed into an interactive session can not be shipped; use a file")
            return f"{file.stem}:{qualname}", file
    top = module_name.split(".")[0]
    if "." not in module_name or file is None:
        return f"{module_name}:{qualname}", file
    if file.name != "__init__.py" and _stands_alone(file, top):
        return f"{file.stem}:{qualname}", file
    package = file
    while package.parent.joinpath("__init__.py").is_file() and package.parent.name != top:
        package = package.parent
    return f"{module_name}:{qualname}", package.parent if package.parent.name == top else file


def _stands_alone(file: Path, package: str) -> bool:
    """True when a module neither imports relatively nor imports its own package."""
    import re

    text = file.read_text(encoding="utf-8", errors="replace")
    relative = re.search(r"^\s*from\s+\.", text, re.MULTILINE)
    own = re.search(rf"^\s*(?:from|import)\s+{re.escape(package)}(?:[.\s]|$)", text, re.MULTILINE)
    return relative is None and own is None
