"""Domain errors of the calls into Tether's workflows.

Each says what happened in the terms of the product (the session is busy, this idempotency
key meant another request), with the details a caller needs. The API maps every one of them to
an HTTP answer in one place (``api.errors``); the trigger activities turn some into delivery
outcomes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

# How long one call into Temporal may take before it counts as ``TemporalUnavailable``. Without
# a bound a call retries a Temporal server that is down for about 10 s; with it, an API request
# fails within this bound (plus the run's own accept wait, for a submit).
RPC_TIMEOUT = timedelta(seconds=3)


class WorkflowCallError(Exception):
    """A call into a Tether workflow or schedule that did not go through."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class SessionBusy(WorkflowCallError):
    """The session has an active run and the new run's strategy is ``reject``."""

    @property
    def active_run_id(self) -> str | None:
        return self.details.get("active_run_id")


class IdempotencyConflict(WorkflowCallError):
    """The idempotency key already made a run, for a different request."""


class SessionUnavailable(WorkflowCallError):
    """The session kept closing under the submit; retrying later will land on a new execution."""


class RunNotActive(WorkflowCallError):
    """The session has no open execution to signal: the run already ended."""


class ScheduleInvalid(WorkflowCallError):
    """Temporal refused the schedule's spec."""


class ScheduleMissing(WorkflowCallError):
    """The trigger's Temporal Schedule does not exist (any more)."""


class ScheduleExists(WorkflowCallError):
    """A schedule with the trigger's ID exists already (a retried create)."""


class TemporalUnavailable(WorkflowCallError):
    """Temporal did not answer; nothing was changed that the caller can rely on."""


@asynccontextmanager
async def temporal_call(timeout: timedelta = RPC_TIMEOUT) -> AsyncIterator[None]:
    """Bound a call into Temporal: ``TemporalUnavailable`` once ``timeout`` has passed.

    The calls also carry ``rpc_timeout`` (the server's deadline for each attempt), but the
    client's reconnect-and-retry loop while the server is down does not honour it; this is the
    bound the caller sees.
    """
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            yield
    except TimeoutError as err:
        raise TemporalUnavailable(
            f"Temporal did not answer within {timeout.total_seconds():g} s"
        ) from err
