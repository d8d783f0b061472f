"""Activity options of the run workflow: every call has timeouts and a retry policy.

Temporal owns retries; the only non-retryable failures are business outcomes
(an unknown agent, a lost runner) that no retry can change.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

from workflows.errors import ErrorType
from workflows.types import RunPolicy

_FAST_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
)


def record() -> dict[str, Any]:
    """Store projections: quick, idempotent, retried until the store answers."""
    return {"start_to_close_timeout": timedelta(seconds=15), "retry_policy": _FAST_RETRY}


def dispatch(policy: RunPolicy) -> dict[str, Any]:
    """The detach handshake, retried with backoff while no runner answers, up to the deadline."""
    return {
        "start_to_close_timeout": timedelta(seconds=15),
        "schedule_to_close_timeout": timedelta(seconds=policy.dispatch_deadline_s),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=250),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=5),
            non_retryable_error_types=[ErrorType.UNKNOWN_AGENT, ErrorType.RUNNER_REJECTED],
        ),
    }


def follow(policy: RunPolicy) -> dict[str, Any]:
    """Streaming: heartbeats the cursor, so a dead worker is noticed and the stream resumed."""
    return {
        # A turn may last long; an attempt that hits this is simply resumed from its cursor.
        "start_to_close_timeout": timedelta(hours=2),
        "heartbeat_timeout": timedelta(seconds=policy.heartbeat_timeout_s),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=250),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=5),
            non_retryable_error_types=[ErrorType.RUNNER_LOST],
        ),
    }


def drain(policy: RunPolicy) -> dict[str, Any]:
    """Reading the last events after a cancel: bounded by the cancel grace period."""
    grace = timedelta(seconds=max(policy.cancel_grace_s, 1.0))
    return {
        "start_to_close_timeout": grace,
        "schedule_to_close_timeout": grace,
        "heartbeat_timeout": timedelta(seconds=policy.heartbeat_timeout_s),
        "retry_policy": RetryPolicy(maximum_attempts=1),
    }


def runner_call(policy: RunPolicy) -> dict[str, Any]:
    """A short call to the run's runner, retried until the runner counts as lost."""
    return {
        "start_to_close_timeout": timedelta(seconds=10),
        "schedule_to_close_timeout": timedelta(seconds=max(policy.runner_lost_timeout_s, 10.0)),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=250),
            maximum_interval=timedelta(seconds=5),
            non_retryable_error_types=[ErrorType.RUNNER_LOST],
        ),
    }


def probe(policy: RunPolicy) -> dict[str, Any]:
    """Is the waiting run's runner still there? Retried until the runner counts as lost."""
    return {
        "start_to_close_timeout": timedelta(seconds=10),
        "schedule_to_close_timeout": timedelta(seconds=max(policy.runner_lost_timeout_s, 1.0)),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=250),
            maximum_interval=timedelta(seconds=5),
            non_retryable_error_types=[ErrorType.RUNNER_LOST],
        ),
    }


def cancel_call(policy: RunPolicy) -> dict[str, Any]:
    grace = timedelta(seconds=max(policy.cancel_grace_s, 1.0))
    return {
        "start_to_close_timeout": grace,
        "schedule_to_close_timeout": grace,
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=250),
            maximum_interval=timedelta(seconds=2),
            non_retryable_error_types=[ErrorType.RUNNER_LOST],
        ),
    }


def trigger_submit() -> dict[str, Any]:
    """A firing's update-with-start: retried (e.g. while the session closes its last run)
    for a bounded time; an idempotency conflict cannot heal."""
    return {
        "start_to_close_timeout": timedelta(seconds=30),
        "schedule_to_close_timeout": timedelta(minutes=10),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=200),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=10),
            non_retryable_error_types=[ErrorType.IDEMPOTENCY_CONFLICT],
        ),
    }
