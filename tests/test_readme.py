"""The README stays true: its example pipeline validates and compiles, its error lines are what
`headrace validate` prints, and CI runs the test command the README shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block_after(heading: str, language: str) -> str:
    section = README.split(heading, 1)[1]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def _marked(name: str) -> str:
    block = README.split(f"<!-- {name} -->", 1)[1].split(f"<!-- /{name} -->", 1)[0]
    lines = [line for line in block.strip().splitlines() if not line.startswith("```")]
    return "\n".join(line.removeprefix("$ ") for line in lines)


def _headrace(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "from pipelines.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _churn_package(root: Path, source: str) -> None:
    """The layout the README describes: ``churn/pipeline.py`` next to ``churn/scoring.py``."""
    package = root / "churn"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scoring.py").write_text("def score(batch, model):\n    return batch\n")
    (package / "pipeline.py").write_text(source, encoding="utf-8")


def test_readme_example_pipeline_validates_and_compiles_to_argo_yaml(tmp_path: Path) -> None:
    _churn_package(tmp_path, _block_after("## A pipeline", "python"))
    checked = _headrace("validate", "churn/pipeline.py:pipeline", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    cron = _headrace("compile", "churn/pipeline.py:pipeline", "--kind", "cron", cwd=tmp_path)
    assert cron.returncode == 0, cron.stderr
    assert "kind: CronWorkflow" in cron.stdout and "0 3 * * *" in cron.stdout
    template = _headrace("compile", "churn/pipeline.py:pipeline", "--kind", "template", cwd=tmp_path)
    assert template.returncode == 0, template.stderr
    assert "size-report" in template.stdout and "size-score" in template.stdout  # sized tasks get sizing nodes


def test_readme_example_s_scoring_function_resolves_next_to_its_pipeline(tmp_path: Path) -> None:
    # What the score task does in its pod: load the pipeline, then the scoring function it names.
    _churn_package(tmp_path, _block_after("## A pipeline", "python"))
    command = README.split("## A pipeline", 1)[1].split("$ headrace validate ", 1)[1].split()[0]
    code = (
        "from steps.runtime.loader import load_object; import churn.scoring; "
        f"load_object({command!r}); print(load_object('churn.scoring:score') is churn.scoring.score)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr


def test_readme_validation_errors_are_what_validate_prints(tmp_path: Path) -> None:
    block = README.split("$ headrace validate", 1)[1].split("```", 1)[0]
    shown = [line for line in block.splitlines() if line.startswith("error:")]
    assert len(shown) == 2
    source = _block_after("## A pipeline", "python")
    broken = source.replace(
        '@step(sizing="auto", bytes_per_row=2048)',
        '@step(sizing="auto", bytes_per_row=2048, resources=Resources(memory="2GB"))',
    ).replace('Schedule("0 3 * * *"', 'Schedule("0 3 * * * *"')
    _churn_package(tmp_path, broken)
    result = _headrace("validate", "churn/pipeline.py:pipeline", cwd=tmp_path)
    assert result.returncode == 2
    printed = [re.sub(r"\s+", " ", line) for line in result.stderr.splitlines() if line.strip()]
    assert printed == [re.sub(r"\s+", " ", line) for line in shown]


def test_ci_runs_the_test_command_the_readme_shows() -> None:
    command = _marked("ci-test")
    assert "pytest" in command and "pip install" in command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "ci-test" in ci  # .ci/run reads the command from between these markers
    main_job = _marked("main-job")
    assert main_job.endswith("headrace run examples/recipe_stream:pipeline")


def test_the_second_command_is_the_two_week_backfill_its_benchmark_times() -> None:
    command = _marked("two-weeks").split("headrace ", 1)[1].split()
    assert command[:2] == ["backfill", "examples/recipe_stream:pipeline"] and "--local" in command
    start, end = command[command.index("--from") + 1], command[command.index("--to") + 1]
    bench = (ROOT / "benchmarks" / "backfill_two_weeks.py").read_text(encoding="utf-8")
    assert (
        f'default="{start}"' in bench
        and f'default="{end}"' in bench
        and 'SPEC = "examples/recipe_stream:pipeline"' in bench
    )
