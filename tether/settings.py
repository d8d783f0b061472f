"""One place for configuration: environment variables prefixed ``TETHER_``.

Defaults run the embedded stack (Temporal dev server, SQLite) on this machine with no set-up.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tether.ids import PROJECT_ID_PATTERN, is_valid_project_id

DEV_RUNNER_TOKEN = "tether-dev-runner-token"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a host name) is this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    # Payload encryption (tether/codec.py): "kid:base64key,kid:base64key", the first encrypts,
    # all decrypt. Empty: payloads reach Temporal in clear, except under ``tether dev``, which
    # generates a key into data_dir on first start.
    payload_keys: SecretStr = SecretStr("")
    # Origins (comma-separated) whose pages may call /codec/encode and /codec/decode: the
    # Temporal UI. Default: the dev server's UI on this machine.
    codec_cors_origins: str = ""

    # Processes.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_api_url: str = (
        ""  # how users reach the API (links in the Temporal UI); default: host+port
    )
    # The largest request body of any route (413 above; webhooks have their own limit below).
    # A run's input travels in its session's Temporal history, where one payload may not pass
    # 2 MiB and a closing execution carries it twice (the run and its result): 256 KiB keeps a
    # session with several queued runs well inside that (docs/api.md, "Limits").
    api_max_body_bytes: int = 256 * 1024
    api_stream_poll_s: float = 0.1  # how often the SSE stream looks for new transcript rows
    # HTTP hardening (api/hardening.py). /docs, /redoc, /openapi.json and /metrics are served
    # only when on (`tether dev` turns them on). Allowed hosts: comma-separated `Host` names,
    # `*.example.com` patterns or `*`; default: loopback names and public_api_url's host. CORS
    # origins: comma-separated; none means no CORS headers at all.
    api_docs: bool = False
    api_metrics: bool = False
    allowed_hosts: str = ""
    cors_origins: str = ""
    runner_host: str = "127.0.0.1"
    runner_port: int = 8700
    runner_url: str | None = None  # where workers reach the runner; default: host and port
    # The shared secret of runner calls: workers send it, runners accept it. The default is
    # for the loopback dev stack only (the runner refuses it on any other address).
    runner_token: SecretStr = SecretStr(DEV_RUNNER_TOKEN)
    # Tokens a runner still accepts beside ``runner_token`` while a rotation is under way
    # (comma-separated); workers never send them.
    runner_previous_tokens: SecretStr = SecretStr("")
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
    # Seals webhook secrets in the store (AES-GCM, tether/secret_box.py): 32 random bytes in
    # base64. No default: `tether dev` generates one into data_dir. Previous keys (comma-
    # separated) still open values sealed before a rotation until `tether migrate` reseals them.
    secrets_key: SecretStr | None = None
    secrets_previous_keys: SecretStr = SecretStr("")
    # How long a rotated webhook secret stays valid beside the new one, unless the rotation
    # says otherwise.
    webhook_secret_overlap_s: float = 24 * 3600.0

    # Tenancy: every row and workflow carries a project; a request's project is its API key's.
    # The default project is the one the dev stack's key and `tether migrate` create.
    default_project_id: str = "default"
    # Every API route but the health probes needs an API key. Only for a loopback-bound API
    # (the API refuses to start otherwise) may this turn keys off: every caller is then an
    # admin of the default project.
    auth_disabled: bool = False
    # The dev stack's Temporal UI cannot send an API key to /codec: let it through without one,
    # only for an API on a loopback address (like auth_disabled).
    codec_open: bool = False

    # Run policy, handed to each workflow in its input (workflows read no settings).
    accept_wait_s: float = 5.0
    dispatch_deadline_s: float = 120.0
    runner_lost_timeout_s: float = 30.0
    follow_heartbeat_timeout_s: float = 15.0
    interaction_expiry_s: float = 24 * 3600.0
    # While a run waits for a human, check this often that its runner still holds it.
    waiting_probe_s: float = 60.0
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
        if not self.codec_cors_origins:
            port = self.temporal_ui_port
            self.codec_cors_origins = f"http://127.0.0.1:{port},http://localhost:{port}"
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'tether.db'}"
        return self

    @property
    def runner_accepted_tokens(self) -> list[str]:
        """Every token a runner accepts: ``runner_token`` and the previous ones still valid."""
        previous = self.runner_previous_tokens.get_secret_value().split(",")
        tokens = [self.runner_token.get_secret_value(), *previous]
        return [t.strip() for t in tokens if t.strip()]

    @property
    def codec_cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.codec_cors_origins.split(",") if o.strip()]

    @property
    def runner_base_url(self) -> str:
        return (self.runner_url or f"http://{self.runner_host}:{self.runner_port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
