"""YAML rendering: any value reads back unchanged, and readers that speak YAML 1.1 agree."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.argo import to_yaml
from pipelines.argo.render import ordered

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


def test_single_letter_booleans_of_yaml_1_1_are_quoted() -> None:
    text = to_yaml({"a": "y", "b": "N", "c": "yes", "d": "on"})
    assert "a: 'y'" in text and "b: 'N'" in text
    assert yaml.safe_load(text) == {"a": "y", "b": "N", "c": "yes", "d": "on"}


def test_multi_line_strings_are_block_scalars() -> None:
    assert "description: |-\n  first\n  second\n" in to_yaml({"description": "first\nsecond"})


def test_keys_read_name_first_then_scalars_lists_and_mappings() -> None:
    obj = {"spec": {}, "items": [1], "kind": "Workflow", "name": "x", "apiVersion": "v1"}
    assert list(ordered(obj)) == ["name", "apiVersion", "kind", "items", "spec"]
