"""YAML rendering: any value reads back unchanged, and readers of YAML 1.1 (PyYAML) and YAML 1.2
(ruamel.yaml, the same core schema as Go's yaml.v3) agree that every string is a string."""

from __future__ import annotations

import io
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from pipelines.argo import compile_pipeline, to_yaml
from pipelines.argo.render import ordered
from pipelines.graph import Pipeline, Task
from steps.core.settings import Settings
from tests.argo import kube_rules
from tests.argo.checks import schema_errors

#: Strings some YAML reader takes for a number, a boolean or null when written plain.
LOOKS_TYPED = [
    "1e3", "1E3", "1e-3", "6.02E+23", "0o17", "0O17", "0o_17", "0x1F", "0b101", "1_000", "+1", "-2.5", ".5",
    "1.", "0777", "-_", "._", ".", "yes", "No", "on", "OFF", "y", "N", "~", "null", "NULL", "true", "False", ".inf", "-.Inf",
    ".nan", "12:30", "2024-01-01",
]  # fmt: skip


def yaml_1_2(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


scalars = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_any_value_reads_back_unchanged(value: Any) -> None:
    assert yaml.safe_load(to_yaml({"value": value})) == {"value": value}


@pytest.mark.parametrize("text", LOOKS_TYPED)
def test_strings_that_look_typed_stay_strings_for_yaml_1_1_and_1_2_readers(text: str) -> None:
    rendered = to_yaml({"value": text})
    assert yaml.safe_load(rendered) == {"value": text}
    assert yaml_1_2(rendered) == {"value": text}


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(), st.from_regex(r"[-+]?[0-9._a-fA-FxXoObB]{1,5}([eE][-+]?[0-9]{1,2})?", fullmatch=True)))
def test_any_string_reads_back_as_the_same_string_in_yaml_1_1_and_1_2(text: str) -> None:
    rendered = to_yaml({"value": text})
    assert yaml.safe_load(rendered) == {"value": text}
    assert yaml_1_2(rendered) == {"value": text}


def test_labels_and_parameters_that_look_like_numbers_reach_argo_and_kubernetes_as_strings() -> None:
    labels = {"version": "1e3", "mode": "0o17", "flag": "on", "off": "no"}
    params = {"threshold": "1e3", "mask": "0o17", "missing": "~", "cap": ".inf", "enabled": "yes"}
    pipeline = Pipeline("typed", labels=labels, params=params)
    pipeline.add(Task(name="t", fn=lambda: None, arguments={}, outputs=("result",)))
    obj = compile_pipeline(pipeline, spec="flows/daily.py:pipeline", settings=Settings())
    rendered = to_yaml(obj)
    for read in (yaml.safe_load(rendered), yaml_1_2(rendered)):
        assert read == obj
        assert read["metadata"]["labels"].items() >= labels.items()
        arguments = {p["name"]: p["value"] for p in read["spec"]["arguments"]["parameters"]}
        assert arguments.items() >= params.items()
        assert schema_errors(read) == []
        assert kube_rules.errors(read) == []


def test_single_letter_booleans_of_yaml_1_1_are_quoted() -> None:
    text = to_yaml({"a": "y", "b": "N", "c": "yes", "d": "on"})
    assert "a: 'y'" in text and "b: 'N'" in text
    assert yaml.safe_load(text) == {"a": "y", "b": "N", "c": "yes", "d": "on"}


def test_multi_line_strings_are_block_scalars() -> None:
    assert "description: |-\n  first\n  second\n" in to_yaml({"description": "first\nsecond"})


def test_keys_read_name_first_then_scalars_lists_and_mappings() -> None:
    obj = {"spec": {}, "items": [1], "kind": "Workflow", "name": "x", "apiVersion": "v1"}
    assert list(ordered(obj)) == ["name", "apiVersion", "kind", "items", "spec"]
