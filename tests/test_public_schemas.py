"""The API's public schemas are built from records by field name (``Public.of``): every field
a schema declares must exist on its record (or be supplied by the route), so a renamed record
field fails here instead of turning into a silent default in every answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from api.schemas.agents import AgentPublic
from api.schemas.interactions import InteractionPublic, QuestionPublic
from api.schemas.keys import KeyCreated, KeyPublic
from api.schemas.runs import ActiveRunPublic, EventPublic, RunPublic, TransitionPublic
from api.schemas.sessions import SessionPublic
from api.schemas.triggers import DeliveryPublic, TriggerCreated, TriggerPublic
from runner.protocol import RunEvent
from store.agents import CatalogAgent
from store.keys import KeyRecord
from store.sessions import SessionSummary
from workflows.trigger_types import DeliveryRecord, TriggerRecord
from workflows.types import (
    InteractionRecord,
    PendingInteraction,
    RunState,
    RunStatus,
    StatusTransition,
)

# (public schema, the record it is built from, fields the route supplies itself)
BUILT_FROM: list[tuple[type[BaseModel], type[BaseModel], set[str]]] = [
    (RunPublic, RunState, set()),
    (ActiveRunPublic, RunState, {"cursor", "stream_url", "last_activity_at"}),
    (QuestionPublic, PendingInteraction, set()),
    (InteractionPublic, InteractionRecord, set()),
    (EventPublic, RunEvent, set()),
    (TransitionPublic, StatusTransition, set()),
    (SessionPublic, SessionSummary, set()),
    (AgentPublic, CatalogAgent, set()),
    (TriggerPublic, TriggerRecord, {"webhook_url", "schedule_id"}),
    (TriggerCreated, TriggerPublic, {"secret"}),
    (DeliveryPublic, DeliveryRecord, set()),
    (KeyPublic, KeyRecord, set()),
    (KeyCreated, KeyRecord, {"token"}),
]


@pytest.mark.parametrize(
    ("public", "record", "supplied"), BUILT_FROM, ids=[p.__name__ for p, _, _ in BUILT_FROM]
)
def test_every_public_field_comes_from_the_record(
    public: type[BaseModel], record: type[BaseModel], supplied: set[str]
) -> None:
    available = set(record.model_fields) | set(record.model_computed_fields)
    assert set(public.model_fields) - supplied <= available


def test_a_run_answer_keeps_the_workflow_bookkeeping_internal() -> None:
    now = datetime.now(UTC)
    state = RunState(
        run_id="run_1",
        session_id="s",
        project_id="default",
        agent="echo",
        status=RunStatus.RUNNING,
        created_at=now,
        started_at=now,
        updated_at=now,
        attempts={"dispatch": 2},
        version=7,
        agent_session_id="acp-123",
    )
    answer = RunPublic.of(state).model_dump()
    assert not {"version", "attempts", "agent_session_id"} & set(answer)
    assert answer["run_id"] == "run_1" and answer["duration_ms"] == 0
