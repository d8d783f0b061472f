"""Session reads: one session, the session listing, and a session's active run.

The session's ``status``, ``active_run_id``, ``run_count`` and ``last_run_id`` are columns kept
in step with its runs (``store.session_writes``), so these reads filter and order in SQL and
agree with each other.

Pagination of ``list_sessions`` is keyset on ``(order key, session_id)``: sessions created
while paging never make a page skip or repeat one. Ordered by ``created_at`` it is exact;
ordered by ``last_activity_at``, a session that gets activity between two page fetches moves
to the front and may be missed (desc) or seen twice (asc), like any order on a changing key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.keyset import Direction, after, decode_position, encode_position
from store.models import Run, SessionRow
from store.queries_runs import run_state_from_row, runs_with_pending
from workflows.types import RunState, RunStatus

SessionStatus = Literal["idle", "active", "waiting_for_input"]
SessionOrder = Literal["last_activity_at", "created_at"]

_LISTING = "sessions"
_ORDER_COLUMNS = {"last_activity_at": SessionRow.updated_at, "created_at": SessionRow.created_at}


class SessionSummary(BaseModel):
    """A session as the API shows it: what it is doing now and where its stream is."""

    session_id: str
    project_id: str
    agent: str | None
    status: SessionStatus
    # The run under way, else the next queued one (``store.session_writes``).
    active_run_id: str | None
    last_run_id: str | None
    run_count: int
    created_at: datetime
    last_activity_at: datetime
    # ``last_seq`` of the active run, else of the last run: where a client resumes the stream.
    cursor: int
    # Runs waiting behind the active one, in the order they will run.
    queued_run_ids: list[str] = Field(default_factory=list)


def _sessions_with_cursor(project_id: str) -> Select[SessionRow, int | None]:
    # The stream cursor is the last_seq of the active (else last) run. A correlated subquery
    # rather than a join: evaluated by primary key for the rows of the page only, where a
    # join may be planned as a hash join over every run.
    shown_run = func.coalesce(SessionRow.active_run_id, SessionRow.last_run_id)
    last_seq = select(Run.last_seq).where(Run.run_id == shown_run).scalar_subquery()
    return select(SessionRow, last_seq).where(SessionRow.project_id == project_id)


async def _summaries(
    session: AsyncSession, project_id: str, rows: Sequence[Any]
) -> list[SessionSummary]:
    queued: dict[str, list[str]] = {row[0].session_id: [] for row in rows}
    if queued:
        stmt = (
            select(Run.session_id, Run.run_id)
            .where(
                Run.project_id == project_id,
                Run.session_id.in_(list(queued)),
                Run.status == RunStatus.QUEUED.value,
            )
            .order_by(Run.created_at, Run.run_id)
        )
        for session_id, run_id in (await session.execute(stmt)).all():
            queued[session_id].append(run_id)
    summaries = []
    for row, last_seq in rows:
        summaries.append(
            SessionSummary(
                session_id=row.session_id,
                project_id=row.project_id,
                agent=row.agent,
                status=row.status,
                active_run_id=row.active_run_id,
                last_run_id=row.last_run_id,
                run_count=row.run_count,
                created_at=row.created_at,
                last_activity_at=row.updated_at,
                cursor=last_seq or 0,
                queued_run_ids=[r for r in queued[row.session_id] if r != row.active_run_id],
            )
        )
    return summaries


async def get_session(
    session: AsyncSession, project_id: str, session_id: str
) -> SessionSummary | None:
    """The session ``session_id`` of ``project_id`` with its status and queue, or ``None``."""
    stmt = _sessions_with_cursor(project_id).where(SessionRow.session_id == session_id)
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    return (await _summaries(session, project_id, [row]))[0]


async def list_sessions(
    session: AsyncSession,
    project_id: str,
    *,
    statuses: Sequence[str] | None = None,
    agent: str | None = None,
    order_by: SessionOrder = "last_activity_at",
    direction: Direction = "desc",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[SessionSummary], str | None]:
    """A page of the project's sessions and the cursor of the next one (``None`` on the last).

    ``statuses`` matches any of them; ordered by ``order_by`` then ``session_id``, both in
    ``direction``. ``ValueError`` on an unknown order or a limit below 1, ``InvalidCursor`` on
    a cursor that is malformed or made for another order.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if order_by not in _ORDER_COLUMNS:
        raise ValueError(f"order_by must be one of {sorted(_ORDER_COLUMNS)}, not {order_by!r}")
    if direction not in get_args(Direction):
        raise ValueError(f"direction must be 'asc' or 'desc', not {direction!r}")
    columns = (_ORDER_COLUMNS[order_by], SessionRow.session_id)

    stmt = _sessions_with_cursor(project_id)
    if statuses:
        stmt = stmt.where(SessionRow.status.in_([str(status) for status in statuses]))
    if agent is not None:
        stmt = stmt.where(SessionRow.agent == agent)
    if cursor is not None:
        position = decode_position(cursor, _LISTING, order_by, direction, ("datetime", "str"))
        stmt = stmt.where(after(columns, position, direction))
    sort = [c.asc() if direction == "asc" else c.desc() for c in columns]
    rows = (await session.execute(stmt.order_by(*sort).limit(limit + 1))).all()
    summaries = await _summaries(session, project_id, rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        key = last.updated_at if order_by == "last_activity_at" else last.created_at
        next_cursor = encode_position(_LISTING, order_by, direction, [key, last.session_id])
    return summaries, next_cursor


async def get_active_run(
    session: AsyncSession, project_id: str, session_id: str
) -> RunState | None:
    """The session's active run (under way, else next queued) with its pending interaction.

    ``None`` if the session is idle or unknown in ``project_id``.
    """
    active_id = (
        select(SessionRow.active_run_id)
        .where(SessionRow.project_id == project_id, SessionRow.session_id == session_id)
        .scalar_subquery()
    )
    stmt = runs_with_pending(project_id).where(Run.run_id == active_id)
    row = (await session.execute(stmt)).first()
    return None if row is None else run_state_from_row(row[0], row[1])


async def get_agent_session(
    session: AsyncSession, project_id: str, session_id: str, agent: str
) -> str | None:
    """The agent's own session ID left by an earlier run of ``agent`` in this session."""
    row = (
        await session.execute(
            select(SessionRow.agent_session_id, SessionRow.agent_session_agent).where(
                SessionRow.project_id == project_id, SessionRow.session_id == session_id
            )
        )
    ).first()
    if row is None or row.agent_session_agent != agent:
        return None
    return row.agent_session_id
