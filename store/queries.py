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
from store.models import Interaction, RunStatusHistory
from store.queries_runs import find_run_by_idempotency_key, get_run
from store.queries_sessions import (
    SessionOrder,
    SessionStatus,
    SessionSummary,
    get_active_run,
    get_agent_session,
    get_session,
    list_sessions,
)
from store.run_listing import RunOrder, decode_run_cursor, list_runs, run_cursor
from workflows.types import InteractionRecord, RunStatus, StatusTransition

__all__ = [
    "Direction",
    "InvalidCursor",
    "RunOrder",
    "SessionOrder",
    "SessionStatus",
    "SessionSummary",
    "decode_cursor",
    "decode_run_cursor",
    "encode_cursor",
    "find_run_by_idempotency_key",
    "get_active_run",
    "get_agent_session",
    "get_interaction",
    "get_run",
    "get_session",
    "list_interactions",
    "list_runs",
    "list_sessions",
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


# Interactions.


def _interaction_record(row: Interaction) -> InteractionRecord:
    return InteractionRecord.model_validate(row, from_attributes=True)


async def get_interaction(
    session: AsyncSession, project_id: str, interaction_id: str
) -> InteractionRecord | None:
    """The interaction ``interaction_id`` of ``project_id``, or ``None``."""
    row = await session.scalar(
        select(Interaction).where(
            Interaction.project_id == project_id, Interaction.interaction_id == interaction_id
        )
    )
    return None if row is None else _interaction_record(row)


async def list_interactions(
    session: AsyncSession,
    project_id: str,
    *,
    status: str | None = None,
    session_id: str | None = None,
    run_id: str | None = None,
    limit: int = 100,
) -> list[InteractionRecord]:
    """Interactions of the project, newest request first, filtered by any of the arguments."""
    stmt = select(Interaction).where(Interaction.project_id == project_id)
    if status is not None:
        stmt = stmt.where(Interaction.status == status)
    if session_id is not None:
        stmt = stmt.where(Interaction.session_id == session_id)
    if run_id is not None:
        stmt = stmt.where(Interaction.run_id == run_id)
    stmt = stmt.order_by(Interaction.requested_at.desc(), Interaction.interaction_id.desc())
    rows = (await session.scalars(stmt.limit(limit))).all()
    return [_interaction_record(row) for row in rows]
