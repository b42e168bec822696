"""Kubernetes' own rules for what the compiler writes into names, labels and annotations.

Transcribed from ``k8s.io/apimachinery/pkg/util/validation/validation.go`` (``IsQualifiedName``,
``IsValidLabelValue``, ``IsDNS1123Label``, ``IsDNS1123Subdomain``) and
``apimachinery/pkg/api/validation/objectmeta.go`` (annotations at most 256 KiB in total), as the
Kubernetes documentation states them:
https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations/#syntax-and-character-set
https://kubernetes.io/docs/concepts/overview/working-with-objects/names/
The API server applies them when it creates the pod, long after ``headrace submit`` said yes, so
the tests apply them to the compiled object.
"""

from __future__ import annotations

import re
from typing import Any

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
#: Characters ``generateName`` gets appended (apiserver's names.SimpleNameGenerator).
GENERATED_SUFFIX = 5
TOTAL_ANNOTATION_BYTES = 256 * 1024


def dns1123_label(value: Any) -> list[str]:
    if not isinstance(value, str) or len(value) > 63 or not DNS1123_LABEL.match(value):
        return [f"{value!r} is no DNS-1123 label (at most 63 of a-z, 0-9, '-', alphanumeric at both ends)"]
    return []


def dns1123_subdomain(value: Any) -> list[str]:
    if not isinstance(value, str) or len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        return [f"{value!r} is no DNS-1123 subdomain (at most 253 of a-z, 0-9, '-', '.')"]
    return []


def qualified_name(key: Any) -> list[str]:
    """A label or annotation key: an optional DNS subdomain prefix and '/', then a name of at
    most 63 characters."""
    if not isinstance(key, str):
        return [f"key {key!r} is not a string"]
    prefix, slash, name = key.rpartition("/")
    found: list[str] = []
    if slash and (not prefix or dns1123_subdomain(prefix)):
        found.append(f"key {key!r}: prefix {prefix!r} is no DNS-1123 subdomain")
    if not name or len(name) > 63 or not QUALIFIED_NAME_PART.match(name):
        found.append(f"key {key!r}: name part {name!r} is not 1-63 of [A-Za-z0-9-_.], alphanumeric at both ends")
    return found


def label_value(value: Any) -> list[str]:
    if not isinstance(value, str):
        return [f"label value {value!r} is not a string"]
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return [f"label value {value!r} is not 0-63 of [A-Za-z0-9-_.], alphanumeric at both ends"]
    return []


def _walk(value: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            found += _walk(item, f"{path}[{index}]")
    if not isinstance(value, dict):
        return found
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key == "labels" and isinstance(item, dict):
            for label, text in item.items():
                found += [f"{where}: {e}" for e in qualified_name(label) + label_value(text)]
        elif key == "annotations" and isinstance(item, dict):
            for annotation, text in item.items():
                found += [f"{where}: {e}" for e in qualified_name(annotation)]
                if not isinstance(text, str):
                    found.append(f"{where}: annotation {annotation} is not a string")
            size = sum(len(k.encode()) + len(str(v).encode()) for k, v in item.items())
            if size > TOTAL_ANNOTATION_BYTES:
                found.append(f"{where}: annotations take {size} bytes; Kubernetes allows {TOTAL_ANNOTATION_BYTES}")
        else:
            found += _walk(item, where)
    return found


def _names(obj: dict[str, Any]) -> list[str]:
    meta = obj.get("metadata", {})
    spec = obj.get("spec", {})
    found: list[str] = []
    if "name" in meta:
        found += [f"metadata.name: {e}" for e in dns1123_subdomain(meta["name"])]
    if "generateName" in meta:
        generated = meta["generateName"] + "x" * GENERATED_SUFFIX
        found += [f"metadata.generateName: {e}" for e in dns1123_subdomain(generated)]
    if "namespace" in meta:
        found += [f"metadata.namespace: {e}" for e in dns1123_label(meta["namespace"])]
    workflow = spec.get("workflowSpec", spec)
    if "serviceAccountName" in workflow:
        found += [f"serviceAccountName: {e}" for e in dns1123_subdomain(workflow["serviceAccountName"])]
    if "workflowTemplateRef" in workflow:
        found += [f"workflowTemplateRef: {e}" for e in dns1123_subdomain(workflow["workflowTemplateRef"]["name"])]
    for template in workflow.get("templates", []):
        container = template.get("container")
        if container is not None:
            found += [f"template {template['name']} container: {e}" for e in dns1123_label(container.get("name"))]
            for source in container.get("envFrom", []):
                for ref in source.values():
                    found += [f"template {template['name']} envFrom: {e}" for e in dns1123_subdomain(ref["name"])]
    return found


def errors(obj: dict[str, Any]) -> list[str]:
    """Every name, label and annotation of ``obj`` (an object the compiler made) that the API
    server would refuse, at the object or at the pods and workflows Argo makes from it."""
    return _names(obj) + _walk(obj, "")
