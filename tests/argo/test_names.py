"""Every name, label and annotation the compiler emits obeys Argo's and Kubernetes' own rules.

Property: whatever pipeline ``headrace validate`` accepts compiles to objects that pass Argo's
name rules (``tests/argo/argo_rules.py``, from Argo's validate.go) and Kubernetes' rules for
names, labels and annotations (``tests/argo/kube_rules.py``, from apimachinery). Before these
rules were applied, a task named ``2024-extract`` or a sized task of 59-63 characters passed
validation and failed only on the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipelines.argo import KINDS, compile_pipeline
from pipelines.argo.submit import prepare
from pipelines.graph import OutputRef, Pipeline, Resources, Retry, Schedule, Task
from steps.core.settings import Settings
from tests.argo import argo_rules, kube_rules


def _fn(**kwargs: Any) -> None:
    return None


def _long(head: str, length: int) -> str:
    return head + "x" * (length - 1)


short_names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
letter_first = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
long_names = st.builds(_long, st.sampled_from("a7"), st.integers(48, 66))
#: Mostly names validation accepts, so that many drawn pipelines reach the compiler.
names = st.one_of(letter_first, letter_first, letter_first, letter_first, short_names, long_names)
label_keys = st.one_of(
    st.sampled_from(["team", "app.kubernetes.io/part-of", "Team_1", "x" * 63, "x" * 64, "a" * 254 + "/b"]),
    st.from_regex(r"([a-z0-9]{1,6}(\.[a-z0-9]{1,6})?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?", fullmatch=True),
)
label_values = st.one_of(
    st.sampled_from(["ml", "", "1e3", "0o17", "yes", "off", "x" * 63, "x" * 64]),
    st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?", fullmatch=True),
)
optional_names = st.one_of(
    st.none(), st.none(), st.none(), st.sampled_from(["ml", "ml-team", "2nd", "x" * 63, "x" * 64, "a.b", "Bad"])
)


@st.composite
def pipelines(draw: st.DrawFn) -> Pipeline:
    """A random pipeline whose names are drawn near Argo's and Kubernetes' edges."""
    pipeline = Pipeline(
        draw(st.one_of(short_names, st.builds(_long, st.sampled_from("p9"), st.integers(40, 56)))),
        schedule=Schedule("@daily") if draw(st.booleans()) else None,
        params=draw(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True), st.text(max_size=4))),
        labels=draw(st.dictionaries(label_keys, label_values, max_size=2)),
        namespace=draw(optional_names),
        service_account=draw(optional_names),
        description=draw(st.text(max_size=20)),
    )
    task_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    outputs = [tuple(draw(st.lists(short_names, max_size=2, unique=True))) for _ in task_names]
    for index, name in enumerate(task_names):
        arguments: dict[str, Any] = {}
        readable = [i for i in range(index) if outputs[i]]
        if draw(st.booleans()) and readable:
            source = draw(st.sampled_from(readable))
            arguments["data"] = OutputRef(task_names[source], draw(st.sampled_from(outputs[source])))
        pipeline.add(
            Task(
                name=name,
                fn=_fn,
                arguments=arguments,
                outputs=outputs[index],
                resources=Resources(cpu="1", memory="1Gi"),
                retry=Retry(limit=draw(st.integers(0, 2))),
                sizing=draw(st.sampled_from(["static", "auto"])),
                after=tuple(draw(st.lists(st.sampled_from(task_names[:index]), max_size=1))) if index else (),
            )
        )
    return pipeline


def _pipeline(tasks: Sequence[tuple[str, str, tuple[str, ...]]], **options: Any) -> Pipeline:
    """A pipeline of (name, sizing, after) tasks."""
    pipeline = Pipeline("names", **options)
    for name, sizing, after in tasks:
        pipeline.add(Task(name=name, fn=_fn, arguments={}, outputs=("result",), sizing=sizing, after=after))
    return pipeline


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipeline=pipelines())
@example(pipeline=_pipeline([("2024-extract", "auto", ())]))
@example(pipeline=_pipeline([("extract", "static", ()), ("2024-train", "static", ("extract",))]))
@example(pipeline=_pipeline([("t" * 60, "auto", ())]))
@example(pipeline=_pipeline([("t", "static", ())], labels={"a" * 64: "v"}))
@example(pipeline=_pipeline([("t", "static", ())], namespace="x" * 64))
def test_every_pipeline_validate_accepts_compiles_to_names_argo_and_kubernetes_accept(pipeline: Pipeline) -> None:
    if pipeline.problems():
        return
    for kind in KINDS:
        if kind == "cron" and pipeline.schedule is None:
            continue
        obj = compile_pipeline(pipeline, spec="flows/daily.py:pipeline", kind=kind, settings=Settings())
        assert argo_rules.errors(obj) == [], kind
        assert kube_rules.errors(obj) == [], kind


def test_argo_rules_catch_a_task_name_starting_with_a_digit_in_a_dag_with_dependencies() -> None:
    pipeline = _pipeline([("extract", "static", ()), ("train", "static", ("extract",))])
    obj = compile_pipeline(pipeline, spec="flows/daily.py:pipeline", settings=Settings())
    assert argo_rules.errors(obj) == []
    obj["spec"]["templates"][0]["dag"]["tasks"][1]["name"] = "2-train"
    assert argo_rules.errors(obj) == [
        "templates.headrace-dag.tasks.2-train: name cannot begin with a digit when using dependencies"
    ]


def test_kube_rules_catch_a_label_value_over_63_characters() -> None:
    obj = compile_pipeline(_pipeline([("t", "static", ())]), spec="flows/daily.py:pipeline", settings=Settings())
    assert kube_rules.errors(obj) == []
    obj["spec"]["templates"][1]["metadata"]["labels"]["headrace.dev/task"] = "size-" + "t" * 59
    (problem,) = kube_rules.errors(obj)
    assert "spec.templates[1].metadata.labels" in problem and "0-63" in problem


def test_validate_refuses_a_task_name_starting_with_a_digit_and_says_to_start_with_a_letter() -> None:
    (problem,) = _pipeline([("2024-extract", "static", ())]).problems()
    assert problem.startswith("pipeline names, task 2024-extract: name '2024-extract' starts with a digit")
    assert problem.endswith("start it with a letter")


def test_validate_refuses_a_sized_task_name_whose_sizing_label_would_pass_63_characters() -> None:
    assert _pipeline([("t" * 58, "auto", ())]).problems() == []
    (problem,) = _pipeline([("t" * 59, "auto", ())]).problems()
    assert "59 characters" in problem and "at most 58" in problem and "size-<name>" in problem
    assert _pipeline([("t" * 63, "static", ())]).problems() == []


def test_validate_refuses_namespace_service_account_and_label_keys_kubernetes_would_refuse() -> None:
    ok = [("t", "static", ())]
    assert _pipeline(ok, namespace="ml", service_account="runner.ml", labels={"a.b/c": "d"}).problems() == []
    assert "namespace" in _pipeline(ok, namespace="a.b").problems()[0]
    assert "service_account" in _pipeline(ok, service_account="Runner").problems()[0]
    assert "label" in _pipeline(ok, labels={"k" * 64: "v"}).problems()[0]
    assert "label" in _pipeline(ok, labels={"-bad.prefix/k": "v"}).problems()[0]


@settings(max_examples=200, deadline=None)
@given(run_date=st.one_of(st.text(max_size=80), st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())))
@example(run_date="2026-11-01 03:00")
@example(run_date="2026-11-01T03:00:00+05:30")
def test_any_run_date_becomes_a_label_kubernetes_accepts_at_submit(run_date: str) -> None:
    obj = compile_pipeline(_pipeline([("t", "static", ())]), spec="flows/daily.py:pipeline", settings=Settings())
    submitted = prepare(obj, params={"run_date": run_date}, namespace="ml")
    assert kube_rules.errors(submitted) == []
    assert argo_rules.errors(submitted) == []
