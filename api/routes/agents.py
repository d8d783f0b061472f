"""The agents runs can name, as last synced from the runners."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import VIEWER
from api.deps import DbDep
from api.schemas.agents import AgentList, AgentPublic
from store import agents

router = APIRouter(prefix="/v1/agents", tags=["agents"])


@router.get("", response_model=AgentList, dependencies=[VIEWER])
async def list_agents(db: DbDep) -> AgentList:
    catalogue = await agents.list_agents(db)
    return AgentList(agents=[AgentPublic.of(a) for a in catalogue])
