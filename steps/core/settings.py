"""Settings: flags first, then ``HEADRACE_*`` environment variables, then ``headrace.toml``.

One ``profile`` picks the side of every backend: ``local`` (the embedded default: DuckDB, local
files, local processes, SQLite, console notifier) or ``aws`` (S3, SageMaker, Glue, Athena,
BigQuery, Slack, Datadog). Secrets (tokens) are read here and never printed: ``__repr__`` masks them.

This module is the only reader of headrace's environment (``HEADRACE_*``, and the ``ARGO_*``
variables the argo CLI reads, under the ``HEADRACE_ARGO_*`` ones). Each field is typed and parsed
once, here: a bad value is one line naming the variable. A stdlib dataclass, not a pydantic model:
every task process loads settings, and importing pydantic costs a task start more than the whole
entrypoint.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from steps.core.errors import ConfigError

PROFILES = ("local", "aws")
SECRET_FIELDS = frozenset({"control_room_token", "slack_token", "slack_webhook_url", "argo_token", "broker_password"})


@dataclass(frozen=True)
class Settings:
    """Every setting headrace reads; each field maps to ``HEADRACE_<FIELD>`` and a toml key."""

    profile: str = "local"
    #: Local state: run records, logs, the embedded control room's SQLite file.
    state_dir: str = ".headrace"
    #: Where task outputs go: a folder (file://) locally, ``s3://bucket/prefix`` on aws.
    artifact_root: str = ""
    #: Folder of local tables (Parquet/CSV) that local BigQuery/Athena SQL reads by name
    #: (``load_settings`` fills in ``<state_dir>/tables`` on the local profile).
    local_tables: str = ""
    #: Local batch scoring (steps.backends.glue on the local profile): ``arrow`` (a worker pool over Arrow
    #: batches) or ``spark`` (the generated Glue script on local Spark, the ``[spark]`` extra).
    glue_engine: str = "arrow"
    #: Workers of the local Arrow engine: ``thread`` (vectorized scorers) or ``process`` (GIL-bound ones).
    batch_pool: str = "thread"
    control_room_url: str = ""
    control_room_token: str = ""
    #: File holding the control room's token (a mounted Kubernetes Secret); read when the token is unset.
    control_room_token_file: str = ""
    #: The control room service's database URL (default: SQLite in state_dir).
    control_room_db: str = ""
    #: Instance catalog and sizing rules YAML overriding the ones shipped with headrace.
    control_room_catalog: str = ""
    control_room_rules: str = ""
    #: Largest request body the control room service reads, in bytes.
    control_room_max_body_bytes: int = 1024 * 1024
    #: ``false``: the control room service sends no notifications (a replica that only serves).
    control_room_notify: bool = True
    aws_region: str = "us-east-1"
    #: Endpoint override for every AWS client (a moto server in tests, a VPC endpoint in prod).
    aws_endpoint_url: str = ""
    sagemaker_role_arn: str = ""
    glue_role_arn: str = ""
    athena_workgroup: str = "primary"
    athena_output: str = ""
    bigquery_project: str = ""
    bigquery_location: str = "US"
    #: Endpoint override for the BigQuery REST API (a local test server); empty means Google itself.
    bigquery_endpoint: str = ""
    slack_token: str = ""
    slack_webhook_url: str = ""
    slack_channel: str = ""
    #: Per-pipeline channels over ``slack_channel``: ``"recipes=#ml-recipes, churn=#ml-churn"``.
    slack_channels: str = ""
    #: ``true``: post only failures (a pipeline's ``Notify(failures_only=...)`` wins when it says so).
    slack_failures_only: bool = False
    #: Who is mentioned when a run fails: ``"<!here>, <@U0123>"`` (Slack mention syntax).
    slack_mentions: str = ""
    #: Slack Web API base URL override (a local test server or a proxy); empty means slack.com.
    slack_api_url: str = ""
    #: Seconds a finished run waits for its queued Slack messages; the rest is sent by the next
    #: headrace process that reaches Slack.
    slack_drain_seconds: float = 10.0
    #: Seconds slack-sdk waits for an answer before the outbox treats a post as "maybe sent".
    slack_timeout_seconds: float = 10.0
    #: Send Datadog metrics (``true``/``false``); unset: when ``DD_AGENT_HOST`` is set or on aws.
    datadog: bool | None = None
    #: The watcher reports a workflow still Pending after this many seconds as never started.
    watch_pending_seconds: float = 600.0
    #: Where framework environments (a model's scikit-learn version) are built and cached.
    framework_cache: str = ""
    #: What only makes runs faster and outlives a state folder, as ``.pyc`` files do: the modules
    #: earlier runs' tasks imported (``preload/``). Deleting it costs speed, never a result.
    #: Empty: ``~/.cache/headrace``.
    cache_dir: str = ""
    #: The Argo Server (``ARGO_SERVER`` too; ``host:port`` gets https unless ``ARGO_SECURE=false``).
    argo_server: str = ""
    argo_token: str = ""
    argo_namespace: str = "argo"
    #: ``argo`` (the Argo Server), ``k8s`` (the Kubernetes API) or ``auto`` (the server when set).
    argo_transport: str = "auto"
    argo_secure: bool = True
    argo_insecure_skip_verify: bool = False
    argo_ui_url: str = ""
    #: The profile compiled Argo pods run with (``HEADRACE_PROFILE`` in their environment).
    argo_profile: str = "aws"
    image: str = ""
    #: AMQP broker where finished runs publish their completion (what ``After(...)`` triggers read);
    #: empty: runs publish nothing. ``amqp://host:5672/vhost``, credentials in the two below.
    events_url: str = ""
    broker_username: str = ""
    broker_password: str = ""

    def __post_init__(self) -> None:
        """Every field holds its declared type, however the object was made (flags, a test's
        ``Settings(slack_drain_seconds="0")``, ``replace``): parsed here, never by a consumer."""
        for item in fields(self):
            value = getattr(self, item.name)
            parsed = _parse(item.name, value, str(item.type))
            if parsed is not value:
                object.__setattr__(self, item.name, parsed)

    def environment(self) -> dict[str, str]:
        """Every setting as the ``HEADRACE_*`` variable that gives it back (for a child process)."""
        return {f"HEADRACE_{item.name.upper()}": _text(getattr(self, item.name)) for item in fields(self)}

    def __repr__(self) -> str:
        shown = {
            f.name: ("***" if f.name in SECRET_FIELDS and getattr(self, f.name) else getattr(self, f.name))
            for f in fields(self)
        }
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else Path.home() / ".cache" / "headrace"

    @property
    def resolved_artifact_root(self) -> str:
        """The artifact root with the profile's default filled in."""
        if self.artifact_root:
            return self.artifact_root
        if self.profile == "aws":
            raise ConfigError(
                "artifact_root: the aws profile needs an s3:// root; "
                "set HEADRACE_ARTIFACT_ROOT=s3://bucket/prefix or artifact_root in headrace.toml"
            )
        return str((self.state_path / "artifacts").resolve())

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse(name: str, value: Any, kind: str) -> Any:
    """``value`` as the field's type (``str``, ``float``, ``int``, ``bool``, ``bool | None``)."""
    variable = f"HEADRACE_{name.upper()}"
    if kind == "str":
        return value if isinstance(value, str) else str(value)
    if kind in ("bool", "bool | None"):
        if isinstance(value, bool) or (value is None and kind == "bool | None"):
            return value
        text = str(value).strip().lower()
        if text == "" and kind == "bool | None":
            return None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{name}: {value!r} is not true or false; set {variable}=true or false")
    if kind in ("float", "int"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            number: float = value
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                raise ConfigError(f"{name}: {value!r} is not a number; set {variable} to one, e.g. 10") from None
        if number < 0 or (kind == "int" and number != int(number)):
            whole = "a whole number" if kind == "int" else "a number"
            raise ConfigError(f"{name}: {value!r} must be {whole} >= 0; fix {variable}")
        return int(number) if kind == "int" else float(number)
    raise TypeError(f"setting {name}: no parser for {kind}")  # pragma: no cover - a new field's type


def _text(value: Any) -> str:
    """A parsed value back as environment text :func:`_parse` reads: ``true``, ``''`` for None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


#: ``ARGO_*`` variables the argo CLI reads, taken under their ``HEADRACE_ARGO_*`` names.
ARGO_VARIABLES = ("argo_server", "argo_token", "argo_namespace", "argo_secure", "argo_insecure_skip_verify")


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}); fix the file or remove it") from error
    section = data.get("headrace", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [headrace] must be a table of settings")
    profile_tables = section.get("profiles", {})
    flat = {k: v for k, v in section.items() if k != "profiles"}
    return {"__profiles__": profile_tables, **flat}


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve settings: ``overrides`` (flags) > ``HEADRACE_*`` variables > ``headrace.toml``.

    ``headrace.toml`` may hold ``[headrace]`` keys and per-profile tables under
    ``[headrace.profiles.<name>]``, applied over the plain keys when that profile is chosen.
    """
    env = os.environ if environ is None else environ
    path = config_file or Path(env.get("HEADRACE_CONFIG", "headrace.toml"))
    from_file = _read_toml(path)
    profile_tables: dict[str, Any] = from_file.pop("__profiles__", {})
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(from_file) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}; known settings: {', '.join(sorted(known))}")

    values: dict[str, Any] = dict(from_file)
    for name in known:
        env_value = env.get(f"HEADRACE_{name.upper()}")
        if env_value is None and name in ARGO_VARIABLES:
            env_value = env.get(name.upper()) or None
        if env_value is not None:
            values[name] = env_value
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value

    profile = str(values.get("profile", "local"))
    if profile not in PROFILES:
        raise ConfigError(f"profile: {profile!r} is not a profile; use one of {', '.join(PROFILES)} (HEADRACE_PROFILE)")
    for name, value in profile_tables.get(profile, {}).items():
        if name not in known:
            raise ConfigError(f"{path}: [headrace.profiles.{profile}] has unknown setting {name!r}")
        from_env = f"HEADRACE_{name.upper()}" in env or (name in ARGO_VARIABLES and bool(env.get(name.upper())))
        if not from_env and (overrides or {}).get(name) is None:
            values[name] = value
    if profile == "local" and not values.get("local_tables"):
        # The embedded default's warehouse sits next to the rest of the local state, so local SQL
        # and the data that feeds it (examples' generators, a user's extracts) meet with no setup.
        values["local_tables"] = str(Path(str(values.get("state_dir") or Settings.state_dir)) / "tables")
    return Settings(**values)
