"""RunDriver: moves one run through its states inside ``SessionRunWorkflow``.

dispatching -> running <-> waiting_for_input -> completed | failed | cancelled

Each step starts from the run's recorded status, so a run carried across continue-as-new
resumes exactly where it was (following from its cursor, or waiting for the same human).
Workflow code: deterministic, all I/O in activities.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from activities.records import StoreActivities
    from activities.runner_calls import RunActivities
    from runner.protocol import InteractionReply
    from tether import temporal as sa
    from workflows import options
    from workflows.run_outcomes import (
        RunEnded,
        absorb,
        deliver_summary,
        dispatch_failure,
        is_cancellation,
        notify_finished,
        runner_lost,
        waiting_details,
    )
    from workflows.types import (
        CancelRunInput,
        CancelSignal,
        CarriedRun,
        DeliverInput,
        DispatchInput,
        FailureReason,
        FollowInput,
        InteractionRecord,
        PendingInteraction,
        ProbeInput,
        RecordRunInput,
        RespondSignal,
        RunSpec,
        RunState,
        RunStatus,
        StatusTransition,
    )


T = TypeVar("T")

# Patches (``workflow.patched``): histories recorded before them replay the old commands.
# A waiting run wakes now and then to check that its runner still holds it.
PROBE_WHILE_WAITING = "probe-runner-while-waiting"
# An answer is recorded ``resolved`` only once the runner took it.
DELIVER_BEFORE_RESOLVED = "deliver-answer-before-resolved"


class RunDriver:
    def __init__(self, run: CarriedRun) -> None:
        self.run = run
        self.cancel: CancelSignal | None = run.cancel
        self.answer: RespondSignal | None = run.answer
        self._early_answers: list[RespondSignal] = list(run.early_answers)
        self._interactions = {i.interaction_id: i for i in run.interactions}
        self._unrecorded: set[str] = set()
        self.recorded = run.transitions > 0  # the store has the run

    @property
    def spec(self) -> RunSpec:
        return self.run.spec

    @property
    def state(self) -> RunState:
        return self.run.state

    def carry(self) -> CarriedRun:
        """The run as it stands, for continue-as-new."""
        return self.run.model_copy(
            update={
                "interactions": list(self._interactions.values()),
                "answer": self.answer,
                "cancel": self.cancel,
                "early_answers": list(self._early_answers),
            }
        )

    # ---- signals, delegated by the workflow ---------------------------------------------

    def on_respond(self, answer: RespondSignal) -> None:
        pending = self.state.pending_interaction
        if self.answer is None and pending and pending.interaction_id == answer.interaction_id:
            self.answer = answer
            return
        record = self._interactions.get(answer.interaction_id)
        if record is None:
            # Answers can overtake the question: the interaction is already in the store (a
            # local activity wrote it) while this task still has the follow result to apply.
            self._early_answers.append(answer)
            return
        # Lost the race to an earlier answer: keep it on the record.
        record.ignored_responses.append(
            {
                "response": answer.response,
                "responder": answer.responder,
                "at": workflow.now().isoformat(),
            }
        )
        self._unrecorded.add(answer.interaction_id)

    def on_cancel(self, request: CancelSignal) -> None:
        if self.cancel is None and not self.state.status.is_terminal:
            self.cancel = request

    # ---- driving ------------------------------------------------------------------------

    async def step(self) -> None:
        """Advance the run by one state; call until the run is terminal."""
        try:
            status = self.state.status
            if status in (RunStatus.QUEUED, RunStatus.DISPATCHING):
                if status == RunStatus.QUEUED:
                    await self.transition(RunStatus.DISPATCHING)
                await self._dispatch()
                await self.transition(RunStatus.RUNNING)
            elif status == RunStatus.RUNNING:
                await self._follow()
            elif status == RunStatus.WAITING_FOR_INPUT:
                await self._wait_for_human()
        except RunEnded as end:
            await self.finish(end.status, end.reason, error=end.error)
        except ActivityError as err:
            # A store projection failed past its retries: end visibly rather than look alive.
            await self.finish(
                RunStatus.FAILED, FailureReason.INTERNAL_ERROR, error={"message": str(err)}
            )

    async def _dispatch(self) -> None:
        spec, state = self.spec, self.state
        state.attempts["dispatch"] = state.attempts.get("dispatch", 0) + 1
        workflow.set_current_details(f"Dispatching `{spec.agent}` to a runner")
        handle = workflow.start_activity_method(
            RunActivities.dispatch_run,
            DispatchInput(
                run_id=spec.run_id,
                session_id=spec.session_id,
                project_id=spec.project_id,
                agent=spec.agent,
                input=spec.input,
                metadata=spec.metadata,
            ),
            summary=f"dispatch {spec.agent}",
            **options.dispatch(spec.policy),
        )
        await self._until(handle.done)
        if not handle.done():
            handle.cancel()
            await self._cancel_on_runner()
        result = await self._outcome_of(handle, dispatch_failure)
        state.replica_id = result.replica_id
        state.started_at = result.started_at

    async def _follow(self) -> None:
        spec, state = self.spec, self.state
        state.attempts["follow"] = state.attempts.get("follow", 0) + 1
        workflow.set_current_details(f"Running `{spec.agent}` (transcript at seq {state.last_seq})")
        handle = workflow.start_activity_method(
            RunActivities.follow_run,
            FollowInput(
                run_id=spec.run_id,
                project_id=spec.project_id,
                after_seq=state.last_seq,
                runner_lost_timeout_s=spec.policy.runner_lost_timeout_s,
                session_id=spec.session_id,
                interaction_expiry_s=spec.policy.interaction_expiry_s,
            ),
            summary=f"follow from seq {state.last_seq}",
            **options.follow(spec.policy),
        )
        await self._until(handle.done)
        if not handle.done():
            await self._cancel_on_runner()
            try:  # give the runner a moment to end the stream with run.cancelled
                await workflow.wait_condition(
                    handle.done, timeout=timedelta(seconds=spec.policy.cancel_grace_s)
                )
            except TimeoutError:
                handle.cancel()
        outcome = await self._outcome_of(handle, runner_lost)
        absorb(self.state, outcome)
        await self.flush_interactions()
        if outcome.kind == "ended":
            status = outcome.ended_status or RunStatus.FAILED
            reason = {RunStatus.FAILED: FailureReason.AGENT_ERROR.value}.get(status)
            if status == RunStatus.CANCELLED:
                reason = self._cancel_reason()
            raise RunEnded(status, reason, error=outcome.error)
        assert outcome.interaction is not None
        await self._ask_human(outcome.interaction)

    async def _ask_human(self, pending: PendingInteraction) -> None:
        spec, state = self.spec, self.state
        expires_at = pending.expires_at or (
            pending.requested_at + timedelta(seconds=spec.policy.interaction_expiry_s)
        )
        pending = pending.model_copy(update={"expires_at": expires_at})
        record = InteractionRecord.pending(
            pending, run_id=spec.run_id, session_id=spec.session_id, project_id=spec.project_id
        )
        self._interactions[pending.interaction_id] = record
        self.answer = None
        state.pending_interaction = pending
        early = [a for a in self._early_answers if a.interaction_id == pending.interaction_id]
        self._early_answers = [a for a in self._early_answers if a not in early]
        for answer in early:  # the first wins, as if they had arrived now
            self.on_respond(answer)
        state.paused_at = workflow.now()
        await self._record_interaction(record)
        await self.transition(RunStatus.WAITING_FOR_INPUT)

    async def _wait_for_human(self) -> None:
        """Wait for the answer, a cancel or the expiry, then hand the outcome to the runner.

        A probe interval bounds each wait: when it passes with nothing to act on, the runner is
        asked whether it still holds the run (a lost runner ends the run ``runner_lost``, its
        interaction cancelled) and the step returns, still waiting, so a long wait can
        continue-as-new between probes.
        """
        spec, state = self.spec, self.state
        pending = state.pending_interaction
        assert pending is not None and pending.expires_at is not None
        record = self._interactions[pending.interaction_id]
        workflow.set_current_details(waiting_details(pending))
        remaining = max(timedelta(0), pending.expires_at - workflow.now())
        probe_after = timedelta(seconds=spec.policy.waiting_probe_s)
        probing = remaining > probe_after and workflow.patched(PROBE_WHILE_WAITING)
        try:
            await workflow.wait_condition(
                lambda: self.answer is not None or self.cancel is not None,
                timeout=probe_after if probing else remaining,
            )
        except TimeoutError:
            if probing:
                await self._probe_runner()
                return

        if self.answer is not None:
            answer = self.answer
            outcome: str = "resolved"
            reply = InteractionReply(
                outcome="answered", response=answer.response, responder=answer.responder
            )
        elif self.cancel is not None:
            outcome, reply = "cancelled", InteractionReply(outcome="cancelled")
        else:
            outcome, reply = "expired", InteractionReply(outcome="expired")

        if outcome == "cancelled":
            self._settle(record, outcome)
            await self._record_interaction(record)
            await self._cancel_on_runner()
            await self._drain_after_cancel()
            raise self._cancelled()
        if workflow.patched(DELIVER_BEFORE_RESOLVED):
            # Settled only once delivered: an answer the runner never got is not "resolved"
            # (a lost runner ends the run, and ``finish`` cancels the still-pending record).
            await self._deliver(record, reply)
            self._settle(record, outcome)
            await self._record_interaction(record)
        else:
            self._settle(record, outcome)
            await self._record_interaction(record)
            await self._deliver(record, reply)
        await self.transition(RunStatus.RUNNING)

    def _settle(self, record: InteractionRecord, outcome: str) -> None:
        """The interaction ends with ``outcome``; the run no longer waits for it."""
        if outcome == "resolved":
            assert self.answer is not None
            record.response, record.responder = self.answer.response, self.answer.responder
        record.status = outcome  # type: ignore[assignment]
        record.resolved_at = workflow.now()
        self.state.pending_interaction = None
        self.state.paused_at = None

    async def _deliver(self, record: InteractionRecord, reply: InteractionReply) -> None:
        spec = self.spec
        try:
            await workflow.execute_activity_method(
                RunActivities.deliver_response,
                DeliverInput(run_id=spec.run_id, interaction_id=record.interaction_id, reply=reply),
                summary=deliver_summary(reply),
                **options.runner_call(spec.policy),
            )
        except ActivityError as err:
            raise runner_lost(err) from err

    async def _probe_runner(self) -> None:
        """End the run ``runner_lost`` if its runner no longer holds it (or stays unreachable).

        A regular activity, retried by the server: a local one retries inside the workflow
        task, which then runs past the retry bound while the runner stays unreachable.
        """
        try:
            await workflow.execute_activity_method(
                RunActivities.probe_run,
                ProbeInput(run_id=self.spec.run_id),
                summary="probe runner",
                **options.probe(self.spec.policy),
            )
        except ActivityError as err:
            raise runner_lost(err) from err

    async def _drain_after_cancel(self) -> None:
        """Persist what the runner sends until ``run.cancelled``, for a bounded time."""
        spec, state = self.spec, self.state
        try:
            outcome = await workflow.execute_activity_method(
                RunActivities.follow_run,
                FollowInput(
                    run_id=spec.run_id,
                    project_id=spec.project_id,
                    after_seq=state.last_seq,
                    runner_lost_timeout_s=spec.policy.cancel_grace_s,
                ),
                summary=f"drain from seq {state.last_seq}",
                **options.drain(spec.policy),
            )
        except ActivityError:
            return  # cancelled either way; the runner may have dropped the run already
        absorb(self.state, outcome)

    async def _cancel_on_runner(self) -> None:
        try:
            await workflow.execute_activity_method(
                RunActivities.cancel_run,
                CancelRunInput(run_id=self.spec.run_id, reason=self._cancel_reason()),
                summary="cancel on runner",
                **options.cancel_call(self.spec.policy),
            )
        except ActivityError:
            workflow.logger.warning("runner did not confirm the cancel of %s", self.spec.run_id)

    async def _outcome_of(
        self, handle: ActivityHandle[T], failure: Callable[[ActivityError], RunEnded]
    ) -> T:
        """The activity's result; its failure or cancellation as the way the run ends."""
        try:
            return await handle
        except (ActivityError, asyncio.CancelledError) as err:
            if is_cancellation(err):
                raise self._cancelled() from None
            assert isinstance(err, ActivityError)
            raise failure(err) from err

    async def _until(self, done: Callable[[], bool]) -> None:
        await workflow.wait_condition(lambda: done() or self.cancel is not None)

    async def finish(
        self, status: RunStatus, reason: str | None, error: dict | None = None
    ) -> None:
        state = self.state
        state.ended_at = workflow.now()
        state.pending_interaction = None
        state.paused_at = None
        if error is not None:
            state.error = error
        for record in self._interactions.values():
            if record.status == "pending":
                record.status, record.resolved_at = "cancelled", state.ended_at
                self._unrecorded.add(record.interaction_id)
        await self.flush_interactions()
        await self.transition(status, reason)
        await notify_finished(self.spec, self.state)
        workflow.set_current_details(f"Run {status.value}" + (f": {reason}" if reason else ""))

    # ---- projection ---------------------------------------------------------------------

    async def transition(self, status: RunStatus, reason: str | None = None) -> None:
        """Set the status and project the run (and the transition) to the store."""
        state, now = self.state, workflow.now()
        state.status, state.status_reason, state.updated_at = status, reason, now
        cancelled_by = self.cancel.actor if self.cancel and status == RunStatus.CANCELLED else None
        state.version += 1
        self.run.transitions += 1
        workflow.upsert_search_attributes([sa.RUN_STATUS.value_set(status.value)])
        # Local activities: a store write is short and idempotent, and running it inside the
        # workflow task saves a round trip through the server per state change.
        await workflow.execute_local_activity_method(
            StoreActivities.record_run,
            RecordRunInput(
                state=state,
                transition=StatusTransition(
                    seq=self.run.transitions,
                    status=status,
                    reason=reason,
                    at=now,
                    actor=cancelled_by,
                ),
                request_hash=self.spec.request_hash,
            ),
            summary=f"record {status.value}",
            **options.record(),
        )
        self.recorded = True

    async def _record_interaction(self, record: InteractionRecord) -> None:
        self._unrecorded.discard(record.interaction_id)
        await workflow.execute_local_activity_method(
            StoreActivities.record_interaction,
            record,
            summary=f"record interaction {record.status}",
            **options.record(),
        )

    async def flush_interactions(self) -> None:
        """Write interactions whose row is behind (answers that arrived too late to win)."""
        for interaction_id in sorted(self._unrecorded):
            await self._record_interaction(self._interactions[interaction_id])

    def _cancel_reason(self) -> str:
        if self.cancel is not None and self.cancel.reason:
            return self.cancel.reason
        return FailureReason.CANCELLED_BY_USER.value

    def _cancelled(self) -> RunEnded:
        return RunEnded(RunStatus.CANCELLED, self._cancel_reason())
