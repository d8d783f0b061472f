"""Sessions that can be listed, idempotent starts, run listing indexes.

- ``runs.request_hash``: fingerprint of the request that created the run.
- ``sessions.status``, ``active_run_id``, ``run_count``: derived from the session's runs on
  every run write, so ``GET /v1/sessions`` filters and orders in SQL; backfilled here.
- Indexes for every filter and order of the run and session listings (all project-scoped),
  and for the idempotency-key lookup.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from store.sessions: a migration is a frozen snapshot.
# The active run is the oldest unfinished run that is past "queued", else the oldest queued.
_ACTIVE_RUN = """
    SELECT r.{column} FROM runs r
    WHERE r.project_id = sessions.project_id AND r.session_id = sessions.session_id
      AND r.status NOT IN ('completed', 'failed', 'cancelled', 'timed_out')
    ORDER BY CASE WHEN r.status = 'queued' THEN 1 ELSE 0 END, r.created_at, r.run_id
    LIMIT 1
"""

_BACKFILL_SESSIONS = f"""
UPDATE sessions SET
    run_count = (
        SELECT count(*) FROM runs r
        WHERE r.project_id = sessions.project_id AND r.session_id = sessions.session_id
    ),
    active_run_id = ({_ACTIVE_RUN.format(column="run_id")}),
    status = CASE
        WHEN ({_ACTIVE_RUN.format(column="status")}) = 'waiting_for_input'
            THEN 'waiting_for_input'
        WHEN ({_ACTIVE_RUN.format(column="run_id")}) IS NOT NULL THEN 'active'
        ELSE 'idle'
    END
"""

_NOT_NULL_TRIGGER = sa.text("trigger_id IS NOT NULL")
_NOT_NULL_KEY = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    op.add_column("runs", sa.Column("request_hash", sa.String(64), nullable=True))
    op.add_column(
        "sessions", sa.Column("status", sa.String(32), server_default="idle", nullable=False)
    )
    op.add_column("sessions", sa.Column("active_run_id", sa.String(64), nullable=True))
    op.add_column(
        "sessions", sa.Column("run_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.execute(_BACKFILL_SESSIONS)

    # Superseded by the same index with run_id, which also serves the keyset order.
    op.drop_index(op.f("ix_runs_project_id_status_created_at"), table_name="runs")
    op.create_index(
        op.f("ix_runs_project_id_status_created_at_run_id"),
        "runs",
        ["project_id", "status", "created_at", "run_id"],
    )
    op.create_index(
        op.f("ix_runs_project_id_updated_at_run_id"), "runs", ["project_id", "updated_at", "run_id"]
    )
    op.create_index(
        op.f("ix_runs_project_id_ended_at_run_id"), "runs", ["project_id", "ended_at", "run_id"]
    )
    op.create_index(
        op.f("ix_runs_project_id_agent_created_at_run_id"),
        "runs",
        ["project_id", "agent", "created_at", "run_id"],
    )
    op.create_index(
        op.f("ix_runs_project_id_trigger_id_created_at_run_id"),
        "runs",
        ["project_id", "trigger_id", "created_at", "run_id"],
        postgresql_where=_NOT_NULL_TRIGGER,
        sqlite_where=_NOT_NULL_TRIGGER,
    )
    op.create_index(
        op.f("ix_runs_project_id_session_id_idempotency_key"),
        "runs",
        ["project_id", "session_id", "idempotency_key"],
        postgresql_where=_NOT_NULL_KEY,
        sqlite_where=_NOT_NULL_KEY,
    )

    # The leading column of each new sessions index: the single-column one is redundant.
    op.drop_index(op.f("ix_sessions_project_id"), table_name="sessions")
    op.create_index(
        op.f("ix_sessions_project_id_updated_at_session_id"),
        "sessions",
        ["project_id", "updated_at", "session_id"],
    )
    op.create_index(
        op.f("ix_sessions_project_id_created_at_session_id"),
        "sessions",
        ["project_id", "created_at", "session_id"],
    )
    op.create_index(
        op.f("ix_sessions_project_id_status_updated_at_session_id"),
        "sessions",
        ["project_id", "status", "updated_at", "session_id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sessions_project_id_status_updated_at_session_id"), "sessions")
    op.drop_index(op.f("ix_sessions_project_id_created_at_session_id"), "sessions")
    op.drop_index(op.f("ix_sessions_project_id_updated_at_session_id"), "sessions")
    op.create_index(op.f("ix_sessions_project_id"), "sessions", ["project_id"])
    op.drop_index(op.f("ix_runs_project_id_session_id_idempotency_key"), "runs")
    op.drop_index(op.f("ix_runs_project_id_trigger_id_created_at_run_id"), "runs")
    op.drop_index(op.f("ix_runs_project_id_agent_created_at_run_id"), "runs")
    op.drop_index(op.f("ix_runs_project_id_ended_at_run_id"), "runs")
    op.drop_index(op.f("ix_runs_project_id_updated_at_run_id"), "runs")
    op.drop_index(op.f("ix_runs_project_id_status_created_at_run_id"), "runs")
    op.create_index(
        op.f("ix_runs_project_id_status_created_at"), "runs", ["project_id", "status", "created_at"]
    )
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("run_count")
        batch.drop_column("active_run_id")
        batch.drop_column("status")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("request_hash")
