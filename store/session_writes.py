"""The session row, kept in step with its runs by ``store.writes.upsert_run``.

A session's ``status``, ``active_run_id``, ``run_count`` and ``last_run_id`` are derived from
its runs in the transaction that writes a run, so listing sessions by status is plain SQL.

- The **active run** is the oldest unfinished run past ``queued`` (the one under way), else the
  oldest ``queued`` one (next to start). With ``enqueue`` a session has one run under way and
  queued runs behind it; projections of a newly queued run never take "active" from it.
- The **status** is ``waiting_for_input`` if the active run waits for a human, ``active`` if
  any run is unfinished, else ``idle``.

Concurrency: ``lock_session`` runs first in ``upsert_run``. On PostgreSQL its upsert locks
the session row, so writers of one session's runs take turns, and ``refresh_session`` (a later
statement, hence a later snapshot under READ COMMITTED) sees every run committed before it.
Deriving in one statement with no lock could lose a concurrent writer's run. SQLite has a
single writer anyway.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import dialect_insert
from store.models import Run, SessionRow
from workflows.types import TERMINAL_STATUSES, RunState, RunStatus

TERMINAL = sorted(status.value for status in TERMINAL_STATUSES)

# Core tables: plain UPDATE statements, no ORM synchronisation.
_runs = cast(Table, Run.__table__)
_sessions = cast(Table, SessionRow.__table__)


def active_run_select(project_id: Any, session_id: Any, *columns: Any) -> Select[Any]:
    """``columns`` of the session's active run (at most one row); arguments may be SQL."""
    return (
        select(*columns)
        .where(
            Run.project_id == project_id,
            Run.session_id == session_id,
            Run.status.not_in(TERMINAL),
        )
        .order_by(
            case((Run.status == RunStatus.QUEUED.value, 1), else_=0),
            Run.created_at,
            Run.run_id,
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
        index_elements=[_sessions.c.session_id],
        set_={
            # Last activity only moves forward: a stale write keeps the later time.
            "updated_at": case(
                (_sessions.c.updated_at < stmt.excluded.updated_at, stmt.excluded.updated_at),
                else_=_sessions.c.updated_at,
            ),
        },
        # Session IDs are global (like the workflow ID ``session-{id}``): a run of another
        # project that reuses one must not rewrite this project's session. PostgreSQL still
        # locks the row it did not update, which is harmless.
        where=_sessions.c.project_id == stmt.excluded.project_id,
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
    active_id = active_run_select(project_id, session_id, Run.run_id).scalar_subquery()
    active_status = active_run_select(project_id, session_id, Run.status).scalar_subquery()
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
