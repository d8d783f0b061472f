"""The runs aggregate: a run's row, its status history, and the reads the API makes of them.

Written by the record activity (``upsert_run``), which Temporal may run more than once, so the
write is idempotent: the row is only overwritten by a state whose ``version`` is at least the
stored one, so a retried, stale write never moves a run back, and each status transition is
written once. The same transaction keeps the run's session in step (``store.sessions``) and
records the interaction it waits for (``store.interactions``). Writes do not commit; the
caller owns the transaction.

Every read is scoped by project: a run of another project is simply not found, so the API
answers 404 and never leaks that it exists. A run comes back with the interaction it waits
for, joined in the same query. The listing's ordering and paging are in ``store.run_listing``.

The row is derived from ``RunState`` (``RecordColumns``: every field with a column of its
name), so a new field needs only its column. Mapped by hand: ``pending_interaction`` is
stored as ``pending_interaction_id`` (the interaction is a row of its own),
``agent_session_id`` lives on the session row, and ``request_hash`` is not part of the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import interactions, run_listing, sessions
from store.columns import RecordColumns
from store.db import dialect_insert
from store.keyset import Direction
from store.models import Interaction, RunRow, RunStatusHistory, SessionRow
from workflows.types import PendingInteraction, RunState, RunStatus, StatusTransition

_COLUMNS = RecordColumns.of(RunRow, RunState)

# Fixed when the run is created; a later projection never rewrites them, so a run keeps its
# place in keyset pages and its project.
_IDENTITY = frozenset({"run_id", "project_id", "session_id", "created_at"})

# Core tables, not ORM entities: rows are keyed by column name ("metadata", not "metadata_")
# and the statements stay plain INSERT ... ON CONFLICT.
_runs = _COLUMNS.table
_history = RunStatusHistory.__table__


@dataclass(frozen=True)
class KeyedRun:
    """The run an idempotency key made, and the fingerprint of the request that made it
    (``None`` if the run was recorded before it was known)."""

    run: RunState
    request_hash: str | None


def _run_state(run: RunRow, interaction: Interaction | None) -> RunState:
    pending = None
    if interaction is not None:
        pending = PendingInteraction.model_validate(interaction, from_attributes=True)
    return RunState.model_validate({**_COLUMNS.fields(run), "pending_interaction": pending})


def _run_row(state: RunState) -> dict[str, Any]:
    row = _COLUMNS.row(state)
    pending = state.pending_interaction
    row["pending_interaction_id"] = None if pending is None else pending.interaction_id
    return row


def _with_pending(project_id: str, runs: Any = RunRow) -> Select[RunRow, Interaction]:
    """``(RunRow, Interaction | None)`` rows of the project's runs, to filter further.

    ``runs`` is ``RunRow`` or an ``aliased(RunRow, subquery)`` that already narrowed them down.
    """
    # One query: the interaction a run waits for comes with it (the join is on a primary key).
    return (
        select(runs, Interaction)
        .outerjoin(
            Interaction,
            and_(
                Interaction.interaction_id == runs.pending_interaction_id,
                Interaction.project_id == runs.project_id,
            ),
        )
        .where(runs.project_id == project_id)
    )


# Reads.


async def get_run(session: AsyncSession, project_id: str, run_id: str) -> RunState | None:
    """The run ``run_id`` of ``project_id`` with its pending interaction, or ``None``."""
    row = (await session.execute(_with_pending(project_id).where(RunRow.run_id == run_id))).first()
    return None if row is None else _run_state(row[0], row[1])


async def find_run_by_idempotency_key(
    session: AsyncSession, project_id: str, session_id: str, key: str
) -> KeyedRun | None:
    """The run that idempotency ``key`` created in the session, with its ``request_hash``.

    ``None`` if the key is new there. Should a key ever be stored twice, the first run wins:
    it is the one the key has meant since.
    """
    stmt = (
        _with_pending(project_id)
        .where(RunRow.session_id == session_id, RunRow.idempotency_key == key)
        .order_by(RunRow.created_at, RunRow.run_id)
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    return KeyedRun(run=_run_state(row[0], row[1]), request_hash=row[0].request_hash)


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
    stmt = _with_pending(project_id).where(RunRow.run_id == active_id)
    row = (await session.execute(stmt)).first()
    return None if row is None else _run_state(row[0], row[1])


async def list_runs(
    session: AsyncSession,
    project_id: str,
    *,
    session_id: str | None = None,
    statuses: Sequence[str] | None = None,
    agent: str | None = None,
    trigger_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    order_by: run_listing.RunOrder = "created_at",
    direction: Direction = "desc",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[RunState], str | None]:
    """A page of the project's runs and the cursor of the next one (``None`` on the last).

    Filters combine with AND; ``statuses`` matches any of them; the created range is
    half-open, ``created_after <= created_at < created_before``, so adjacent ranges tile.
    Ordered by ``order_by`` then ``run_id``, both in ``direction``; the guarantees while runs
    change are in ``store.run_listing``. ``ValueError`` on an unknown order or a limit below
    1, ``InvalidCursor`` on a cursor that is malformed or made for another order.
    """
    filters: list[ColumnElement[bool]] = []
    if session_id is not None:
        filters.append(RunRow.session_id == session_id)
    if statuses:
        filters.append(RunRow.status.in_([str(status) for status in statuses]))
    if agent is not None:
        filters.append(RunRow.agent == agent)
    if trigger_id is not None:
        filters.append(RunRow.trigger_id == trigger_id)
    if created_after is not None:
        filters.append(RunRow.created_at >= created_after)
    if created_before is not None:
        filters.append(RunRow.created_at < created_before)
    rows, next_cursor = await run_listing.page(
        session,
        project_id,
        _with_pending,
        filters,
        created_after=created_after,
        created_before=created_before,
        order_by=order_by,
        direction=direction,
        limit=limit,
        cursor=cursor,
    )
    return [_run_state(run, interaction) for run, interaction in rows], next_cursor


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
        StatusTransition(
            seq=row.seq, status=RunStatus(row.status), reason=row.reason, at=row.at, actor=row.actor
        )
        for row in rows
    ]


# Writes.


async def upsert_run(
    session: AsyncSession,
    state: RunState,
    transition: StatusTransition | None = None,
    *,
    request_hash: str | None = None,
) -> None:
    """Project ``state`` to ``runs`` (and its session), plus ``transition`` to the history.

    The run row is only overwritten by a state whose ``version`` is at least the stored one,
    so a retried, stale write never moves a run back. ``request_hash`` (the fingerprint of the
    request that created the run) is kept from the first write that has one and never
    overwritten. The session's derived columns (``store.sessions``) are refreshed in the same
    transaction. The history row is keyed by ``(run_id, transition.seq)`` and written once. A
    pending interaction that has no row yet is recorded as pending, so ``get_run`` can always
    show what the run waits for.
    """
    # Session first: its row lock orders concurrent writers of the same session.
    await sessions.lock_session(session, state)
    row = _run_row(state)
    # Or from the state itself, should it ever carry the fingerprint (as a derived column).
    row["request_hash"] = request_hash or row.get("request_hash")
    stmt = dialect_insert(session, _runs).values(row)
    excluded = stmt.excluded
    set_: dict[str, Any] = {name: excluded[name] for name in row if name not in _IDENTITY}
    # Set once: a later projection that does not carry the fingerprint must not erase it.
    set_["request_hash"] = func.coalesce(_runs.c.request_hash, excluded.request_hash)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_runs.c.run_id],
        set_=set_,
        where=_runs.c.version <= excluded.version,
    )
    await session.execute(stmt)
    await sessions.refresh_session(session, state.project_id, state.session_id)
    if state.agent_session_id:
        await sessions.remember_agent_session(session, state)
    if state.pending_interaction is not None:
        await interactions.record_pending(
            session,
            state.pending_interaction,
            run_id=state.run_id,
            session_id=state.session_id,
            project_id=state.project_id,
        )
    if transition is not None:
        history = dialect_insert(session, _history).values(
            run_id=state.run_id,
            seq=transition.seq,
            project_id=state.project_id,
            status=transition.status.value,
            reason=transition.reason,
            at=transition.at,
            actor=transition.actor,
        )
        await session.execute(
            history.on_conflict_do_nothing(index_elements=[_history.c.run_id, _history.c.seq])
        )
