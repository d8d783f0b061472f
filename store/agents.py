"""The agents aggregate: the catalogue of agents the runners offer, shared by every project.

Written by the catalogue activity from a runner's ``GET /v1/agents`` (``replace_agents``, an
idempotent upsert keyed by agent name, which never deletes: an agent no longer offered stays
listed as unavailable); read by the API to list agents and to check the agent a run names, so
it never has to call a runner. The catalogue is global, so these are the only store functions
not scoped by project. Writes do not commit; the caller owns the transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from runner.protocol import AgentList
from store.db import dialect_insert
from store.models import AgentRow

_agents = AgentRow.__table__


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


async def replace_agents(
    session: AsyncSession, offered: AgentList, now: datetime | None = None
) -> None:
    """Make ``offered`` the agent catalogue: those agents available, every other one not."""
    now = now or datetime.now(UTC)
    names = [agent.name for agent in offered.agents]
    for agent in offered.agents:
        stmt = dialect_insert(session, _agents).values(
            name=agent.name,
            kind=agent.kind,
            description=agent.description,
            available=True,
            replica_id=offered.replica_id,
            updated_at=now,
        )
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[_agents.c.name],
            set_={
                name: excluded[name]
                for name in ("kind", "description", "available", "replica_id", "updated_at")
            },
        )
        await session.execute(stmt)
    await session.execute(
        update(AgentRow)
        .where(AgentRow.available, AgentRow.name.not_in(names))
        .values(available=False, updated_at=now)
        # Nothing of this table is loaded in the session: no need to sync objects.
        .execution_options(synchronize_session=False)
    )
