"""What every command shares: loading a pipeline, ``-p`` parameters, one-line errors, settings."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console

from pipelines.graph import Pipeline
from steps.entrypoint import parse_params
from steps.errors import EXIT_USAGE, HeadraceError, UserError
from steps.loader import load_object
from steps.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one clear line on stderr and exit; never a traceback for a user's mistake."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_pipeline(spec: str, *, check: bool = True) -> Pipeline:
    """The pipeline named by ``MODULE:PIPELINE``, validated unless ``check`` is false."""
    obj = load_object(spec)
    if not isinstance(obj, Pipeline):
        raise UserError(f"{spec}: is a {type(obj).__name__}, not a headrace Pipeline")
    if check:
        obj.check()
    return obj


def params_from(values: Sequence[str] | None) -> dict[str, str]:
    return parse_params(list(values or []))


def settings_from(**flags: Any) -> Settings:
    """Settings with the command's flags applied over ``HEADRACE_*`` and ``headrace.toml``."""
    return load_settings({k: v for k, v in flags.items() if v is not None})


def run_cli(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run ``app``, turning every :class:`HeadraceError` into its one line and exit code."""
    try:
        app(args=argv, standalone_mode=True)
    except HeadraceError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)


def guard(fn: Any) -> Any:
    """Decorate a command so a :class:`HeadraceError` becomes its one line and exit code, also
    under typer's test runner (which bypasses :func:`run_cli`)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HeadraceError as error:
            fail(str(error), error.exit_code)

    return wrapper
