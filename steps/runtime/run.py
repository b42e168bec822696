"""``python -m steps run MODULE:PIPELINE TASK --run-id ...``: run one task attempt.

Errors headrace raises on purpose print as one line and exit with their code (2: bad input, never
retried); an exception from the step's own code prints its traceback (the user needs it) and
exits 1 so Argo's retryStrategy may try again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steps.core.errors import EXIT_STEP_FAILED, HeadraceError
from steps.runtime.procs import MARKER, kill_descendants, own_descendants, set_parent_death_signal


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="MODULE:PIPELINE")
    parser.add_argument("task")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--attempt", type=int, default=1)
    parser.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--input", action="append", default=[], help="TASK.OUTPUT=<reference JSON>")
    parser.add_argument("--sizing", default="", help="the control room's decision (JSON), if sized")
    parser.add_argument("--outputs-dir", default="", help="write Argo output parameter files here")
    parser.add_argument("--progress-file", default="", help="append progress lines (JSON) here")
    parser.add_argument(
        "--report",
        action="store_true",
        help="report this attempt (events, observation) to the control room at HEADRACE_CONTROL_ROOM_URL",
    )


def _progress_writer(path: str) -> Callable[[float, float, str], None]:
    def write(done: float, total: float, message: str) -> None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"done": done, "total": total, "message": message}) + "\n")

    return write


#: Set by the local runner (pipelines.local.attempt) for a subprocess attempt, read once and removed
#: so the step's own child processes do not inherit them: the address-space limit in bytes, and
#: the runner's pid (the task dies with its runner, like a pod with its workflow).
LOCAL_ADDRESS_SPACE = "HEADRACE_LOCAL_ADDRESS_SPACE"
LOCAL_RUNNER_PID = "HEADRACE_LOCAL_RUNNER_PID"


def apply_local_limits() -> None:
    """Apply the local runner's limits here rather than in a ``preexec_fn``: a pre-exec hook
    makes Python fork the (large) runner instead of vfork-ing it, ~10 ms more per task."""
    limit = os.environ.pop(LOCAL_ADDRESS_SPACE, "")
    runner = os.environ.pop(LOCAL_RUNNER_PID, "")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    if os.environ.get(MARKER):  # a local task: it owns (and ends) everything it starts
        own_descendants()
    if runner and sys.platform.startswith("linux"):
        import signal

        set_parent_death_signal(signal.SIGTERM)  # die with the runner, taking the task's tree along
        if os.getppid() != int(runner):  # the runner died before prctl took effect
            os._exit(137)


def log_to_stderr() -> None:
    """Send the step's ``ctx.log`` lines (``headrace.*`` loggers, INFO and up) to stderr, which is
    the task's log: the pod's container log, the local attempt's log file. Without a handler,
    Python drops INFO lines, and with them a training job's streamed output
    (``validation:accuracy=...``) and a step's own ``ctx.log.info``."""
    import logging

    logger = logging.getLogger("headrace")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(args: argparse.Namespace) -> int:
    apply_local_limits()
    log_to_stderr()
    try:
        return _main(args)
    finally:
        if os.environ.get(MARKER):  # the step is over: so is everything it started
            kill_descendants()


def _main(args: argparse.Namespace) -> int:
    outputs_dir = Path(args.outputs_dir) if args.outputs_dir else None
    reporter = None
    try:
        from steps.core.contract import Outcome, SizingDecision
        from steps.core.settings import load_settings
        from steps.runtime.loader import load_object
        from steps.runtime.task import parse_inputs, parse_params, run_task, write_output_files

        settings = load_settings()
        pipeline = load_object(args.spec)
        sizing = SizingDecision.from_dict(json.loads(args.sizing)) if args.sizing else None
        inputs = parse_inputs(args.input)
        if args.report:
            reporter = _reporter(settings, pipeline, args, sizing, inputs)
        result = run_task(
            pipeline,
            args.task,
            run_id=args.run_id,
            settings=settings,
            attempt=args.attempt,
            params=parse_params(args.param),
            inputs=inputs,
            sizing=sizing,
            **({"progress": _progress_writer(args.progress_file)} if args.progress_file else {}),
        )
        if outputs_dir is not None:
            write_output_files(outputs_dir, result)
        if reporter is not None:
            reporter.finished(Outcome.SUCCEEDED, outputs=result.outputs, peak_memory_bytes=result.peak_memory_bytes)
        return 0
    except HeadraceError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        _write_failure(outputs_dir, str(error))
        if reporter is not None:
            reporter.finished(Outcome.FAILED, reason=str(error))
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the step's own code failed: its traceback belongs in the log
        import traceback  # only on failure: ~5 ms of start-up saved on every task

        traceback.print_exc()
        _write_failure(outputs_dir, f"{type(error).__name__}: {error}")
        if reporter is not None:
            reporter.finished(Outcome.FAILED, reason=f"{type(error).__name__}: {error}")
        return EXIT_STEP_FAILED


def _reporter(settings: Any, pipeline: Any, args: argparse.Namespace, sizing: Any, inputs: Any) -> Any:
    """The attempt's reporter when a control room is configured (see :mod:`steps.runtime.reporting`)."""
    from steps.runtime.reporting import AttemptReporter, pod_control_room

    room = pod_control_room(settings)
    if room is None:
        return None
    task = pipeline.task(args.task)
    reporter = AttemptReporter(
        room,
        pipeline=pipeline.name,
        task=args.task,
        run_id=args.run_id,
        attempt=args.attempt,
        target=task.target,
        declared=task.resources.to_dict(),
        sizing=sizing,
        inputs=inputs,
    )
    reporter.started()
    return reporter


def _write_failure(outputs_dir: Path | None, message: str) -> None:
    if outputs_dir is None:
        return
    try:
        outputs_dir.mkdir(parents=True, exist_ok=True)
        (outputs_dir / "_failure").write_text(message)
    except OSError:
        pass
