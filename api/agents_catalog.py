"""The agents a run may name: the catalogue the worker syncs from the runners into the store."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import ApiError
from store import agents


async def require_agent(db: AsyncSession, name: str) -> None:
    """422 unless a runner currently offers the agent, so a bad name starts nothing."""
    catalogue = await agents.list_agents(db)
    available = sorted(a.name for a in catalogue if a.available)
    if name not in available:
        raise ApiError(
            422,
            "unknown_agent",
            f"no runner offers agent {name!r}",
            {"agent": name, "available": available},
        )
