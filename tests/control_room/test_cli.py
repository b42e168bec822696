"""``headrace control-room serve``: mistakes are one line and exit 2 before anything listens."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pipelines.cli import app


def test_serve_with_a_bad_database_url_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["control-room", "serve", "--db", "not a url", "--no-notify"])
    assert result.exit_code == 2
    assert "control room database 'not a url' is not a database URL" in result.output
    assert "Traceback" not in result.output


def test_serve_with_a_missing_catalog_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "prices.yaml"
    result = CliRunner().invoke(app, ["control-room", "serve", "--catalog", str(missing), "--no-notify"])
    assert result.exit_code == 2
    assert f"catalog {missing}: cannot read it" in result.output


def test_serve_with_rules_naming_an_unknown_size_names_the_rule(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - target: pod\n    sizes: [{instance_type: pod-3-7Gi}]\n")
    result = CliRunner().invoke(app, ["control-room", "serve", "--rules", str(rules), "--no-notify"])
    assert result.exit_code == 2
    assert "rules[0].sizes[0]: instance_type 'pod-3-7Gi' is not in the pod catalog" in result.output
