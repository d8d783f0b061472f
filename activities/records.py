"""Activities that project the run's state changes to the store (the read model)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from store.writes import upsert_interaction, upsert_run
from workflows.types import InteractionRecord, RecordRunInput


class StoreActivities:
    """Idempotent store writes: activities may run more than once."""

    def __init__(self, db: async_sessionmaker[AsyncSession]) -> None:
        self._db = db

    @activity.defn
    async def record_run(self, inp: RecordRunInput) -> None:
        """Upsert the run row (newer versions only) and append its status transition."""
        async with self._db.begin() as session:
            await upsert_run(session, inp.state, inp.transition)

    @activity.defn
    async def record_interaction(self, record: InteractionRecord) -> None:
        async with self._db.begin() as session:
            await upsert_interaction(session, record)
