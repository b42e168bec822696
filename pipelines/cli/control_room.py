"""``headrace control-room``: run the control room service."""

from __future__ import annotations

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
        notify: bool = typer.Option(True, help="Send run events to Slack/Datadog/console as configured."),
    ) -> None:
        """Serve the API (/v1, OpenAPI at /docs), /metrics and the page at /."""
        import uvicorn

        from control_room.app import Tokens, create_app
        from control_room.catalog import load_catalog, load_rules
        from control_room.sizing import Policy
        from control_room.store import Store

        settings = settings_from(control_room_db=db, control_room_catalog=catalog, control_room_rules=rules)
        loaded_catalog = load_catalog(settings.control_room_catalog or None)
        policy = Policy(loaded_catalog, load_rules(settings.control_room_rules or None, loaded_catalog))
        store = Store.open(settings.control_room_db or None, settings.state_dir)
        tokens = Tokens(settings.control_room_token.split(","), settings.control_room_token_file or None)
        notifier = None
        if notify:
            from control_room.notify import build_notifier

            notifier = build_notifier(settings, engine=store.engine, start=True)
        if not tokens.enabled:
            console.print(
                "[yellow]warning:[/] no HEADRACE_CONTROL_ROOM_TOKEN or _TOKEN_FILE set: the API accepts anyone",
                highlight=False,
            )
        console.print(f"control room on http://{host}:{port} (database {store.url})", highlight=False)
        try:
            uvicorn.run(
                create_app(store, policy, tokens=tokens, notifier=notifier),
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
            )
        finally:
            close = getattr(notifier, "close", None)
            if callable(close):
                close()
            store.close()

    @group.command("watch")
    @guard
    def watch(
        namespace: str | None = typer.Option(None, help="Namespace of the workflows (default: argo_namespace)."),
        db: str | None = typer.Option(None, help="Database URL; default: SQLite in the state folder."),
        notify: bool = typer.Option(True, help="Send the events to Slack/Datadog/console as configured."),
    ) -> None:
        """Watch Argo workflows and their pods: phase changes, OOMKilled, ImagePullBackOff, evictions
        and never-started runs become run events (stored, and sent to Slack and Datadog)."""
        from control_room.store import Store
        from control_room.watch import recorder, run_watcher

        settings = settings_from(control_room_db=db)
        store = Store.open(settings.control_room_db or None, settings.state_dir)
        notifier = None
        if notify:
            from control_room.notify import build_notifier

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
