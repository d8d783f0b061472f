"""How a run ends, and what the run says about itself: pure helpers of ``RunDriver``."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from runner.protocol import InteractionReply
    from workflows.errors import ErrorType
    from workflows.types import (
        RUN_FINISHED_SIGNAL,
        FailureReason,
        FollowOutcome,
        PendingInteraction,
        RunFinished,
        RunSpec,
        RunState,
        RunStatus,
    )


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


def absorb(state: RunState, outcome: FollowOutcome) -> None:
    """Fold what a ``follow_run`` call saw into the run's state."""
    state.last_seq = max(state.last_seq, outcome.last_seq)
    state.events = state.last_seq
    state.steps += outcome.steps
    if outcome.usage:
        state.usage = {**state.usage, **outcome.usage}
    if outcome.result is not None:
        state.result = outcome.result
    if outcome.agent_session_id:
        state.agent_session_id = outcome.agent_session_id


async def notify_finished(spec: RunSpec, state: RunState) -> None:
    """Tell the workflow that asked (a trigger firing) how the run ended."""
    target = spec.notify_workflow_id
    if not target:
        return
    finished = RunFinished(
        run_id=state.run_id,
        status=state.status,
        status_reason=state.status_reason,
        error=state.error,
    )
    try:
        await workflow.get_external_workflow_handle(target).signal(RUN_FINISHED_SIGNAL, finished)
    except Exception:  # the run ended all the same; the firing also polls the store
        workflow.logger.warning("could not tell %s that %s ended", target, state.run_id)
