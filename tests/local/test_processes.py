"""A task owns its processes: nothing a step starts outlives the task, in every mode and every end.

Each step below starts three sleepers carrying a unique token in their command line: one in the
task's session, one detached (``start_new_session``) and one double-forked (its parent exits at
once, so it is re-parented). The tests scan ``/proc`` for the token, as an operator would with
``pgrep -f``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipelines.runs import RunStore

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process ownership uses Linux /proc")

SPAWNER = """
import subprocess

def start_sleepers(token):
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)", token]
    subprocess.Popen(sleeper)  # in the task's own session
    subprocess.Popen(sleeper, start_new_session=True)  # detached
    double_fork = "import subprocess, sys; subprocess.Popen(sys.argv[1:], start_new_session=True)"
    subprocess.Popen([sys.executable, "-c", double_fork, *sleeper]).wait()  # its parent is gone at once
    deadline = time.monotonic() + 30
    while len(_with_token(token)) < 3:
        assert time.monotonic() < deadline, "the sleepers did not start"
        time.sleep(0.02)

def _with_token(token):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\\0"):
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
                    found.append(int(pid))
        except OSError:
            pass
    return found

@step(timeout=TIMEOUT)
def work(token, ending, folder, ctx):
    start_sleepers(token)
    Path(folder, "task.pid").write_text(str(os.getpid()))
    Path(folder, "started").write_text("yes")
    if ending == "stuck" and ctx.attempt == 1:
        sum(range(10**13))  # hours in C code holding the GIL: no Python signal handler runs
    if ending == "fails":
        raise RuntimeError("the step failed after starting its helpers")
    if ending in ("hangs", "hangs-once"):
        while not Path(folder, "release").exists():
            time.sleep(0.05)
    return 1

with Pipeline("spawner") as pipeline:
    work(token=pipeline.param("token", ""), ending=pipeline.param("ending", "succeeds"),
         folder=pipeline.param("folder", ""))
"""

MODES = {
    "forked": {},
    "subprocess": {"fork_server": False},
    "in-process": {"in_process": True},
}
CLI_MODES = {"forked": [], "subprocess": ["--no-fork-server"], "in-process": ["--in-process"]}


def with_token(token: str) -> list[int]:
    """Live (not zombie) processes with ``token`` as a command-line argument."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
            if token.encode() in argv and state != "Z":
                found.append(int(pid))
        except OSError:
            continue
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def none_left(token: str, seconds: float = 10.0) -> list[int]:
    """Wait up to ``seconds`` for every process with ``token`` to end; returns those still alive."""
    deadline = time.monotonic() + seconds
    while (left := with_token(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _kill_all(token: str) -> None:
    for pid in with_token(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_started(runner: subprocess.Popen[str], folder: Path) -> None:
    """Wait for the step to say it started its processes, failing at once if ``headrace`` ended."""
    deadline = time.monotonic() + 60
    while not (folder / "started").exists():
        assert runner.poll() is None, runner.communicate()
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)


@pytest.fixture
def token() -> Iterator[str]:
    value = f"headrace-test-{uuid.uuid4().hex}"
    yield value
    _kill_all(value)  # never leave sleepers behind, even when the test fails


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("ending", ["succeeds", "fails", "times out"])
def test_processes_a_step_starts_end_with_its_task(
    flow: Callable[[str], str],
    run: Callable[..., object],
    tmp_path: Path,
    token: str,
    mode: str,
    ending: str,
) -> None:
    spec = flow(SPAWNER.replace("TIMEOUT", "2" if ending == "times out" else "None"))
    params = {"token": token, "ending": "hangs" if ending == "times out" else ending, "folder": str(tmp_path)}
    summary = run(spec, params=params, **MODES[mode])
    assert (tmp_path / "started").exists()
    task = summary.tasks["work"]  # type: ignore[attr-defined]
    assert task.status == ("succeeded" if ending == "succeeds" else "failed")
    assert ("timeout" in task.reason) == (ending == "times out")
    assert none_left(token, seconds=3) == [], f"processes outlived the {mode} task that {ending}"


DAEMON = (
    SPAWNER.replace(
        "    start_sleepers(token)\n",
        "    daemonize(token)\n    start_sleepers(token)\n",
    )
    .replace(
        "while len(_with_token(token)) < 3:",
        "while len(_with_token(token)) < 4:",
    )
    .replace(
        "def _with_token(token):",
        """def daemonize(token):
    # The classic daemon: fork, a new session, fork again; the first child exits at once, so the
    # sleeper is re-parented to init (an in-process step forks the runner itself).
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", token])
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    deadline = time.monotonic() + 30
    while not _with_token(token):
        assert time.monotonic() < deadline, "the daemon did not start"
        time.sleep(0.02)

def _with_token(token):""",
    )
    .replace(
        "with Pipeline(",
        """@step(timeout=120)
def watch(token, folder):
    # Runs beside work: once work started its processes, wait for them to be gone, and record
    # what is left while this run goes on (the run's own end would kill them anyway).
    while not Path(folder, "started").exists():
        time.sleep(0.02)
    deadline = time.monotonic() + 20
    while _with_token(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    Path(folder, "left").write_text(json.dumps(_with_token(token)))
    Path(folder, "release").write_text("yes")  # a timed-out in-process step's thread can stop now
    return 1

with Pipeline(""",
    )
    .replace(
        '         folder=pipeline.param("folder", ""))',
        '         folder=pipeline.param("folder", ""))\n    watch(token=pipeline.param("token", ""), folder=pipeline.param("folder", ""))',
    )
)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("ending", ["succeeds", "fails", "times out"])
def test_a_daemon_a_step_starts_ends_with_its_task_while_the_run_goes_on(
    flow: Callable[[str], str],
    run: Callable[..., object],
    tmp_path: Path,
    token: str,
    mode: str,
    ending: str,
) -> None:
    spec = flow(DAEMON.replace("TIMEOUT", "2" if ending == "times out" else "None"))
    params = {"token": token, "ending": "hangs" if ending == "times out" else ending, "folder": str(tmp_path)}
    summary = run(spec, params=params, parallel=2, **MODES[mode])
    tasks = summary.tasks  # type: ignore[attr-defined]
    assert tasks["work"].status == ("succeeded" if ending == "succeeds" else "failed")
    assert ("timeout" in tasks["work"].reason) == (ending == "times out")
    assert tasks["watch"].status == "succeeded"
    left = json.loads((tmp_path / "left").read_text())
    assert left == [], f"processes of the {mode} task that {ending} outlived it while the run went on"


@pytest.mark.parametrize("mode", list(CLI_MODES))
def test_ctrl_c_cancels_the_task_and_ends_every_process_it_started(
    flow: Callable[[str], str],
    tmp_path: Path,
    store: RunStore,
    token: str,
    headrace: Callable[..., subprocess.Popen[str]],
    mode: str,
) -> None:
    spec = flow(DAEMON.replace("TIMEOUT", "None"))
    args = ["-p", f"token={token}", "-p", "ending=hangs", "-p", f"folder={tmp_path}"]
    runner = headrace("run", spec, *args, *CLI_MODES[mode], cwd=tmp_path)
    wait_started(runner, tmp_path)
    assert len(with_token(token)) == 4
    runner.send_signal(signal.SIGINT)
    runner.communicate(timeout=60)
    assert runner.returncode == 130
    assert none_left(token, seconds=3) == [], f"processes of the cancelled {mode} task outlived it"
    (record,) = store.list_runs(pipeline="spawner")
    assert {t.task: t.status for t in store.tasks(record.id)}["work"] == "cancelled"


@pytest.mark.parametrize("mode", list(CLI_MODES))
@pytest.mark.parametrize("ending", ["hangs", "stuck"], ids=["waiting", "stuck-holding-the-gil"])
def test_sigkill_of_the_runner_leaves_no_task_process_and_resume_completes(
    flow: Callable[[str], str],
    tmp_path: Path,
    store: RunStore,
    token: str,
    headrace: Callable[..., subprocess.Popen[str]],
    mode: str,
    ending: str,
) -> None:
    spec = flow(SPAWNER.replace("TIMEOUT", "None"))
    args = ["-p", f"token={token}", "-p", f"ending={ending}", "-p", f"folder={tmp_path}"]
    runner = headrace("run", spec, *args, *CLI_MODES[mode], cwd=tmp_path)
    wait_started(runner, tmp_path)
    assert len(with_token(token)) == 3
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    assert none_left(token) == [], f"processes of the {mode} task outlived its killed runner"
    task = int((tmp_path / "task.pid").read_text())
    deadline = time.monotonic() + 10
    while _running(task) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(task):
        os.kill(task, signal.SIGKILL)
        pytest.fail(f"the {mode} task process outlived its killed runner")

    (record,) = store.list_runs(pipeline="spawner")
    (tmp_path / "release").write_text("yes")
    resumed = headrace("resume", record.id, cwd=tmp_path)
    _out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert store.get_run(record.id).status == "succeeded"  # type: ignore[union-attr]
    assert none_left(token, seconds=3) == []


TRAINING = '''
from steps.backends import sagemaker

SCRIPT = """
import argparse, os, time
from pathlib import Path
parser = argparse.ArgumentParser()
parser.add_argument("--token")
parser.add_argument("--folder")
args = parser.parse_args()
Path(args.folder, "training").write_text(str(os.getpid()))
while not Path(args.folder, "release").exists():
    time.sleep(0.05)
Path(args.folder, f"model-written-by-{os.getpid()}").write_text("a model")
Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("a model")
"""

@step
def fit(token, folder, ctx):
    source = Path(folder, "src")
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(SCRIPT)
    data = ctx.store.put_bytes(b"x,label\\n1,0\\n", ctx.output_key("data.csv"))
    return sagemaker.train(ctx, "train.py", str(source), data, hyperparameters={"token": token, "folder": folder})

with Pipeline("local-training") as pipeline:
    fit(token=pipeline.param("token", ""), folder=pipeline.param("folder", ""))
'''


@pytest.mark.parametrize("mode", list(CLI_MODES))
def test_sigkill_of_the_runner_stops_local_sagemaker_training_before_it_writes_its_model(
    flow: Callable[[str], str],
    tmp_path: Path,
    store: RunStore,
    token: str,
    headrace: Callable[..., subprocess.Popen[str]],
    mode: str,
) -> None:
    spec = flow(TRAINING)
    runner = headrace("run", spec, "-p", f"token={token}", "-p", f"folder={tmp_path}", *CLI_MODES[mode], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "training").exists():
        assert runner.poll() is None, runner.communicate()
        assert time.monotonic() < deadline, "the training script never started"
        time.sleep(0.05)
    assert with_token(token), "the training script does not carry the token"
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    assert none_left(token) == [], f"the training script outlived its killed runner ({mode})"
    (tmp_path / "release").write_text("yes")
    time.sleep(0.5)
    assert list(tmp_path.glob("model-written-by-*")) == [], "a killed run's training wrote its model"

    (record,) = store.list_runs(pipeline="local-training")
    resumed = headrace("resume", record.id, cwd=tmp_path)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert store.get_run(record.id).status == "succeeded"  # type: ignore[union-attr]
    assert len(list(tmp_path.glob("model-written-by-*"))) == 1


SPARK_SCORING = """
import pickle
import pandas as pd
from steps import glue
from steps.backends.model_io import pack_dir

@step
def prep():
    return pd.DataFrame({"id": range(200), "x": [float(i) for i in range(200)]})

@step
def model(ctx):
    folder = Path(ctx.settings.state_path, "model")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps({"w": 2.0}))
    packed = pack_dir(folder, folder.parent / "model.tar.gz")
    return ctx.store.put_file(packed, ctx.output_key("model.tar.gz"), format="model")

def score(batch, model):
    # Runs in Spark's Python worker, under Spark's JVM, under the driver the task started.
    folder = Path(os.environ["SPARK_TEST_FOLDER"])
    Path(folder, "scoring").write_text(str(os.getpid()))
    while not Path(folder, "release").exists():
        time.sleep(0.05)
    return pd.DataFrame({"id": batch["id"], "y": batch["x"] * model["w"]})

infer = step(glue.batch_infer, name="score")

with Pipeline("spark-scoring") as pipeline:
    infer(score=score, model=model(), data=prep(), batch_size=100)
"""


def with_environment(entry: str) -> list[int]:
    """Live processes whose environment holds ``entry`` (``NAME=value``)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.encode() in environ and _running(int(pid)):
            found.append(int(pid))
    return found


@pytest.mark.spark
@pytest.mark.slow
def test_sigkill_of_the_runner_during_local_spark_scoring_leaves_no_jvm_or_worker_and_resume_completes(
    flow: Callable[[str], str],
    tmp_path: Path,
    store: RunStore,
    token: str,
    headrace: Callable[..., subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Glue step on local Spark: the driver, Spark's JVM and its Python workers all inherit the
    runner's environment, so a token there finds every one of them, however they were started."""
    monkeypatch.setenv("HEADRACE_GLUE_ENGINE", "spark")
    monkeypatch.setenv("SPARK_TEST_FOLDER", str(tmp_path))
    monkeypatch.setenv("SPARK_TEST_TOKEN", token)
    spec = flow(SPARK_SCORING)
    runner = headrace("run", spec, cwd=tmp_path)
    deadline = time.monotonic() + 240
    while not (tmp_path / "scoring").exists():
        assert runner.poll() is None, runner.communicate()
        assert time.monotonic() < deadline, "Spark never started scoring"
        time.sleep(0.1)
    spark = [pid for pid in with_environment(f"SPARK_TEST_TOKEN={token}") if pid != runner.pid]
    assert any(b"java" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in spark), "no JVM seen"
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    deadline = time.monotonic() + 10
    while (left := with_environment(f"SPARK_TEST_TOKEN={token}")) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == [], "Spark processes outlived the killed runner"

    (record,) = store.list_runs(pipeline="spark-scoring")
    (tmp_path / "release").write_text("yes")
    resumed = headrace("resume", record.id, cwd=tmp_path)
    _out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    assert store.get_run(record.id).status == "succeeded"  # type: ignore[union-attr]
    assert with_environment(f"SPARK_TEST_TOKEN={token}") == []


DAEMON_BY_OTHER_MEANS = DAEMON.replace("    daemonize(token)\n", "    HOW(token)\n").replace(
    "def _with_token(token):",
    """import threading

SHELL_DAEMON = "setsid {python} -c 'import time; time.sleep(300)' {token} >/dev/null 2>&1 &"

def _wait_for(token):
    deadline = time.monotonic() + 30
    while not _with_token(token):
        assert time.monotonic() < deadline, "the daemon did not start"
        time.sleep(0.02)

def from_a_thread(token):
    # the step's own thread daemonizes (fork, setsid, fork)
    worker = threading.Thread(target=daemonize, args=(token,))
    worker.start()
    worker.join()

def through_os_system(token):
    # C system() forks without Python's at-fork hooks
    os.system(SHELL_DAEMON.format(python=sys.executable, token=token))
    _wait_for(token)

def through_posix_spawn(token):
    command = SHELL_DAEMON.format(python=sys.executable, token=token)
    os.waitpid(os.posix_spawn("/bin/sh", ["/bin/sh", "-c", command], dict(os.environ)), 0)
    _wait_for(token)

def _with_token(token):""",
)


@pytest.mark.parametrize("how", ["from_a_thread", "through_os_system", "through_posix_spawn"])
def test_a_daemon_an_in_process_step_starts_by_other_means_ends_with_its_task(
    flow: Callable[[str], str], run: Callable[..., object], tmp_path: Path, token: str, how: str
) -> None:
    """An in-process step shares the runner's process: a daemon it starts from its own thread, with
    ``os.system`` or with ``os.posix_spawn`` still ends with its task, while the run goes on."""
    spec = flow(DAEMON_BY_OTHER_MEANS.replace("HOW", how).replace("TIMEOUT", "None"))
    params = {"token": token, "ending": "succeeds", "folder": str(tmp_path)}
    summary = run(spec, params=params, parallel=2, in_process=True)
    tasks = summary.tasks  # type: ignore[attr-defined]
    assert tasks["work"].status == "succeeded", tasks["work"].reason
    assert tasks["watch"].status == "succeeded"
    left = json.loads((tmp_path / "left").read_text())
    assert left == [], f"a daemon started {how.replace('_', ' ')} outlived its in-process task"
