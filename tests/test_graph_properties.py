"""Property: any pipeline, however broken, either compiles to valid Argo YAML or is refused
with :class:`PipelineInvalid` whose every problem is one line. Never another exception."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipelines.argo import KINDS, compile_pipeline, to_yaml
from pipelines.graph import Backoff as BackoffSpec
from pipelines.graph import OutputRef, ParamRef, Pipeline, PipelineInvalid, Resources, Retry, Schedule, Task
from steps.core.settings import Settings
from tests.argo.checks import assert_valid_argo

VALID_NAMES = ["extract", "train", "score", "b-2", "size-train", "x" * 63]
INVALID_NAMES = ["Train", "with_underscore", "-dash", "dash-", "", "headrace-dag", "y" * 64, "名前"]
OUTPUTS = ["result", "model", "metrics", "model-rows", "Bad_Output"]
CRONS = ["0 3 * * *", "*/5 * * * MON-FRI", "@daily"]
BAD_CRONS = ["0 3 * * * *", "0 3 L * *", "bad", "0 25 * * *"]


def _fn(**kwargs: Any) -> None:
    return None


def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values 49 times in 50: about half the drawn pipelines compile, the rest break rules."""
    return st.integers(0, 49).flatmap(lambda n: invalid if n == 49 else valid)


names = mostly(
    st.one_of(st.sampled_from(VALID_NAMES), st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)),
    st.sampled_from(INVALID_NAMES),
)
resources = st.builds(
    Resources,
    cpu=mostly(st.sampled_from([None, "500m", "2", "1.5"]), st.sampled_from(["two", "0"])),
    memory=mostly(st.sampled_from([None, "1Gi", "512Mi"]), st.sampled_from(["lots", "100m", "0"])),
    gpu=mostly(st.integers(0, 2), st.just(-1)),
    cpu_limit=mostly(st.sampled_from([None, "4"]), st.just("x")),
    memory_limit=mostly(st.sampled_from([None, "16Gi"]), st.just("1Mi")),
    instance_count=mostly(st.integers(1, 3), st.just(0)),
)
retries = st.builds(
    Retry,
    limit=mostly(st.integers(0, 4), st.just(-1)),
    on=mostly(st.sampled_from(["failure", "error", "transient", "always"]), st.just("never")),
    backoff=st.builds(
        BackoffSpec,
        duration=mostly(st.sampled_from(["10s", 5, 2.5, "1d"]), st.just("soon")),
        factor=mostly(st.sampled_from([1, 2, 1.5]), st.just(0.5)),
        max_duration=mostly(st.sampled_from([None, "10m", 3600]), st.just("x")),
    ),
)
schedules = st.one_of(
    st.none(),
    st.builds(
        Schedule,
        cron=mostly(
            st.one_of(st.sampled_from(CRONS), st.lists(st.sampled_from(CRONS), min_size=1, max_size=2)),
            st.one_of(st.sampled_from(BAD_CRONS), st.just([])),
        ),
        timezone=mostly(st.sampled_from(["UTC", "Asia/Tokyo"]), st.just("Mars/Olympus")),
        concurrency=mostly(st.sampled_from(["Allow", "Forbid", "Replace"]), st.just("Skip")),
        starting_deadline_seconds=mostly(st.sampled_from([None, 0, 300]), st.just(-1)),
    ),
)


@st.composite
def pipelines(draw: st.DrawFn) -> Pipeline:
    """A random DAG: tasks read outputs of random other tasks (later ones too, so cycles occur)."""
    pipeline = Pipeline(
        draw(mostly(st.sampled_from(["nightly", "p", "a" * 52]), st.sampled_from(["Bad Name", "z" * 53]))),
        schedule=draw(schedules),
        params=draw(
            mostly(st.sampled_from([None, {"limit": 10}, {"limit": 1.5, "flag": True}]), st.just({"bad-name": 1}))
        ),
        labels=draw(mostly(st.sampled_from([None, {"team": "ml"}]), st.just({"team": "M L"}))),
    )
    count = draw(mostly(st.integers(1, 7), st.just(0)))
    task_names = [draw(mostly(st.just(f"t{i}"), names)) for i in range(count)]
    outputs = [
        draw(
            mostly(
                st.sampled_from([("result",), ("model", "metrics"), ()]),
                st.lists(st.sampled_from(OUTPUTS), max_size=3).map(tuple),
            )
        )
        for _ in range(count)
    ]
    for index, name in enumerate(task_names):
        arguments: dict[str, Any] = {}
        for argument in draw(st.lists(st.sampled_from(["data", "model", "day", "n"]), max_size=3, unique=True)):
            kind = draw(st.sampled_from(["earlier", "earlier", "any", "param", "literal", "unknown"]))
            if kind in ("earlier", "any") and (index or kind == "any") and count:
                other = draw(st.integers(0, (index - 1) if kind == "earlier" else count - 1))
                choices = [*outputs[other], ""] if len(outputs[other]) != 1 else list(outputs[other])
                arguments[argument] = OutputRef(task_names[other], draw(st.sampled_from(choices or [""])))
            elif kind == "param":
                arguments[argument] = ParamRef(draw(mostly(st.just("run_date"), st.just("unknown"))))
            elif kind == "unknown":
                arguments[argument] = OutputRef(draw(names), "result")
            else:
                arguments[argument] = draw(st.one_of(st.integers(), st.text(max_size=5)))
        after = (
            tuple(draw(st.lists(st.sampled_from(task_names), max_size=1))) if task_names and draw(st.booleans()) else ()
        )
        pipeline.add(
            Task(
                name=name,
                fn=_fn,
                arguments=arguments,
                outputs=outputs[index],
                resources=draw(resources),
                retry=draw(retries),
                timeout=draw(mostly(st.sampled_from([None, "1h", 90, "1d"]), st.sampled_from(["never", 0]))),
                sizing=draw(mostly(st.sampled_from(["static", "auto"]), st.just("maybe"))),
                after=after,
            )
        )
    return pipeline


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipeline=pipelines())
def test_any_pipeline_compiles_to_valid_argo_or_gets_one_line_problems(pipeline: Pipeline) -> None:
    for kind in KINDS:
        try:
            obj = compile_pipeline(pipeline, spec="flows/daily.py:pipeline", kind=kind, settings=Settings())
        except PipelineInvalid as error:
            event(f"{kind}: refused")
            assert error.problems
            for problem in error.problems:
                assert isinstance(problem, str) and problem
                assert "\n" not in problem
                assert problem.startswith(f"pipeline {pipeline.name}")
            continue
        event(f"{kind}: compiled")
        text = to_yaml(obj)
        assert yaml.safe_load(text) == obj
        again = compile_pipeline(pipeline, spec="flows/daily.py:pipeline", kind=kind, settings=Settings())
        assert to_yaml(again) == text
        assert_valid_argo(obj)


@settings(max_examples=100, deadline=None)
@given(pipeline=pipelines())
def test_problems_never_raise_and_agree_with_check(pipeline: Pipeline) -> None:
    problems = pipeline.problems()
    if problems:
        try:
            pipeline.check()
        except PipelineInvalid as error:
            assert error.problems == problems
        else:  # pragma: no cover - the assertion below explains
            raise AssertionError("check() passed a pipeline with problems")
    else:
        assert pipeline.check() is pipeline
        assert sorted(pipeline.topological_order()) == sorted(pipeline.tasks)
