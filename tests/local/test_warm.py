"""A warm interpreter forks each script a task starts, as that task's own ``python <argv>``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.local.preload import frameworks_named
from steps.runtime.warm import ENV, WarmServer, environment, popen

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WarmServer]:
    warm = WarmServer(sys.executable, ["json", "rich"], dict(os.environ), str(ROOT), str(tmp_path / "learned.txt"))
    yield warm
    warm.close()


def env_with(server: WarmServer, **extra: str) -> dict[str, str]:
    return {**os.environ, **environment([server]), **extra}


def test_a_forked_script_sees_its_own_command_line_folder_environment_and_outputs(
    server: WarmServer, tmp_path: Path
) -> None:
    code = (
        "import os, sys, json; print(json.dumps([sys.argv, os.getcwd(), os.environ['ONLY_HERE'], __name__,"
        " os.getsid(0) == os.getpid()])); print('to stderr', file=sys.stderr); sys.exit(3)"
    )
    process = popen(
        [sys.executable, "-c", code, "a", "b"], cwd=tmp_path, env=env_with(server, ONLY_HERE="yes"), merge_stderr=False
    )
    assert process is not None
    with process:
        out, err = process.communicate()
    assert process.returncode == 3
    assert json.loads(out) == [["-c", "a", "b"], str(tmp_path), "yes", "__main__", True]
    assert err == "to stderr\n"


def test_a_script_runs_as_main_with_its_folder_first_on_the_path(server: WarmServer, tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("VALUE = 'found beside the script'\n")
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import helper
            if __name__ == "__main__":
                print(helper.VALUE, sys.argv[1:])
                raise ValueError("the script's own error")
            """
        )
    )
    process = popen(
        [sys.executable, "--", str(script), "--max_iter", "15"], cwd=tmp_path, env=env_with(server), merge_stderr=True
    )
    assert process is not None and process.stdout is not None
    with process:
        lines = process.stdout.read().splitlines()
    assert process.returncode == 1
    assert lines[0] == "found beside the script ['--max_iter', '15']"
    assert lines[-1] == "ValueError: the script's own error"


def test_each_script_starts_from_the_preloaded_state_not_the_previous_scripts(server: WarmServer) -> None:
    code = "import json; print(getattr(json, 'seen', 'fresh')); json.seen = 'changed'"
    outputs = []
    for _ in range(2):
        process = popen([sys.executable, "-c", code], cwd=ROOT, env=env_with(server), merge_stderr=True)
        assert process is not None and process.stdout is not None
        with process:
            outputs.append(process.stdout.read().strip())
    assert outputs == ["fresh", "fresh"]


def test_the_script_gets_the_tasks_memory_limit(server: WarmServer, tmp_path: Path) -> None:
    """The task's address-space limit, plus only what the preloaded modules had reserved: a
    script that allocates far more fails as it would have as the task's own child."""
    owner = textwrap.dedent(
        f"""
        import resource, sys
        from steps.runtime.warm import popen
        limit = 2 * 1024**3
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        code = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0]); b = bytearray(8 * 1024**3)"
        p = popen([sys.executable, "-c", code], cwd={str(tmp_path)!r}, env=dict(__import__("os").environ), merge_stderr=True)
        with p:
            out = p.stdout.read()
        print(p.returncode, out.splitlines()[0], out.splitlines()[-1])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", owner], env=env_with(server), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    code, limit, last = done.stdout.split(maxsplit=2)
    assert code == "1" and last.strip() == "MemoryError"
    assert 2 * 1024**3 <= int(limit) < 4 * 1024**3


def test_the_script_dies_with_the_task_that_started_it(server: WarmServer, tmp_path: Path) -> None:
    owner = textwrap.dedent(
        f"""
        import sys, time
        from steps.runtime.warm import popen
        p = popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd={str(tmp_path)!r},
                  env=dict(__import__("os").environ), merge_stderr=True)
        print(p.pid, flush=True)
        time.sleep(60)
        """
    )
    task = subprocess.Popen(
        [sys.executable, "-c", owner], env=env_with(server), cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert task.stdout is not None
    child = int(task.stdout.readline())
    os.kill(child, 0)  # running
    task.send_signal(signal.SIGKILL)
    task.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_installed_modules_a_script_imported_are_learned_for_the_next_server(
    server: WarmServer, tmp_path: Path
) -> None:
    process = popen(
        [sys.executable, "-c", "import yaml, rich.table"], cwd=tmp_path, env=env_with(server), merge_stderr=True
    )
    assert process is not None
    with process:
        pass
    learned = (tmp_path / "learned.txt").read_text().split()
    assert "yaml" in learned and "rich.table" in learned
    assert not any(name.startswith(("json", "steps", "_")) for name in learned)  # stdlib, ours, private


def test_without_a_warm_server_for_that_python_the_caller_starts_it_itself(tmp_path: Path) -> None:
    other = {**os.environ, ENV: json.dumps({"/elsewhere/bin/python": "headrace-warm-gone"})}
    assert popen([sys.executable, "-c", "pass"], cwd=tmp_path, env=other, merge_stderr=True) is None
    gone = {**os.environ, ENV: json.dumps({sys.executable: "headrace-warm-gone"})}
    assert popen([sys.executable, "-c", "pass"], cwd=tmp_path, env=gone, merge_stderr=True) is None
    assert popen([sys.executable, "-m", "pip"], cwd=tmp_path, env=gone, merge_stderr=True) is None


def test_the_run_keeps_warm_the_framework_its_steps_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mlflow_steps.py").write_text(
        textwrap.dedent(
            """
            from steps import sagemaker

            def train(ctx, data):
                return sagemaker.train(ctx, entry_point="train.py", data=data, framework="sklearn",
                                       framework_version="1.2-1")

            def other(ctx, version):
                return sagemaker.train(ctx, entry_point="train.py", framework="sklearn", framework_version=version)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert frameworks_named(["mlflow_steps"], str(tmp_path)) == [("sklearn", "1.2-1")]


def test_a_script_setting_what_libraries_read_when_loaded_gets_a_fresh_interpreter(
    server: WarmServer, tmp_path: Path
) -> None:
    """The preloaded libraries already read OMP_NUM_THREADS; a script asking for another value
    is declined, so the caller starts it as a new process that honours it."""
    asked = env_with(server, OMP_NUM_THREADS="1")
    assert popen([sys.executable, "-c", "pass"], cwd=tmp_path, env=asked, merge_stderr=True) is None
    same = popen([sys.executable, "-c", "pass"], cwd=tmp_path, env=env_with(server), merge_stderr=True)
    assert same is not None
    with same:
        pass
    assert same.returncode == 0


def test_what_a_preloaded_library_sets_in_the_environment_does_not_decline_every_script(tmp_path: Path) -> None:
    """scikit-learn sets KMP_* variables when imported; the server compares a script's
    environment with the one it was started with, not with its own after preloading."""
    (tmp_path / "sets_env.py").write_text("import os\nos.environ['KMP_INIT_AT_FORK'] = 'FALSE'\n")
    warm = WarmServer(sys.executable, ["sets_env"], dict(os.environ), str(tmp_path), str(tmp_path / "learned.txt"))
    try:
        process = popen(
            [sys.executable, "-c", "import sys; print('sets_env' in sys.modules)"],
            cwd=tmp_path,
            env=env_with(warm),
            merge_stderr=True,
        )
        assert process is not None and process.stdout is not None
        with process:
            assert process.stdout.read().strip() == "True"
        # a task that imported the same library itself has the same value: still warm
        same = env_with(warm, KMP_INIT_AT_FORK="FALSE")
        process = popen([sys.executable, "-c", "pass"], cwd=tmp_path, env=same, merge_stderr=True)
        assert process is not None
        with process:
            pass
        other = env_with(warm, KMP_INIT_AT_FORK="TRUE")
        assert popen([sys.executable, "-c", "pass"], cwd=tmp_path, env=other, merge_stderr=True) is None
    finally:
        warm.close()
