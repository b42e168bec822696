"""``headrace new NAME``: start a pipeline package that runs as soon as it is written.

The package comes from the templates shipped in :mod:`pipelines.templates` (``*.tmpl`` files with
``$name``-style placeholders), so an installed headrace scaffolds without its source tree. A
newcomer's first command after it, ``headrace run NAME:pipeline``, must succeed: the tests run
exactly that.
"""

from __future__ import annotations

import keyword
import re
import string
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import typer

from pipelines.cli.common import console, guard
from pipelines.validation import K8S_NAME, MAX_PIPELINE_NAME
from steps.core.errors import UserError

TEMPLATE = "pipeline"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
DIR_OPTION: Any = typer.Option(Path("."), "--dir", help="Folder to create the package in.")


@dataclass(frozen=True)
class Names:
    """One NAME in the three spellings a pipeline package needs."""

    package: str  # the Python package (folder): my_flow
    pipeline: str  # the Kubernetes-valid pipeline name: my-flow
    title: str  # for people: My flow


def names_for(name: str) -> Names:
    """The package, pipeline and title for ``name``, or one line saying how to fix it."""
    if not NAME.match(name):
        raise UserError(
            f"new: name {name!r} must start with a letter and use only letters, digits, '-' and '_' (e.g. daily-churn)"
        )
    package = name.replace("-", "_").lower()
    pipeline = name.replace("_", "-").lower()
    if keyword.iskeyword(package) or package in ("pipelines", "steps", "control_room", "examples", "test", "tests"):
        raise UserError(f"new: name {name!r} would shadow a Python or headrace module; pick another name")
    if not K8S_NAME.match(pipeline) or len(pipeline) > MAX_PIPELINE_NAME:
        raise UserError(
            f"new: pipeline name {pipeline!r} must be at most {MAX_PIPELINE_NAME} characters and end with a letter or digit"
        )
    return Names(package=package, pipeline=pipeline, title=pipeline.replace("-", " ").capitalize())


def _template_files(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            found += _template_files(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".tmpl"):
            found.append((prefix + entry.name.removesuffix(".tmpl"), entry))
    return found


def scaffold(name: str, parent: Path, *, force: bool = False) -> tuple[Names, list[Path]]:
    """Write the package for ``name`` under ``parent``; returns its names and the files written.

    An existing non-empty folder is left alone unless ``force`` (then template files overwrite
    their namesakes and nothing else is touched).
    """
    names = names_for(name)
    target = parent / names.package
    if target.exists() and not target.is_dir():
        raise UserError(f"new: {target} exists and is not a folder; pick another name or --dir")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UserError(f"new: {target} already exists and is not empty; pick another name or pass --force")
    values = {"name": names.pipeline, "package": names.package, "title": names.title}
    written: list[Path] = []
    for relative, source in _template_files(resources.files("pipelines.templates") / TEMPLATE):
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(source.read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
        written.append(path)
    return names, written


def register(app: typer.Typer) -> None:
    @app.command("new")
    @guard
    def new(
        name: str = typer.Argument(..., help="The pipeline's name, e.g. daily-churn (package daily_churn)."),
        directory: Path = DIR_OPTION,
        force: bool = typer.Option(False, "--force", help="Write into an existing non-empty package folder."),
    ) -> None:
        """Start a new pipeline package from the template; it runs as it is."""
        names, written = scaffold(name, directory, force=force)
        console.print(f"[bold green]created[/] pipeline [bold]{names.pipeline}[/] in {directory / names.package}/")
        for path in written:
            console.print(f"  {path}", highlight=False)
        spec = f"{names.package}:pipeline"
        console.print("next:", highlight=False)
        console.print(f"  headrace run {spec}       # run it here", highlight=False)
        console.print(f"  headrace compile {spec}   # Argo YAML", highlight=False)
