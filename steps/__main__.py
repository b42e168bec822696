"""The in-pod entrypoint: ``python -m steps <command> ...``.

Argo pods and the local runner's subprocesses both start tasks through here, so a task behaves the
same everywhere. Commands:

- ``run``: run one task attempt (:mod:`steps.runtime.run`);
- ``size``: the sizing node before a ``sizing="auto"`` task in Argo (:mod:`steps.runtime.sizing_node`);
- ``exit-handler``: the workflow's onExit reporter (:mod:`steps.runtime.exit_handler`).

Each command module exposes ``configure(parser)`` and ``main(args) -> int`` and is imported only
when chosen. Kept on argparse (not typer) and free of heavy imports: start-up time is per-task
overhead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "run": ("steps.runtime.run", "run one task attempt"),
    "size": ("steps.runtime.sizing_node", "ask the control room how big the next task should be (Argo sizing node)"),
    "exit-handler": ("steps.runtime.exit_handler", "report a workflow's final status (Argo onExit)"),
}


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m steps", description="headrace's in-pod entrypoint")
    commands = parser.add_subparsers(dest="command", required=True)
    chosen = args_list[0] if args_list and args_list[0] in COMMANDS else None
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module_name).configure(sub)
    args = parser.parse_args(args_list)
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(args))


if __name__ == "__main__":
    sys.exit(main())
