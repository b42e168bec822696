"""The in-pod entrypoint: ``python -m steps run MODULE:PIPELINE TASK --run-id ...``.

Argo pods and the local runner's subprocesses both start tasks through here, so a task behaves
the same everywhere. Kept on argparse (not typer) and free of heavy imports: start-up time is
per-task overhead.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from steps.contract import SizingDecision
from steps.errors import EXIT_STEP_FAILED, HeadraceError
from steps.settings import load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m steps", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one task attempt")
    run.add_argument("spec", help="MODULE:PIPELINE")
    run.add_argument("task")
    run.add_argument("--run-id", required=True)
    run.add_argument("--attempt", type=int, default=1)
    run.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE")
    run.add_argument("--input", action="append", default=[], help="TASK.OUTPUT=<reference JSON>")
    run.add_argument("--sizing", default="", help="the control room's decision (JSON), if sized")
    run.add_argument("--outputs-dir", default="", help="write Argo output parameter files here")
    run.add_argument("--progress-file", default="", help="append progress lines (JSON) here")
    return parser


def _progress_writer(path: str):  # type: ignore[no-untyped-def]
    def write(done: float, total: float, message: str) -> None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"done": done, "total": total, "message": message}) + "\n")

    return write


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    outputs_dir = Path(args.outputs_dir) if args.outputs_dir else None
    try:
        from steps.entrypoint import parse_inputs, parse_params, run_task, write_output_files
        from steps.loader import load_object

        settings = load_settings()
        pipeline = load_object(args.spec)
        sizing = SizingDecision.from_dict(json.loads(args.sizing)) if args.sizing else None
        progress = _progress_writer(args.progress_file) if args.progress_file else None
        result = run_task(
            pipeline,
            args.task,
            run_id=args.run_id,
            settings=settings,
            attempt=args.attempt,
            params=parse_params(args.param),
            inputs=parse_inputs(args.input),
            sizing=sizing,
            **({"progress": progress} if progress else {}),
        )
        if outputs_dir is not None:
            write_output_files(outputs_dir, result)
        return 0
    except HeadraceError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        _write_failure(outputs_dir, str(error))
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the step's own code failed: its traceback belongs in the log
        traceback.print_exc()
        _write_failure(outputs_dir, f"{type(error).__name__}: {error}")
        return EXIT_STEP_FAILED


def _write_failure(outputs_dir: Path | None, message: str) -> None:
    if outputs_dir is None:
        return
    try:
        outputs_dir.mkdir(parents=True, exist_ok=True)
        (outputs_dir / "_failure").write_text(message)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
