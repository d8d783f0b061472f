"""Sessions are keyed by ``(project_id, session_id)``: two projects may use one session ID.

Their workflow ID carries the project too (``session-{project}.{session}``); before, both were
global and a second project's run in an existing session ID was kept out of its session row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite cannot change a primary key in place: the batch copies the table.
    with op.batch_alter_table("sessions", recreate="always") as batch:
        batch.drop_constraint("pk_sessions", type_="primary")
        batch.create_primary_key("pk_sessions", ["project_id", "session_id"])


def downgrade() -> None:
    with op.batch_alter_table("sessions", recreate="always") as batch:
        batch.drop_constraint("pk_sessions", type_="primary")
        batch.create_primary_key("pk_sessions", ["session_id"])
