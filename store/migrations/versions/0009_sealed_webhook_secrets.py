"""Webhook secrets sealed at rest, and a previous secret for rotation.

- ``triggers.webhook_secret`` holds a sealed value (``tether/secret_box.py``), wider than the
  plaintext it replaces; every plaintext row is sealed here with ``TETHER_SECRETS_KEY``.
- ``webhook_previous_secret`` and ``webhook_previous_valid_until``: the secret before the last
  rotation, accepted beside the new one until then.

Sealing needs the key: ``store.db.migrate`` lends its box (``config.attributes["secret_box"]``),
else the settings give it. A store with no webhook secret migrates without one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from tether.secret_box import SecretBox, is_sealed
from tether.settings import get_settings

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
triggers = sa.table(
    "triggers", sa.column("trigger_id", sa.String), sa.column("webhook_secret", sa.String)
)


def _box() -> SecretBox:
    box = context.config.attributes.get("secret_box")
    return box if box is not None else SecretBox.from_settings(get_settings())


def _rewrite(change: str) -> None:
    """Seal (``change="seal"``) or open every webhook secret that needs it."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(triggers.c.trigger_id, triggers.c.webhook_secret).where(
            triggers.c.webhook_secret.is_not(None)
        )
    ).all()
    todo = [(tid, value) for tid, value in rows if is_sealed(value) != (change == "seal")]
    if not todo:
        return
    box = _box()
    for trigger_id, value in todo:
        context_ = f"triggers/{trigger_id}"
        new = box.seal(value, context_) if change == "seal" else box.open(value, context_)
        bind.execute(
            triggers.update().where(triggers.c.trigger_id == trigger_id).values(webhook_secret=new)
        )


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.alter_column("webhook_secret", existing_type=sa.String(256), type_=sa.String(1024))
        batch.add_column(sa.Column("webhook_previous_secret", sa.String(1024), nullable=True))
        batch.add_column(sa.Column("webhook_previous_valid_until", TIMESTAMP, nullable=True))
    _rewrite("seal")


def downgrade() -> None:
    _rewrite("open")
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("webhook_previous_valid_until")
        batch.drop_column("webhook_previous_secret")
        batch.alter_column("webhook_secret", existing_type=sa.String(1024), type_=sa.String(256))
