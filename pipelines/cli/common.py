"""What every command shares: loading a pipeline, ``-p`` parameters, one-line errors, settings."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from pipelines.graph import Pipeline
from steps.core.errors import EXIT_USAGE, HeadraceError, UserError
from steps.core.settings import Settings, load_settings
from steps.runtime.loader import load_object
from steps.runtime.task import parse_params

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one clear line on stderr and exit; never a traceback for a user's mistake."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_pipeline(spec: str, *, check: bool = True) -> Pipeline:
    """The pipeline named by ``MODULE:PIPELINE``, validated unless ``check`` is false.

    The user's module failing to import (a syntax error, a missing import, an exception at its
    top level) is one line naming the file and line, not a traceback through the CLI.
    """
    try:
        obj = load_object(spec)
    except HeadraceError:
        raise
    except SyntaxError as error:
        raise UserError(
            f"{spec}: syntax error at {error.filename}:{error.lineno}: {error.msg}; fix the module"
        ) from None
    except ModuleNotFoundError as error:
        raise UserError(
            f"{spec}: the module imports {error.name!r}, which is not installed ({_where(error)}); "
            "install it or fix the import"
        ) from None
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(
            f"{spec}: importing the module raised {type(error).__name__}"
            f"{': ' + first if first else ''} ({_where(error)}); fix the module"
        ) from None
    if not isinstance(obj, Pipeline):
        raise UserError(f"{spec}: is a {type(obj).__name__}, not a headrace Pipeline")
    if check:
        obj.check()
    return obj


def _where(error: BaseException) -> str:
    """``file:line`` of the innermost frame of ``error`` in the user's own code: not Python's
    (import machinery, standard library), not an installed package's, not headrace's loader."""
    import sysconfig
    import traceback

    libraries = tuple({sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")})
    loader = str(Path(__file__).resolve().parents[2] / "steps")
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(("<", *libraries, loader))
    ]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "while importing"


def writable_folder(path: str | Path, what: str, fix: str) -> Path:
    """``path`` as a folder this process can write (made when missing), or a :class:`UserError`
    naming it, why, and ``fix``; checked before anything runs, rather than failing each task."""
    folder = Path(path).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".headrace-write-check-"):
            pass
    except OSError as error:
        raise UserError(f"{what} {folder}: cannot write there ({error.strerror or error}); {fix}") from None
    return folder


def params_from(values: Sequence[str] | None) -> dict[str, str]:
    return parse_params(list(values or []))


def settings_from(**flags: Any) -> Settings:
    """Settings with the command's flags applied over ``HEADRACE_*`` and ``headrace.toml``."""
    return load_settings({k: v for k, v in flags.items() if v is not None})


def run_cli(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run ``app``, turning every :class:`HeadraceError` and every command-line mistake (a missing
    argument, an unknown option or command) into its one line and exit code, on a terminal or not.

    Click's own rendering of a usage error is four lines (usage, hint, a box around the message),
    which a log collector splits and ``grep`` cannot match; the message, the command and where to
    look are all that is needed.
    """
    # typer (>= 0.29) carries its own copy of click; its exceptions live here.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        outcome = app(args=argv, prog_name="headrace", standalone_mode=False)
    except NoArgsIsHelpError as error:  # `headrace` or a group alone: its help (printed when built)
        if error.format_message().strip():
            typer.echo(error.format_message())
        sys.exit(EXIT_USAGE)
    except UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "headrace"
        message = error.format_message().strip().rstrip(".")
        _one_line(f"{command}: {message[:1].lower() + message[1:]} (see `{command} --help`)")
        sys.exit(error.exit_code)
    except ClickException as error:
        _one_line(error.format_message())
        sys.exit(error.exit_code)
    except typer.Abort:
        _one_line("aborted")
        sys.exit(1)
    except HeadraceError as error:
        _one_line(str(error))
        sys.exit(error.exit_code)
    sys.exit(outcome if isinstance(outcome, int) else 0)  # a typer.Exit's code, else success


#: Set by the console script's entry point (never under a test's in-process runner): a command
#: that closed all it opened may then end the process at once (:func:`finish`).
leave_at_once = False


def finish(code: int) -> NoReturn:
    """End a command that closed everything it opened (its stores, servers, notifier) with
    ``code``. From the console script, after the at-exit handlers and a flush, through ``os._exit``:
    tearing down the libraries a run loaded (NumPy, SQLAlchemy, pandas' tables) took about 0.1 s
    of every ``headrace run``, after the summary was already printed. Under a test's runner, or
    with a non-daemon thread still going (it must be waited for), the ordinary way."""
    import threading

    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if not leave_at_once or others:
        raise typer.Exit(code)
    import atexit
    import contextlib
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say to it
            stream.flush()
    os._exit(code)


def _one_line(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


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
