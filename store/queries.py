"""Read queries for the API. Read-only, and every one scoped by project.

A row of another project is simply not found, so the API answers 404 and never leaks that it
exists.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from runner.protocol import EventType, RunEvent
from store.models import AgentRow, Interaction, Run, RunStatusHistory, SessionRow, TranscriptEvent
from workflows.types import (
    TERMINAL_STATUSES,
    InteractionRecord,
    PendingInteraction,
    RunResult,
    RunState,
    RunStatus,
    StatusTransition,
)

_TERMINAL = sorted(status.value for status in TERMINAL_STATUSES)


class InvalidCursor(ValueError):
    """The pagination cursor is not one this module produced."""


# Runs.


def _run_state(run: Run, interaction: Interaction | None) -> RunState:
    pending = None
    if interaction is not None:
        pending = PendingInteraction.model_validate(interaction, from_attributes=True)
    return RunState(
        run_id=run.run_id,
        session_id=run.session_id,
        project_id=run.project_id,
        agent=run.agent,
        status=RunStatus(run.status),
        status_reason=run.status_reason,
        trigger_id=run.trigger_id,
        idempotency_key=run.idempotency_key,
        input=run.input,
        metadata=run.metadata_ or {},
        created_at=run.created_at,
        started_at=run.started_at,
        updated_at=run.updated_at,
        ended_at=run.ended_at,
        paused_at=run.paused_at,
        last_seq=run.last_seq,
        events=run.events,
        steps=run.steps,
        usage=run.usage or {},
        result=RunResult.model_validate(run.result) if run.result is not None else None,
        error=run.error,
        pending_interaction=pending,
        replica_id=run.replica_id,
        attempts=run.attempts or {},
        version=run.version,
    )


def _runs_with_pending(project_id: str) -> Select[Run, Interaction]:
    # One query: the interaction a run waits for comes with it (the join is on a primary key).
    return (
        select(Run, Interaction)
        .outerjoin(
            Interaction,
            and_(
                Interaction.interaction_id == Run.pending_interaction_id,
                Interaction.project_id == Run.project_id,
            ),
        )
        .where(Run.project_id == project_id)
    )


async def get_run(session: AsyncSession, project_id: str, run_id: str) -> RunState | None:
    """The run ``run_id`` of ``project_id`` with its pending interaction, or ``None``."""
    row = (
        await session.execute(_runs_with_pending(project_id).where(Run.run_id == run_id))
    ).first()
    return None if row is None else _run_state(row[0], row[1])


def encode_cursor(created_at: datetime, run_id: str) -> str:
    """The opaque cursor that resumes a run listing after ``(created_at, run_id)``."""
    raw = json.dumps({"c": created_at.isoformat(), "r": run_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of ``encode_cursor``; raises ``InvalidCursor`` on anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        created_at = datetime.fromisoformat(data["c"])
        run_id = data["r"]
    except (ValueError, TypeError, KeyError) as exc:  # binascii.Error is a ValueError
        raise InvalidCursor(f"invalid cursor: {cursor!r}") from exc
    if not isinstance(run_id, str) or created_at.tzinfo is None:
        raise InvalidCursor(f"invalid cursor: {cursor!r}")
    return created_at, run_id


async def list_runs(
    session: AsyncSession,
    project_id: str,
    *,
    session_id: str | None = None,
    statuses: Sequence[str] | None = None,
    agent: str | None = None,
    trigger_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[RunState], str | None]:
    """A page of runs, newest first (``created_at`` desc, then ``run_id`` desc).

    Returns the runs and the cursor of the next page (``None`` on the last page). Keyset
    pagination: runs created while paging neither shift nor repeat rows.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    stmt = _runs_with_pending(project_id)
    if session_id is not None:
        stmt = stmt.where(Run.session_id == session_id)
    if statuses:
        stmt = stmt.where(Run.status.in_([str(status) for status in statuses]))
    if agent is not None:
        stmt = stmt.where(Run.agent == agent)
    if trigger_id is not None:
        stmt = stmt.where(Run.trigger_id == trigger_id)
    if cursor is not None:
        created_at, run_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                Run.created_at < created_at,
                and_(Run.created_at == created_at, Run.run_id < run_id),
            )
        )
    # One extra row tells whether there is a next page.
    stmt = stmt.order_by(Run.created_at.desc(), Run.run_id.desc()).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    runs = [_run_state(run, interaction) for run, interaction in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = runs[-1]
        next_cursor = encode_cursor(last.created_at, last.run_id)
    return runs, next_cursor


# Transcript and history.


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


# Agents.


class CatalogAgent(BaseModel):
    """An agent of the catalogue, as last synced from the runners."""

    name: str
    kind: str
    description: str = ""
    available: bool
    replica_id: str | None
    updated_at: datetime


async def list_agents(session: AsyncSession, *, available_only: bool = False) -> list[CatalogAgent]:
    """The agent catalogue (shared by every project), by name."""
    stmt = select(AgentRow).order_by(AgentRow.name)
    if available_only:
        stmt = stmt.where(AgentRow.available)
    rows = (await session.scalars(stmt)).all()
    return [CatalogAgent.model_validate(row, from_attributes=True) for row in rows]


# Sessions.

SessionStatus = Literal["idle", "active", "waiting_for_input"]


class SessionSummary(BaseModel):
    """A session as the API shows it: what it is doing now and where its stream is."""

    session_id: str
    project_id: str
    agent: str | None
    status: SessionStatus
    active_run_id: str | None
    last_run_id: str | None
    run_count: int
    created_at: datetime
    last_activity_at: datetime
    # ``last_seq`` of the active run, else of the last run: where a client resumes the stream.
    cursor: int


async def get_session(
    session: AsyncSession, project_id: str, session_id: str
) -> SessionSummary | None:
    """The session ``session_id`` of ``project_id`` with its derived status, or ``None``.

    The active run is the newest run that has not ended; a queued run only counts when nothing
    else is under way (with ``enqueue``, the running run stays the active one).
    """
    row = await session.scalar(
        select(SessionRow).where(
            SessionRow.project_id == project_id, SessionRow.session_id == session_id
        )
    )
    if row is None:
        return None
    in_session = (Run.project_id == project_id, Run.session_id == session_id)
    run_count = await session.scalar(select(func.count()).select_from(Run).where(*in_session))
    active = (
        await session.execute(
            select(Run.run_id, Run.status, Run.last_seq)
            .where(*in_session, Run.status.not_in(_TERMINAL))
            .order_by(
                case((Run.status == RunStatus.QUEUED.value, 1), else_=0),
                Run.created_at.desc(),
                Run.run_id.desc(),
            )
            .limit(1)
        )
    ).first()
    last = (
        await session.execute(
            select(Run.run_id, Run.last_seq)
            .where(*in_session)
            .order_by(Run.created_at.desc(), Run.run_id.desc())
            .limit(1)
        )
    ).first()
    status: SessionStatus = "idle"
    if active is not None:
        waiting = active.status == RunStatus.WAITING_FOR_INPUT.value
        status = "waiting_for_input" if waiting else "active"
    cursor_from = active if active is not None else last
    return SessionSummary(
        session_id=row.session_id,
        project_id=row.project_id,
        agent=row.agent,
        status=status,
        active_run_id=active.run_id if active is not None else None,
        last_run_id=last.run_id if last is not None else row.last_run_id,
        run_count=run_count or 0,
        created_at=row.created_at,
        last_activity_at=row.updated_at,
        cursor=cursor_from.last_seq if cursor_from is not None else 0,
    )
