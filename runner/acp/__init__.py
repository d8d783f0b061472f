"""ACP agents on the reference runner: any program speaking the Agent Client Protocol on stdio.

``acp_agents(settings)`` builds an ``AgentSpec`` of kind ``acp`` for every configured agent
(``runner/acp/config.py``); each run spawns the agent's process (``session.py``), and what the
agent reports becomes the run's events (``client.py``, ``mapping.py``).
"""

from __future__ import annotations

from functools import partial

from runner.acp.config import AcpAgentConfig, AcpConfigError, load_acp_configs
from runner.acp.session import AcpOptions, run_acp_agent
from runner.agents.base import AgentSpec
from tether.settings import Settings

__all__ = ["AcpAgentConfig", "AcpConfigError", "AcpOptions", "acp_agent_spec", "acp_agents"]


def acp_agent_spec(config: AcpAgentConfig, options: AcpOptions) -> AgentSpec:
    """The runner's view of one ACP agent."""
    return AgentSpec(
        name=config.name,
        description=config.describe(),
        run=partial(run_acp_agent, config, options),
        kind="acp",
        cooperative_cancel=True,  # cancel is session/cancel first, not an interrupt
    )


def acp_agents(settings: Settings) -> dict[str, AgentSpec]:
    """Every ACP agent the settings configure, by name."""
    options = AcpOptions.from_settings(settings)
    return {config.name: acp_agent_spec(config, options) for config in load_acp_configs(settings)}
