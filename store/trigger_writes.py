"""Trigger writes.

Two writers, as the design splits them: the API writes trigger configuration rows; the firing
workflow's activities write deliveries. Delivery writes are idempotent (activities may run
more than once) and only move a delivery forward. None of these functions commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, null, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import dialect_insert
from store.models import TriggerDeliveryRow, TriggerRow
from workflows.trigger_types import DeliveryRecord, DeliveryStatus, DeliveryUpdate, TriggerRecord

_triggers = TriggerRow.__table__
_deliveries = TriggerDeliveryRow.__table__

# Configuration (API).


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


async def insert_trigger(session: AsyncSession, record: TriggerRecord, secret: str | None) -> None:
    await session.execute(
        dialect_insert(session, _triggers).values(
            trigger_id=record.trigger_id,
            project_id=record.project_id,
            kind=record.kind.value,
            webhook_secret=secret,
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


async def mark_trigger_deleted(session: AsyncSession, trigger_id: str, at: datetime) -> None:
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


# Deliveries (activities).


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
