"""One error tree for headrace, split by who must act and whether a retry helps.

Every error carries a one-line message that names the pipeline, task and field at fault and says
what to do. Exit codes are stable so that Argo's ``retryStrategy`` can tell a retryable failure
(the step's own code failed, or the infrastructure hiccuped) from one that no retry will fix
(bad configuration, bad input).
"""

from __future__ import annotations

#: Exit codes shared by the in-pod entrypoint, the local runner and the CLI.
EXIT_OK = 0
EXIT_STEP_FAILED = 1  # the user's step raised: retry may help (flaky source, transient data)
EXIT_USAGE = 2  # bad input or configuration: a retry never helps
EXIT_TRANSIENT = 3  # throttling, network, provider 5xx: retry helps
EXIT_HANDOFF_FAILED = 4  # a SageMaker/Glue/Athena/BigQuery job failed on the provider's side
EXIT_TIMEOUT = 124  # same code as coreutils' timeout
EXIT_OOM = 137  # SIGKILL by the kernel's OOM killer (128 + 9)


class HeadraceError(Exception):
    """Base of every error headrace raises on purpose; its ``str`` is the one line a user sees."""

    exit_code = EXIT_STEP_FAILED
    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(HeadraceError):
    """The user must act: wrong input, wrong configuration, wrong pipeline definition."""

    exit_code = EXIT_USAGE
    retryable = False


class PipelineDefinitionError(UserError):
    """A pipeline definition breaks a rule (cycle, bad name, bad quantity, missing output...)."""


class ConfigError(UserError):
    """A setting (flag, ``HEADRACE_*`` variable, ``headrace.toml``) is missing or invalid."""


class NotFoundError(UserError):
    """A named thing (module, pipeline, run, task, table) does not exist."""


class StepFailed(HeadraceError):
    """The step's own code failed; a retry may help."""

    exit_code = EXIT_STEP_FAILED


class HandoffFailed(HeadraceError):
    """A job handed to a provider (SageMaker, Glue, Athena, BigQuery) ended in failure.

    ``reason`` is the provider's own failure reason, shown in logs and Slack as is.
    """

    exit_code = EXIT_HANDOFF_FAILED

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class TransientError(HeadraceError):
    """Throttling, a dropped connection, a provider 5xx: nobody must act, a retry helps."""

    exit_code = EXIT_TRANSIENT
