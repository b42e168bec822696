"""The pipeline model as a user builds it: dependencies, order, parameters."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import Param, Pipeline, Resources, step
from pipelines.graph import OutputRef, ParamRef
from steps.core.errors import NotFoundError, PipelineDefinitionError, UserError


@step
def load(day: str = "") -> str:
    return day


@step
def use(data: Any = None, other: Any = None) -> Any:
    return data


@step(outputs=("model", "metrics"))
def train(data: Any = None) -> dict[str, Any]:
    return {}


def test_dependencies_follow_outputs_read_then_after() -> None:
    with Pipeline("deps") as p:
        a = load(name="a")
        b = load(name="b")
        use(data=b, other=a, after=["b", "a"], name="c")
    assert p.task("c").upstream == ("b", "a")
    assert p.task("c").input_refs() == [OutputRef("b", "result"), OutputRef("a", "result")]
    assert p.downstream("a") == ["c"]


def test_topological_order_keeps_definition_order_between_independent_tasks() -> None:
    with Pipeline("order") as p:
        use(data=OutputRef("z", "result"), name="y")
        load(name="z")
        load(name="x")
    assert p.topological_order() == ["z", "x", "y"]


def test_topological_order_of_an_invalid_pipeline_raises_its_problems() -> None:
    with Pipeline("loop") as p:
        use(name="a", after=["b"])
        use(name="b", after=["a"])
    with pytest.raises(PipelineDefinitionError, match="cycle"):
        p.topological_order()


def test_picking_one_output_of_a_multi_output_task() -> None:
    with Pipeline("pick") as p:
        model = train()
        use(data=model["metrics"], other=model.output("model"))
    assert p.task("use").input_refs() == [OutputRef("train", "metrics"), OutputRef("train", "model")]
    assert p.problems() == []


def test_run_date_is_built_in_and_parameters_resolve_with_overrides() -> None:
    with Pipeline("params", params={"limit": 10, "flag": False}) as p:
        load(day=p.run_date)
        use(data=p.param("extra", "x"))
    assert list(p.params) == ["run_date", "limit", "flag", "extra"]
    assert p.resolve_params({"limit": "20"}) == {"run_date": "", "limit": "20", "flag": "False", "extra": "x"}
    assert p.convert_params({"limit": "20", "flag": "yes"}) == {"limit": 20, "flag": True}
    assert p.task("load").param_refs() == ["run_date"]
    assert str(ParamRef("limit")) == "{{inputs.parameters.limit}}"


def test_unknown_parameter_override_lists_the_known_ones() -> None:
    with Pipeline("params", params=[Param("limit", 5)]) as p:
        load()
    with pytest.raises(UserError, match="unknown parameter 'limt'; parameters are limit, run_date"):
        p.resolve_params({"limt": "1"})


def test_parameter_values_that_do_not_fit_the_default_type_are_refused() -> None:
    with pytest.raises(UserError, match="'many' is not int"):
        Param("limit", 5).convert("many")
    with pytest.raises(UserError, match="not a boolean"):
        Param("flag", False).convert("maybe")


def test_calling_a_step_outside_a_pipeline_says_where_to_call_it() -> None:
    with pytest.raises(PipelineDefinitionError, match="outside a pipeline"):
        load()


def test_wrong_arguments_name_the_pipeline_and_task() -> None:
    with Pipeline("args"), pytest.raises(PipelineDefinitionError, match=r"pipeline args, task load: .*unexpected"):
        load(nope=1)


def test_reserved_option_names_cannot_be_step_parameters() -> None:
    def fit(resources: int) -> None:
        return None

    with pytest.raises(PipelineDefinitionError, match="'resources' is reserved"):
        step(fit)


def test_unknown_task_lookup_lists_the_tasks() -> None:
    with Pipeline("lookup") as p:
        load()
    with pytest.raises(NotFoundError, match="no task 'lod'; tasks are load"):
        p.task("lod")


def test_task_options_override_the_step_defaults() -> None:
    sized = step(resources=Resources(cpu="1"), sizing="auto")(lambda data=None: data)
    with Pipeline("options") as p:
        sized(name="s1")
        sized(name="s2", resources=Resources(cpu="2"), sizing="static", timeout="1h")
    assert (p.task("s1").resources.cpu, p.task("s1").sizing) == ("1", "auto")
    assert (p.task("s2").resources.cpu, p.task("s2").sizing, p.task("s2").timeout_seconds) == ("2", "static", 3600)
