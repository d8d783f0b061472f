"""The triggers aggregate: trigger configurations and their deliveries (one per firing).

Two writers, as the design splits them: the API writes a trigger's configuration row; the
firing workflow's activities write its deliveries. Delivery writes are idempotent (activities
may run more than once): a firing is recorded once per ``(trigger_id, event_id)`` and a
delivery only ever moves forward, so a late, retried write cannot rewrite an outcome.
Deleting a trigger keeps its row (``deleted_at``) so firings still running can finish their
deliveries. Writes do not commit; the caller owns the transaction.

Webhook secrets are stored sealed (``tether.secret_box``, bound to their trigger's row): writes
take the plaintext and a ``SecretBox``, ``StoredTrigger.signing_secrets`` opens them.

Reads are scoped by project like every read (another project's trigger or delivery is simply
not found), except ``find_trigger``: a webhook arrives without an API key, authenticated by
the trigger's own signature, so it is looked up by its (random) ID. Listings are keyset-paged
newest first on ``(created_at, id)``: rows created while paging never make a page skip or
repeat one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import dialect_insert
from store.keyset import after, decode_position, encode_position
from store.models import TriggerDeliveryRow, TriggerRow
from tether.secret_box import SecretBox
from workflows.trigger_types import (
    DeliveryRecord,
    DeliveryStatus,
    DeliveryUpdate,
    ScheduleConfig,
    TriggerKind,
    TriggerRecord,
    TriggerTarget,
    WebhookConfig,
)

_triggers = TriggerRow.__table__
_deliveries = TriggerDeliveryRow.__table__


def _seal_context(trigger_id: str) -> str:
    """What a trigger's sealed secrets are bound to: they open on its row only."""
    return f"triggers/{trigger_id}"


@dataclass(frozen=True)
class StoredTrigger:
    """A trigger of any project as ``find_trigger`` finds it, with what the record leaves out:
    its sealed webhook secrets (``None`` for a schedule) and whether it was deleted."""

    record: TriggerRecord
    sealed_secret: str | None
    deleted: bool
    sealed_previous_secret: str | None = None
    previous_valid_until: datetime | None = None

    def signing_secrets(self, box: SecretBox, now: datetime) -> list[str]:
        """The secrets a webhook may be signed with at ``now``: the current one, and the one
        before the last rotation until its overlap ends."""
        context = _seal_context(self.record.trigger_id)
        found = [box.open(self.sealed_secret, context)] if self.sealed_secret else []
        until = self.previous_valid_until
        if self.sealed_previous_secret and until is not None and now < _aware(until):
            found.append(box.open(self.sealed_previous_secret, context))
        return found


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _next_cursor(listing: str, rows: list[Any], limit: int, key: Any) -> str | None:
    if len(rows) <= limit:
        return None
    return encode_position(listing, "created_at", "desc", key(rows[limit - 1]))


# Triggers.


def _trigger_record(row: TriggerRow) -> TriggerRecord:
    return TriggerRecord(
        trigger_id=row.trigger_id,
        project_id=row.project_id,
        name=row.name,
        kind=TriggerKind(row.kind),
        target=TriggerTarget.model_validate(row.target),
        schedule=ScheduleConfig.model_validate(row.schedule) if row.schedule else None,
        webhook=WebhookConfig.model_validate(row.webhook) if row.webhook else None,
        paused=row.paused,
        metadata=row.metadata_ or {},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def get_trigger(
    session: AsyncSession, project_id: str, trigger_id: str
) -> TriggerRecord | None:
    """The trigger, unless it belongs to another project or was deleted."""
    row = await session.scalar(
        select(TriggerRow).where(
            TriggerRow.project_id == project_id,
            TriggerRow.trigger_id == trigger_id,
            TriggerRow.deleted_at.is_(None),
        )
    )
    return None if row is None else _trigger_record(row)


async def find_trigger(
    session: AsyncSession, trigger_id: str, *, include_deleted: bool = False
) -> StoredTrigger | None:
    """The trigger, of any project, with its webhook secret: for webhooks and firings.

    A deleted trigger is found only with ``include_deleted``.
    """
    stmt = select(TriggerRow).where(TriggerRow.trigger_id == trigger_id)
    if not include_deleted:
        stmt = stmt.where(TriggerRow.deleted_at.is_(None))
    row = await session.scalar(stmt)
    if row is None:
        return None
    return StoredTrigger(
        record=_trigger_record(row),
        sealed_secret=row.webhook_secret,
        deleted=row.deleted_at is not None,
        sealed_previous_secret=row.webhook_previous_secret,
        previous_valid_until=row.webhook_previous_valid_until,
    )


async def list_triggers(
    session: AsyncSession,
    project_id: str,
    *,
    kind: TriggerKind | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[TriggerRecord], str | None]:
    """The project's triggers, newest first; raises ``InvalidCursor`` on a bad cursor."""
    columns = (TriggerRow.created_at, TriggerRow.trigger_id)
    stmt = select(TriggerRow).where(
        TriggerRow.project_id == project_id, TriggerRow.deleted_at.is_(None)
    )
    if kind is not None:
        stmt = stmt.where(TriggerRow.kind == kind.value)
    if cursor:
        position = decode_position(cursor, "triggers", "created_at", "desc", ["datetime", "str"])
        stmt = stmt.where(after(columns, position, "desc"))
    stmt = stmt.order_by(*(c.desc() for c in columns)).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    next_cursor = _next_cursor("triggers", rows, limit, lambda r: [r.created_at, r.trigger_id])
    return [_trigger_record(row) for row in rows[:limit]], next_cursor


def _config_columns(record: TriggerRecord) -> dict[str, Any]:
    dumped = record.model_dump(mode="json", include={"target", "schedule", "webhook"})
    return {
        "name": record.name,
        "target": dumped["target"],
        "schedule": dumped["schedule"] if record.schedule is not None else null(),
        "webhook": dumped["webhook"] if record.webhook is not None else null(),
        "paused": record.paused,
        "metadata": record.metadata,
        "updated_at": record.updated_at,
    }


async def insert_trigger(
    session: AsyncSession, record: TriggerRecord, secret: str | None, box: SecretBox | None
) -> None:
    """Record a new trigger with its webhook secret (``None`` for a schedule), sealed by
    ``box``."""
    sealed = None
    if secret is not None:
        if box is None:
            raise ValueError("a webhook secret is stored sealed: a SecretBox is needed")
        sealed = box.seal(secret, _seal_context(record.trigger_id))
    await session.execute(
        dialect_insert(session, _triggers).values(
            trigger_id=record.trigger_id,
            project_id=record.project_id,
            kind=record.kind.value,
            webhook_secret=sealed,
            created_at=record.created_at,
            **_config_columns(record),
        )
    )


async def save_trigger(session: AsyncSession, record: TriggerRecord) -> None:
    """Write the trigger's configuration as given (its kind, project and secret stay)."""
    await session.execute(
        update(TriggerRow)
        .where(TriggerRow.trigger_id == record.trigger_id)
        .values(**{_attr(k): v for k, v in _config_columns(record).items()})
        .execution_options(synchronize_session=False)
    )


async def rotate_webhook_secret(
    session: AsyncSession,
    trigger_id: str,
    secret: str,
    previous_valid_until: datetime,
    now: datetime,
    box: SecretBox,
) -> None:
    """Make ``secret`` the trigger's signing secret; the current one stays valid until
    ``previous_valid_until`` (not at all if that is not after ``now``). A secret from an
    earlier rotation that was still valid is dropped: two secrets at most."""
    overlaps = previous_valid_until > now
    await session.execute(
        update(TriggerRow)
        .where(TriggerRow.trigger_id == trigger_id)
        .values(
            webhook_previous_secret=TriggerRow.webhook_secret if overlaps else null(),
            webhook_previous_valid_until=previous_valid_until if overlaps else null(),
            webhook_secret=box.seal(secret, _seal_context(trigger_id)),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def reseal_webhook_secrets(session: AsyncSession, box: SecretBox) -> int:
    """Seal again, with the box's current key, every secret sealed with an older one (after
    ``TETHER_SECRETS_KEY`` was rotated); returns how many rows changed."""
    rows = (
        await session.execute(
            select(
                TriggerRow.trigger_id,
                TriggerRow.webhook_secret,
                TriggerRow.webhook_previous_secret,
            ).where(
                or_(
                    TriggerRow.webhook_secret.is_not(None),
                    TriggerRow.webhook_previous_secret.is_not(None),
                )
            )
        )
    ).all()
    changed = 0
    for trigger_id, current, previous in rows:
        context = _seal_context(trigger_id)
        values = {
            column: box.seal(box.open(sealed, context), context)
            for column, sealed in (
                ("webhook_secret", current),
                ("webhook_previous_secret", previous),
            )
            if sealed is not None and not box.is_current(sealed)
        }
        if values:
            changed += 1
            await session.execute(
                update(TriggerRow)
                .where(TriggerRow.trigger_id == trigger_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
    return changed


async def mark_trigger_deleted(session: AsyncSession, trigger_id: str, at: datetime) -> None:
    """Delete the trigger for reads; its row stays for the firings still running."""
    await session.execute(
        update(TriggerRow)
        .where(TriggerRow.trigger_id == trigger_id)
        .values(deleted_at=at, updated_at=at)
        .execution_options(synchronize_session=False)
    )


async def drop_trigger(session: AsyncSession, trigger_id: str) -> None:
    """Remove a trigger that never came to be (its schedule could not be created)."""
    await session.execute(delete(TriggerRow).where(TriggerRow.trigger_id == trigger_id))


def _attr(column: str) -> str:
    return "metadata_" if column == "metadata" else column


# Deliveries.


def _delivery_record(row: TriggerDeliveryRow) -> DeliveryRecord:
    return DeliveryRecord.model_validate(row, from_attributes=True)


async def get_delivery(
    session: AsyncSession, project_id: str, delivery_id: str
) -> DeliveryRecord | None:
    """The delivery ``delivery_id`` of ``project_id``, or ``None``."""
    row = await session.scalar(
        select(TriggerDeliveryRow).where(
            TriggerDeliveryRow.project_id == project_id,
            TriggerDeliveryRow.delivery_id == delivery_id,
        )
    )
    return None if row is None else _delivery_record(row)


async def list_deliveries(
    session: AsyncSession,
    project_id: str,
    trigger_id: str,
    *,
    statuses: Sequence[DeliveryStatus] | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[DeliveryRecord], str | None]:
    """The trigger's deliveries, newest first; raises ``InvalidCursor`` on a bad cursor."""
    columns = (TriggerDeliveryRow.created_at, TriggerDeliveryRow.delivery_id)
    stmt = select(TriggerDeliveryRow).where(
        TriggerDeliveryRow.project_id == project_id, TriggerDeliveryRow.trigger_id == trigger_id
    )
    if statuses:
        stmt = stmt.where(TriggerDeliveryRow.status.in_([s.value for s in statuses]))
    if cursor:
        position = decode_position(cursor, "deliveries", "created_at", "desc", ["datetime", "str"])
        stmt = stmt.where(after(columns, position, "desc"))
    stmt = stmt.order_by(*(c.desc() for c in columns)).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    next_cursor = _next_cursor("deliveries", rows, limit, lambda r: [r.created_at, r.delivery_id])
    return [_delivery_record(row) for row in rows[:limit]], next_cursor


async def insert_delivery(session: AsyncSession, record: DeliveryRecord) -> None:
    """Record a firing; a firing already recorded (same ID or same event) is left as it is."""
    dumped = record.model_dump(mode="json", include={"details", "payload"})
    stmt = dialect_insert(session, _deliveries).values(
        delivery_id=record.delivery_id,
        trigger_id=record.trigger_id,
        project_id=record.project_id,
        event_id=record.event_id,
        source=record.source,
        status=record.status.value,
        status_reason=record.status_reason,
        details=dumped["details"] if record.details is not None else null(),
        run_id=record.run_id,
        session_id=record.session_id,
        firing_workflow_id=record.firing_workflow_id,
        payload=dumped["payload"] if record.payload is not None else null(),
        created_at=record.created_at,
        updated_at=record.updated_at,
    )
    await session.execute(stmt.on_conflict_do_nothing())


async def advance_delivery(session: AsyncSession, change: DeliveryUpdate) -> bool:
    """Move the delivery to ``change.status`` unless it is already as far or further.

    Answers whether the row changed. A final status is never replaced by another one, so a
    late, retried write cannot rewrite an outcome.
    """
    behind = [s.value for s in DeliveryStatus if s.rank < change.status.rank]
    values: dict[str, Any] = {
        "status": change.status.value,
        "status_reason": change.status_reason,
        "updated_at": change.at,
    }
    if change.details is not None:
        values["details"] = change.details
    # Keep what an earlier step recorded when this one does not know it.
    values["run_id"] = func.coalesce(change.run_id, TriggerDeliveryRow.run_id)
    values["session_id"] = func.coalesce(change.session_id, TriggerDeliveryRow.session_id)
    result = await session.execute(
        update(TriggerDeliveryRow)
        .where(
            TriggerDeliveryRow.delivery_id == change.delivery_id,
            TriggerDeliveryRow.project_id == change.project_id,
            TriggerDeliveryRow.status.in_(behind),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
