"""Triggers and their deliveries.

- ``triggers``: configuration written by the API (schedule or webhook, target, secret).
- ``trigger_deliveries``: one row per firing, unique on ``(trigger_id, event_id)``, written by
  the firing workflow's activities and reconciled with the run's final outcome.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from store.models: a migration is a frozen snapshot.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("trigger_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", JSON, nullable=False),
        sa.Column("schedule", JSON, nullable=True),
        sa.Column("webhook", JSON, nullable=True),
        sa.Column("webhook_secret", sa.String(256), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("trigger_id", name=op.f("pk_triggers")),
    )
    op.create_index(
        op.f("ix_triggers_project_id_created_at_trigger_id"),
        "triggers",
        ["project_id", "created_at", "trigger_id"],
    )

    op.create_table(
        "trigger_deliveries",
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("trigger_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(256), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.String(512), nullable=True),
        sa.Column("details", JSON, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("session_id", sa.String(128), nullable=True),
        sa.Column("firing_workflow_id", sa.String(512), nullable=False),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_trigger_deliveries")),
        sa.UniqueConstraint(
            "trigger_id", "event_id", name=op.f("uq_trigger_deliveries_trigger_id_event_id")
        ),
    )
    op.create_index(
        "ix_trigger_deliveries_listing",
        "trigger_deliveries",
        ["project_id", "trigger_id", "created_at", "delivery_id"],
    )
    op.create_index(
        "ix_trigger_deliveries_status_listing",
        "trigger_deliveries",
        ["project_id", "trigger_id", "status", "created_at", "delivery_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_trigger_deliveries_status_listing", table_name="trigger_deliveries")
    op.drop_index("ix_trigger_deliveries_listing", table_name="trigger_deliveries")
    op.drop_table("trigger_deliveries")
    op.drop_index(op.f("ix_triggers_project_id_created_at_trigger_id"), table_name="triggers")
    op.drop_table("triggers")
