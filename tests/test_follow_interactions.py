"""``follow_run`` records a question pending in the transaction that stores its
``interaction.requested`` event: whoever sees the event (an SSE follower) can answer it before
the workflow has taken the activity's result. Real parts: the stack's runner running
``approval-demo``, the activity in Temporal's activity test environment, the stack's store."""

from __future__ import annotations

from datetime import timedelta

import httpx
from temporalio.testing import ActivityEnvironment

from activities.runner_calls import RunActivities
from runner.protocol import DispatchRequest, auth_headers
from store import interactions, transcript
from store.db import create_engine, session_factory
from tether.devstack.stack import Stack
from tether.ids import new_run_id
from tether.settings import Settings
from workflows.types import FollowInput


async def _follow_to_the_question(stack: Stack, *, record_questions: bool) -> tuple[str, str]:
    """Dispatch ``approval-demo`` on the runner, follow it until it asks; ``(run, question)``."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        runner_url=stack.runner_url,
        runner_token=stack.env.get("TETHER_RUNNER_TOKEN", "tether-dev-runner-token"),
        database_url=stack.database_url,
    )
    run_id, session_id = new_run_id(), f"follow-{new_run_id()}"
    request = DispatchRequest(
        run_id=run_id, session_id=session_id, project_id=stack.project_id, agent="approval-demo"
    )
    headers = auth_headers(settings.runner_token.get_secret_value())
    engine = create_engine(stack.database_url)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream(
                "POST",
                f"{settings.runner_base_url}/v1/runs",
                content=request.model_dump_json(),
                headers={**headers, "Content-Type": "application/json"},
            ) as response:
                assert response.status_code == 200
                async for _ in response.aiter_lines():
                    break  # run.started: the run goes on on the runner
            activities = RunActivities(session_factory(engine), http, settings)
            inp = FollowInput(run_id=run_id, project_id=stack.project_id)
            if record_questions:
                inp = inp.model_copy(update={"session_id": session_id, "interaction_expiry_s": 60})
            outcome = await ActivityEnvironment().run(activities.follow_run, inp)
        assert outcome.kind == "interaction" and outcome.interaction is not None
        return run_id, outcome.interaction.interaction_id
    finally:
        await engine.dispose()


async def _stored(stack: Stack, run_id: str, interaction_id: str):  # type: ignore[no-untyped-def]
    engine = create_engine(stack.database_url)
    try:
        async with session_factory(engine)() as session:
            events = await transcript.list_events(session, stack.project_id, run_id)
            row = await interactions.get_interaction(session, stack.project_id, interaction_id)
        return events, row
    finally:
        await engine.dispose()


async def test_the_question_is_answerable_as_soon_as_its_event_is_stored(stack: Stack) -> None:
    run_id, interaction_id = await _follow_to_the_question(stack, record_questions=True)
    events, row = await _stored(stack, run_id, interaction_id)
    assert events[-1].type.value == "interaction.requested"
    assert row is not None and row.status == "pending" and row.run_id == run_id
    # The run's default expiry, as the workflow computes it when it records the same row.
    assert row.expires_at is not None
    assert row.expires_at - row.requested_at == timedelta(seconds=60)
    assert [o.option_id for o in row.options] == ["allow", "deny"]


async def test_a_follow_from_an_older_history_leaves_the_question_to_the_workflow(
    stack: Stack,
) -> None:
    # Recorded before FollowInput carried the session: nothing to key the row on.
    run_id, interaction_id = await _follow_to_the_question(stack, record_questions=False)
    events, row = await _stored(stack, run_id, interaction_id)
    assert events[-1].type.value == "interaction.requested" and row is None
