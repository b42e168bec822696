"""SageMaker training: one entry script, trained on SageMaker or in a local process, same contract.

:func:`train` hands training off so the step pod stays small: it packages ``source_dir``, starts a
training job and waits. The result is the model artifact ``model.tar.gz`` (format ``model``),
which :func:`steps.backends.model_io.load_model` and :func:`steps.backends.glue.batch_infer` read on either side.

**boto3, not the sagemaker SDK.** The SDK (3.x, the ``[aws]`` extra) pulls a large dependency
tree into every step image and its estimator API has changed shape across major versions;
``CreateTrainingJob``/``DescribeTrainingJob`` have been stable for years and boto3 is already a
core dependency. What the SDK adds for framework estimators is reproduced here in a few lines:
the framework image URI (the SDK's own tables, :mod:`steps.backends.sagemaker_images`), ``sourcedir.tar.gz`` and the JSON-encoded
hyperparameters with ``sagemaker_program``/``sagemaker_submit_directory``.

**aws profile.** The job name is derived from pipeline, task, run id and attempt, so a retried
pod finds its job and attaches instead of starting a second one. Status transitions and the
job's CloudWatch log lines (``/aws/sagemaker/TrainingJobs``) stream into the step log while
``DescribeTrainingJob`` is polled with backoff; :data:`SAGEMAKER_STATES` maps every state to ours.
A failed job raises :class:`HandoffFailed` carrying SageMaker's ``FailureReason``.

**local profile.** The same entry script runs in a subprocess given what the sagemaker-training
toolkit gives it in the container (:mod:`steps.backends.sagemaker_local`), under the Python that has the
framework version's library (:mod:`steps.backends.frameworks`); a non-zero exit raises
:class:`HandoffFailed` with the script's ``/opt/ml/output/failure`` text and the log tail. Both
sides record the model's framework beside ``model.tar.gz`` for the scorers.

**source_dir** may be absolute; a relative one is looked up in the working folder (the project
root, where ``headrace``/the entrypoint runs and where the pipeline module is found), then next to
the file of the module that defines the pipeline.

Hyperparameters, data URIs, the SHA-256 of ``source_dir``, framework and instance are kept with
the run (``ctx.record``): the experiment's conditions.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from steps.backends.handoff import Phase, phase_of, poll, terminate_as_interrupt
from steps.backends.model_io import pack_dir, tree_sha256
from steps.core.contract import ArtifactRef
from steps.core.errors import ConfigError, HandoffFailed, NotFoundError, UserError
from steps.core.quantities import parse_duration
from steps.runtime.context import StepContext

#: Every TrainingJobStatus (API reference, DescribeTrainingJob) mapped to ours.
SAGEMAKER_STATES: dict[str, Phase] = {
    "InProgress": Phase.RUNNING,
    "Stopping": Phase.RUNNING,
    "Completed": Phase.SUCCEEDED,
    "Failed": Phase.FAILED,
    "Stopped": Phase.CANCELLED,
    "Deleting": Phase.CANCELLED,
}
#: SecondaryStatus values that mean the job was stopped for running too long (ours: TIMEOUT).
TIMEOUT_SECONDARY = frozenset({"MaxRuntimeExceeded", "MaxWaitTimeExceeded"})

#: Default framework container versions (images per region: :mod:`steps.backends.sagemaker_images`).
FRAMEWORKS: dict[str, str] = {"sklearn": "1.2-1", "xgboost": "1.7-1", "pytorch": "2.3.0"}
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
GPU_FAMILIES = ("ml.p", "ml.g", "ml.trn", "ml.inf")


def train(
    ctx: StepContext,
    entry_point: str,
    source_dir: str,
    data: Any,
    framework: str = "sklearn",
    framework_version: str | None = None,
    instance_type: str = "ml.m5.large",
    instance_count: int = 1,
    hyperparameters: dict[str, Any] | None = None,
    spot: bool = False,
    max_runtime: str | int = "1h",
) -> ArtifactRef:
    """Train ``entry_point`` from ``source_dir`` on ``data``; returns the ``model.tar.gz`` artifact.

    ``data`` is an upstream output (or reference), or a dict of channel name → output; a single
    input is channel ``train``. See the module docstring for what happens on each side.
    """
    where = f"pipeline {ctx.pipeline}, task {ctx.task}"
    source = resolve_source_dir(ctx, source_dir)
    if not (source / entry_point).is_file():
        raise NotFoundError(
            f"{where}: entry_point {entry_point!r} is not in {source}; check entry_point and source_dir"
        )
    channels = channel_refs(data, where)
    hps = dict(hyperparameters or {})
    chosen_type = ctx.instance_type(instance_type) or instance_type
    count = ctx.instance_count(instance_count)
    runtime = int(parse_duration(max_runtime))
    name = training_job_name(ctx.pipeline, ctx.task, ctx.run_id, ctx.attempt)
    ctx.record(
        training_job=name,
        framework=framework,
        framework_version=framework_version or default_version(framework),
        instance_type=chosen_type,
        instance_count=count,
        spot=spot,
        hyperparameters=hps,
        data={channel: ref.uri for channel, ref in channels.items()},
        code_sha256=tree_sha256(source),
        entry_point=entry_point,
    )
    if ctx.is_local:
        return _train_local(
            ctx, name, entry_point, source, channels, hps, framework, framework_version, chosen_type, runtime
        )
    return _train_cloud(
        ctx, name, entry_point, source, channels, hps, framework, framework_version, chosen_type, count, spot, runtime
    )


train.__headrace_target__ = "sagemaker"  # type: ignore[attr-defined]


def default_version(framework: str) -> str:
    """The framework container version used when none is given (empty for a custom image)."""
    return FRAMEWORKS.get(framework, "")


def resolve_source_dir(ctx: StepContext, source_dir: str) -> Path:
    """``source_dir`` as a folder: absolute, else under the working folder, else next to the
    pipeline's module file."""
    path = Path(source_dir).expanduser()
    candidates = [path] if path.is_absolute() else [ctx.work_dir / path, *(d / path for d in _pipeline_dirs(ctx))]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise NotFoundError(
        f"pipeline {ctx.pipeline}, task {ctx.task}: source_dir {source_dir!r} is not a folder (tried {tried}); "
        "give a path relative to the project folder or to the pipeline's module"
    )


def _pipeline_dirs(ctx: StepContext) -> list[Path]:
    """Folders of loaded modules (outside the Python installation) that hold this pipeline."""
    prefixes = tuple({sys.prefix, sys.base_prefix})
    folders: list[Path] = []
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file or file.startswith(prefixes):
            continue
        for value in list(vars(module).values()):
            if type(value).__name__ == "Pipeline" and getattr(value, "name", None) == ctx.pipeline:
                folder = Path(file).resolve().parent
                if folder not in folders:
                    folders.append(folder)
                break
    return folders


def channel_refs(data: Any, where: str) -> dict[str, ArtifactRef]:
    """Channel name → artifact: a dict as given, a single input as channel ``train``."""
    items = data.items() if isinstance(data, Mapping) else [("train", data)]
    channels: dict[str, ArtifactRef] = {}
    for name, value in items:
        if not re.fullmatch(r"[A-Za-z0-9\.\-_]{1,64}", str(name)):
            raise UserError(f"{where}: data channel {name!r}: use letters, digits, '.', '-' or '_' (at most 64)")
        if isinstance(value, ArtifactRef):
            channels[str(name)] = value
        elif isinstance(getattr(value, "ref", None), ArtifactRef):
            channels[str(name)] = value.ref
        elif isinstance(value, str | Path) and "://" in str(value):
            channels[str(name)] = ArtifactRef(str(value), 0)
        elif isinstance(value, str | Path):
            path = Path(value).resolve()
            if not path.exists():
                raise NotFoundError(f"{where}: data channel {name!r}: {value} does not exist")
            channels[str(name)] = ArtifactRef(path.as_uri(), 0)
        else:
            raise UserError(f"{where}: data channel {name!r} must be an upstream output, a reference or a path")
    if not channels:
        raise UserError(f"{where}: data is empty; give an upstream output or a dict of channel name → output")
    return channels


def training_job_name(pipeline: str, task: str, run_id: str, attempt: int) -> str:
    """A valid, deterministic job name (``[a-zA-Z0-9-]``, at most 63 characters).

    The same attempt always gets the same name: that is what makes create idempotent.
    """
    full = f"{pipeline}-{task}-{run_id}-a{attempt}"
    clean = re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9-]", "-", full)).strip("-")
    if len(clean) <= 63:
        return clean
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{clean[:54].rstrip('-')}-{digest}"


# ----------------------------------------------------------------------------- local side


def _train_local(
    ctx: StepContext,
    name: str,
    entry_point: str,
    source: Path,
    channels: dict[str, ArtifactRef],
    hyperparameters: dict[str, Any],
    framework: str,
    framework_version: str | None,
    instance_type: str,
    runtime: int,
) -> ArtifactRef:
    from steps.backends import frameworks, sagemaker_local

    where = f"pipeline {ctx.pipeline}, task {ctx.task}"
    local_channels = {channel: ctx.artifact(ref).local_path() for channel, ref in channels.items()}
    for channel, path in local_channels.items():
        if not path.exists():
            raise NotFoundError(f"{where}: data channel {channel!r}: {path} does not exist; run the upstream task")
    run_dir = (ctx.settings.state_path / "sagemaker" / name).resolve()
    env = sagemaker_local.prepare(
        run_dir,
        source,
        local_channels,
        hyperparameters,
        entry_point,
        framework=framework,
        instance_type=instance_type,
        job_name=name,
        region=ctx.settings.aws_region,
    )
    model_framework = frameworks.framework_for(framework, framework_version or default_version(framework), where=where)
    python = frameworks.python_for(model_framework, where=where) if model_framework else None
    ctx.log.info(
        "training %s locally in %s (SageMaker container contract, %s)", entry_point, run_dir, python or sys.executable
    )
    result = sagemaker_local.run(
        run_dir, entry_point, env, python=python, on_line=lambda line: ctx.log.info("%s", line), timeout=runtime
    )
    if result.exit_code != 0:
        reason = result.failure or f"exit code {result.exit_code}"
        tail = "\n".join(result.log_tail[-20:])
        raise HandoffFailed(
            f"{where}: training script {entry_point} exited with code {result.exit_code}: {reason}\n"
            f"--- last lines of its log ({run_dir / 'output' / 'train.log'}) ---\n{tail}",
            reason=reason,
        )
    with tempfile.TemporaryDirectory(prefix="headrace-model-") as tmp:
        archive = pack_dir(result.model_dir, Path(tmp) / "model.tar.gz")
        ref = ctx.store.put_file(archive, ctx.output_key("model.tar.gz"), format="model")
    if model_framework:
        ctx.store.put_bytes(
            frameworks.record(model_framework), ctx.output_key("model.tar.gz") + frameworks.RECORD_SUFFIX, format="json"
        )
    if not any(result.model_dir.iterdir()):
        ctx.log.warning("%s wrote nothing to SM_MODEL_DIR; the model artifact is empty", entry_point)
    return ref


# ----------------------------------------------------------------------------- SageMaker side


def image_uri(framework: str, version: str | None, region: str, instance_type: str) -> str:
    """The framework's training image in ``region``; a full image URI passes through unchanged."""
    from steps.backends.sagemaker_images import image_uri as from_tables

    if "/" in framework:
        return framework
    device = "gpu" if instance_type.startswith(GPU_FAMILIES) else "cpu"
    return from_tables(framework, version or default_version(framework), region, device)


def create_request(
    *,
    name: str,
    image: str,
    role: str,
    channels: Mapping[str, str],
    hyperparameters: Mapping[str, Any],
    entry_point: str,
    submit_uri: str,
    output_uri: str,
    region: str,
    instance_type: str,
    instance_count: int,
    spot: bool,
    runtime: int,
    tags: Mapping[str, str],
    checkpoint_uri: str | None = None,
) -> dict[str, Any]:
    """The ``CreateTrainingJob`` request, as the SageMaker SDK's framework estimators build it."""
    from steps.backends.sagemaker_local import job_hyperparameters

    encoded = job_hyperparameters(
        hyperparameters, entry_point=entry_point, submit_directory=submit_uri, job_name=name, region=region
    )
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": runtime}
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": role,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": instance_count, "VolumeSizeInGB": 30},
        "HyperParameters": encoded,
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spot,
        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
    }
    if spot:
        # Waiting for spot capacity counts against MaxWaitTimeInSeconds: allow as long again as the run.
        stopping["MaxWaitTimeInSeconds"] = runtime * 2
        if checkpoint_uri:
            request["CheckpointConfig"] = {"S3Uri": checkpoint_uri, "LocalPath": "/opt/ml/checkpoints"}
    return request


def _train_cloud(
    ctx: StepContext,
    name: str,
    entry_point: str,
    source: Path,
    channels: dict[str, ArtifactRef],
    hyperparameters: dict[str, Any],
    framework: str,
    framework_version: str | None,
    instance_type: str,
    instance_count: int,
    spot: bool,
    runtime: int,
) -> ArtifactRef:
    from steps.storage.aws import client, provider_errors, translate

    where = f"pipeline {ctx.pipeline}, task {ctx.task}"
    role = ctx.settings.sagemaker_role_arn
    if not role:
        raise ConfigError(
            f"{where}: sagemaker_role_arn is not set; set HEADRACE_SAGEMAKER_ROLE_ARN=arn:aws:iam::<account>:role/<role> "
            "or sagemaker_role_arn in headrace.toml"
        )
    for channel, ref in channels.items():
        if not ref.uri.startswith("s3://"):
            raise UserError(f"{where}: data channel {channel!r} is {ref.uri}, not on S3; the aws profile needs s3://")
    sagemaker = client("sagemaker", ctx.settings)
    region = ctx.settings.aws_region
    try:
        existing = describe(sagemaker, name)
        if existing is not None:
            ctx.log.info("attaching to training job %s (%s)", name, existing.get("TrainingJobStatus"))
        else:
            image = image_uri(framework, framework_version, region, instance_type)
            with tempfile.TemporaryDirectory(prefix="headrace-src-") as tmp:
                archive = pack_dir(source, Path(tmp) / "sourcedir.tar.gz")
                submit = ctx.store.put_file(archive, ctx.output_key("sourcedir.tar.gz"))
            request = create_request(
                name=name,
                image=image,
                role=role,
                channels={channel: ref.uri for channel, ref in channels.items()},
                hyperparameters=hyperparameters,
                entry_point=entry_point,
                submit_uri=submit.uri,
                output_uri=ctx.store.uri_for(ctx.output_key("sagemaker")),
                region=region,
                instance_type=instance_type,
                instance_count=instance_count,
                spot=spot,
                runtime=runtime,
                tags={"headrace:pipeline": ctx.pipeline, "headrace:task": ctx.task, "headrace:run": ctx.run_id},
                checkpoint_uri=ctx.store.uri_for(ctx.output_key("checkpoints")),
            )
            sagemaker.create_training_job(**request)
            ctx.log.info("created training job %s on %d x %s (%s)", name, instance_count, instance_type, image)
    except provider_errors() as error:
        raise translate(error, f"{where}: sagemaker training job {name}") from error
    try:
        with terminate_as_interrupt():
            final = wait(ctx, sagemaker, client("logs", ctx.settings), name)
    except KeyboardInterrupt:
        ctx.log.warning("interrupted: stopping training job %s", name)
        sagemaker.stop_training_job(TrainingJobName=name)
        raise
    ref = model_artifact(ctx, final)
    record_framework(ctx, ref.uri, framework, framework_version)
    return ref


def record_framework(ctx: StepContext, model_uri: str, framework: str, version: str | None) -> None:
    """Write the model's framework record beside the job's ``model.tar.gz`` (under the task's
    ``sagemaker/`` output prefix, where SageMaker put the artifact)."""
    from steps.backends import frameworks

    try:
        model_framework = frameworks.framework_for(framework, version or default_version(framework))
    except UserError as unknown:  # the job trained; only the local side needs to know the version
        ctx.log.warning("model framework not recorded: %s", unknown)
        return
    prefix = ctx.store.uri_for(ctx.output_key("sagemaker"))
    if model_framework is None or not model_uri.startswith(prefix):
        return
    key = ctx.output_key("sagemaker") + model_uri[len(prefix) :] + frameworks.RECORD_SUFFIX
    ctx.store.put_bytes(frameworks.record(model_framework), key, format="json")


def describe(sagemaker: Any, name: str) -> dict[str, Any] | None:
    """The job's description, or ``None`` when no job has this name."""
    from steps.storage.aws import error_code, error_message, provider_errors

    try:
        answer: dict[str, Any] = sagemaker.describe_training_job(TrainingJobName=name)
    except provider_errors() as error:
        message = error_message(error).lower()
        if error_code(error) in ("ValidationException", "ResourceNotFound") and (
            "not find" in message or "not found" in message
        ):
            return None
        raise
    return answer


def job_phase(description: Mapping[str, Any]) -> Phase:
    """Our phase for a description: the state table, with stops for exceeded time as TIMEOUT."""
    phase = phase_of(SAGEMAKER_STATES, str(description.get("TrainingJobStatus", "")), "sagemaker")
    if phase is Phase.CANCELLED and description.get("SecondaryStatus") in TIMEOUT_SECONDARY:
        return Phase.TIMEOUT
    return phase


class LogFollower:
    """Follows the job's CloudWatch log streams, remembering where each one was read up to."""

    def __init__(self, logs: Any, job_name: str) -> None:
        self.logs = logs
        self.job_name = job_name
        self.tokens: dict[str, str | None] = {}

    def lines(self) -> list[str]:
        from steps.storage.aws import error_code, provider_errors

        found: list[str] = []
        try:
            streams = self.logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=self.job_name + "/")
            for stream in streams.get("logStreams", []):
                name = stream["logStreamName"]
                while True:
                    options: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": name, "startFromHead": True}
                    if self.tokens.get(name):
                        options["nextToken"] = self.tokens[name]
                    page = self.logs.get_log_events(**options)
                    events = page.get("events", [])
                    found += [f"[{name.split('/', 1)[-1]}] {event['message']}" for event in events]
                    token = page.get("nextForwardToken")
                    unchanged = token == self.tokens.get(name)
                    self.tokens[name] = token
                    if not events or unchanged:
                        break
        except provider_errors() as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
        return found


def wait(ctx: StepContext, sagemaker: Any, logs: Any, name: str) -> dict[str, Any]:
    """Poll the job until it ends, streaming status transitions and log lines to the step log."""
    from steps.storage.aws import provider_errors, translate

    follower = LogFollower(logs, name)
    seen_transitions = [0]
    last_status = [""]

    def current() -> dict[str, Any]:
        try:
            answer = describe(sagemaker, name)
        except provider_errors() as error:
            raise translate(error, f"sagemaker describe_training_job {name}") from error
        if answer is None:
            raise HandoffFailed(f"training job {name} disappeared while running", reason="job not found")
        return answer

    def report(description: dict[str, Any]) -> None:
        status = f"{description.get('TrainingJobStatus')}/{description.get('SecondaryStatus')}"
        if status != last_status[0]:
            last_status[0] = status
            known = "" if description.get("TrainingJobStatus") in SAGEMAKER_STATES else " (unknown: treated as running)"
            ctx.log.info("training job %s: %s%s", name, status, known)
        transitions = description.get("SecondaryStatusTransitions", [])
        for transition in transitions[seen_transitions[0] :]:
            ctx.log.info("training job %s: %s: %s", name, transition.get("Status"), transition.get("StatusMessage", ""))
        seen_transitions[0] = len(transitions)
        try:
            for line in follower.lines():
                ctx.log.info("%s", line)
        except provider_errors() as error:  # logs are a nicety: an AWS error reading them never fails a job
            ctx.log.warning("could not read CloudWatch logs of %s: %s", name, error)

    return poll(current, job_phase, on_update=report)


def model_artifact(ctx: StepContext, description: Mapping[str, Any]) -> ArtifactRef:
    """The finished job's ``model.tar.gz`` with its size; a failed job raises HandoffFailed."""
    from steps.storage.aws import client, error_code, provider_errors, translate

    name = str(description.get("TrainingJobName", ""))
    where = f"pipeline {ctx.pipeline}, task {ctx.task}"
    phase = job_phase(description)
    if phase is not Phase.SUCCEEDED:
        status = description.get("TrainingJobStatus")
        reason = str(description.get("FailureReason") or description.get("SecondaryStatus") or status)
        raise HandoffFailed(f"{where}: training job {name} ended {status}: {reason}", reason=reason)
    uri = str(description.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""))
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        head = client("s3", ctx.settings).head_object(Bucket=bucket, Key=key)
    except provider_errors() as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound"):
            raise HandoffFailed(
                f"{where}: training job {name} completed but its model artifact {uri} does not exist; "
                "did the script write to SM_MODEL_DIR?",
                reason="model artifact missing",
            ) from error
        raise translate(error, f"{where}: reading {uri}") from error
    ctx.record(model_uri=uri, billable_seconds=description.get("BillableTimeInSeconds"))
    return ArtifactRef(uri, int(head["ContentLength"]), None, "model")
