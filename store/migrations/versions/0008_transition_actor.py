"""The actor of a status transition: the API key (its name) that cancelled the run.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("run_status_history") as batch:
        batch.add_column(sa.Column("actor", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_status_history") as batch:
        batch.drop_column("actor")
