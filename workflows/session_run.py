"""SessionRunWorkflow: the runs of one session (workflow ID ``session-{project_id}.{session_id}``).

Each execution drives one run; runs queued behind it follow by continue-as-new, and so does
a long run whose history grows too big (carrying its state). Runs arrive by the ``submit``
update, sent with update-with-start, whose validator applies the session's multitask strategy
race-free: Temporal runs validators and handler prefixes one at a time.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from tether import temporal as sa
    from workflows.errors import ErrorType
    from workflows.run_driver import RunDriver
    from workflows.types import (
        CancelSignal,
        CarriedRun,
        FailureReason,
        MultitaskStrategy,
        RespondSignal,
        RunSpec,
        RunState,
        RunStatus,
        SessionInput,
        SubmitResult,
    )

# How long a fresh execution waits for its first ``submit``. Update-with-start delivers it in
# the first task, so this only matters if that update was rejected.
FIRST_SUBMIT_WAIT = timedelta(minutes=1)


@workflow.defn
class SessionRunWorkflow:
    @workflow.init
    def __init__(self, inp: SessionInput) -> None:
        self._session = inp
        self._queue: list[CarriedRun] = list(inp.queue)
        self._driver: RunDriver | None = RunDriver(inp.active) if inp.active else None
        self._closing = False

    @workflow.run
    async def run(self, inp: SessionInput) -> RunState | None:
        if self._driver is None:
            try:
                await workflow.wait_condition(lambda: bool(self._queue), timeout=FIRST_SUBMIT_WAIT)
            except TimeoutError:
                return None
            self._driver = RunDriver(self._queue.pop(0))
        driver = self._driver
        _show_run(driver.state)
        while not driver.state.status.is_terminal:
            await driver.step()
            if not driver.state.status.is_terminal and self._history_too_long(driver):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    SessionInput(
                        session_id=inp.session_id,
                        project_id=inp.project_id,
                        active=driver.carry(),
                        queue=self._queue,
                    )
                )
        self._closing = True
        # Settle handlers (late answers, cancels of queued runs) before deciding what's next;
        # nothing can start between the last check and continue-as-new or return.
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            await driver.flush_interactions()
            if workflow.all_handlers_finished():
                break
        if self._queue:
            workflow.continue_as_new(
                SessionInput(
                    session_id=inp.session_id, project_id=inp.project_id, queue=self._queue
                ),
                search_attributes=run_search_attributes(self._queue[0].state),
            )
        return driver.state

    def _history_too_long(self, driver: RunDriver) -> bool:
        info = workflow.info()
        limit = driver.spec.policy.history_events_limit
        if limit and info.get_current_history_length() >= limit:
            return True
        return info.is_continue_as_new_suggested()

    # ---- submit -------------------------------------------------------------------------

    @workflow.update
    async def submit(self, spec: RunSpec) -> SubmitResult:
        """Accept a run: start it, queue it, or (validator) reject it.

        A run that starts answers once a runner took it or after ``accept_wait_s``; a queued
        run answers ``queued`` at once.
        """
        existing = self._find(spec)
        if existing is not None:
            await workflow.wait_condition(lambda: existing.transitions > 0)
            return SubmitResult(state=existing.state, duplicate=True)

        entry = CarriedRun(spec=spec, state=_queued_state(spec, workflow.now()))
        active = self._active_driver()
        if active is None and not self._queue and not self._closing:
            self._queue.append(entry)  # the first run of this execution: start it now
            await workflow.wait_condition(
                lambda: self._driver is not None and self._driver.run is entry
            )
            driver = self._driver
            assert driver is not None
            await workflow.wait_condition(lambda: driver.recorded)
            try:
                await workflow.wait_condition(
                    lambda: entry.state.status not in (RunStatus.QUEUED, RunStatus.DISPATCHING),
                    timeout=timedelta(seconds=spec.policy.accept_wait_s),
                )
            except TimeoutError:
                pass  # still dispatching: durable, and dispatched as soon as a runner answers
            return SubmitResult(state=entry.state)

        if spec.multitask == MultitaskStrategy.INTERRUPT:
            self._queue.insert(_after_interrupts(self._queue), entry)
            if active is not None:
                active.on_cancel(
                    CancelSignal(run_id=active.spec.run_id, reason=FailureReason.INTERRUPTED.value)
                )
        else:
            self._queue.append(entry)
        await RunDriver(entry).transition(RunStatus.QUEUED)
        return SubmitResult(state=entry.state)

    @submit.validator
    def _validate_submit(self, spec: RunSpec) -> None:
        existing = self._find(spec)
        if existing is not None:
            if existing.spec.request_hash != spec.request_hash:
                raise ApplicationError(
                    f"idempotency key {spec.idempotency_key!r} was used for another request",
                    {"run_id": existing.spec.run_id},
                    type=ErrorType.IDEMPOTENCY_CONFLICT,
                )
            return
        if spec.multitask != MultitaskStrategy.REJECT:
            return
        busy = self._busy_run_id()
        if busy is not None:
            raise ApplicationError(
                f"session {self._session.session_id} has an active run {busy}",
                {"active_run_id": busy},
                type=ErrorType.SESSION_BUSY,
            )
        if self._closing:
            # The execution is closing; the client retries and lands on a fresh execution.
            raise ApplicationError(
                "session is closing its last run", type=ErrorType.SESSION_CLOSING
            )

    # ---- signals and query --------------------------------------------------------------

    @workflow.signal
    def respond(self, answer: RespondSignal) -> None:
        if self._driver is not None and answer.run_id == self._driver.spec.run_id:
            self._driver.on_respond(answer)
        # Otherwise stale: meant for another run of this session.

    @workflow.signal
    async def cancel(self, request: CancelSignal) -> None:
        if self._driver is not None and request.run_id == self._driver.spec.run_id:
            self._driver.on_cancel(request)
            return
        for entry in self._queue:
            if entry.spec.run_id == request.run_id:
                self._queue.remove(entry)
                driver = RunDriver(entry)
                driver.on_cancel(request)  # the transition records who cancelled it
                await driver.finish(
                    RunStatus.CANCELLED, request.reason or FailureReason.CANCELLED_BY_USER.value
                )
                return

    @workflow.query
    def state(self) -> RunState | None:
        return self._driver.state if self._driver else None

    @workflow.query
    def queued(self) -> list[RunState]:
        return [entry.state for entry in self._queue]

    # ---- helpers ------------------------------------------------------------------------

    def _active_driver(self) -> RunDriver | None:
        driver = self._driver
        return driver if driver is not None and not driver.state.status.is_terminal else None

    def _busy_run_id(self) -> str | None:
        active = self._active_driver()
        if active is not None:
            return active.spec.run_id
        return self._queue[0].spec.run_id if self._queue else None

    def _find(self, spec: RunSpec) -> CarriedRun | None:
        """The run this request already made: same run ID (a retried update) or same key."""
        runs = [self._driver.run] if self._driver else []
        for run in [*runs, *self._queue]:
            same_key = spec.idempotency_key and run.spec.idempotency_key == spec.idempotency_key
            if run.spec.run_id == spec.run_id or same_key:
                return run
        return None


def run_summary(spec: RunSpec) -> str:
    """One line an operator reads in the workflow list: ``run_… · agent · session · trigger``."""
    parts = [spec.run_id, spec.agent, f"session {spec.session_id}"]
    if spec.trigger_id:
        parts.append(f"trigger {spec.trigger_id}")
    return " · ".join(parts)


def run_links(spec: RunSpec) -> dict[str, str]:
    base = f"{(spec.api_url or '').rstrip('/')}/v1/runs/{spec.run_id}"
    return {
        "run": base,
        "events": f"{base}/events",
        "stream": f"{base}/stream",
        "history": f"{base}/history",
        "session": f"{(spec.api_url or '').rstrip('/')}/v1/sessions/{spec.session_id}",
    }


def run_memo(spec: RunSpec) -> dict[str, object]:
    return {"run_id": spec.run_id, "session_id": spec.session_id, "links": run_links(spec)}


def run_details(spec: RunSpec) -> str:
    """Markdown for the execution's details: what was asked, and where to look in the API."""
    preview = spec.input if isinstance(spec.input, str) else repr(spec.input)
    if len(preview) > 300:
        preview = preview[:300] + "…"
    links = run_links(spec)
    lines = [
        f"### Run `{spec.run_id}`",
        f"- agent: `{spec.agent}`",
        f"- session: `{spec.session_id}`",
        f"- project: `{spec.project_id}`",
        f"- multitask: `{spec.multitask.value}`",
    ]
    if spec.trigger_id:
        lines.append(f"- trigger: `{spec.trigger_id}`")
    lines += [
        "",
        "**Input**",
        "",
        "```",
        preview,
        "```",
        "",
        f"[run]({links['run']}) · [transcript]({links['events']}) · "
        f"[live stream]({links['stream']}) · [status history]({links['history']})",
    ]
    return "\n".join(lines)


def _queued_state(spec: RunSpec, now) -> RunState:  # type: ignore[no-untyped-def]
    return RunState(
        run_id=spec.run_id,
        session_id=spec.session_id,
        project_id=spec.project_id,
        agent=spec.agent,
        status=RunStatus.QUEUED,
        trigger_id=spec.trigger_id,
        idempotency_key=spec.idempotency_key,
        input=spec.input,
        metadata=spec.metadata,
        created_at=spec.created_at,
        updated_at=now,
    )


def _after_interrupts(queue: list[CarriedRun]) -> int:
    """Interrupting runs go ahead of enqueued ones, in the order they came."""
    index = 0
    while index < len(queue) and queue[index].spec.multitask == MultitaskStrategy.INTERRUPT:
        index += 1
    return index


def run_search_attributes(
    run: RunSpec | RunState, status: RunStatus = RunStatus.QUEUED
) -> TypedSearchAttributes:
    """The search attributes an execution starts with: those of the run it will drive."""
    pairs = [
        SearchAttributePair(sa.SESSION_ID, run.session_id),
        SearchAttributePair(sa.PROJECT_ID, run.project_id),
        SearchAttributePair(sa.RUN_ID, run.run_id),
        SearchAttributePair(sa.AGENT, run.agent),
        SearchAttributePair(sa.RUN_STATUS, status.value),
    ]
    if run.trigger_id:
        pairs.append(SearchAttributePair(sa.TRIGGER_ID, run.trigger_id))
    return TypedSearchAttributes(pairs)


def _show_run(state: RunState) -> None:
    """Search attributes of the run this execution drives (the start set the first run's)."""
    workflow.upsert_search_attributes(
        [
            sa.RUN_ID.value_set(state.run_id),
            sa.AGENT.value_set(state.agent),
            sa.RUN_STATUS.value_set(state.status.value),
        ]
    )
