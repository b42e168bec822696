"""The ``headrace`` command: one CLI for the daily work (new, run, compile, submit, deploy, ...).

Each module in this package owns a group of commands and exposes ``register(app)``; they are
found here by name, so adding a command group never touches this file. Command bodies import
their heavy dependencies (Hera, the control room) lazily to keep ``headrace --help`` quick.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from pipelines.cli.common import run_cli

__all__ = ["app", "main"]

_TERMINAL = sys.stdout.isatty()

app = typer.Typer(
    name="headrace",
    help="ML pipelines in Python: run them here, compile them to Argo, size them with the control room.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help in panels on a terminal; piped or in a log, plain text with nothing cut: no box drawing,
    # one line per paragraph (click would wrap at 80 columns and cut each command's summary with
    # "..."). The command groups below inherit both.
    rich_markup_mode="rich" if _TERMINAL else None,
    context_settings={} if _TERMINAL else {"terminal_width": 10_000, "max_content_width": 10_000},
)


def _version(value: bool) -> None:
    if value:
        from pipelines import __version__

        typer.echo(f"headrace {__version__}")
        raise typer.Exit()


#: Commands with a notifier of their own, which sends what earlier processes left queued.
_OWN_NOTIFIER = frozenset({"run", "resume", "control-room"})


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """headrace: pipelines for ML teams on Kubernetes, and on one laptop."""
    if ctx.invoked_subcommand not in _OWN_NOTIFIER:
        from control_room.notifications.notifier import send_queued

        send_queued()  # Slack messages earlier runs could not deliver


def _register_all() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_") or module.name == "common":
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        register = getattr(loaded, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    """Console-script entry point: runs the app with headrace's one-line error handling."""
    from pipelines.cli import common

    common.leave_at_once = True
    run_cli(app)
