"""A task's check that the task it depends on has written its output for this ``ds``."""

from __future__ import annotations

from jobs.context import RunContext


class UpstreamMissing(RuntimeError):
    """A task ran before the task it depends on wrote its output for this ``ds``."""


def require(ctx: RunContext, parts: tuple[str, ...], task: str) -> None:
    if not ctx.lake.exists(*parts):
        raise UpstreamMissing(
            f"{ctx.lake.url(*parts)} is missing: run the '{task}' task for {ctx.ds} first")
