"""The task that runs one agent and turns how it ended into exactly one terminal event."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from runner.agents.base import AgentContext, AgentError, AgentResult, AgentSpec
from runner.protocol import EventType

if TYPE_CHECKING:
    from runner.runs import HostedRun

log = logging.getLogger(__name__)


async def execute_agent(run: HostedRun, spec: AgentSpec, ctx: AgentContext) -> None:
    """Run ``spec`` and finish ``run`` with ``run.completed``, ``run.failed`` or ``run.cancelled``.

    ``HostedRun.finish`` ignores all but the first terminal event, so a cancel that raced the
    agent's return, or a forced cancel after the grace period, still leaves exactly one.
    """
    try:
        result = await spec.run(ctx)
    except asyncio.CancelledError:
        run.finish_cancelled()
        raise
    except Exception as exc:
        if run.cancel_requested:
            # Agents often fail on the way out of a cancel; the cancel is what happened.
            run.finish_cancelled()
            return
        log.info("run %s: agent %s failed: %r", run.run_id, spec.name, exc)
        details = exc.details if isinstance(exc, AgentError) else {}
        run.finish(
            EventType.RUN_FAILED,
            {"error": {"type": type(exc).__name__, "message": str(exc), **details}},
        )
        return
    if isinstance(result, str):  # tolerated: an agent that only has an output
        result = AgentResult(output=result)
    if run.cancel_requested or result.stop_reason == "cancelled":
        # The agent saw ctx.cancelled and returned early, or stopped its turn as cancelled.
        run.finish_cancelled()
        return
    run.finish(
        EventType.RUN_COMPLETED,
        {"output": result.output, "stop_reason": result.stop_reason},
    )
