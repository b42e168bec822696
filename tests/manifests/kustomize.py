"""A small kustomize in Python, enough for ``manifests/``: no kustomize binary is needed in CI.

Supports what our kustomizations use, with kustomize's semantics: ``resources`` (files and
folders holding a kustomization.yaml), ``namespace`` (set on namespaced objects, the Namespace
object renamed, ServiceAccount subjects of role bindings filled in), ``labels`` (with
``includeSelectors``) and ``commonLabels``, ``images`` (``newName`` / ``newTag``), and
``patches`` / ``patchesStrategicMerge`` as strategic merge patches (maps merge, lists of
named items merge by ``name``, other lists are replaced). Anything else in a kustomization is
an error, so a feature we start using cannot be silently ignored.

Kustomize itself is the judge: where ``kubectl`` is installed,
``test_kustomize_builds_each_layer_into_objects_that_validate_and_match_the_fast_loader`` builds
every layer with ``kubectl kustomize`` and requires exactly the objects this loader builds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "labels",
    "commonLabels",
    "images",
    "patches",
    "patchesStrategicMerge",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ClusterWorkflowTemplate",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


class KustomizeError(Exception):
    pass


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def build(folder: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize folder`` would print (order: resources as listed)."""
    path = folder / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{folder}: no kustomization.yaml")
    kustomization = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: fields this loader does not implement: {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = (folder / entry).resolve()
        if target.is_dir():
            objects += build(target)
        elif target.is_file():
            objects += load_yaml_documents(target)
        else:
            raise KustomizeError(f"{path}: resource {entry} does not exist")
    for entry in kustomization.get("patches", []) + [
        {"path": p} for p in kustomization.get("patchesStrategicMerge", [])
    ]:
        if set(entry) - {"path"}:
            raise KustomizeError(f"{path}: only file patches are implemented, got {entry}")
        for patch in load_yaml_documents(folder / entry["path"]):
            _apply_patch(objects, patch, path)
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    if "namespace" in kustomization:
        _set_namespace(objects, kustomization["namespace"])
    for group in kustomization.get("labels", []):
        _add_labels(objects, group.get("pairs", {}), selectors=group.get("includeSelectors", False))
    if kustomization.get("commonLabels"):
        _add_labels(objects, kustomization["commonLabels"], selectors=True)
    return objects


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj.get("kind", ""), obj.get("metadata", {}).get("name", "")


def _apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any], where: Path) -> None:
    for index, obj in enumerate(objects):
        if _key(obj) == _key(patch):
            objects[index] = strategic_merge(obj, patch)
            return
    raise KustomizeError(f"{where}: patch target {_key(patch)} not found")


def strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(merged.get(key), value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        merged_list = [copy.deepcopy(i) for i in base]
        for item in patch:
            for position, existing in enumerate(merged_list):
                if existing["name"] == item["name"]:
                    merged_list[position] = strategic_merge(existing, item)
                    break
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if obj.get("kind") in POD_TEMPLATE_KINDS else {}
    return list(pod.get("containers", [])) + list(pod.get("initContainers", []))


def _set_image(objects: list[dict[str, Any]], image: dict[str, Any]) -> None:
    for obj in objects:
        for container in _containers(obj):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def _set_namespace(objects: list[dict[str, Any]], namespace: str) -> None:
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if obj.get("kind") == "Namespace":
            meta["name"] = namespace
            continue
        old = meta.get("namespace")
        if obj.get("kind") not in CLUSTER_SCOPED:
            meta["namespace"] = namespace
        if obj.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
            for subject in obj.get("subjects", []):
                if subject.get("kind") == "ServiceAccount" and subject.get("namespace") in (None, old):
                    subject["namespace"] = namespace


def _add_labels(objects: list[dict[str, Any]], pairs: dict[str, str], *, selectors: bool) -> None:
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if not selectors:
            continue
        spec = obj.get("spec", {})
        if obj.get("kind") in POD_TEMPLATE_KINDS:
            spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
            spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        elif obj.get("kind") == "Service":
            spec.setdefault("selector", {}).update(pairs)
        elif obj.get("kind") == "PodDisruptionBudget":
            spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
