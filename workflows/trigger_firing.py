"""TriggerFiringWorkflow: one firing of a trigger, from its event to its run's outcome.

Its workflow ID is the firing's business key: ``firing-{trigger}-{event}`` for a webhook
(started by the API with ``USE_EXISTING`` / ``REJECT_DUPLICATE``), ``firing-{trigger}-{time}``
for a schedule (Temporal appends the scheduled time). A duplicate firing is therefore the
same workflow, and its IDs (delivery, run, session) are derived from the same key.

It records the delivery (store writes are local activities, like the run's projections),
submits the run to the target session, and stays until the run ends (the run's workflow
signals ``run_finished``; the store is polled as a fallback) to record the run's outcome on
the delivery. Staying also makes a schedule's overlap policy apply to runs: ``skip`` fires
nothing while the previous firing's run is still going.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.triggers import TriggerActivities
    from workflows import options
    from workflows.trigger_types import (
        CancelTargetInput,
        DeliveryOutcome,
        DeliveryStatus,
        DeliveryUpdate,
        FiringInput,
        FiringPlan,
        RunOutcomeInput,
        StartDeliveryInput,
        SubmitFiringInput,
    )
    from workflows.types import RUN_FINISHED_SIGNAL, RunFinished

# Set by Temporal on executions a schedule starts.
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
# The run's signal is the fast path; the store is read this often in case it never comes.
OUTCOME_POLL = timedelta(minutes=10)
# After cancelling its run, how long a cancelled firing waits to hear how the run ended.
CANCEL_WAIT = timedelta(minutes=2)
CANCEL_REASON = "firing_cancelled"


@workflow.defn
class TriggerFiringWorkflow:
    def __init__(self) -> None:
        # Outcomes by run ID: the signal may come before the submit's answer does.
        self._finished: dict[str, RunFinished] = {}

    @workflow.run
    async def run(self, inp: FiringInput) -> DeliveryOutcome:
        info = workflow.info()
        event_id, fired_at = _event(inp)
        plan = await workflow.execute_local_activity_method(
            TriggerActivities.start_delivery,
            StartDeliveryInput(
                trigger_id=inp.trigger_id,
                project_id=inp.project_id,
                source=inp.source,
                event_id=event_id,
                payload=inp.payload,
                firing_workflow_id=info.workflow_id,
                fired_at=fired_at,
            ),
            summary=f"record delivery of event {event_id}"[:200],
            **options.record(),
        )
        if plan.rejected is not None:
            workflow.set_current_details(f"Rejected: {plan.rejected.value}. {plan.message or ''}")
            return DeliveryOutcome(
                delivery_id=plan.delivery_id,
                status=DeliveryStatus.REJECTED,
                status_reason=plan.rejected.value,
            )
        try:
            return await self._fire(inp, plan, event_id)
        except (asyncio.CancelledError, ActivityError) as err:
            if not _is_cancellation(err):
                raise
            return await self._cancelled(inp, plan)

    async def _fire(self, inp: FiringInput, plan: FiringPlan, event_id: str) -> DeliveryOutcome:
        workflow.set_current_details(
            f"Submitting run `{plan.run_id}` of `{plan.agent}` to session `{plan.session_id}`"
        )
        try:
            submitted = await workflow.execute_activity_method(
                TriggerActivities.submit_firing,
                SubmitFiringInput(
                    plan=plan,
                    trigger_id=inp.trigger_id,
                    project_id=inp.project_id,
                    event_id=event_id,
                    notify_workflow_id=workflow.info().workflow_id,
                    created_at=workflow.now(),
                ),
                summary=f"submit {plan.agent} to session {plan.session_id}",
                **options.trigger_submit(),
            )
        except ActivityError as err:
            if _is_cancellation(err):
                raise
            message = str(err.cause or err)
            return await self._settle(inp, plan, DeliveryStatus.FAILED, "submit_failed", message)
        if submitted.busy:
            details = {"active_run_id": submitted.active_run_id}
            return await self._settle(
                inp, plan, DeliveryStatus.REJECTED, "session_busy", details=details, run=False
            )
        await self._record(inp, plan, DeliveryStatus.SUBMITTED)
        if submitted.status is not None and submitted.status.is_terminal:
            self._finished.setdefault(
                plan.run_id,
                RunFinished(
                    run_id=plan.run_id,
                    status=submitted.status,
                    status_reason=submitted.status_reason,
                    error=submitted.error,
                ),
            )
        workflow.set_current_details(
            f"Waiting for run `{plan.run_id}` (`{plan.agent}`, session `{plan.session_id}`)"
        )
        while plan.run_id not in self._finished:
            try:
                await workflow.wait_condition(
                    lambda: plan.run_id in self._finished, timeout=OUTCOME_POLL
                )
            except TimeoutError:
                await self._poll_outcome(inp, plan)
        return await self._settle_with_run(inp, plan, self._finished[plan.run_id])

    async def _cancelled(self, inp: FiringInput, plan: FiringPlan) -> DeliveryOutcome:
        """Cancelled (e.g. a schedule's ``cancel_other``): cancel the run too, record how it
        ended. The run may not exist (cancelled before the submit); the cancel is then stale
        and ignored by its session."""
        workflow.set_current_details(f"Firing cancelled; cancelling run `{plan.run_id}`")
        await workflow.execute_activity_method(
            TriggerActivities.cancel_target_run,
            CancelTargetInput(
                session_id=plan.session_id,
                run_id=plan.run_id,
                reason=CANCEL_REASON,
                project_id=inp.project_id,
            ),
            summary=f"cancel run {plan.run_id}",
            **options.record(),
        )
        try:
            await workflow.wait_condition(
                lambda: plan.run_id in self._finished, timeout=CANCEL_WAIT
            )
        except TimeoutError:
            await self._poll_outcome(inp, plan)
        finished = self._finished.get(plan.run_id)
        if finished is not None:
            return await self._settle_with_run(inp, plan, finished)
        return await self._settle(inp, plan, DeliveryStatus.CANCELLED, CANCEL_REASON)

    @workflow.signal(name=RUN_FINISHED_SIGNAL)
    def run_finished(self, done: RunFinished) -> None:
        self._finished.setdefault(done.run_id, done)

    async def _poll_outcome(self, inp: FiringInput, plan: FiringPlan) -> None:
        found = await workflow.execute_local_activity_method(
            TriggerActivities.run_outcome,
            RunOutcomeInput(project_id=inp.project_id, run_id=plan.run_id),
            summary=f"read outcome of {plan.run_id}",
            **options.record(),
        )
        if found is not None:
            self._finished.setdefault(plan.run_id, found)

    async def _settle_with_run(
        self, inp: FiringInput, plan: FiringPlan, finished: RunFinished
    ) -> DeliveryOutcome:
        details = {"error": finished.error} if finished.error else None
        status = DeliveryStatus.of_run(finished.status)
        return await self._settle(inp, plan, status, finished.status_reason, details=details)

    async def _settle(
        self,
        inp: FiringInput,
        plan: FiringPlan,
        status: DeliveryStatus,
        reason: str | None,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        run: bool = True,
    ) -> DeliveryOutcome:
        if message is not None:
            details = {**(details or {}), "message": message}
        await self._record(inp, plan, status, reason, details, run=run)
        workflow.set_current_details(
            f"Delivery {status.value}"
            + (f": {reason}" if reason else "")
            + (f" · run `{plan.run_id}`" if run else "")
        )
        return DeliveryOutcome(
            delivery_id=plan.delivery_id,
            status=status,
            run_id=plan.run_id if run else None,
            status_reason=reason,
        )

    async def _record(
        self,
        inp: FiringInput,
        plan: FiringPlan,
        status: DeliveryStatus,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        run: bool = True,
    ) -> None:
        await workflow.execute_local_activity_method(
            TriggerActivities.record_delivery,
            DeliveryUpdate(
                delivery_id=plan.delivery_id,
                project_id=inp.project_id,
                status=status,
                status_reason=reason,
                details=details,
                run_id=plan.run_id if run else None,
                session_id=plan.session_id if run else None,
                at=workflow.now(),
            ),
            summary=f"record delivery {status.value}",
            **options.record(),
        )


def _event(inp: FiringInput) -> tuple[str, datetime]:
    """The firing's event ID and time: given (webhooks), or the scheduled time (schedules)."""
    info = workflow.info()
    if inp.event_id:
        return inp.event_id, info.start_time
    scheduled = info.typed_search_attributes.get(SCHEDULED_START_TIME) or info.start_time
    scheduled = scheduled.astimezone(UTC)
    # The same text Temporal appends to the workflow ID.
    return scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"), scheduled


def _is_cancellation(err: BaseException) -> bool:
    return isinstance(err, asyncio.CancelledError) or (
        isinstance(err, ActivityError) and isinstance(err.cause, CancelledError)
    )
