"""Temporal calls for triggers, raising the domain errors of ``clients.errors``.

A schedule trigger is a Temporal Schedule (ID ``trigger-{trigger_id}``) whose action starts a
``TriggerFiringWorkflow``; pause, resume, delete, backfill and "fire now" are the schedule's
own operations. A webhook firing is a ``TriggerFiringWorkflow`` started under its business
key, so a duplicate event lands on the same execution.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from clients.errors import (
    RPC_TIMEOUT,
    ScheduleExists,
    ScheduleInvalid,
    ScheduleMissing,
    TemporalUnavailable,
    WorkflowCallError,
    temporal_call,
)
from tether import temporal as sa
from tether.ids import firing_workflow_id, schedule_id
from tether.settings import Settings
from workflows.trigger_firing import TriggerFiringWorkflow
from workflows.trigger_types import FiringInput, OverlapPolicy, TriggerRecord

OVERLAP = {
    OverlapPolicy.SKIP: ScheduleOverlapPolicy.SKIP,
    OverlapPolicy.BUFFER_ONE: ScheduleOverlapPolicy.BUFFER_ONE,
    OverlapPolicy.BUFFER_ALL: ScheduleOverlapPolicy.BUFFER_ALL,
    OverlapPolicy.CANCEL_OTHER: ScheduleOverlapPolicy.CANCEL_OTHER,
    OverlapPolicy.ALLOW_ALL: ScheduleOverlapPolicy.ALLOW_ALL,
}


def _search_attributes(trigger: TriggerRecord) -> TypedSearchAttributes:
    # Trigger and project only: run-level attributes (TetherRunId, TetherAgent, ...) stay on
    # the run's own execution, so a query for a run finds exactly that run.
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.TRIGGER_ID, trigger.trigger_id),
            SearchAttributePair(sa.PROJECT_ID, trigger.project_id),
        ]
    )


def _summary(trigger: TriggerRecord) -> str:
    return f"firing · trigger {trigger.name} ({trigger.trigger_id}) · agent {trigger.target.agent}"


def build_schedule(trigger: TriggerRecord, settings: Settings) -> Schedule:
    """The Temporal Schedule of a schedule trigger, as the trigger is configured now."""
    config = trigger.schedule
    assert config is not None
    intervals = []
    if config.interval_s is not None:
        intervals.append(
            ScheduleIntervalSpec(
                every=timedelta(seconds=config.interval_s),
                offset=_seconds(config.interval_offset_s),
            )
        )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            TriggerFiringWorkflow.run,
            FiringInput(trigger_id=trigger.trigger_id, project_id=trigger.project_id),
            id=firing_workflow_id(trigger.trigger_id),  # Temporal appends the scheduled time
            task_queue=settings.task_queue,
            typed_search_attributes=_search_attributes(trigger),
            static_summary=_summary(trigger),
        ),
        spec=ScheduleSpec(
            cron_expressions=list(config.cron),
            intervals=intervals,
            start_at=config.start_at,
            end_at=config.end_at,
            jitter=_seconds(config.jitter_s),
            time_zone_name=config.time_zone,
        ),
        policy=SchedulePolicy(
            overlap=OVERLAP[config.overlap], catchup_window=_seconds(config.catchup_window_s)
        ),
        state=ScheduleState(paused=trigger.paused, note=f"Tether trigger {trigger.name}"),
    )


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _handle(client: Client, trigger_id: str) -> ScheduleHandle:
    return client.get_schedule_handle(schedule_id(trigger_id))


def _mapped(err: RPCError) -> WorkflowCallError:
    if err.status == RPCStatusCode.INVALID_ARGUMENT:
        return ScheduleInvalid(err.message)
    if err.status == RPCStatusCode.NOT_FOUND:
        return ScheduleMissing(
            "the trigger's Temporal schedule is gone; update the trigger to recreate it"
        )
    return TemporalUnavailable(f"Temporal did not answer: {err.message}")


async def create_schedule(client: Client, trigger: TriggerRecord, settings: Settings) -> None:
    try:
        async with temporal_call():
            await client.create_schedule(
                schedule_id(trigger.trigger_id),
                build_schedule(trigger, settings),
                memo={"trigger_id": trigger.trigger_id, "name": trigger.name},
                rpc_timeout=RPC_TIMEOUT,
            )
    except ScheduleAlreadyRunningError as err:  # IDs are unique: only a retried create
        raise ScheduleExists(str(err)) from err
    except RPCError as err:
        raise _mapped(err) from err


async def update_schedule(client: Client, trigger: TriggerRecord, settings: Settings) -> None:
    """Make the schedule match the trigger; recreate it if it went missing."""
    schedule = build_schedule(trigger, settings)

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    try:
        async with temporal_call():
            await _handle(client, trigger.trigger_id).update(replace, rpc_timeout=RPC_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            await create_schedule(client, trigger, settings)
            return
        raise _mapped(err) from err


async def set_paused(client: Client, trigger_id: str, paused: bool, note: str) -> None:
    handle = _handle(client, trigger_id)
    try:
        async with temporal_call():
            await (
                handle.pause(note=note, rpc_timeout=RPC_TIMEOUT)
                if paused
                else handle.unpause(note=note, rpc_timeout=RPC_TIMEOUT)
            )
    except RPCError as err:
        raise _mapped(err) from err


async def delete_schedule(client: Client, trigger_id: str) -> None:
    try:
        async with temporal_call():
            await _handle(client, trigger_id).delete(rpc_timeout=RPC_TIMEOUT)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise _mapped(err) from err


async def backfill(
    client: Client,
    trigger_id: str,
    start_at: datetime,
    end_at: datetime,
    overlap: OverlapPolicy,
) -> None:
    """Fire the schedule for the times it would have fired in ``[start_at, end_at)``."""
    fill = ScheduleBackfill(start_at=start_at, end_at=end_at, overlap=OVERLAP[overlap])
    try:
        async with temporal_call():
            await _handle(client, trigger_id).backfill(fill, rpc_timeout=RPC_TIMEOUT)
    except RPCError as err:
        raise _mapped(err) from err


async def fire_schedule(client: Client, trigger_id: str) -> None:
    """ "Fire now": the schedule's own trigger operation, under its overlap policy."""
    try:
        async with temporal_call():
            await _handle(client, trigger_id).trigger(rpc_timeout=RPC_TIMEOUT)
    except RPCError as err:
        raise _mapped(err) from err


async def start_webhook_firing(
    client: Client, trigger: TriggerRecord, event_id: str, payload: object, settings: Settings
) -> bool:
    """Start the firing of a webhook event; ``False`` if that event's firing already ended.

    ``USE_EXISTING`` makes concurrent duplicates join the running firing, and
    ``REJECT_DUPLICATE`` keeps a finished one from firing again.
    """
    try:
        async with temporal_call():
            await client.start_workflow(
                TriggerFiringWorkflow.run,
                FiringInput(
                    trigger_id=trigger.trigger_id,
                    project_id=trigger.project_id,
                    source="webhook",
                    event_id=event_id,
                    payload=payload,
                ),
                id=firing_workflow_id(trigger.trigger_id, event_id),
                task_queue=settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=_search_attributes(trigger),
                static_summary=f"{_summary(trigger)} · event {event_id}",
                rpc_timeout=RPC_TIMEOUT,
            )
    except WorkflowAlreadyStartedError:
        return False
    except RPCError as err:
        raise _mapped(err) from err
    return True
