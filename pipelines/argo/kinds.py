"""The kinds of Argo object a pipeline compiles to."""

from __future__ import annotations

from typing import Literal

Kind = Literal["workflow", "template", "cron"]
KINDS: tuple[Kind, ...] = ("workflow", "template", "cron")
