"""Read queries for the API. Read-only, and every one scoped by project.

A row of another project is simply not found, so the API answers 404 and never leaks that it
exists. Runs and sessions live in ``store.queries_runs``, ``store.run_listing`` and
``store.queries_sessions``, re-exported here, so ``from store import queries`` reaches every
read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.keyset import Direction, InvalidCursor, encode_position
from store.models import RunStatusHistory
from store.queries_runs import find_run_by_idempotency_key, get_run
from store.run_listing import RunOrder, decode_run_cursor, list_runs, run_cursor
from workflows.types import RunStatus, StatusTransition

__all__ = [
    "Direction",
    "InvalidCursor",
    "RunOrder",
    "decode_cursor",
    "decode_run_cursor",
    "encode_cursor",
    "find_run_by_idempotency_key",
    "get_run",
    "list_runs",
    "run_cursor",
    "run_history",
]

# Cursors of the first version of ``list_runs`` (newest first), kept for their callers.


def encode_cursor(created_at: datetime, run_id: str) -> str:
    """The cursor resuming ``list_runs`` (``created_at`` desc) after ``(created_at, run_id)``."""
    return encode_position("runs", "created_at", "desc", [created_at, run_id])


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of ``encode_cursor``; raises ``InvalidCursor`` on anything else."""
    created_at, run_id = decode_run_cursor(cursor, "created_at", "desc")
    return created_at, run_id


# History.


async def run_history(
    session: AsyncSession, project_id: str, run_id: str
) -> list[StatusTransition]:
    """The run's status transitions, oldest first."""
    stmt = (
        select(RunStatusHistory)
        .where(RunStatusHistory.project_id == project_id, RunStatusHistory.run_id == run_id)
        .order_by(RunStatusHistory.seq)
    )
    rows = (await session.scalars(stmt)).all()
    return [
        StatusTransition(seq=row.seq, status=RunStatus(row.status), reason=row.reason, at=row.at)
        for row in rows
    ]
