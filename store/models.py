"""SQLAlchemy 2.0 models of the read model.

Temporal owns the truth of a live run; these tables are its projection, written only by
activities (and configuration rows by the API), kept after Temporal's retention.
Every row carries ``project_id`` so API keys can scope everything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that is always UTC, on every backend.

    SQLite has no timezone type: it stores the text without an offset and returns naive values.
    Converting to UTC on the way in (naive values are taken as UTC) and tagging UTC on the way
    out makes SQLite and PostgreSQL compare, order and return the same instants, which the
    keyset cursors rely on.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JsonType, Any: JsonType, datetime: UtcDateTime()}


class Project(Base):
    __tablename__ = "projects"

    project_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]


class ApiKeyRow(Base):
    """An API key of a project. Only the SHA-256 of the token is kept: tokens carry 256 random
    bits, so a fast hash cannot be brute-forced, and the key ID (the token's visible part)
    finds the row without scanning."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(128), ForeignKey("projects.project_id"))
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator | admin
    prefix: Mapped[str] = mapped_column(String(32))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "project_id", "created_at", "key_id"),)


class SessionRow(Base):
    """A session and what it is doing now.

    ``status``, ``active_run_id``, ``run_count`` and ``last_run_id`` are derived from the
    session's runs by ``store.runs.upsert_run`` in the transaction that writes a run, so
    sessions can be filtered and ordered in SQL.
    """

    __tablename__ = "sessions"

    # Keyed by project: two projects may use the same session ID (so does the workflow ID).
    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    agent: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    # Last activity: the newest ``updated_at`` of the session's runs.
    updated_at: Mapped[datetime]
    last_run_id: Mapped[str | None] = mapped_column(String(64))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    status: Mapped[str] = mapped_column(String(32), server_default="idle")
    active_run_id: Mapped[str | None] = mapped_column(String(64))
    run_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # The agent's own session (e.g. ACP) and the agent it belongs to; the next run resumes it.
    agent_session_id: Mapped[str | None] = mapped_column(String(256))
    agent_session_agent: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        PrimaryKeyConstraint("project_id", "session_id"),
        # Keyset pages in either order; session_id breaks ties.
        Index(None, "project_id", "updated_at", "session_id"),
        Index(None, "project_id", "created_at", "session_id"),
        # "What is waiting for a human?": the busy statuses are rare, the index finds them.
        Index(None, "project_id", "status", "updated_at", "session_id"),
    )


class RunRow(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(128))
    project_id: Mapped[str] = mapped_column(String(128))
    agent: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(String(512))
    trigger_id: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    input: Mapped[Any] = mapped_column(nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    pending_interaction_id: Mapped[str | None] = mapped_column(String(128))
    replica_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Bumped on every projection; a write with an older version is ignored, so a retried
    # activity can never move a run back in time.
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Fingerprint of the request that created the run (an idempotent retry must match it).
    request_hash: Mapped[str | None] = mapped_column(String(64))

    # Every listing is project-scoped, so every index starts with project_id; run_id last
    # makes each one serve the keyset order ``(key, run_id)`` straight from the index.
    __table_args__ = (
        # One per order of ``list_runs`` (scanned backwards for desc).
        Index(None, "project_id", "created_at", "run_id"),
        Index(None, "project_id", "updated_at", "run_id"),
        Index(None, "project_id", "ended_at", "run_id"),
        # Order by status, and "status = x" newest first.
        Index(None, "project_id", "status", "created_at", "run_id"),
        # Filters selective enough that walking an order index would visit most rows.
        Index(None, "project_id", "session_id", "created_at"),
        Index(None, "project_id", "agent", "created_at", "run_id"),
        Index(
            None,
            "project_id",
            "trigger_id",
            "created_at",
            "run_id",
            postgresql_where=text("trigger_id IS NOT NULL"),
            sqlite_where=text("trigger_id IS NOT NULL"),
        ),
        # Idempotent starts: the run a key already made in the session.
        Index(
            None,
            "project_id",
            "session_id",
            "idempotency_key",
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
    )


class RunStatusHistory(Base):
    __tablename__ = "run_status_history"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1, 2, ... within the run
    project_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(512))
    at: Mapped[datetime]
    # Who caused the transition, when a person did (the API key that cancelled the run).
    actor: Mapped[str | None] = mapped_column(String(128))


class TranscriptEvent(Base):
    __tablename__ = "transcript_events"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Interaction(Base):
    __tablename__ = "interactions"

    interaction_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    session_id: Mapped[str] = mapped_column(String(128))
    project_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    prompt: Mapped[str] = mapped_column(String(4096))
    options: Mapped[Any] = mapped_column(default=list)
    tool_call: Mapped[dict[str, Any] | None]
    response_schema: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(32))  # pending|resolved|expired|cancelled
    response: Mapped[dict[str, Any] | None]
    responder: Mapped[str | None] = mapped_column(String(256))
    requested_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    # Answers that lost the race to the first one, kept for the record.
    ignored_responses: Mapped[Any] = mapped_column(default=list)

    __table_args__ = (Index(None, "project_id", "status", "requested_at"),)


class AgentRow(Base):
    """The agent catalogue: what the runners offer, as last synced by the catalogue workflow.

    The API checks agent names here, so it never has to call a runner. Agents a runner stopped
    offering stay listed as unavailable rather than vanish.
    """

    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(1024), default="")
    available: Mapped[bool] = mapped_column(default=True)
    replica_id: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime]


class TriggerRow(Base):
    """A trigger's configuration, written by the API. Deleting a trigger keeps its row
    (``deleted_at``) so firings still running can finish their deliveries."""

    __tablename__ = "triggers"

    trigger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))  # schedule | webhook
    # The target: ``workflows.trigger_types.TriggerTarget`` as JSON.
    target: Mapped[dict[str, Any]]
    schedule: Mapped[dict[str, Any] | None]
    webhook: Mapped[dict[str, Any] | None]
    # Verifying an HMAC needs the key itself (unlike API keys, kept hashed), so it is sealed
    # (tether/secret_box.py, for ``triggers/<trigger_id>``), never hashed nor in clear.
    webhook_secret: Mapped[str | None] = mapped_column(String(1024))
    # The secret before the last rotation, still accepted until ``webhook_previous_valid_until``.
    webhook_previous_secret: Mapped[str | None] = mapped_column(String(1024))
    webhook_previous_valid_until: Mapped[datetime | None]
    paused: Mapped[bool] = mapped_column(default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "project_id", "created_at", "trigger_id"),)


class TriggerDeliveryRow(Base):
    """One firing of a trigger: its event, its run and how the run ended. Written by the
    firing workflow's activities only; one per ``(trigger_id, event_id)``."""

    __tablename__ = "trigger_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trigger_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(16))  # schedule | webhook
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any] | None]
    run_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(128))
    firing_workflow_id: Mapped[str] = mapped_column(String(512))
    payload: Mapped[Any] = mapped_column(nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("trigger_id", "event_id"),
        # Newest first, optionally by status, keyset on delivery_id.
        # Named: the conventional names would pass PostgreSQL's 63-character limit.
        Index(
            "ix_trigger_deliveries_listing", "project_id", "trigger_id", "created_at", "delivery_id"
        ),
        Index(
            "ix_trigger_deliveries_status_listing",
            "project_id",
            "trigger_id",
            "status",
            "created_at",
            "delivery_id",
        ),
    )
