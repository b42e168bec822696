"""SageMaker framework training images per region, from the SageMaker Python SDK's own tables.

AWS publishes the framework images (scikit-learn, XGBoost, the PyTorch deep learning containers)
from a different ECR account in many regions. The SDK keeps those accounts in
``sagemaker/core/image_uri_config/<framework>.json``; :data:`TABLE_FILE` is a copy of their
``training`` scope for the frameworks headrace knows (the SDK is an optional extra, too big for a
step image). ``tests/backends/test_sagemaker.py`` compares the copy with the installed SDK's JSON
whenever the ``[aws]`` extra is installed; refresh it from there when AWS adds a region or version.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from steps.core.errors import ConfigError, UserError

TABLE_FILE = Path(__file__).with_name("sagemaker_images.json")
#: DNS suffix of ECR by partition, as the SDK derives it from botocore's partitions.
DOMAINS = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
    ("eusc-", "amazonaws.eu"),
)


@functools.cache
def tables() -> dict[str, Any]:
    """The vendored tables: framework → the SDK's ``training`` scope."""
    loaded: dict[str, Any] = json.loads(TABLE_FILE.read_text())
    return loaded


def image_uri(framework: str, version: str, region: str, processor: str) -> str:
    """The training image of ``framework`` ``version`` in ``region`` for ``cpu``/``gpu``, as the
    SDK's ``image_uris.retrieve`` names it (its default Python version: the table's last)."""
    if framework not in tables():
        raise UserError(
            f"framework {framework!r}: use one of {', '.join(sorted(tables()))}, or a full image URI for another container"
        )
    table = tables()[framework]
    full = table.get("version_aliases", {}).get(version, version)
    entry = table["versions"].get(full)
    if entry is None:
        known = ", ".join(table["versions"])
        raise UserError(f"framework_version {version!r}: {framework} has no such SageMaker image; use one of {known}")
    account = entry["registries"].get(region)
    if account is None:
        raise ConfigError(
            f"aws_region {region!r}: no {framework} {full} training image there; pass the image URI as framework"
        )
    processors = entry.get("processors", table.get("processors", ["cpu"]))
    chosen = processor if processor in processors else processors[0]
    python = entry.get("py_versions", [])
    if framework == "xgboost":
        tag = full
    elif framework == "sklearn":
        tag = f"{full}-{chosen}-{python[-1] if python else 'py3'}"
    else:
        tag = f"{full}-{chosen}" + (f"-{python[-1]}" if python else "")
    domain = next((suffix for start, suffix in DOMAINS if region.startswith(start)), "amazonaws.com")
    return f"{account}.dkr.ecr.{region}.{domain}/{entry['repository']}:{tag}"
