"""The body of ``follow_run``: read a run's NDJSON stream from a cursor into the store.

Events are persisted in small batches (idempotent on ``(run_id, seq)``) and the cursor is
heartbeated after each batch, so a retried attempt resumes where the last one left off: no
event is lost, none is stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from runner.protocol import (
    EventType,
    InteractionRequested,
    KeepAlive,
    RunEvent,
    agent_session_id_of,
    parse_record,
)
from store import interactions, transcript
from workflows.errors import ErrorType
from workflows.types import FollowInput, FollowOutcome, PendingInteraction, RunResult, RunStatus

# A batch is written when it is this big, or when the stream pauses this long.
MAX_BATCH = 64
FLUSH_AFTER_S = 0.05
RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)

_END = object()

_TERMINAL_STATUS = {
    EventType.RUN_COMPLETED: RunStatus.COMPLETED,
    EventType.RUN_FAILED: RunStatus.FAILED,
    EventType.RUN_CANCELLED: RunStatus.CANCELLED,
}


class FollowProgress(BaseModel):
    """Heartbeat details: everything a retried attempt needs to resume."""

    cursor: int
    steps: int = 0
    usage: dict[str, Any] = Field(default_factory=dict)
    unreachable_since: datetime | None = None


class _RunUnknown(Exception):
    """The runner answered 404: it does not have the run (restarted, or another replica)."""


class Follower:
    def __init__(
        self,
        *,
        db: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        url: str,
        headers: dict[str, str],
        inp: FollowInput,
        read_timeout_s: float,
    ) -> None:
        self._db, self._http, self._url, self._headers = db, http, url, headers
        self._inp = inp
        self._timeout = httpx.Timeout(5.0, read=read_timeout_s)
        details = activity.info().heartbeat_details
        self._progress = (
            FollowProgress.model_validate(details[0])
            if details
            else FollowProgress(cursor=inp.after_seq)
        )

    async def run(self) -> FollowOutcome:
        failures = 0
        while True:
            try:
                outcome = await self._stream_once()
            except _RunUnknown:
                raise self._lost(
                    "the runner does not know the run (it restarted or lost it)"
                ) from None
            except (httpx.TransportError, httpx.HTTPStatusError) as err:
                self._check_deadline(err)
                await asyncio.sleep(
                    RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)]
                )
                failures += 1
                continue
            if outcome is not None:
                return outcome
            failures = 0  # the stream ended without a terminal event: reconnect from the cursor

    def _check_deadline(self, err: Exception) -> None:
        now = datetime.now(UTC)
        progress = self._progress
        if progress.unreachable_since is None:
            progress.unreachable_since = now
        unreachable = now - progress.unreachable_since
        activity.heartbeat(progress)
        if unreachable > timedelta(seconds=self._inp.runner_lost_timeout_s):
            raise self._lost(
                f"runner unreachable for {unreachable.total_seconds():.0f}s "
                f"(bound {self._inp.runner_lost_timeout_s:.0f}s): {err!r}"
            )

    def _lost(self, message: str) -> ApplicationError:
        return ApplicationError(message, type=ErrorType.RUNNER_LOST, non_retryable=True)

    async def _stream_once(self) -> FollowOutcome | None:
        params = {"after": self._progress.cursor}
        async with self._http.stream(
            "GET", self._url, params=params, headers=self._headers, timeout=self._timeout
        ) as response:
            if response.status_code == 404:
                raise _RunUnknown
            response.raise_for_status()
            self._progress.unreachable_since = None
            queue: asyncio.Queue[Any] = asyncio.Queue()
            reader = asyncio.create_task(_pump(response, queue))
            try:
                return await self._consume(queue)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _consume(self, queue: asyncio.Queue[Any]) -> FollowOutcome | None:
        batch: list[RunEvent] = []
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), FLUSH_AFTER_S if batch else None)
            except TimeoutError:
                await self._flush(batch)
                continue
            if item is _END or isinstance(item, BaseException):
                await self._flush(batch)
                if isinstance(item, BaseException):
                    raise item
                return None
            if isinstance(item, KeepAlive):
                await self._flush(batch)
                activity.heartbeat(self._progress)
                continue
            event: RunEvent = item
            if event.seq <= self._progress.cursor + len(batch):
                continue  # already have it
            batch.append(event)
            self._observe(event)
            outcome = self._outcome_for(event)
            if outcome is not None:
                await self._flush(batch)
                return outcome
            if len(batch) >= MAX_BATCH:
                await self._flush(batch)

    def _observe(self, event: RunEvent) -> None:
        if event.type == EventType.TOOL_CALL:
            self._progress.steps += 1
        elif event.type == EventType.USAGE:
            # Agents report usage in parts (context window mid-turn, tokens at the end).
            self._progress.usage = {**self._progress.usage, **event.data}

    def _outcome_for(self, event: RunEvent) -> FollowOutcome | None:
        progress = self._progress
        base: dict[str, Any] = {
            "last_seq": event.seq,
            "steps": progress.steps,
            "usage": progress.usage,
        }
        if event.type == EventType.INTERACTION_REQUESTED:
            return FollowOutcome(kind="interaction", interaction=_asked(event), **base)
        status = _TERMINAL_STATUS.get(event.type)
        if status is None:
            return None
        result = None
        if status == RunStatus.COMPLETED:
            result = RunResult(
                output=event.data.get("output"), stop_reason=event.data.get("stop_reason")
            )
        error = event.data.get("error") if status == RunStatus.FAILED else None
        if error is not None and not isinstance(error, dict):
            error = {"message": str(error)}
        return FollowOutcome(
            kind="ended",
            ended_status=status,
            result=result,
            error=error,
            agent_session_id=agent_session_id_of(event),
            **base,
        )

    async def _flush(self, batch: list[RunEvent]) -> None:
        if not batch:
            return
        inp = self._inp
        async with self._db.begin() as session:
            added = await transcript.insert_events(session, inp.project_id, inp.run_id, batch)
            if inp.session_id is not None and inp.interaction_expiry_s is not None:
                # Anything a reader can see is answerable: the question's row commits with
                # its event (the workflow records the same row again when it asks).
                for event in batch:
                    if event.type == EventType.INTERACTION_REQUESTED:
                        pending = _asked(event)
                        if pending.expires_at is None:
                            expiry = timedelta(seconds=inp.interaction_expiry_s)
                            pending.expires_at = pending.requested_at + expiry
                        await interactions.record_pending(
                            session,
                            pending,
                            run_id=inp.run_id,
                            session_id=inp.session_id,
                            project_id=inp.project_id,
                        )
        metrics.events_persisted(added)
        self._progress.cursor = batch[-1].seq
        batch.clear()
        activity.heartbeat(self._progress)


def _asked(event: RunEvent) -> PendingInteraction:
    """The question of an ``interaction.requested`` event (``expires_at`` only if it set one)."""
    asked = InteractionRequested.model_validate(event.data)
    expires_at = event.ts + timedelta(seconds=asked.expires_in) if asked.expires_in else None
    return PendingInteraction.asked(asked, event.ts, expires_at)


async def _pump(response: httpx.Response, queue: asyncio.Queue[Any]) -> None:
    """Move parsed records from the HTTP stream to the queue (so reads can time out safely)."""
    try:
        async for line in response.aiter_lines():
            if line.strip():
                await queue.put(parse_record(line))
        await queue.put(_END)
    except Exception as err:  # handed to the consumer, which decides
        await queue.put(err)
