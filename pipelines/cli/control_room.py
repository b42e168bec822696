"""``headrace control-room``: run the control room service."""

from __future__ import annotations

import os

import typer

from pipelines.cli.common import console, guard, settings_from


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The control room: sizes auto-sized tasks and remembers every run.", no_args_is_help=True)
    app.add_typer(group, name="control-room")

    @group.command("serve")
    @guard
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 in a pod)."),
        port: int = typer.Option(8080, help="Port to listen on."),
        db: str | None = typer.Option(
            None, help="Database URL (postgresql+psycopg://...); default: SQLite in the state folder."
        ),
        catalog: str | None = typer.Option(None, help="Instance catalog YAML (default: the shipped one)."),
        rules: str | None = typer.Option(None, help="Sizing rules YAML (default: the shipped one)."),
        workers: int = typer.Option(1, min=1, help="Worker processes (PostgreSQL: one per core)."),
        notify: bool = typer.Option(True, help="Send run events to Slack/Datadog/console as configured."),
    ) -> None:
        """Serve the API (/v1, OpenAPI at /openapi.json), /metrics and the page at /."""
        import shutil

        import uvicorn

        from control_room.app import Tokens, max_body_bytes
        from control_room.catalog import load_catalog, load_rules
        from control_room.metrics import MULTIPROC_VARIABLE, multiprocess_folder
        from control_room.store import open_checked

        settings = settings_from(control_room_db=db, control_room_catalog=catalog, control_room_rules=rules)
        # Check everything once here, so a mistake is one line before any worker starts.
        load_rules(settings.control_room_rules or None, load_catalog(settings.control_room_catalog or None))
        max_body_bytes(settings.control_room_max_body_bytes)
        store = open_checked(settings.control_room_db or None, settings.state_dir)
        where = store.url
        store.close()
        # Several workers count into one folder, so /metrics adds up all of them.
        made_folder = workers > 1 and not os.environ.get(MULTIPROC_VARIABLE)
        metrics_folder = multiprocess_folder() if workers > 1 else None
        if not Tokens(settings.control_room_token.split(","), settings.control_room_token_file or None).enabled:
            console.print(
                "[yellow]warning:[/] no HEADRACE_CONTROL_ROOM_TOKEN or _TOKEN_FILE set: the API accepts anyone",
                highlight=False,
            )
        # The workers build the app from settings: pass the flags on as HEADRACE_* variables.
        for name, value in (
            ("HEADRACE_CONTROL_ROOM_DB", settings.control_room_db),
            ("HEADRACE_CONTROL_ROOM_CATALOG", settings.control_room_catalog),
            ("HEADRACE_CONTROL_ROOM_RULES", settings.control_room_rules),
            ("HEADRACE_STATE_DIR", settings.state_dir),
            ("HEADRACE_CONTROL_ROOM_NOTIFY", "1" if notify else "0"),
        ):
            if value:
                os.environ[name] = value
        console.print(f"control room on http://{host}:{port} (database {where}, {workers} worker(s))", highlight=False)
        try:
            uvicorn.run(
                "control_room.app:app_from_environment",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
                access_log=False,
            )
        finally:
            if made_folder and metrics_folder:
                shutil.rmtree(metrics_folder, ignore_errors=True)

    @group.command("watch")
    @guard
    def watch(
        namespace: str | None = typer.Option(None, help="Namespace of the workflows (default: argo_namespace)."),
        db: str | None = typer.Option(None, help="Database URL; default: SQLite in the state folder."),
        notify: bool = typer.Option(True, help="Send the events to Slack/Datadog/console as configured."),
    ) -> None:
        """Watch Argo workflows and their pods: phase changes, OOMKilled, ImagePullBackOff, evictions
        and never-started runs become run events (stored, and sent to Slack and Datadog)."""
        from control_room.store import open_checked
        from control_room.watch.kube import run_watcher
        from control_room.watch.record import recorder

        settings = settings_from(control_room_db=db)
        store = open_checked(settings.control_room_db or None, settings.state_dir)
        notifier = None
        if notify:
            from control_room.notifications.notifier import build_notifier

            notifier = build_notifier(settings, engine=store.engine, start=True)
        chosen = namespace or settings.argo_namespace
        console.print(f"watching workflows and pods in namespace {chosen} (database {store.url})", highlight=False)
        try:
            run_watcher(settings, chosen, recorder(store, notifier))
        except KeyboardInterrupt:
            pass
        finally:
            if notifier is not None:
                notifier.close()
            store.close()
