"""The sessions aggregate: a session row and what it is doing now, kept in step with its runs.

A session's ``status``, ``active_run_id``, ``run_count`` and ``last_run_id`` are derived from
its runs in the transaction that writes a run (``store.runs.upsert_run`` calls
``lock_session`` then ``refresh_session``), so the reads filter and order in SQL and agree
with each other.

- The **active run** is the oldest unfinished run past ``queued`` (the one under way), else the
  oldest ``queued`` one (next to start). With ``enqueue`` a session has one run under way and
  queued runs behind it; projections of a newly queued run never take "active" from it.
- The **status** is ``waiting_for_input`` if the active run waits for a human, ``active`` if
  any run is unfinished, else ``idle``.

Writes are idempotent (re-deriving from the runs gives the same row) and do not commit; the
caller owns the transaction. Concurrency: ``lock_session`` runs first in ``upsert_run``. On
PostgreSQL its upsert locks the session row, so writers of one session's runs take turns, and
``refresh_session`` (a later statement, hence a later snapshot under READ COMMITTED) sees
every run committed before it. Deriving in one statement with no lock could lose a concurrent
writer's run. SQLite has a single writer anyway.

Reads are scoped by project: another project's session is simply not found. A session is
keyed by ``(project_id, session_id)``, like its workflow ID ``session-{project}.{session}``,
so two projects may use the same session ID without touching each other's. Pagination of
``list_sessions`` is keyset on ``(order key, session_id)``: sessions created while paging
never make a page skip or repeat one. Ordered by ``created_at`` it is exact; ordered by
``last_activity_at``, a session that gets activity between two page fetches moves to the
front and may be missed (desc) or seen twice (asc), like any order on a changing key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, Table, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import dialect_insert
from store.keyset import Direction, after, decode_position, encode_position
from store.models import RunRow, SessionRow
from workflows.types import TERMINAL_STATUSES, RunState, RunStatus

SessionStatus = Literal["idle", "active", "waiting_for_input"]
SessionOrder = Literal["last_activity_at", "created_at"]

_LISTING = "sessions"
_ORDER_COLUMNS = {"last_activity_at": SessionRow.updated_at, "created_at": SessionRow.created_at}
_TERMINAL = sorted(status.value for status in TERMINAL_STATUSES)

# Core tables for the writes: plain UPDATE statements, no ORM synchronisation.
_runs = cast(Table, RunRow.__table__)
_sessions = cast(Table, SessionRow.__table__)

# Reads.


class SessionSummary(BaseModel):
    """A session as the API shows it: what it is doing now and where its stream is."""

    session_id: str
    project_id: str
    agent: str | None
    status: SessionStatus
    # The run under way, else the next queued one (this module's docstring).
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
    last_seq = select(RunRow.last_seq).where(RunRow.run_id == shown_run).scalar_subquery()
    return select(SessionRow, last_seq).where(SessionRow.project_id == project_id)


async def _summaries(
    session: AsyncSession, project_id: str, rows: Sequence[Any]
) -> list[SessionSummary]:
    queued: dict[str, list[str]] = {row[0].session_id: [] for row in rows}
    if queued:
        stmt = (
            select(RunRow.session_id, RunRow.run_id)
            .where(
                RunRow.project_id == project_id,
                RunRow.session_id.in_(list(queued)),
                RunRow.status == RunStatus.QUEUED.value,
            )
            .order_by(RunRow.created_at, RunRow.run_id)
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


# Writes.


def _active_run_select(project_id: Any, session_id: Any, *columns: Any) -> Select[Any]:
    """``columns`` of the session's active run (at most one row); arguments may be SQL."""
    return (
        select(*columns)
        .where(
            RunRow.project_id == project_id,
            RunRow.session_id == session_id,
            RunRow.status.not_in(_TERMINAL),
        )
        .order_by(
            case((RunRow.status == RunStatus.QUEUED.value, 1), else_=0),
            RunRow.created_at,
            RunRow.run_id,
        )
        .limit(1)
    )


async def lock_session(session: AsyncSession, state: RunState) -> None:
    """Create the run's session if new, else bump its last activity; locks the row."""
    stmt = dialect_insert(session, _sessions).values(
        session_id=state.session_id,
        project_id=state.project_id,
        agent=state.agent,
        created_at=state.created_at,
        updated_at=state.updated_at,
        last_run_id=state.run_id,
        metadata={},
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[_sessions.c.project_id, _sessions.c.session_id],
        set_={
            # Last activity only moves forward: a stale write keeps the later time.
            "updated_at": case(
                (_sessions.c.updated_at < stmt.excluded.updated_at, stmt.excluded.updated_at),
                else_=_sessions.c.updated_at,
            ),
        },
    )
    await session.execute(stmt)


async def refresh_session(session: AsyncSession, project_id: str, session_id: str) -> None:
    """Re-derive the session's status, active run, run count and last run from its runs."""
    in_session = (_runs.c.project_id == project_id, _runs.c.session_id == session_id)
    run_count: ColumnElement[Any] = (
        select(func.count()).select_from(_runs).where(*in_session).scalar_subquery()
    )
    # The newest run, whatever order the projections arrive in (a queued run can be written
    # before the active one finishes).
    last_run: ColumnElement[Any] = (
        select(_runs.c.run_id)
        .where(*in_session)
        .order_by(_runs.c.created_at.desc(), _runs.c.run_id.desc())
        .limit(1)
        .scalar_subquery()
    )
    active_id = _active_run_select(project_id, session_id, RunRow.run_id).scalar_subquery()
    active_status = _active_run_select(project_id, session_id, RunRow.status).scalar_subquery()
    status = case(
        (active_status == RunStatus.WAITING_FOR_INPUT.value, "waiting_for_input"),
        (active_id.is_not(None), "active"),
        else_="idle",
    )
    await session.execute(
        update(_sessions)
        .where(_sessions.c.project_id == project_id, _sessions.c.session_id == session_id)
        .values(
            run_count=run_count,
            last_run_id=last_run,
            active_run_id=active_id,
            status=status,
        )
    )


async def remember_agent_session(session: AsyncSession, state: RunState) -> None:
    """Keep the agent's own session ID on the session, for the next run of the same agent."""
    await session.execute(
        update(_sessions)
        .where(
            _sessions.c.project_id == state.project_id,
            _sessions.c.session_id == state.session_id,
        )
        .values(agent_session_id=state.agent_session_id, agent_session_agent=state.agent)
    )
