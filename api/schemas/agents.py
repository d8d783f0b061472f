"""Bodies of ``/v1/agents``."""

from __future__ import annotations

from pydantic import BaseModel

from api.schemas.base import Public


class AgentPublic(Public):
    name: str
    kind: str
    description: str = ""
    available: bool = True


class AgentList(BaseModel):
    agents: list[AgentPublic]
