"""A task's check that the task it depends on has written its output for this ``ds``."""

from __future__ import annotations

from jobs.context import RunContext
from pipelines.core.errors import UpstreamMissing


def require(ctx: RunContext, parts: tuple[str, ...], task: str) -> None:
    if not ctx.lake.exists(*parts):
        raise UpstreamMissing(
            f"{ctx.lake.url(*parts)} is missing: run the '{task}' task for {ctx.ds} first")
