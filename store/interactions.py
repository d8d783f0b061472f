"""The interactions aggregate: a run's questions to a human and their answers.

Written by the record activities (``upsert_interaction``) and by ``store.runs.upsert_run``,
which records the interaction a run waits for (``record_pending``) so the run never points
at a missing row. Every write is idempotent, keyed by ``interaction_id``, and a settled
interaction (resolved, expired, cancelled) never moves back to pending. Reads are scoped by
project: another project's interaction is simply not found; ``count_pending`` (the worker's
gauge) counts every project's. Writes do not commit; the caller owns the transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.columns import RecordColumns
from store.db import dialect_insert
from store.models import Interaction
from workflows.types import InteractionRecord, PendingInteraction

# Every field of the record is a column of the same name.
_COLUMNS = RecordColumns.of(Interaction, InteractionRecord)
_interactions = _COLUMNS.table


def _record(row: Interaction) -> InteractionRecord:
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
    return None if row is None else _record(row)


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
    return [_record(row) for row in rows]


async def count_pending(session: AsyncSession) -> int:
    """How many interactions wait for a human right now, in every project."""
    stmt = select(func.count()).select_from(Interaction).where(Interaction.status == "pending")
    return int((await session.scalar(stmt)) or 0)


async def upsert_interaction(session: AsyncSession, rec: InteractionRecord) -> None:
    """Write the interaction as given, keyed by ``interaction_id``.

    A settled interaction (resolved, expired, cancelled) is never moved back to pending: a
    retried "record pending" activity that lands after the answer changes nothing.
    """
    row = _COLUMNS.row(rec)
    stmt = dialect_insert(session, _interactions).values(row)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[_interactions.c.interaction_id],
        set_={name: excluded[name] for name in row if name != "interaction_id"},
        where=(_interactions.c.status == "pending") | (excluded.status != "pending"),
    )
    await session.execute(stmt)


async def record_pending(
    session: AsyncSession,
    pending: PendingInteraction,
    *,
    run_id: str,
    session_id: str,
    project_id: str,
) -> None:
    """Record the interaction a run waits for as pending, unless it already has a row.

    An existing row, pending or settled, is left as it is: the run's projection may lag
    behind the answer.
    """
    rec = InteractionRecord.pending(
        pending, run_id=run_id, session_id=session_id, project_id=project_id
    )
    stmt = dialect_insert(session, _interactions).values(_COLUMNS.row(rec))
    await session.execute(
        stmt.on_conflict_do_nothing(index_elements=[_interactions.c.interaction_id])
    )
