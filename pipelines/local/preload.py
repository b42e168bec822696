"""What a run's fork server imports before forking: the modules its tasks are going to import.

Imports were most of the README's main job: pyarrow imported again in about eleven forked task
processes (3.1-3.7 s in all), scikit-learn 1.4-1.6 s in ``score``, sqlglot and DuckDB about 1.3 s
over the six SQL tasks, and the pipeline module itself (0.5 s) in every task. The fork server pays
each of these once, before it forks: every task is still its own process, session, log and memory
limit, and finds the modules already in ``sys.modules``, as a pod finds them on its image.

The list is read, never imported, from the code: every ``import`` of the pipeline's step modules
(function bodies included, ``if TYPE_CHECKING:`` blocks excluded), followed through the project's
own modules, plus what the local side of each headrace backend the steps use imports. A module
that fails to import is skipped: the task that needs it imports it (and reports the error) itself.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

#: What the local side of each backend imports when a task runs it (the cloud side runs elsewhere).
BACKEND_IMPORTS: dict[str, tuple[str, ...]] = {
    "steps.backends.bigquery": ("duckdb", "sqlglot", "pyarrow", "pyarrow.parquet"),
    "steps.backends.athena": ("duckdb", "sqlglot", "pyarrow", "pyarrow.parquet"),
    "steps.backends.glue": ("pyarrow", "pyarrow.parquet", "pyarrow.dataset", "pandas", "joblib"),
    "steps.runtime.values": ("pyarrow", "pyarrow.parquet"),
}

#: headrace's own packages: followed for their backends, never listed (the server has them).
OWN_PACKAGES = ("pipelines", "steps", "control_room")


def modules_to_preload(step_modules: Iterable[str], project_root: str) -> list[str]:
    """Third-party modules the given step modules import, in first-seen order. Nothing is
    imported to find them: files are parsed, and only top-level names are looked up."""
    root = Path(project_root).resolve()
    found: dict[str, None] = {}
    seen: set[str] = set()
    pending = list(dict.fromkeys(step_modules))
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top in OWN_PACKAGES:
            found.update(dict.fromkeys(BACKEND_IMPORTS.get(name, ())))
            continue
        if top in sys.stdlib_module_names:
            continue
        top_origin = _origin(top)
        if top_origin is None:
            continue
        if not _is_project_module(top_origin, root):
            found[name] = None
            continue
        source = _project_file(top_origin, name)
        if source is not None:
            pending += _imports_of(source, name)
    return list(found)


def _origin(top: str) -> Path | None:
    """Where a top-level module lives; looking up a top-level name imports nothing."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    return Path(spec.origin)


def _is_project_module(origin: Path, root: Path) -> bool:
    path = origin.resolve()
    return root in path.parents and "site-packages" not in path.parts and ".venv" not in path.parts


def _project_file(top_origin: Path, name: str) -> Path | None:
    """The source file of a project module, found on disk from its top-level package."""
    parts = name.split(".")
    if len(parts) == 1:
        return top_origin
    if top_origin.name != "__init__.py":
        return None
    base = top_origin.parent.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports_of(origin: Path, module: str) -> list[str]:
    """Absolute names of every module ``module`` may import anywhere, except for type checking;
    ``from package import name`` also yields ``package.name``, kept only if it is a file."""
    if origin.suffix != ".py":
        return []
    try:
        tree = ast.parse(origin.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    package = module if origin.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if base is None:
                continue
            names.append(base)
            if base.split(".")[0] in OWN_PACKAGES:
                names += [f"{base}.{alias.name}" for alias in node.names]
            elif node.level:  # a relative import: the project's own modules
                names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def _absolute(node: ast.ImportFrom, package: str) -> str | None:
    if not node.level:
        return node.module
    parts = package.split(".") if package else []
    if node.level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (node.level - 1)]
    if node.module:
        base.append(node.module)
    return ".".join(base) or None


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node, skipping the bodies of ``if TYPE_CHECKING:`` (imports for annotations only)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def learned_modules(path: Path) -> list[str]:
    """Modules earlier runs' tasks imported beyond what was preloaded (one name a line), and the
    file rewritten without repeats so it stays as long as the set it holds."""
    try:
        names = list(dict.fromkeys(line.strip() for line in path.read_text(encoding="utf-8").splitlines()))
    except OSError:
        return []
    names = [name for name in names if name.isidentifier()]
    with contextlib.suppress(OSError):
        path.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    return names


def pipeline_module(pipeline: object) -> str | None:
    """The dotted name of the (already imported) module that defines ``pipeline``."""
    for name, module in list(sys.modules.items()):
        if any(value is pipeline for value in getattr(module, "__dict__", {}).values()):
            return name
    return None
