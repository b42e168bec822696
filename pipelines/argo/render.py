"""YAML rendering: the same object always gives the same bytes.

Keys are ordered for people (``name`` first, then scalars, lists, mappings, each alphabetical),
as Hera's own ``to_yaml`` does, but over a plain dict so every kind renders the same way.
Multi-line strings use block style; PyYAML's C emitter is used when present.

Every string stays a string for every reader of the file. PyYAML quotes what YAML 1.1 reads as
another type (``yes``, ``on``, ``~``, ``0777``, ``1_000``); the readers that matter on a cluster
read more: YAML 1.2's core schema (``1e3``, ``0o17``) and Go's yaml.v2 behind sigs.k8s.io/yaml
in kubectl and Argo's CLI (numbers as Go's ``strconv`` parses them: underscores, ``0b``/``0o``/``0x``
prefixes, exponents without a dot). Those are quoted too; a label ``version: 1e3`` would
otherwise reach the API server as the number 1000 and be refused.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Emitter(_Dumper):  # type: ignore[misc,valid-type]
    """A safe dumper whose strings are block-styled when multi-line and quoted wherever some
    reader would take them for another type."""


#: Plain scalars that YAML 1.2's core schema or Go's yaml.v2 read as a number, boolean or null,
#: beyond what PyYAML's YAML 1.1 resolver already quotes (and the 1.1 booleans ``y``/``n`` it misses);
#: digits, '_' and '.' alone are quoted too, as some readers (ruamel.yaml) take ``-_`` or ``._`` for numbers.
_READ_AS_OTHER_TYPES = re.compile(
    r"""^(?:
      [-+]?(?:0[bB][01_]+|0[oO][0-7_]+|0[xX][0-9a-fA-F_]+|[0-9_]+)
    | [-+]?(?:\.[0-9_]*|[0-9_]+(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?
    | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
    | null|Null|NULL|~|true|True|TRUE|false|False|FALSE|[yYnN]
    )$""",
    re.VERBOSE,
)


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    if _READ_AS_OTHER_TYPES.match(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="'")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Emitter.add_representer(str, _str)


def _rank(key: str, value: Any) -> tuple[int, str]:
    if key == "name" and isinstance(value, str):
        return (0, key)
    if isinstance(value, dict):
        return (3, key)
    if isinstance(value, list):
        return (2, key)
    return (1, key)


def ordered(value: Any) -> Any:
    """``value`` with every mapping's keys in reading order."""
    if isinstance(value, dict):
        return {k: ordered(value[k]) for k in sorted(value, key=lambda k: _rank(k, value[k]))}
    if isinstance(value, list):
        return [ordered(item) for item in value]
    return value


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration. Compiling allocates a few hundred
    objects per task that all live until the YAML is written, and each allocation burst made the
    collector walk every one of them again: 45% of the time at 2,000 tasks, compile time per task
    growing with the pipeline. Nothing compiled is garbage before the end, so nothing is lost."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


def _nodes(value: Any, dumper: yaml.SafeDumper) -> yaml.Node:
    """The node tree of ``value`` with its keys in reading order, built directly: PyYAML's
    generic representer (a type lookup and an alias check per value) was most of the time at
    10,000 tasks. Strings go through :func:`_str`; other scalars through PyYAML's own representer,
    so every byte is what ``yaml.dump`` wrote. A compiled object holds no value twice, so there
    are no aliases to find."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: _rank(k, value[k]))
        return yaml.MappingNode(_MAP, [(_nodes(k, dumper), _nodes(value[k], dumper)) for k in keys], flow_style=False)
    if isinstance(value, list):
        return yaml.SequenceNode(_SEQ, [_nodes(item, dumper) for item in value], flow_style=False)
    if type(value) is str:
        if "\n" in value:
            return yaml.ScalarNode(_STR, value, style="|")
        return yaml.ScalarNode(_STR, value, style="'" if _READ_AS_OTHER_TYPES.match(value) else None)
    return dumper.represent_data(value)


def to_yaml(obj: dict[str, Any]) -> str:
    import io

    with collector_paused():
        stream = io.StringIO()
        dumper = _Emitter(stream, default_flow_style=False, sort_keys=False, width=10_000)
        try:
            dumper.open()
            dumper.serialize(_nodes(obj, dumper))
            dumper.close()
        finally:
            dumper.dispose()
        return stream.getvalue()
