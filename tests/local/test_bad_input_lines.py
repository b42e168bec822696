"""Bad input is one line on stderr and exit 2, before anything runs: the real ``headrace`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipelines.local import RunSummary
from tests.control_room.conftest import free_port


def headrace(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the real command to its end; (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "400", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def one_line(args: tuple[str, ...], cwd: Path, env: dict[str, str] | None = None) -> str:
    code, _, stderr = headrace(*args, cwd=cwd, env=env)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def module(tmp_path: Path) -> Callable[[str], tuple[Path, str]]:
    """Write a pipeline module; returns its path and its ``PATH:pipeline`` spec."""

    def write(source: str) -> tuple[Path, str]:
        path = tmp_path / f"flow_{abs(hash(source)) % 10**8}.py"
        path.write_text(source)
        return path, f"{path}:pipeline"

    return write


GOOD = """
from pathlib import Path
from pipelines import Pipeline, step

@step
def mark(folder: str, n: int) -> dict:
    Path(folder, "ran").write_text("yes")
    return {"n": n}

with Pipeline("marks") as pipeline:
    mark(folder=pipeline.param("folder", ""), n=pipeline.param("n", 1))
"""


def test_a_syntax_error_in_the_pipeline_module_is_one_line(
    module: Callable[[str], tuple[Path, str]], tmp_path: Path
) -> None:
    path, spec = module("from pipelines import Pipeline\n\ndef broken(:\n    pass\n")
    with pytest.raises(SyntaxError) as python:
        compile(path.read_text(), str(path), "exec")
    expected = f"error: {spec}: syntax error at {path}:{python.value.lineno}: {python.value.msg}; fix the module"
    assert one_line(("run", spec), tmp_path) == expected


def test_a_missing_import_in_the_pipeline_module_is_one_line(
    module: Callable[[str], tuple[Path, str]], tmp_path: Path
) -> None:
    path, spec = module("from pipelines import Pipeline\nimport no_such_package_for_headrace\n")
    assert one_line(("validate", spec), tmp_path) == (
        f"error: {spec}: the module imports 'no_such_package_for_headrace', which is not installed ({path}:2); "
        "install it or fix the import"
    )


def test_an_exception_at_the_top_of_the_pipeline_module_is_one_line(
    module: Callable[[str], tuple[Path, str]], tmp_path: Path
) -> None:
    path, spec = module("import os\n\nos.environ['NEEDED']\n")
    assert one_line(("compile", spec), tmp_path) == (
        f"error: {spec}: importing the module raised KeyError: 'NEEDED' ({path}:3); fix the module"
    )


def test_compile_into_a_folder_that_cannot_be_written_is_one_line(
    module: Callable[[str], tuple[Path, str]], tmp_path: Path
) -> None:
    _, spec = module(GOOD)
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "out"
    assert one_line(("compile", spec, "-o", str(target)), tmp_path) == (
        f"error: --output {target}: cannot write there (Not a directory); pass a folder you can write"
    )


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder this process can enter but not write: a read-only one, or /proc for root (whom
    permissions do not stop)."""
    if os.geteuid() == 0:
        yield Path("/proc")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def _strerror(path: Path) -> str:
    try:
        path.mkdir(parents=True)
    except OSError as error:
        return str(error.strerror)
    raise AssertionError(f"{path} could be made")


def test_run_from_a_folder_that_cannot_be_written_is_one_line_and_runs_nothing(
    module: Callable[[str], tuple[Path, str]], tmp_path: Path, unwritable_folder: Path
) -> None:
    _, spec = module(GOOD)
    env = {k: v for k, v in os.environ.items() if k != "HEADRACE_STATE_DIR"}
    code, _, stderr = _run_in(spec, tmp_path, unwritable_folder, env)
    state = unwritable_folder / ".headrace"
    assert code == 2 and stderr.strip() == (
        f"error: state folder {state}: cannot write there ({_strerror(state)}); "
        "run from a folder you can write, or set HEADRACE_STATE_DIR"
    )
    assert not (tmp_path / "ran").exists()


def _run_in(spec: str, tmp_path: Path, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "run", spec, "-p", f"folder={tmp_path}"],
        cwd=cwd,
        env={**env, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def test_an_artifact_root_that_cannot_be_written_is_one_line_before_any_task_runs(
    module: Callable[[str], tuple[Path, str]], tmp_path: Path
) -> None:
    _, spec = module(GOOD)
    (tmp_path / "a-file").write_text("")
    root = tmp_path / "a-file" / "artifacts"
    line = one_line(("run", spec, "-p", f"folder={tmp_path}"), tmp_path, {"HEADRACE_ARTIFACT_ROOT": str(root)})
    assert line == (
        f"error: artifact root {root}: cannot write there (Not a directory); "
        "set HEADRACE_ARTIFACT_ROOT to a folder you can write"
    )
    assert not (tmp_path / "ran").exists()


def test_a_step_called_without_a_required_argument_fails_validate(
    module: Callable[[str], tuple[Path, str]], tmp_path: Path
) -> None:
    _, spec = module(GOOD.replace('mark(folder=pipeline.param("folder", ""), n=', "mark(n="))
    expected = (
        "error: pipeline marks, task mark: the step needs argument 'folder', which the call does not pass; "
        "pass folder=..."
    )
    assert one_line(("validate", spec), tmp_path) == expected
    assert one_line(("run", spec), tmp_path) == expected


def test_a_parameter_value_not_of_its_type_creates_no_run(
    module: Callable[[str], tuple[Path, str]], tmp_path: Path
) -> None:
    _, spec = module(GOOD)
    line = one_line(("run", spec, "-p", f"folder={tmp_path}", "-p", "n=abc"), tmp_path)
    assert line == "error: parameter n: 'abc' is not int; pass a number"
    code, listed, _ = headrace("runs", "list", cwd=tmp_path)
    assert code == 0 and "no runs yet" in listed
    assert not (tmp_path / "ran").exists()
    assert not list((tmp_path / ".headrace").glob("runs/*"))  # not even a run folder


def test_logs_of_a_run_that_is_not_here_say_so_and_how_to_ask_argo(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "no-kubeconfig")}
    assert one_line(("logs", "recipes-20260101-000000-abcd"), tmp_path, env) == (
        "error: run recipes-20260101-000000-abcd: no such local run (`headrace runs list` lists them); "
        "for a run on Argo, set ARGO_SERVER=https://<argo-server>:2746 (or KUBECONFIG) "
        "and run `headrace logs recipes-20260101-000000-abcd` again"
    )


def test_control_room_serve_with_postgresql_unreachable_is_one_line_without_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://bob:s3cret@127.0.0.1:{port}/nope"
    line = one_line(("control-room", "serve", "--db", url), tmp_path)
    assert line.startswith(
        f"error: control room database postgresql+psycopg://bob:***@127.0.0.1:{port}/nope: cannot open it ("
    )
    assert "Connection refused" in line
    assert line.endswith("); start it or fix --db / HEADRACE_CONTROL_ROOM_DB")
    assert "s3cret" not in line


def test_a_malformed_database_url_is_echoed_without_its_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://bob:s3cret@127.0.0.1:notaport/db"
    assert one_line(("control-room", "serve", "--db", url), tmp_path) == (
        "error: control room database 'postgresql+psycopg://bob:***@127.0.0.1:notaport/db' is not a database URL; "
        "use sqlite:///path.db or postgresql+psycopg://user@host/db"
    )


@pytest.mark.parametrize(
    ("returned", "kind"),
    [
        ("{1, 2}", "set"),
        ("threading.Lock()", "lock"),
        ("(i for i in range(3))", "generator"),
        ("[1, {2}]", "list holding a set"),
    ],
)
def test_a_step_result_that_is_not_storable_fails_its_task_naming_task_and_type(
    flow: Callable[[str], str], run: Callable[..., RunSummary], returned: str, kind: str
) -> None:
    spec = flow(
        f"""
import threading

@step
def odd():
    return {returned}

with Pipeline("odd-results") as pipeline:
    odd()
"""
    )
    summary = run(spec)
    assert summary.status == "failed"
    task = summary.tasks["odd"]
    assert task.outputs == {}
    assert (
        f"pipeline odd-results, task odd: output result is a {kind}, which headrace cannot store; return JSON "
        "(dict, list, str, number, bool), a pandas DataFrame, an Arrow table, bytes or a Path"
    ) in task.reason + "\n".join(task.log_tail)


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        (
            "HEADRACE_SLACK_DRAIN_SECONDS",
            "soon",
            "slack_drain_seconds: 'soon' is not a number; set HEADRACE_SLACK_DRAIN_SECONDS",
        ),
        (
            "HEADRACE_SLACK_FAILURES_ONLY",
            "maybe",
            "slack_failures_only: 'maybe' is not true or false; set HEADRACE_SLACK_FAILURES_ONLY=true or false",
        ),
        (
            "HEADRACE_CONTROL_ROOM_MAX_BODY_BYTES",
            "1.5",
            "control_room_max_body_bytes: '1.5' must be a whole number >= 0",
        ),
    ],
)
def test_a_setting_of_the_wrong_type_is_one_line_naming_its_variable(
    variable: str, value: str, line: str, tmp_path: Path
) -> None:
    assert one_line(("runs", "list"), tmp_path, env={variable: value}).startswith(f"error: {line}")


def test_argo_variables_reach_the_settings_under_the_headrace_ones(tmp_path: Path) -> None:
    from steps.core.settings import load_settings

    absent = tmp_path / "absent.toml"
    plain = load_settings(environ={"ARGO_SERVER": "argo:2746", "ARGO_SECURE": "false"}, config_file=absent)
    assert (plain.argo_server, plain.argo_secure) == ("argo:2746", False)
    both = load_settings(environ={"ARGO_SERVER": "argo:2746", "HEADRACE_ARGO_SERVER": "mine:2746"}, config_file=absent)
    assert both.argo_server == "mine:2746"
    assert load_settings(environ={}, config_file=absent).environment()["HEADRACE_DATADOG"] == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run",), "error: headrace run: missing argument 'spec' (see `headrace run --help`)"),
        (("run", "flow.py:pipeline", "--bogus"), "error: headrace run: no such option: --bogus"),
        (("nosuchcommand",), "error: headrace: no such command 'nosuchcommand' (see `headrace --help`)"),
        (("runs", "show"), "error: headrace runs show: missing argument 'run_id'"),
        (("logs", "some-run", "--attempt", "two"), "error: headrace logs: invalid value for '--attempt'"),
    ],
    ids=["missing-argument", "unknown-option", "unknown-command", "missing-argument-of-a-subcommand", "bad-value"],
)
def test_a_command_line_mistake_is_one_line_naming_the_command_and_its_help(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    """What click would print in four lines and a box (usage, hint, message) is one line, piped."""
    line = one_line(args, tmp_path)
    assert line.startswith(expected), line
    assert not any(ch in line for ch in "│╭╰─"), line


def test_help_piped_is_plain_text_with_nothing_cut(tmp_path: Path) -> None:
    """No box drawing and no summary cut with "..." when the help goes to a pipe or a log."""
    for args in (("--help",), ("runs", "show", "--help")):
        code, stdout, _ = headrace(*args, cwd=tmp_path, env={"COLUMNS": "80"})
        assert code == 0, stdout
        assert not any(ch in stdout for ch in "│╭╰─…"), stdout
        cut = [line for line in stdout.splitlines() if line.rstrip().endswith("...") and "Usage:" not in line]
        assert cut == [], stdout
    code, stdout, _ = headrace("--help", cwd=tmp_path)
    assert (
        "  submit        Submit a run of the pipeline to Argo (run_date defaults to today in its time zone)." in stdout
    )
