"""Activities of ``TriggerFiringWorkflow``: record deliveries, submit the firing's run.

The submit is the API's own (``clients.sessions.submit_run``), with IDs derived from the
trigger and event, so a retried activity (or a duplicate firing) finds the run it already made
instead of making another.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from clients import sessions
from clients.errors import IdempotencyConflict, RunNotActive, SessionBusy
from store import runs, triggers
from tether.ids import delivery_id_for, firing_run_id, firing_session_id
from tether.settings import Settings
from tether.templating import TemplateError, firing_context, render
from workflows.errors import ErrorType
from workflows.trigger_types import (
    CancelTargetInput,
    DeliveryRecord,
    DeliveryStatus,
    DeliveryUpdate,
    FiringPlan,
    RejectReason,
    RunOutcomeInput,
    StartDeliveryInput,
    SubmitFiringInput,
    SubmitFiringResult,
)
from workflows.types import CancelSignal, RunFinished, RunSpec


class TriggerActivities:
    """Built once per worker with the store, a Temporal client and the settings."""

    def __init__(
        self, db: async_sessionmaker[AsyncSession], client: Client, settings: Settings
    ) -> None:
        self._db, self._client, self._settings = db, client, settings

    @activity.defn
    async def start_delivery(self, inp: StartDeliveryInput) -> FiringPlan:
        """Plan the firing from the trigger as it is now and record its delivery.

        The delivery is ``pending``, or ``rejected`` right away when the trigger is gone or
        its template does not fit the firing. Recording twice leaves the first row.
        """
        trigger_id, event_id = inp.trigger_id, inp.event_id
        plan = FiringPlan(
            delivery_id=delivery_id_for(trigger_id, event_id),
            run_id=firing_run_id(trigger_id, event_id),
            session_id=firing_session_id(trigger_id, event_id),
        )
        async with self._db() as session:
            found = await triggers.find_trigger(session, trigger_id, include_deleted=True)
        if found is None or found.deleted or found.record.project_id != inp.project_id:
            plan.rejected = RejectReason.TRIGGER_DELETED
            plan.message = f"trigger {trigger_id} no longer exists"
        else:
            trigger = found.record
            target = trigger.target
            plan.agent, plan.multitask, plan.trigger_name = (
                target.agent,
                target.multitask,
                trigger.name,
            )
            plan.session_id = target.session_id or plan.session_id
            context = firing_context(
                payload=inp.payload,
                event_id=event_id,
                event_time=inp.fired_at.isoformat(),
                source=inp.source,
                trigger_id=trigger_id,
                trigger_name=trigger.name,
            )
            try:
                plan.input = render(target.input, context)
            except TemplateError as err:
                plan.rejected, plan.message = RejectReason.TEMPLATE_ERROR, str(err)
        record = DeliveryRecord(
            delivery_id=plan.delivery_id,
            trigger_id=trigger_id,
            project_id=inp.project_id,
            event_id=event_id,
            source=inp.source,
            status=DeliveryStatus.REJECTED if plan.rejected else DeliveryStatus.PENDING,
            status_reason=plan.rejected.value if plan.rejected else None,
            details={"message": plan.message} if plan.message else None,
            firing_workflow_id=inp.firing_workflow_id,
            payload=inp.payload,
            created_at=inp.fired_at,
            updated_at=inp.fired_at,
        )
        async with self._db.begin() as session:
            await triggers.insert_delivery(session, record)
        return plan

    @activity.defn
    async def submit_firing(self, inp: SubmitFiringInput) -> SubmitFiringResult:
        """Submit the firing's run to its session; ``busy`` if the session rejects it."""
        plan = inp.plan
        async with self._db() as session:
            existing = await runs.get_run(session, inp.project_id, plan.run_id)
        if existing is not None:  # an earlier attempt made it (its session may be long closed)
            return SubmitFiringResult(
                status=existing.status, status_reason=existing.status_reason, error=existing.error
            )
        try:
            result = await sessions.submit_run(
                self._client, self._db, self._spec(inp), self._settings.task_queue
            )
        except SessionBusy as busy:
            return SubmitFiringResult(busy=True, active_run_id=busy.active_run_id)
        except IdempotencyConflict as err:
            raise ApplicationError(
                err.message, type=ErrorType.IDEMPOTENCY_CONFLICT, non_retryable=True
            ) from err
        # Anything else (the session kept closing, Temporal is down): Temporal retries.
        state = result.state
        return SubmitFiringResult(
            status=state.status, status_reason=state.status_reason, error=state.error
        )

    def _spec(self, inp: SubmitFiringInput) -> RunSpec:
        plan, settings = inp.plan, self._settings
        return RunSpec(
            run_id=plan.run_id,
            session_id=plan.session_id,
            project_id=inp.project_id,
            agent=plan.agent,
            input=plan.input,
            multitask=plan.multitask,
            # The delivery names the firing: a session that already holds it finds it.
            idempotency_key=plan.delivery_id,
            metadata={
                "trigger_id": inp.trigger_id,
                "event_id": inp.event_id,
                "delivery_id": plan.delivery_id,
            },
            trigger_id=inp.trigger_id,
            created_at=inp.created_at,
            # The firing waits for the outcome, not for a runner.
            policy=sessions.run_policy(settings, accept_wait_s=0.0),
            api_url=settings.public_api_url,
            notify_workflow_id=inp.notify_workflow_id,
        )

    @activity.defn
    async def record_delivery(self, change: DeliveryUpdate) -> None:
        async with self._db.begin() as session:
            await triggers.advance_delivery(session, change)

    @activity.defn
    async def run_outcome(self, inp: RunOutcomeInput) -> RunFinished | None:
        """The run's outcome from the store, if it ended (the firing's fallback to a signal)."""
        async with self._db() as session:
            run = await runs.get_run(session, inp.project_id, inp.run_id)
        if run is None or not run.status.is_terminal:
            return None
        return RunFinished(
            run_id=run.run_id, status=run.status, status_reason=run.status_reason, error=run.error
        )

    @activity.defn
    async def cancel_target_run(self, inp: CancelTargetInput) -> None:
        """Ask the run's session to cancel it; a session that is gone has nothing to cancel."""
        cancel = CancelSignal(run_id=inp.run_id, reason=inp.reason)
        try:
            await sessions.signal_cancel(self._client, inp.project_id, inp.session_id, cancel)
        except RunNotActive:
            pass
