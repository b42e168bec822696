"""A chain of ten tasks, each passing a small value to the next: ``plain`` with declared
resources, ``sized`` with ``sizing="auto"`` on every task (a sizing node before each)."""

from __future__ import annotations

from typing import Any

from pipelines import Pipeline, Resources, step

SMALL = Resources(cpu="100m", memory="256Mi")


@step(resources=SMALL)
def link(value: int) -> int:
    return int(value) + 1


@step(resources=SMALL, sizing="auto")
def sized_link(value: int) -> int:
    return int(value) + 1


def chain(name: str, task: Any) -> Pipeline:
    with Pipeline(name, params={"start": 0}) as built:
        value = task(value=built.param("start"), name="link-1")
        for number in range(2, 11):
            value = task(value=value, name=f"link-{number}")
    return built


plain = chain("cluster-ten", link)
sized = chain("cluster-ten-sized", sized_link)
