"""The transcript aggregate: a run's events, keyed by ``(run_id, seq)``.

Written by the follow activity as events stream in from the runner, read by the API (pages and
the live SSE tail). Appending is idempotent: an event already stored is skipped, so a retried
batch adds only what is new. Reads are scoped by project: another project's events are simply
not found. Writes do not commit; the caller owns the transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from runner.protocol import EventType, RunEvent
from store.db import dialect_insert
from store.models import TranscriptEvent

# A Core table, not the ORM entity: the append stays a plain INSERT ... ON CONFLICT.
_events = TranscriptEvent.__table__


async def last_event_seq(session: AsyncSession, project_id: str, run_id: str) -> int:
    """The newest persisted ``seq`` of the run's transcript (0 if none): its stream cursor."""
    stmt = select(func.max(TranscriptEvent.seq)).where(
        TranscriptEvent.project_id == project_id, TranscriptEvent.run_id == run_id
    )
    return int((await session.scalar(stmt)) or 0)


async def list_events(
    session: AsyncSession,
    project_id: str,
    run_id: str,
    *,
    after: int = 0,
    limit: int | None = None,
) -> list[RunEvent]:
    """Transcript events of the run with ``seq > after``, in order, at most ``limit``."""
    stmt = (
        select(TranscriptEvent)
        .where(
            TranscriptEvent.project_id == project_id,
            TranscriptEvent.run_id == run_id,
            TranscriptEvent.seq > after,
        )
        .order_by(TranscriptEvent.seq)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = (await session.scalars(stmt)).all()
    return [
        RunEvent(seq=row.seq, type=EventType(row.type), ts=row.ts, data=row.data) for row in rows
    ]


async def insert_events(
    session: AsyncSession, project_id: str, run_id: str, events: list[RunEvent]
) -> int:
    """Append transcript events, skipping any ``(run_id, seq)`` already stored.

    Returns how many events were new, so a retried batch reports only what it added.
    """
    if not events:
        return 0
    rows = [
        {
            "run_id": run_id,
            "seq": event.seq,
            "project_id": project_id,
            "type": event.type.value,
            "ts": event.ts,
            "data": event.model_dump(mode="json", include={"data"})["data"],
        }
        for event in events
    ]
    stmt = (
        dialect_insert(session, _events)
        .on_conflict_do_nothing(index_elements=[_events.c.run_id, _events.c.seq])
        .returning(_events.c.seq)
    )
    # One multi-row INSERT per batch ("insertmanyvalues"); rows skipped by the conflict clause
    # return nothing.
    result = await session.execute(stmt, rows)
    return len(result.all())
