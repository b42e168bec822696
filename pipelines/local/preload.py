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
import functools
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from steps.runtime.warm import WarmServer

#: What the local side of each backend imports when a task runs it (the cloud side runs elsewhere).
BACKEND_IMPORTS: dict[str, tuple[str, ...]] = {
    # sqlglot loads each dialect on first use (0.03-0.13 s each), in every SQL task otherwise
    "steps.backends.bigquery": (
        "duckdb",
        "sqlglot",
        "sqlglot.dialects.bigquery",
        "sqlglot.dialects.duckdb",
        "pyarrow",
        "pyarrow.parquet",
    ),
    "steps.backends.athena": (
        "duckdb",
        "sqlglot",
        "sqlglot.dialects.athena",
        "sqlglot.dialects.duckdb",
        "pyarrow",
        "pyarrow.parquet",
    ),
    "steps.backends.glue": ("pyarrow", "pyarrow.parquet", "pyarrow.dataset", "pandas", "joblib"),
    "steps.runtime.values": ("pyarrow", "pyarrow.parquet"),
}

#: headrace's own packages: followed for their backends, never listed (the server has them).
OWN_PACKAGES = ("pipelines", "steps", "control_room")


def modules_to_preload(step_modules: Iterable[str], project_root: str) -> list[str]:
    """Third-party modules the given step modules import, in first-seen order. Nothing is
    imported to find them: files are parsed, and only top-level names are looked up."""
    return list(_walk(step_modules, project_root)[0])


def frameworks_named(step_modules: Iterable[str], project_root: str) -> list[tuple[str, str]]:
    """The model frameworks the project's step code names as literals, ``(framework,
    framework_version)`` pairs of a call such as ``sagemaker.train(..., framework="sklearn",
    framework_version="1.2-1")``: the environments whose interpreter the run keeps warm."""
    found: dict[tuple[str, str], None] = {}
    for tree in _walk(step_modules, project_root)[1]:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            literals = {
                k.arg: k.value.value
                for k in node.keywords
                if k.arg in ("framework", "framework_version")
                and isinstance(k.value, ast.Constant)
                and isinstance(k.value.value, str)
            }
            if len(literals) == 2:
                found[(literals["framework"], literals["framework_version"])] = None
    return list(found)


def _walk(step_modules: Iterable[str], project_root: str) -> tuple[list[str], list[ast.AST]]:
    """Follow imports from the step modules through the project's own files: the third-party
    modules met (first-seen order) and the parsed project files (both callers share one walk)."""
    return _walk_once(tuple(step_modules), project_root)


@functools.lru_cache(maxsize=4)
def _walk_once(step_modules: tuple[str, ...], project_root: str) -> tuple[list[str], list[ast.AST]]:
    root = Path(project_root).resolve()
    found: dict[str, None] = {}
    trees: list[ast.AST] = []
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
        tree = _parse(source) if source is not None else None
        if source is not None and tree is not None:
            trees.append(tree)
            pending += _imports_of(tree, source, name)
    return list(found), trees


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


def _parse(origin: Path) -> ast.AST | None:
    if origin.suffix != ".py":
        return None
    try:
        return ast.parse(origin.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _imports_of(tree: ast.AST, origin: Path, module: str) -> list[str]:
    """Absolute names of every module ``module`` may import anywhere, except for type checking;
    ``from package import name`` also yields ``package.name``, kept only if it is a file."""
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


def learned_file(cache: Path, pipeline: str, project_root: str) -> Path:
    """Where a pipeline's learned imports are kept: in the user's cache (they outlive a fresh state
    folder, as ``.pyc`` files do), one file per pipeline and project folder."""
    import hashlib

    digest = hashlib.sha256(str(Path(project_root).resolve()).encode()).hexdigest()[:12]
    return cache / "preload" / f"{pipeline}-{digest}.txt"


class Learned(NamedTuple):
    """What earlier runs' tasks imported themselves: every module once (for the fork server to
    preload between requests) and each task's own list (imported before that task is forked)."""

    modules: list[str]
    needs: dict[str, list[str]]


def read_learned(path: Path) -> Learned:
    """The learned file: ``task<TAB>module`` lines (a bare ``module`` line, as older versions
    wrote, counts for the whole run), rewritten without repeats so it stays as long as the set it
    holds."""
    try:
        lines = list(dict.fromkeys(line.strip() for line in path.read_text(encoding="utf-8").splitlines()))
    except OSError:
        return Learned([], {})
    kept: list[str] = []
    modules: dict[str, None] = {}
    needs: dict[str, list[str]] = {}
    for line in lines:
        task, _, name = line.rpartition("\t")
        if not name or not all(part.isidentifier() for part in name.split(".")):
            continue
        kept.append(line)
        modules[name] = None
        if task:
            needs.setdefault(task, []).append(name)
    with contextlib.suppress(OSError):
        path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return Learned(list(modules), needs)


def pipeline_module(pipeline: object) -> str | None:
    """The dotted name of the (already imported) module that defines ``pipeline``."""
    for name, module in list(sys.modules.items()):
        if any(value is pipeline for value in getattr(module, "__dict__", {}).values()):
            return name
    return None


def warm_servers(step_modules: Iterable[str], project_root: str, env: Mapping[str, str]) -> list[WarmServer]:
    """A warm server (:mod:`steps.runtime.warm`) for each framework environment the steps name that is
    already built (a build is the training task's, under its lock), preloading the framework."""
    from steps.backends import frameworks
    from steps.core.errors import UserError
    from steps.runtime.warm import BASE_PRELOAD, WarmServer

    pythons: dict[str, list[str]] = {}
    for name, version in frameworks_named(step_modules, project_root):
        try:
            framework = frameworks.framework_for(name, version)
        except UserError:
            continue  # the task that trains says why, in its own log
        python = frameworks.built_python(framework) if framework else None
        if framework and python:
            pythons.setdefault(python, [*BASE_PRELOAD]).append(
                frameworks.IMPORT_NAMES.get(framework.package, framework.package)
            )
    servers = []
    for python, modules in pythons.items():
        with contextlib.suppress(OSError):
            servers.append(WarmServer(python, modules, env, project_root))
    return servers
