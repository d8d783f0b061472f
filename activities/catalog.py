"""Activity syncing the agents a runner offers into the store's catalogue."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from runner.protocol import AgentList, auth_headers
from store import agents
from tether.settings import Settings


class CatalogActivities:
    def __init__(
        self, db: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, settings: Settings
    ) -> None:
        self._db, self._http, self._settings = db, http, settings

    @activity.defn
    async def sync_agents(self) -> int:
        """Fetch ``GET /v1/agents`` and make it the catalogue; returns how many agents."""
        response = await self._http.get(
            self._settings.runner_base_url + "/v1/agents",
            headers=auth_headers(self._settings.runner_token.get_secret_value()),
        )
        response.raise_for_status()
        offered = AgentList.model_validate_json(response.content)
        async with self._db.begin() as session:
            await agents.replace_agents(session, offered)
        return len(offered.agents)
