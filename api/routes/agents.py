"""The agents runs can name, as last synced from the runners."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import DbDep
from api.schemas import AgentListView, AgentView
from store import agents

router = APIRouter(prefix="/v1/agents", tags=["agents"])


@router.get("", response_model=AgentListView)
async def list_agents(db: DbDep) -> AgentListView:
    catalogue = await agents.list_agents(db)
    return AgentListView(agents=[AgentView.model_validate(a.model_dump()) for a in catalogue])
