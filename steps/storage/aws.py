"""The one place that builds boto3 clients, so every AWS backend sees the same region and endpoint.

S3, Athena, Glue and SageMaker clients all come from :func:`client`: the region and the endpoint
override (a moto server in tests, a VPC endpoint in production) are read from
:class:`~steps.core.settings.Settings` here and nowhere else. An empty endpoint means "AWS itself".
boto3 is imported lazily: the in-pod entrypoint must not pay for it unless a step talks to AWS.

:func:`translate` turns a botocore error into headrace's error tree at the boundary, so callers
can write ``except ClientError as e: raise translate(e, "athena start_query_execution") from e``
and users see one line that says who must act and whether a retry helps.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from steps.core.errors import ConfigError, HandoffFailed, HeadraceError, NotFoundError, TransientError, UserError
from steps.core.settings import Settings

#: Error codes after which a retry helps (throttling and provider-side hiccups).
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerException",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
#: Error codes that mean credentials or permissions are wrong: a person must fix the setup.
ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)
NOT_FOUND_CODES = frozenset(
    {"NoSuchKey", "NoSuchBucket", "404", "NotFound", "EntityNotFoundException", "ResourceNotFoundException"}
)


def endpoint_or_none(endpoint_url: str | None) -> str | None:
    """Settings keep "unset" as an empty string; boto3 wants ``None`` for "AWS itself"."""
    return endpoint_url or None


_session_lock = threading.Lock()
_sessions: dict[tuple[str, str], Any] = {}


def _session() -> Any:
    """One boto3 session per process and credential source: a new session re-reads every service
    model (0.2 s a client); a shared one makes clients in milliseconds. boto3 sessions are not
    thread-safe, so clients are made under a lock; the clients themselves are."""
    import boto3

    key = (os.environ.get("AWS_PROFILE", ""), os.environ.get("AWS_ACCESS_KEY_ID", ""))
    session = _sessions.get(key)
    if session is None:
        session = _sessions[key] = boto3.session.Session()
    return session


def client_for(service: str, *, region: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client for ``service`` in ``region``, through ``endpoint_url`` when one is given.

    Retries use botocore's ``standard`` mode (throttling and 5xx, with jittered backoff). S3 uses
    path-style addressing behind an endpoint override, which moto and most gateways expect.
    """
    from botocore.config import Config

    endpoint = endpoint_or_none(endpoint_url)
    options: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 5}}
    if service == "s3" and endpoint:
        options["s3"] = {"addressing_style": "path"}
    with _session_lock:
        return _session().client(service, region_name=region or None, endpoint_url=endpoint, config=Config(**options))


def client(service: str, settings: Settings) -> Any:
    """A boto3 client for ``service`` configured from settings (``aws_region``, ``aws_endpoint_url``)."""
    return client_for(service, region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)


def provider_errors() -> tuple[type[Exception], ...]:
    """botocore's error classes, for ``except provider_errors() as e`` in modules that must not
    import botocore themselves (one module owns each SDK)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def error_code(error: BaseException) -> str:
    """The provider's error code of a botocore ``ClientError`` (empty for other errors)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def error_message(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        message = response.get("Error", {}).get("Message")
        if message:
            return str(message)
    return str(error)


def translate(error: BaseException, what: str) -> HeadraceError:
    """The headrace error for a botocore/boto3 error raised while doing ``what``.

    Throttling, 5xx and dropped connections become :class:`TransientError` (retry helps);
    credential and permission errors :class:`ConfigError`; missing resources :class:`NotFoundError`;
    a rejected request (validation) :class:`UserError`; anything else :class:`HandoffFailed`.
    """
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(error, NoCredentialsError):
        return ConfigError(
            f"{what}: no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role"
        )
    if isinstance(error, EndpointConnectionError):
        return TransientError(f"{what}: could not reach {getattr(error, 'kwargs', {}).get('endpoint_url', 'AWS')}")
    if isinstance(error, ClientError):
        code = error_code(error)
        message = error_message(error)
        if code in TRANSIENT_CODES:
            return TransientError(f"{what}: {code}: {message}")
        if code in ACCESS_CODES:
            return ConfigError(f"{what}: {code}: {message}; check the credentials and IAM permissions")
        if code in NOT_FOUND_CODES:
            return NotFoundError(f"{what}: {code}: {message}")
        if code in ("ValidationException", "InvalidRequestException", "InvalidInputException"):
            return UserError(f"{what}: {message}")
        return HandoffFailed(f"{what}: {code}: {message}", reason=message)
    if isinstance(error, BotoCoreError):
        return TransientError(f"{what}: {error}")
    return HandoffFailed(f"{what}: {error}", reason=str(error))
