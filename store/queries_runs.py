"""Run reads: one run, and the run an idempotency key made. Every query is scoped by project:
a run of another project is simply not found. The listing is in ``store.run_listing``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Interaction, Run
from workflows.types import PendingInteraction, RunResult, RunState, RunStatus


def run_state_from_row(run: Run, interaction: Interaction | None) -> RunState:
    """The ``RunState`` of a stored run and the interaction it waits for, if any."""
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


def runs_with_pending(project_id: str, runs: Any = Run) -> Select[Run, Interaction]:
    """``(Run, Interaction | None)`` rows of the project's runs, to filter further.

    ``runs`` is ``Run`` or an ``aliased(Run, subquery)`` that already narrowed them down.
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


async def get_run(session: AsyncSession, project_id: str, run_id: str) -> RunState | None:
    """The run ``run_id`` of ``project_id`` with its pending interaction, or ``None``."""
    row = (await session.execute(runs_with_pending(project_id).where(Run.run_id == run_id))).first()
    return None if row is None else run_state_from_row(row[0], row[1])


async def find_run_by_idempotency_key(
    session: AsyncSession, project_id: str, session_id: str, key: str
) -> tuple[RunState, str | None] | None:
    """The run that idempotency ``key`` created in the session, with its ``request_hash``.

    ``None`` if the key is new there. Should a key ever be stored twice, the first run wins:
    it is the one the key has meant since.
    """
    stmt = (
        runs_with_pending(project_id)
        .where(Run.session_id == session_id, Run.idempotency_key == key)
        .order_by(Run.created_at, Run.run_id)
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else (run_state_from_row(row[0], row[1]), row[0].request_hash)
