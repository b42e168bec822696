"""The oldest Argo Workflows release that runs what the compiler emits.

Every field of every compiled object exists in this release (the tests validate each object
against this release's own schema and the newest one's). What sets the floor:
``retryStrategy.backoff.cap`` (3.7.0), which bounds each retry wait at
``Backoff.max_duration``; an older controller would not know it and the waits would grow
without bound. Raising the floor is a decision: vendor that release's schema in tests/schemas,
change this line and the README together.
"""

from __future__ import annotations

MIN_ARGO_VERSION = "3.7.0"
