"""SessionRunWorkflow: one execution per run of a session (workflow ID ``session-{id}``).

The run arrives by the ``submit`` update (sent with update-with-start), is dispatched to a
runner (detach handshake), followed while it streams its transcript, paused while it waits
for a human, and finished. Every state change is projected to the store by an activity.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.records import StoreActivities
    from activities.runner_calls import RunActivities
    from runner.protocol import InteractionReply
    from tether import temporal as sa
    from workflows import options
    from workflows.errors import ErrorType
    from workflows.types import (
        CancelRunInput,
        CancelSignal,
        DeliverInput,
        DispatchInput,
        FailureReason,
        FollowInput,
        FollowOutcome,
        InteractionRecord,
        PendingInteraction,
        RecordRunInput,
        RespondSignal,
        RunSpec,
        RunState,
        RunStatus,
        SessionInput,
        StatusTransition,
    )

# How long a freshly started execution waits for its first ``submit`` before giving up
# (update-with-start delivers it in the first task, so this only matters if it was rejected).
FIRST_SUBMIT_WAIT = timedelta(minutes=1)


class _RunEnded(Exception):
    """Raised inside the run to jump to its end with a final status."""

    def __init__(
        self, status: RunStatus, reason: str | None = None, error: dict | None = None
    ) -> None:
        super().__init__(reason)
        self.status, self.reason, self.error = status, reason, error


@workflow.defn
class SessionRunWorkflow:
    @workflow.init
    def __init__(self, inp: SessionInput) -> None:
        self._session = inp
        self._pending: list[RunSpec] = []
        self._spec: RunSpec | None = None
        self._state: RunState | None = None
        self._recorded = False
        self._transitions = 0
        self._cancel: CancelSignal | None = None
        self._answer: RespondSignal | None = None
        self._interactions: dict[str, InteractionRecord] = {}
        self._unrecorded: set[str] = set()  # interactions whose row is behind

    @workflow.run
    async def run(self, inp: SessionInput) -> RunState | None:
        try:
            await workflow.wait_condition(lambda: bool(self._pending), timeout=FIRST_SUBMIT_WAIT)
        except TimeoutError:
            return None
        spec = self._pending.pop(0)
        await self._execute(spec)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush_interactions()
        return self._state

    # ---- updates, signals, queries ------------------------------------------------------

    @workflow.update
    async def submit(self, spec: RunSpec) -> RunState:
        """Accept a run; answers once the runner took it, or after ``accept_wait_s``."""
        self._pending.append(spec)
        await workflow.wait_condition(
            lambda: self._recorded and self._state is not None and self._state.run_id == spec.run_id
        )
        try:
            await workflow.wait_condition(
                lambda: self._current().status not in (RunStatus.QUEUED, RunStatus.DISPATCHING),
                timeout=timedelta(seconds=spec.policy.accept_wait_s),
            )
        except TimeoutError:
            pass  # still dispatching: the run is durable and will be dispatched later
        return self._current()

    @submit.validator
    def _validate_submit(self, spec: RunSpec) -> None:
        if self._state is not None and self._state.status.is_terminal:
            # The execution is closing; the client retries and lands on a fresh execution.
            raise ApplicationError("session is closing its last run", type=ErrorType.SESSION_CLOSING)
        if self._state is not None or self._pending:
            active = self._state.run_id if self._state else self._pending[0].run_id
            raise ApplicationError(
                f"session {self._session.session_id} has an active run {active}",
                {"active_run_id": active},
                type=ErrorType.SESSION_BUSY,
            )

    @workflow.signal
    def respond(self, answer: RespondSignal) -> None:
        state = self._state
        if state is None or answer.run_id != state.run_id:
            return  # stale: meant for another run of this session
        pending = state.pending_interaction
        if self._answer is None and pending and pending.interaction_id == answer.interaction_id:
            self._answer = answer
            return
        record = self._interactions.get(answer.interaction_id)
        if record is not None:  # lost the race to an earlier answer: keep it on the record
            record.ignored_responses.append(
                {
                    "response": answer.response,
                    "responder": answer.responder,
                    "at": workflow.now().isoformat(),
                }
            )
            self._unrecorded.add(answer.interaction_id)

    @workflow.signal
    def cancel(self, request: CancelSignal) -> None:
        if self._state is not None and request.run_id == self._state.run_id and not self._cancel:
            self._cancel = request

    @workflow.query
    def state(self) -> RunState | None:
        return self._state

    # ---- the run ------------------------------------------------------------------------

    async def _execute(self, spec: RunSpec) -> None:
        now = workflow.now()
        self._spec = spec
        self._state = RunState(
            run_id=spec.run_id,
            session_id=spec.session_id,
            project_id=spec.project_id,
            agent=spec.agent,
            status=RunStatus.DISPATCHING,
            trigger_id=spec.trigger_id,
            idempotency_key=spec.idempotency_key,
            input=spec.input,
            metadata=spec.metadata,
            created_at=spec.created_at,
            updated_at=now,
        )
        workflow.upsert_search_attributes(
            [
                sa.RUN_ID.value_set(spec.run_id),
                sa.AGENT.value_set(spec.agent),
                sa.RUN_STATUS.value_set(RunStatus.DISPATCHING.value),
            ]
        )
        await self._transition(RunStatus.DISPATCHING)
        self._recorded = True
        try:
            await self._dispatch()
            await self._transition(RunStatus.RUNNING)
            await self._follow_until_end()
        except _RunEnded as end:
            await self._finish(end.status, end.reason, error=end.error)
        except ActivityError as err:
            # A projection that could not be written within its retries: end the run
            # visibly rather than leave it looking alive.
            await self._finish(RunStatus.FAILED, "internal_error", error={"message": str(err)})

    async def _dispatch(self) -> None:
        spec, state = self._spec_and_state()
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
        await self._until_done_or_cancelled(handle)
        if not handle.done():
            handle.cancel()
            await self._cancel_on_runner(reason=self._cancel_reason())
        try:
            result = await handle
        except (ActivityError, asyncio.CancelledError) as err:
            if _is_cancellation(err):
                raise self._cancelled() from None
            assert isinstance(err, ActivityError)
            raise self._dispatch_failure(err) from err
        state.replica_id = result.replica_id
        state.started_at = result.started_at

    def _dispatch_failure(self, err: ActivityError) -> _RunEnded:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == ErrorType.UNKNOWN_AGENT:
            return _RunEnded(RunStatus.FAILED, FailureReason.UNKNOWN_AGENT, {"message": cause.message})
        return _RunEnded(
            RunStatus.FAILED,
            FailureReason.DISPATCH_TIMEOUT,
            {"message": f"no runner accepted the run within the dispatch deadline ({cause})"},
        )

    async def _follow_until_end(self) -> None:
        spec, state = self._spec_and_state()
        while True:
            outcome = await self._follow(state.last_seq)
            await self._flush_interactions()
            if outcome.kind == "ended":
                status = outcome.ended_status or RunStatus.FAILED
                reason = FailureReason.AGENT_ERROR if status == RunStatus.FAILED else None
                if status == RunStatus.CANCELLED:
                    reason = self._cancel_reason()
                raise _RunEnded(status, reason, error=outcome.error)
            assert outcome.interaction is not None
            await self._wait_for_human(outcome.interaction)

    async def _follow(self, after_seq: int) -> FollowOutcome:
        spec, state = self._spec_and_state()
        state.attempts["follow"] = state.attempts.get("follow", 0) + 1
        handle = workflow.start_activity_method(
            RunActivities.follow_run,
            FollowInput(
                run_id=spec.run_id,
                project_id=spec.project_id,
                after_seq=after_seq,
                runner_lost_timeout_s=spec.policy.runner_lost_timeout_s,
            ),
            summary=f"follow from seq {after_seq}",
            **options.follow(spec.policy),
        )
        await self._until_done_or_cancelled(handle)
        if not handle.done():
            await self._cancel_on_runner(reason=self._cancel_reason())
            # Give the runner a moment to end the stream with run.cancelled.
            try:
                await workflow.wait_condition(
                    handle.done, timeout=timedelta(seconds=spec.policy.cancel_grace_s)
                )
            except TimeoutError:
                handle.cancel()
        try:
            outcome = await handle
        except (ActivityError, asyncio.CancelledError) as err:
            if _is_cancellation(err):
                raise self._cancelled() from None
            raise _runner_lost(err) from err
        self._absorb(outcome)
        return outcome

    def _absorb(self, outcome: FollowOutcome) -> None:
        _, state = self._spec_and_state()
        state.last_seq = max(state.last_seq, outcome.last_seq)
        state.events = state.last_seq
        state.steps += outcome.steps
        if outcome.usage:
            state.usage = outcome.usage
        if outcome.result is not None:
            state.result = outcome.result

    async def _wait_for_human(self, pending: PendingInteraction) -> None:
        spec, state = self._spec_and_state()
        expires_at = pending.expires_at or (
            pending.requested_at + timedelta(seconds=spec.policy.interaction_expiry_s)
        )
        pending = pending.model_copy(update={"expires_at": expires_at})
        record = InteractionRecord(
            interaction_id=pending.interaction_id,
            run_id=spec.run_id,
            session_id=spec.session_id,
            project_id=spec.project_id,
            kind=pending.kind,
            prompt=pending.prompt,
            options=pending.options,
            tool_call=pending.tool_call,
            response_schema=pending.response_schema,
            status="pending",
            requested_at=pending.requested_at,
            expires_at=expires_at,
        )
        self._interactions[pending.interaction_id] = record
        self._answer = None
        state.pending_interaction = pending
        state.paused_at = workflow.now()
        await self._record_interaction(record)
        await self._transition(RunStatus.WAITING_FOR_INPUT)
        option_names = "/".join(o.option_id for o in pending.options) or "free text"
        workflow.set_current_details(
            f"Waiting for a human ({pending.kind}): {pending.prompt}\n\n"
            f"Options: {option_names} · expires {expires_at:%Y-%m-%d %H:%M:%S} UTC"
        )

        remaining = max(timedelta(0), expires_at - workflow.now())
        try:
            await workflow.wait_condition(
                lambda: self._answer is not None or self._cancel is not None, timeout=remaining
            )
        except TimeoutError:
            pass

        if self._answer is not None:
            answer = self._answer
            record.status, record.response, record.responder = (
                "resolved",
                answer.response,
                answer.responder,
            )
            reply = InteractionReply(
                outcome="answered", response=answer.response, responder=answer.responder
            )
        elif self._cancel is not None:
            record.status = "cancelled"
            reply = InteractionReply(outcome="cancelled")
        else:
            record.status = "expired"
            reply = InteractionReply(outcome="expired")
        record.resolved_at = workflow.now()
        state.pending_interaction = None
        state.paused_at = None
        await self._record_interaction(record)

        if record.status == "cancelled":
            await self._cancel_on_runner(reason=self._cancel_reason())
            await self._drain_after_cancel()
            raise self._cancelled()
        try:
            await workflow.execute_activity_method(
                RunActivities.deliver_response,
                DeliverInput(run_id=spec.run_id, interaction_id=record.interaction_id, reply=reply),
                summary=f"deliver {reply.outcome} {_answer_label(reply)}".strip(),
                **options.runner_call(spec.policy),
            )
        except ActivityError as err:
            raise _runner_lost(err) from err
        await self._transition(RunStatus.RUNNING)

    async def _drain_after_cancel(self) -> None:
        """Persist what the runner sends until ``run.cancelled``, for a bounded time."""
        spec, state = self._spec_and_state()
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
            return  # the run is cancelled either way; the runner may have dropped it
        self._absorb(outcome)

    async def _cancel_on_runner(self, reason: str | None) -> None:
        spec, _ = self._spec_and_state()
        try:
            await workflow.execute_activity_method(
                RunActivities.cancel_run,
                CancelRunInput(run_id=spec.run_id, reason=reason),
                summary="cancel on runner",
                **options.cancel_call(spec.policy),
            )
        except ActivityError:
            workflow.logger.warning("runner did not confirm the cancel of %s", spec.run_id)

    async def _until_done_or_cancelled(self, handle: asyncio.Future) -> None:
        await workflow.wait_condition(lambda: handle.done() or self._cancel is not None)

    async def _finish(
        self, status: RunStatus, reason: str | None, error: dict | None = None
    ) -> None:
        _, state = self._spec_and_state()
        state.ended_at = workflow.now()
        state.pending_interaction = None
        state.paused_at = None
        if error is not None:
            state.error = error
        for record in self._interactions.values():
            if record.status == "pending":
                record.status, record.resolved_at = "cancelled", state.ended_at
                self._unrecorded.add(record.interaction_id)
        await self._flush_interactions()
        await self._transition(status, reason)
        workflow.set_current_details(f"Run {status.value}" + (f": {reason}" if reason else ""))

    # ---- projection ---------------------------------------------------------------------

    async def _transition(self, status: RunStatus, reason: str | None = None) -> None:
        spec, state = self._spec_and_state()
        now = workflow.now()
        state.status, state.status_reason, state.updated_at = status, reason, now
        state.version += 1
        self._transitions += 1
        workflow.upsert_search_attributes([sa.RUN_STATUS.value_set(status.value)])
        await workflow.execute_activity_method(
            StoreActivities.record_run,
            RecordRunInput(
                state=state,
                transition=StatusTransition(
                    seq=self._transitions, status=status, reason=reason, at=now
                ),
            ),
            summary=f"record {status.value}",
            **options.record(),
        )

    async def _record_interaction(self, record: InteractionRecord) -> None:
        self._unrecorded.discard(record.interaction_id)
        await workflow.execute_activity_method(
            StoreActivities.record_interaction,
            record,
            summary=f"record interaction {record.status}",
            **options.record(),
        )

    async def _flush_interactions(self) -> None:
        for interaction_id in sorted(self._unrecorded):
            await self._record_interaction(self._interactions[interaction_id])

    # ---- helpers ------------------------------------------------------------------------

    def _current(self) -> RunState:
        assert self._state is not None
        return self._state

    def _spec_and_state(self) -> tuple[RunSpec, RunState]:
        assert self._spec is not None and self._state is not None
        return self._spec, self._state

    def _cancel_reason(self) -> str:
        if self._cancel is not None and self._cancel.reason:
            return self._cancel.reason
        return FailureReason.CANCELLED_BY_USER.value

    def _cancelled(self) -> _RunEnded:
        return _RunEnded(RunStatus.CANCELLED, self._cancel_reason())


def _is_cancellation(err: BaseException) -> bool:
    return isinstance(err, asyncio.CancelledError) or (
        isinstance(err, ActivityError) and isinstance(err.cause, CancelledError)
    )


def _runner_lost(err: ActivityError) -> _RunEnded:
    cause = err.cause
    message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
    return _RunEnded(RunStatus.FAILED, FailureReason.RUNNER_LOST, {"message": message})


def _answer_label(reply: InteractionReply) -> str:
    response = reply.response or {}
    return str(response.get("option_id") or response.get("text") or "")[:40]

