"""How a run ends, and what the run says about itself: pure helpers of ``RunDriver``."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from runner.protocol import InteractionReply
    from workflows.errors import ErrorType
    from workflows.types import FailureReason, PendingInteraction, RunStatus


class RunEnded(Exception):
    """Jump to the end of the run with a final status."""

    def __init__(
        self, status: RunStatus, reason: str | None = None, error: dict | None = None
    ) -> None:
        super().__init__(reason)
        self.status, self.reason, self.error = status, reason, error


def is_cancellation(err: BaseException) -> bool:
    return isinstance(err, asyncio.CancelledError) or (
        isinstance(err, ActivityError) and isinstance(err.cause, CancelledError)
    )


def runner_lost(err: ActivityError) -> RunEnded:
    cause = err.cause
    message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
    return RunEnded(RunStatus.FAILED, FailureReason.RUNNER_LOST, {"message": message})


def dispatch_failure(err: ActivityError) -> RunEnded:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == ErrorType.UNKNOWN_AGENT:
        return RunEnded(RunStatus.FAILED, FailureReason.UNKNOWN_AGENT, {"message": cause.message})
    return RunEnded(
        RunStatus.FAILED,
        FailureReason.DISPATCH_TIMEOUT,
        {"message": f"no runner accepted the run within the dispatch deadline ({cause})"},
    )


def deliver_summary(reply: InteractionReply) -> str:
    if reply.outcome != "answered":
        return f"deliver {reply.outcome}"
    response = reply.response or {}
    return f"deliver answer {str(response.get('option_id') or response.get('text') or '')[:40]}"


def waiting_details(pending: PendingInteraction) -> str:
    """What the run waits for, as an operator reads it in the Temporal UI."""
    what = "approval" if pending.kind == "permission" else "input"
    options = "/".join(o.option_id for o in pending.options)
    expires = f"{pending.expires_at:%Y-%m-%d %H:%M} UTC" if pending.expires_at else "never"
    lines = [f"**Waiting for {what}**: {pending.prompt}"]
    if options:
        lines.append(f"options {options}")
    lines.append(f"expires {expires} · interaction `{pending.interaction_id}`")
    return "\n\n".join(lines)
