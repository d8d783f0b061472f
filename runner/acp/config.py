"""Which ACP agents a runner hosts: entries from settings, and the environment each one gets.

An entry (JSON object, or a ``[[agents]]`` table in TOML)::

    {"name": "claude",                          # the agent name runs ask for
     "description": "Claude Code over ACP",      # shown by GET /v1/agents
     "command": ["npx", "@zed-industries/claude-code-acp"],
     "cwd": "/srv/work",                         # default: the runner's working directory
     "env": {"ANTHROPIC_API_KEY": "sk-..."},     # passed to the process as given
     "inherit_env": ["HTTPS_PROXY"]}             # copied from the runner's environment

Sources, later ones overriding earlier entries of the same name: the built-in ``acp-demo`` (the
scripted agent in ``examples/``, when that file exists), ``TETHER_RUNNER_AGENTS_FILE`` (a
``.json`` or ``.toml`` file), ``TETHER_RUNNER_AGENTS_JSON`` (JSON text). Either holds a list of
entries or ``{"agents": [...]}``.

The process does not inherit the runner's environment: it gets ``BASE_ENV`` (locale, paths and
the like), the names in ``inherit_env``, and ``env``. The runner's own secrets (its token, its
database URL) therefore never reach an agent, and an agent's API key must be configured.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from tether.ids import NAME_PATTERN
from tether.settings import Settings

BASE_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SYSTEMROOT",  # Windows: many programs fail to start without it
)
"""Environment variables every ACP agent process gets from the runner, when set."""

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_SCRIPT = REPO_ROOT / "examples" / "scripted_acp_agent.py"
DEMO_NAME = "acp-demo"


class AcpConfigError(ValueError):
    """The ACP agent configuration cannot be used; the runner refuses to start with it."""


class AcpAgentConfig(BaseModel):
    """One ACP agent: how to start its process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    command: list[str] = Field(min_length=1)
    cwd: Path = Field(default_factory=Path.cwd)
    env: dict[str, SecretStr] = Field(default_factory=dict)  # secrets: kept out of reprs
    inherit_env: list[str] = Field(default_factory=list)

    @field_validator("cwd")
    @classmethod
    def _absolute(cls, cwd: Path) -> Path:
        # ACP requires an absolute cwd in session/new and session/load.
        return cwd.expanduser().resolve()

    def describe(self) -> str:
        """The description, or the command line when none was configured."""
        return self.description or f"ACP agent: {' '.join(self.command)}"

    def child_environment(self, parent: Mapping[str, str] | None = None) -> dict[str, str]:
        """The process environment: ``BASE_ENV`` and ``inherit_env`` from ``parent``, then
        ``env``."""
        source = os.environ if parent is None else parent
        names = (*BASE_ENV, *self.inherit_env)
        env = {name: source[name] for name in names if name in source}
        env.update({name: value.get_secret_value() for name, value in self.env.items()})
        return env


def demo_config(settings: Settings) -> AcpAgentConfig | None:
    """``acp-demo``: the scripted example agent on this interpreter, or None outside a checkout."""
    if not DEMO_SCRIPT.is_file():
        return None
    state_dir = (settings.data_dir / "acp-demo").resolve()
    return AcpAgentConfig(
        name=DEMO_NAME,
        description=(
            "Scripted ACP agent (examples/scripted_acp_agent.py): plans a cleanup, asks "
            "permission for a shell command, remembers its sessions. Input: text."
        ),
        command=[sys.executable, str(DEMO_SCRIPT)],
        cwd=REPO_ROOT,
        env={"SCRIPTED_ACP_STATE_DIR": SecretStr(str(state_dir))},
    )


def parse_entries(data: Any, source: str) -> list[AcpAgentConfig]:
    """Validate a list of entries (or ``{"agents": [...]}``) from ``source``."""
    if isinstance(data, dict) and set(data) == {"agents"}:
        data = data["agents"]
    if not isinstance(data, list):
        raise AcpConfigError(f'{source}: expected a list of agents or {{"agents": [...]}}')
    configs: list[AcpAgentConfig] = []
    for index, entry in enumerate(data):
        try:
            configs.append(AcpAgentConfig.model_validate(entry))
        except ValidationError as exc:
            raise AcpConfigError(f"{source}: agent entry {index}: {exc}") from None
    names = [config.name for config in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise AcpConfigError(f"{source}: agents named more than once: {', '.join(duplicates)}")
    return configs


def read_agents_file(path: Path) -> list[AcpAgentConfig]:
    """Entries from a ``.toml`` file (``[[agents]]`` tables) or a JSON file."""
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise AcpConfigError(f"cannot read ACP agents file {source}: {exc}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise AcpConfigError(f"{source}: {exc}") from None
    return parse_entries(data, source)


def load_acp_configs(settings: Settings) -> list[AcpAgentConfig]:
    """Every ACP agent the settings configure, by name; later sources override earlier ones.

    Reads a small local file: done once, when the runner app is built.
    """
    configs: dict[str, AcpAgentConfig] = {}
    demo = demo_config(settings)
    if demo is not None:
        configs[demo.name] = demo
    if settings.runner_agents_file is not None:
        configs.update((c.name, c) for c in read_agents_file(settings.runner_agents_file))
    if settings.runner_agents_json.strip():
        try:
            data = json.loads(settings.runner_agents_json)
        except json.JSONDecodeError as exc:
            raise AcpConfigError(f"TETHER_RUNNER_AGENTS_JSON: {exc}") from None
        configs.update((c.name, c) for c in parse_entries(data, "TETHER_RUNNER_AGENTS_JSON"))
    return list(configs.values())
