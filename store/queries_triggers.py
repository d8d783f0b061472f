"""Trigger reads: one trigger, the trigger listing, a trigger's deliveries.

Scoped by project like every read, except ``find_trigger``: a webhook arrives without an API
key, authenticated by the trigger's own signature, so it is looked up by its (random) ID.
Listings are keyset-paged newest first on ``(created_at, id)``: rows created while paging
never make a page skip or repeat one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.keyset import after, decode_position, encode_position
from store.models import TriggerDeliveryRow, TriggerRow
from workflows.trigger_types import (
    DeliveryRecord,
    DeliveryStatus,
    ScheduleConfig,
    TriggerKind,
    TriggerRecord,
    TriggerTarget,
    WebhookConfig,
)


def trigger_record(row: TriggerRow) -> TriggerRecord:
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
    return None if row is None else trigger_record(row)


async def find_trigger(
    session: AsyncSession, trigger_id: str, *, include_deleted: bool = False
) -> tuple[TriggerRecord, str | None, bool] | None:
    """``(trigger, webhook secret, deleted)`` of any project: for webhooks and firings."""
    stmt = select(TriggerRow).where(TriggerRow.trigger_id == trigger_id)
    if not include_deleted:
        stmt = stmt.where(TriggerRow.deleted_at.is_(None))
    row = await session.scalar(stmt)
    if row is None:
        return None
    return trigger_record(row), row.webhook_secret, row.deleted_at is not None


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
    return [trigger_record(row) for row in rows[:limit]], next_cursor


def delivery_record(row: TriggerDeliveryRow) -> DeliveryRecord:
    return DeliveryRecord.model_validate(row, from_attributes=True)


async def get_delivery(
    session: AsyncSession, project_id: str, delivery_id: str
) -> DeliveryRecord | None:
    row = await session.scalar(
        select(TriggerDeliveryRow).where(
            TriggerDeliveryRow.project_id == project_id,
            TriggerDeliveryRow.delivery_id == delivery_id,
        )
    )
    return None if row is None else delivery_record(row)


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
    return [delivery_record(row) for row in rows[:limit]], next_cursor


def _next_cursor(listing: str, rows: list[Any], limit: int, key: Any) -> str | None:
    if len(rows) <= limit:
        return None
    return encode_position(listing, "created_at", "desc", key(rows[limit - 1]))
