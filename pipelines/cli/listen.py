"""``headrace listen MODULE:PIPELINE [...]``: run pipelines when their trigger messages arrive."""

from __future__ import annotations

from typing import Any

import typer

from pipelines.cli.common import err_console, fail, guard, load_pipeline, settings_from

SPECS_ARGUMENT: Any = typer.Argument(..., help="MODULE:PIPELINE of each pipeline to listen for (its triggers=[...]).")


def register(app: typer.Typer) -> None:
    @app.command("listen")
    @guard
    def listen_command(
        specs: list[str] = SPECS_ARGUMENT,
        concurrency: int = typer.Option(1, "--concurrency", "-c", help="Runs at once (the broker's prefetch too)."),
        parallel: int = typer.Option(0, "--parallel", help="Tasks at once in each run (default: the number of cores)."),
        fork_server: bool = typer.Option(
            True,
            "--fork-server/--no-fork-server",
            help="Fork task processes from a warm server (default) or start each with `python -m steps run`.",
        ),
    ) -> None:
        """Consume the pipelines' queues and run each message here, until SIGTERM or Ctrl-C.

        A message is acknowledged once its run is recorded; a redelivered one never starts a second run; a message with bad parameters, or whose run failed after the trigger's retries, goes to the dead-letter queue with the reason. Completions go to HEADRACE_EVENTS_URL, which After(...) triggers read.
        """
        from pipelines.listen import listen
        from pipelines.listen.engine import Subscription
        from pipelines.local import RunSummary, run_pipeline

        if concurrency < 1:
            fail("--concurrency: must be 1 or more")
        if parallel < 0:
            fail("--parallel: must be 1 or more")
        pipelines = [(spec, load_pipeline(spec)) for spec in specs]
        settings = settings_from()

        def run(subscription: Subscription, params: dict[str, str], run_id: str, resume: bool) -> RunSummary:
            from pipelines.cli.local import _close, _control_room, _notifier
            from pipelines.runs import RunStore

            store = RunStore.for_settings(settings)
            try:
                started_by = store.started_by(run_id)
            finally:
                store.close()
            notifier = _notifier(settings, subscription.pipeline)
            room = _control_room(settings, notifier)
            try:
                return run_pipeline(
                    subscription.pipeline,
                    spec=subscription.spec,
                    params=params,
                    settings=settings,
                    parallel=parallel or None,
                    live=False,
                    control_room=room,
                    fork_server=fork_server,
                    run_id=None if resume else run_id,
                    resume_run_id=run_id if resume else None,
                    started_by=f"started by {started_by}" if started_by else "",
                )
            finally:
                _close(room, notifier)

        def say(line: str) -> None:
            err_console.print(line, highlight=False, soft_wrap=True, markup=False)

        listen(pipelines, settings, run, concurrency=concurrency, log=say)
