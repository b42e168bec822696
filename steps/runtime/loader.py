"""Find a pipeline from ``MODULE:PIPELINE``: a dotted module, a ``.py`` file or a package folder.

``examples.recipe_stream:pipeline``, ``examples/recipe_stream:pipeline`` and
``flows/daily.py:pipeline`` all work; the part after ``:`` defaults to ``pipeline``. The loader
returns whatever object it finds; callers check that it is a pipeline.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from steps.core.errors import NotFoundError, UserError


def split_spec(spec: str) -> tuple[str, str]:
    module, _, attribute = spec.partition(":")
    if not module:
        raise UserError(f"{spec!r}: give MODULE:PIPELINE, e.g. examples.recipe_stream:pipeline")
    return module, attribute or "pipeline"


def import_module(module: str) -> Any:
    """Import a dotted module or a file/folder path, making its folder importable."""
    looks_like_path = "/" in module or module.endswith(".py") or Path(module).is_dir()
    if looks_like_path:
        path = Path(module).resolve()
        if not path.exists():
            raise NotFoundError(f"module {module}: no such file or folder; check the path")
        package_root = path.parent
        dotted = path.stem if path.suffix == ".py" else path.name
        # Walk up through packages so relative imports inside the pipeline keep working.
        while (package_root / "__init__.py").exists():
            dotted = f"{package_root.name}.{dotted}"
            package_root = package_root.parent
        if str(package_root) not in sys.path:
            sys.path.insert(0, str(package_root))
        module = dotted
    elif str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and (module == error.name or module.startswith(error.name + ".")):
            raise NotFoundError(f"module {module}: not found; check the name or run from the project folder") from None
        raise


def load_object(spec: str) -> Any:
    """The object named by ``MODULE:ATTRIBUTE``."""
    module_name, attribute = split_spec(spec)
    module = import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise NotFoundError(
            f"{module_name}: has no {attribute!r}; name the pipeline object after ':', e.g. {module_name}:pipeline"
        ) from None
