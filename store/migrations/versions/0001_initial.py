"""Initial schema: projects, sessions, runs, status history, transcript, interactions.

Revision ID: 0001
Revises:
Create Date: 2025-11-21
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from store.models: a migration is a frozen snapshot,
# it must keep producing the same schema when the models move on.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
DEFAULT_PROJECT_ID = "default"


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_projects")),
    )

    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("last_run_id", sa.String(64), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_project_id"), "sessions", ["project_id"])

    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.String(512), nullable=True),
        sa.Column("trigger_id", sa.String(128), nullable=True),
        sa.Column("idempotency_key", sa.String(256), nullable=True),
        sa.Column("input", JSON, nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("paused_at", TIMESTAMP, nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("usage", JSON, nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("pending_interaction_id", sa.String(128), nullable=True),
        sa.Column("replica_id", sa.String(128), nullable=True),
        sa.Column("attempts", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_index(
        op.f("ix_runs_project_id_created_at_run_id"), "runs", ["project_id", "created_at", "run_id"]
    )
    op.create_index(
        op.f("ix_runs_project_id_session_id_created_at"),
        "runs",
        ["project_id", "session_id", "created_at"],
    )
    op.create_index(
        op.f("ix_runs_project_id_status_created_at"), "runs", ["project_id", "status", "created_at"]
    )

    op.create_table(
        "run_status_history",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(512), nullable=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.run_id"],
            name=op.f("fk_run_status_history_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_run_status_history")),
    )

    op.create_table(
        "transcript_events",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("ts", TIMESTAMP, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_transcript_events")),
    )

    op.create_table(
        "interactions",
        sa.Column("interaction_id", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("prompt", sa.String(4096), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("tool_call", JSON, nullable=True),
        sa.Column("response_schema", JSON, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("response", JSON, nullable=True),
        sa.Column("responder", sa.String(256), nullable=True),
        sa.Column("requested_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.Column("ignored_responses", JSON, nullable=False),
        sa.PrimaryKeyConstraint("interaction_id", name=op.f("pk_interactions")),
    )
    op.create_index(op.f("ix_interactions_run_id"), "interactions", ["run_id"])
    op.create_index(
        op.f("ix_interactions_project_id_status_requested_at"),
        "interactions",
        ["project_id", "status", "requested_at"],
    )

    # Every row carries a project; the default one exists from the start so a fresh install
    # works with no set-up.
    op.bulk_insert(
        projects,
        [{"project_id": DEFAULT_PROJECT_ID, "name": "Default", "created_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    op.drop_table("interactions")
    op.drop_table("transcript_events")
    op.drop_table("run_status_history")
    op.drop_table("runs")
    op.drop_table("sessions")
    op.drop_table("projects")
