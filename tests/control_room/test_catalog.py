"""The instance catalog and the rules: shipped defaults, user files, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_room.catalog import Catalog, load_catalog, load_rules
from steps.core.contract import SizingTarget
from steps.core.errors import ConfigError

GIB = 2**30


def test_shipped_catalog_holds_sagemaker_glue_and_pod_sizes_with_prices(catalog: Catalog) -> None:
    sagemaker = {o.instance_type: o for o in catalog.for_target(SizingTarget.SAGEMAKER)}
    for family in ("m5", "c5", "r5", "g4dn", "g5"):
        assert any(name.startswith(f"ml.{family}.") for name in sagemaker), family
    assert sagemaker["ml.m5.large"].memory_bytes == 8 * GIB and sagemaker["ml.m5.24xlarge"].vcpu == 96
    assert sagemaker["ml.g5.xlarge"].gpu == 1 and sagemaker["ml.m5.xlarge"].hourly_usd == pytest.approx(0.23)
    glue = catalog.for_target(SizingTarget.GLUE)
    assert {o.instance_type for o in glue} == {"G.1X", "G.2X", "G.4X", "G.8X"}
    ten_g2x = catalog.find(SizingTarget.GLUE, "G.2X", 10)
    assert ten_g2x is not None and ten_g2x.total_hourly == pytest.approx(10 * 2 * 0.44)
    pod = catalog.find(SizingTarget.POD, "pod-4-16Gi")
    assert pod is not None and pod.total_hourly == pytest.approx(4 * 0.0316 + 16 * 0.0042)


def test_a_team_catalog_file_replaces_the_prices(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "sagemaker:\n  - {name: ml.m5.large, vcpu: 2, memory_gib: 8, hourly_usd: 0.05}\n"
        "defaults:\n  sagemaker: {instance_type: ml.m5.large}\n"
    )
    catalog = load_catalog(path)
    (only,) = catalog.for_target(SizingTarget.SAGEMAKER)
    assert only.hourly_usd == 0.05 and catalog.default(SizingTarget.SAGEMAKER) == only
    assert catalog.for_target(SizingTarget.POD) == []


def test_a_malformed_catalog_entry_is_one_line_naming_the_entry_and_field(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("sagemaker:\n  - {name: ml.m5.large, vcpu: two, memory_gib: 8, hourly_usd: 0.1}\n")
    with pytest.raises(ConfigError, match=r"sagemaker\[0\]\.vcpu: input should be a valid number.*\(got 'two'\)$"):
        load_catalog(path)


def test_a_catalog_that_is_not_yaml_says_so(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("sagemaker: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalog(path)


def test_a_rule_naming_a_size_missing_from_the_catalog_is_refused(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - target: sagemaker\n    sizes:\n      - {up_to: 1Gi, instance_type: ml.m9.huge}\n")
    with pytest.raises(
        ConfigError, match=r"rules\[0\].sizes\[0\]: instance_type 'ml.m9.huge' is not in the sagemaker catalog"
    ):
        load_rules(path, catalog)


def test_team_rules_match_by_pipeline_and_task_globs(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "policy: {headroom: 1.5}\n"
        "rules:\n"
        "  - {target: pod, pipeline: 'recipe-*', task: score, sizes: [{instance_type: pod-4-32Gi}]}\n"
        "  - {target: pod, sizes: [{up_to: 1Gi, instance_type: pod-1-2Gi}, {instance_type: pod-2-8Gi}]}\n"
    )
    rules = load_rules(path, catalog)
    assert rules.headroom == 1.5
    team = rules.match("recipe-stream", "score", SizingTarget.POD)
    assert team is not None and team.step_for(10**12).instance_type == "pod-4-32Gi"
    generic = rules.match("churn", "score", SizingTarget.POD)
    assert generic is not None and generic.step_for(GIB).instance_type == "pod-1-2Gi"
    assert generic.step_for(GIB + 1).instance_type == "pod-2-8Gi"
    assert rules.match("churn", "score", SizingTarget.GLUE) is None


def test_headroom_below_one_is_refused(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("policy: {headroom: 0.8}\n")
    with pytest.raises(
        ConfigError, match=r"policy\.headroom: input should be greater than or equal to 1 \(got 0\.8\)$"
    ):
        load_rules(path, catalog)


def test_a_misspelt_rules_key_is_refused_naming_the_file_the_key_and_the_keys_that_exist(
    tmp_path: Path, catalog: Catalog
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("policy: {hedroom: 1.2}\n")
    with pytest.raises(ConfigError) as raised:
        load_rules(path, catalog)
    assert str(raised.value) == (
        f"rules {path}: policy.hedroom: unknown key; the keys here are headroom, min_history, history_window, "
        "memory_quantile, cpu_scaling, process_overhead"
    )


def test_a_misspelt_size_key_in_a_rule_is_refused_with_its_position(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - target: pod\n    sizes:\n      - {upto: 1Gi, instance_type: pod-2-8Gi}\n")
    with pytest.raises(
        ConfigError, match=r"rules\[0\]\.sizes\[0\]\.upto: unknown key; the keys here are instance_type, up_to"
    ):
        load_rules(path, catalog)


def test_a_non_integer_where_an_integer_belongs_is_one_line_not_a_value_error(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("policy: {min_history: three}\n")
    with pytest.raises(ConfigError, match=r"policy\.min_history: input should be a valid integer.*\(got 'three'\)$"):
        load_rules(path, catalog)
