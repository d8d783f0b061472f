"""One place for configuration: environment variables prefixed ``TETHER_``.

Defaults run the embedded stack (Temporal dev server, SQLite) on this machine with no set-up.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tether.ids import PROJECT_ID_PATTERN, is_valid_project_id


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TETHER_", env_file=".env", extra="ignore")

    # Where state lives on the embedded stack.
    data_dir: Path = Path(".tether")
    database_url: str = ""  # default: SQLite in data_dir

    # Temporal.
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    task_queue: str = "tether-runs"

    # Processes.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_api_url: str = (
        ""  # how users reach the API (links in the Temporal UI); default: host+port
    )
    api_stream_poll_s: float = 0.1  # how often the SSE stream looks for new transcript rows
    runner_host: str = "127.0.0.1"
    runner_port: int = 8700
    runner_url: str | None = None  # where workers reach the runner; default: host and port
    runner_token: SecretStr = SecretStr("tether-dev-runner-token")
    runner_replica_id: str = "runner-1"
    runner_keepalive_s: float = 5.0
    runner_retention_s: float = 3600.0
    # ACP agents (see runner/acp/config.py for the entry format). Entries of the JSON setting
    # override entries of the file, which override the built-in ``acp-demo``.
    runner_agents_file: Path | None = None  # a .json or .toml file of ACP agent entries
    runner_agents_json: str = ""  # the same entries as JSON text (a list, or {"agents": [...]})
    runner_acp_start_timeout_s: float = 120.0  # spawn to session ready (initialize, session/*)
    runner_acp_cancel_grace_s: float = 2.0  # wait for stopReason "cancelled" before SIGTERM
    runner_acp_kill_grace_s: float = 1.0  # wait after SIGTERM before SIGKILL
    runner_acp_coalesce_s: float = 0.05  # message chunks become one message.delta per interval
    runner_acp_stderr_bytes: int = 64 * 1024  # the agent's stderr kept (the tail), per run
    # The worker's Prometheus endpoint (Temporal SDK metrics and Tether's); port 0 turns it off.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9464

    # Webhook triggers: how far a signed timestamp may be from now (the replay window), and
    # the largest body accepted.
    webhook_tolerance_s: float = 300.0
    webhook_max_body_bytes: int = 256 * 1024

    # Tenancy: every row and workflow carries a project; a request's project is its API key's.
    # The default project is the one the dev stack's key and `tether migrate` create.
    default_project_id: str = "default"
    # Every API route but the health probes needs an API key. Only for a loopback-bound API
    # (the API refuses to start otherwise) may this turn keys off: every caller is then an
    # admin of the default project.
    auth_disabled: bool = False

    # Run policy, handed to each workflow in its input (workflows read no settings).
    accept_wait_s: float = 5.0
    dispatch_deadline_s: float = 120.0
    runner_lost_timeout_s: float = 30.0
    follow_heartbeat_timeout_s: float = 15.0
    interaction_expiry_s: float = 24 * 3600.0
    cancel_grace_s: float = 10.0
    # Continue-as-new a session's execution past this many history events (0: when Temporal
    # suggests it). Tests lower it to exercise the hand-over.
    history_events_limit: int = 0

    @field_validator("default_project_id")
    @classmethod
    def _project_id(cls, value: str) -> str:
        # Workflow IDs embed it (``session-{project}.{session}``): it must hold no ``.``.
        if not is_valid_project_id(value):
            raise ValueError(f"a project ID must match {PROJECT_ID_PATTERN}")
        return value

    @model_validator(mode="after")
    def _embedded_database(self) -> Settings:
        if not self.public_api_url:
            self.public_api_url = f"http://{self.api_host}:{self.api_port}"
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'tether.db'}"
        return self

    @property
    def runner_base_url(self) -> str:
        return (self.runner_url or f"http://{self.runner_host}:{self.runner_port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
