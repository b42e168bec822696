"""The fork server preloads what a pipeline's tasks import; each task still runs on its own copy."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.local.preload import modules_to_preload, read_learned
from pipelines.runs import RunStore


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_preload_follows_the_projects_imports_and_skips_stdlib_and_type_checking_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "flowpkg/__init__.py", "from . import work\n")
    write(
        tmp_path,
        "flowpkg/work.py",
        """
        from __future__ import annotations
        import json
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import pandas
        from . import helpers

        def step_fn():
            import yaml
            return yaml
        """,
    )
    write(tmp_path, "flowpkg/helpers.py", "def read():\n    import pyarrow.parquet\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = modules_to_preload(["flowpkg.work"], str(tmp_path))
    assert found == ["yaml", "pyarrow.parquet"]


def test_preload_adds_what_a_backends_local_side_imports(tmp_path: Path) -> None:
    assert modules_to_preload(["steps.backends.bigquery"], str(tmp_path)) == [
        "duckdb",
        "sqlglot",
        "sqlglot.dialects.bigquery",
        "sqlglot.dialects.duckdb",
        "pyarrow",
        "pyarrow.parquet",
    ]


def test_learned_modules_are_read_once_each_and_the_file_kept_short(tmp_path: Path) -> None:
    path = tmp_path / "learned.txt"
    path.write_text("sklearn\nscipy\nsklearn\nnot a module\n")
    assert read_learned(path).modules == ["sklearn", "scipy"]
    assert path.read_text() == "sklearn\nscipy\n"


PRELOADED = """
print("importing the pipeline module", flush=True)
STATE = []

@step
def first():
    STATE.append("first")
    __import__("yaml")  # an import the code does not spell out: learned for the next run
    return {"pid": os.getpid(), "state": list(STATE)}

@step
def second(x):
    STATE.append("second")
    return {"pid": os.getpid(), "state": list(STATE)}

with Pipeline("preloaded") as pipeline:
    second(x=first())
"""


def test_forked_tasks_find_the_pipeline_imported_once_yet_each_runs_on_a_fresh_copy(
    flow: Callable[[str], str], run: Callable[..., object], store: RunStore, isolated_headrace: Path
) -> None:
    summary = run(flow(PRELOADED))
    assert summary.status == "succeeded"
    results = {}
    for name in ("first", "second"):
        ref = summary.tasks[name].outputs["result"]
        import json

        results[name] = json.loads(Path(ref.uri.removeprefix("file://")).read_text())
        log = Path(summary.tasks[name].log_path).read_text()
        assert log.count("importing the pipeline module") == 1  # replayed into each task's log
    assert results["first"]["state"] == ["first"]
    assert results["second"]["state"] == ["second"]  # not ["first", "second"]: a fresh copy
    assert results["first"]["pid"] != results["second"]["pid"]
    learned = next((isolated_headrace.parent / "cache" / "preload").glob("preloaded-*.txt"))
    assert "yaml" in learned.read_text().split()


LEARNING = """
import sys

@step
def reads():
    had = "plistlib" in sys.modules
    import plistlib  # imported by the step itself: learned for this task, for the next run

    return {"had_it": had, "dumps": plistlib.dumps({"a": 1}).decode()[:5]}

with Pipeline("learning") as pipeline:
    reads()
"""


def test_a_task_is_forked_with_what_it_imported_itself_last_time_already_imported(
    flow: Callable[[str], str], run: Callable[..., object], isolated_headrace: Path
) -> None:
    """The first run's task imports plistlib itself; the server records it under the task's name,
    in the user's cache (it outlives the state folder), and the next run's server imports it
    before forking that task, so its own process does not import it again."""
    import json

    spec = flow(LEARNING)

    def had_it() -> bool:
        summary = run(spec)
        assert summary.status == "succeeded"
        ref = summary.tasks["reads"].outputs["result"]
        return bool(json.loads(Path(ref.uri.removeprefix("file://")).read_text())["had_it"])

    assert had_it() is False
    learned = next((isolated_headrace.parent / "cache" / "preload").glob("learning-*.txt"))
    assert "reads\tplistlib" in learned.read_text().splitlines()
    assert not (isolated_headrace / "preload").exists()  # nothing of it in the state folder
    assert had_it() is True


def test_learned_file_keeps_each_tasks_own_list_and_older_bare_lines(tmp_path: Path) -> None:
    from pipelines.local.preload import read_learned

    path = tmp_path / "learned.txt"
    path.write_text("yaml\nextract\tsqlglot.optimizer\nextract\tsqlglot.optimizer\nscore\tpandas\nbad\tnot a module\n")
    learned = read_learned(path)
    assert learned.modules == ["yaml", "sqlglot.optimizer", "pandas"]
    assert learned.needs == {"extract": ["sqlglot.optimizer"], "score": ["pandas"]}
    assert path.read_text() == "yaml\nextract\tsqlglot.optimizer\nscore\tpandas\n"


def test_only_public_modules_outside_headrace_are_learned() -> None:
    from pipelines.local.forkserver import learnable

    assert learnable("sqlglot.optimizer.qualify") and learnable("plistlib")
    assert not learnable("pandas._libs.tslibs") and not learnable("_socket")
    assert not learnable("steps.backends.glue") and not learnable("__main__") and not learnable("this")


SLOW_PRELOADS = """
def _never_called():  # read, not run: the fork server preloads these between requests
    import slow_import_a, slow_import_b

@step
def quick():
    time.sleep(0.3)
    return {"ended": time.time()}

with Pipeline("slow-preloads") as pipeline:
    quick()
"""


def test_a_task_that_ends_while_the_server_imports_is_reported_at_once(
    flow: Callable[[str], str],
    run: Callable[..., object],
    store: RunStore,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two installed modules the step code names take 2.5 s each to import, so the fork server is
    importing one of them when the task ends (whenever its request came). Its SIGCHLD handler
    reports the end from inside the import: the run records it at once, not after the import."""
    import json

    site = tmp_path_factory.mktemp("site-packages")  # outside the project: preloaded, not followed
    for name in ("slow_import_a", "slow_import_b"):
        (site / f"{name}.py").write_text("import time\ntime.sleep(2.5)\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    summary = run(flow(SLOW_PRELOADS))
    assert summary.status == "succeeded"
    ref = summary.tasks["quick"].outputs["result"]
    ended = json.loads(Path(ref.uri.removeprefix("file://")).read_text())["ended"]
    (attempt,) = store.attempts(summary.run_id, "quick")
    assert attempt.finished is not None
    assert attempt.finished - ended < 1.0
