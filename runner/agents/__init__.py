"""Python agents hosted by the reference runner. Importing this package registers them all."""

from runner.agents import approval, echo, scripted
from runner.agents.base import (
    AGENTS,
    AgentContext,
    AgentError,
    AgentFn,
    AgentResult,
    AgentSpec,
    agent,
)

__all__ = [
    "AGENTS",
    "AgentContext",
    "AgentError",
    "AgentFn",
    "AgentResult",
    "AgentSpec",
    "agent",
    "approval",
    "echo",
    "scripted",
]
