"""Activities that project the run's state changes to the store (the read model)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities import metrics
from store import interactions, runs
from workflows.types import InteractionRecord, RecordRunInput, RunStatus


class StoreActivities:
    """Idempotent store writes: activities may run more than once."""

    def __init__(self, db: async_sessionmaker[AsyncSession]) -> None:
        self._db = db

    @activity.defn
    async def record_run(self, inp: RecordRunInput) -> None:
        """Upsert the run row (newer versions only) and append its status transition."""
        async with self._db.begin() as session:
            await runs.upsert_run(session, inp.state, inp.transition, request_hash=inp.request_hash)
        if inp.transition is not None:  # counted once the write committed
            status = inp.transition.status
            if status == RunStatus.DISPATCHING:
                metrics.run_started(inp.state.agent)
            elif status.is_terminal:
                metrics.run_finished(inp.state.agent, status.value)

    @activity.defn
    async def record_interaction(self, record: InteractionRecord) -> None:
        async with self._db.begin() as session:
            await interactions.upsert_interaction(session, record)
        metrics.interaction_recorded()
