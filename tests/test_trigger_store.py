"""Trigger rows and deliveries in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from store import triggers
from store.keyset import InvalidCursor
from tether.ids import firing_workflow_id
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

Db = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
BOX = SecretBox(b"k" * 32)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _trigger(trigger_id: str, project_id: str = "default", **fields: object) -> TriggerRecord:
    base: dict[str, object] = {
        "trigger_id": trigger_id,
        "project_id": project_id,
        "name": trigger_id,
        "kind": TriggerKind.WEBHOOK,
        "target": TriggerTarget(agent="echo", input={"text": "{{ payload.text }}"}),
        "webhook": WebhookConfig(),
        "created_at": T0,
        "updated_at": T0,
    }
    return TriggerRecord.model_validate({**base, **fields})


def _delivery(event_id: str, at: datetime, trigger_id: str = "trg_a") -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=f"dlv_{trigger_id}_{event_id}",
        trigger_id=trigger_id,
        project_id="default",
        event_id=event_id,
        source="webhook",
        status=DeliveryStatus.PENDING,
        firing_workflow_id=firing_workflow_id(trigger_id, event_id),
        payload={"n": 1},
        created_at=at,
        updated_at=at,
    )


async def test_trigger_rows_round_trip_and_are_project_scoped(db: Db) -> None:
    _, factory = db
    schedule = _trigger(
        "trg_s",
        kind=TriggerKind.SCHEDULE,
        webhook=None,
        schedule=ScheduleConfig(cron=["0 3 * * *"], time_zone="Europe/Paris"),
        created_at=T0 + timedelta(seconds=1),
    )
    async with factory.begin() as session:
        await triggers.insert_trigger(session, _trigger("trg_w"), "whsec_x", BOX)
        await triggers.insert_trigger(session, schedule, None, None)
        await triggers.insert_trigger(
            session, _trigger("trg_other", project_id="p2"), "whsec_y", BOX
        )
    async with factory() as session:
        assert await triggers.get_trigger(session, "default", "trg_w") == _trigger("trg_w")
        assert await triggers.get_trigger(session, "default", "trg_s") == schedule
        assert await triggers.get_trigger(session, "default", "trg_other") is None
        found = await triggers.find_trigger(session, "trg_other")
        assert found is not None and found.signing_secrets(BOX, T0) == ["whsec_y"]
        page, cursor = await triggers.list_triggers(session, "default", limit=1)
        assert [t.trigger_id for t in page] == ["trg_s"] and cursor
        page, cursor = await triggers.list_triggers(session, "default", limit=1, cursor=cursor)
        assert [t.trigger_id for t in page] == ["trg_w"] and cursor is None
        with pytest.raises(InvalidCursor):
            await triggers.list_triggers(session, "default", cursor="nope")

    renamed = _trigger("trg_w", name="renamed", paused=True, metadata={"team": "a"})
    async with factory.begin() as session:
        await triggers.save_trigger(session, renamed)
        await triggers.mark_trigger_deleted(session, "trg_s", T0)
    async with factory() as session:
        assert await triggers.get_trigger(session, "default", "trg_w") == renamed
        assert await triggers.get_trigger(session, "default", "trg_s") is None
        deleted = await triggers.find_trigger(session, "trg_s", include_deleted=True)
        assert deleted is not None and deleted.deleted is True
        assert [t.trigger_id for t in (await triggers.list_triggers(session, "default"))[0]] == [
            "trg_w"
        ]


async def test_deliveries_are_recorded_once_and_only_move_forward(db: Db) -> None:
    _, factory = db
    first = _delivery("e1", T0)
    async with factory.begin() as session:
        await triggers.insert_delivery(session, first)
        # The same firing again (a retried activity): nothing changes.
        await triggers.insert_delivery(session, first.model_copy(update={"payload": {"n": 2}}))

    def change(status: DeliveryStatus, **fields: object) -> DeliveryUpdate:
        return DeliveryUpdate.model_validate(
            {
                "delivery_id": first.delivery_id,
                "project_id": "default",
                "status": status,
                "at": T0 + timedelta(seconds=1),
                **fields,
            }
        )

    async with factory.begin() as session:
        assert await triggers.advance_delivery(
            session, change(DeliveryStatus.SUBMITTED, run_id="run_1", session_id="s1")
        )
        assert await triggers.advance_delivery(
            session, change(DeliveryStatus.FAILED, status_reason="agent_error", details={"e": 1})
        )
        # Late retries of earlier steps, or another outcome, change nothing.
        assert not await triggers.advance_delivery(
            session, change(DeliveryStatus.SUBMITTED, run_id="x")
        )
        assert not await triggers.advance_delivery(session, change(DeliveryStatus.COMPLETED))
    async with factory() as session:
        stored = await triggers.get_delivery(session, "default", first.delivery_id)
    assert stored is not None
    assert (stored.status, stored.status_reason, stored.details) == (
        DeliveryStatus.FAILED,
        "agent_error",
        {"e": 1},
    )
    assert (stored.run_id, stored.session_id, stored.payload) == ("run_1", "s1", {"n": 1})


async def test_deliveries_filter_by_status_and_page_newest_first(db: Db) -> None:
    _, factory = db
    async with factory.begin() as session:
        for i in range(5):
            await triggers.insert_delivery(session, _delivery(f"e{i}", T0 + timedelta(seconds=i)))
        await triggers.insert_delivery(session, _delivery("x", T0, trigger_id="trg_b"))
        await triggers.advance_delivery(
            session,
            DeliveryUpdate(
                delivery_id="dlv_trg_a_e3",
                project_id="default",
                status=DeliveryStatus.REJECTED,
                status_reason="session_busy",
                at=T0,
            ),
        )
    async with factory() as session:
        seen: list[str] = []
        cursor = None
        while True:
            page, cursor = await triggers.list_deliveries(
                session, "default", "trg_a", limit=2, cursor=cursor
            )
            seen += [d.event_id for d in page]
            if cursor is None:
                break
        assert seen == ["e4", "e3", "e2", "e1", "e0"]
        rejected, _ = await triggers.list_deliveries(
            session, "default", "trg_a", statuses=[DeliveryStatus.REJECTED]
        )
        assert [d.event_id for d in rejected] == ["e3"]
        assert (await triggers.list_deliveries(session, "p2", "trg_a"))[0] == []
