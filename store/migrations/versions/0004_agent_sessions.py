"""The agent's own session on the Tether session (e.g. an ACP session ID).

The next run of the session passes it back to the runner, so an agent that can load its
sessions resumes its own history. Kept with the agent it belongs to: another agent's ID
means nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("agent_session_id", sa.String(256), nullable=True))
        batch.add_column(sa.Column("agent_session_agent", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("agent_session_agent")
        batch.drop_column("agent_session_id")
