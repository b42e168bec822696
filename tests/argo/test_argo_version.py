"""The oldest Argo Workflows release headrace supports, and proof that nothing newer is emitted.

Argo ignores nothing it validates strictly, but an older controller never sees a field its Go
types lack: ``retryStrategy.backoff.cap`` on 3.6 is dropped and the retry waits grow unbounded.
So every compiled object is checked against the published schema of the oldest supported release
(``tests/schemas/argo-workflows-v<MIN>.schema.json``, Argo's own file), not only the newest.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pipelines.argo import KINDS, Kind, compile_pipeline
from pipelines.argo.version import MIN_ARGO_VERSION
from pipelines.graph import Pipeline
from steps.core.settings import Settings
from steps.runtime.loader import load_object
from tests.argo.checks import OLDEST_SCHEMA, errors_against, strict
from tests.argo.helpers import ROOT

REFERENCE = "examples/recipe_stream:pipeline"


@pytest.fixture(autouse=True)
def _in_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _reference(kind: Kind) -> dict[str, Any]:
    pipeline = load_object(REFERENCE)
    assert isinstance(pipeline, Pipeline)
    return compile_pipeline(pipeline, spec=REFERENCE, kind=kind, settings=Settings())


@pytest.mark.parametrize("kind", KINDS)
def test_reference_pipeline_uses_only_fields_the_oldest_supported_argo_knows(kind: Kind) -> None:
    assert errors_against(OLDEST_SCHEMA, _reference(kind)) == []


def test_a_field_the_oldest_supported_argo_lacks_is_caught() -> None:
    """Argo 3.6's Backoff had no ``cap``: with that definition the same output fails, so the check
    above is what keeps a newer field from reaching an older controller."""
    schema = strict(json.loads(OLDEST_SCHEMA.read_text()))
    older = copy.deepcopy(schema)
    del older["definitions"]["io.argoproj.workflow.v1alpha1.Backoff"]["properties"]["cap"]
    errors = errors_against(older, _reference("workflow"))
    assert errors and all("'cap' was unexpected" in e for e in errors)


def test_readme_states_the_oldest_supported_argo_version() -> None:
    assert f"Argo Workflows {MIN_ARGO_VERSION} or later" in (ROOT / "README.md").read_text()
