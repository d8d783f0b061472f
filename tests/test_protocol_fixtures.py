"""The golden fixtures in ``runner/fixtures`` and the protocol models agree, both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from runner import protocol
from runner.protocol import (
    Ack,
    AgentList,
    CancelRequest,
    DispatchRequest,
    ErrorResponse,
    EventType,
    InteractionReply,
    InteractionRequested,
    KeepAlive,
    RunEvent,
    RunProbe,
    RunStartedData,
)

FIXTURES = Path(protocol.__file__).parent / "fixtures"

MODELS: dict[str, type[BaseModel]] = {
    "dispatch_request": DispatchRequest,
    "dispatch_request_resume": DispatchRequest,
    "keepalive": KeepAlive,
    "interaction_reply": InteractionReply,
    "interaction_reply_expired": InteractionReply,
    "cancel_request": CancelRequest,
    "ack": Ack,
    "ack_duplicate": Ack,
    "run_probe": RunProbe,
    "agent_list": AgentList,
    "error_unknown_run": ErrorResponse,
}

# Event data with a model of its own must fit it, so both sides agree on more than the envelope.
DATA_MODELS: dict[EventType, type[BaseModel]] = {
    EventType.RUN_STARTED: RunStartedData,
    EventType.INTERACTION_REQUESTED: InteractionRequested,
}


def model_for(name: str) -> type[BaseModel]:
    return RunEvent if name.startswith("event_") else MODELS[name]


def fixture_names() -> list[str]:
    return sorted(path.stem for path in FIXTURES.glob("*.json"))


def load(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def test_every_fixture_has_a_model() -> None:
    names = fixture_names()
    assert names, "no fixtures found"
    assert [name for name in names if not name.startswith("event_") and name not in MODELS] == []


def test_every_event_type_has_a_fixture() -> None:
    fixtures = {
        json.loads(load(name))["type"] for name in fixture_names() if name.startswith("event_")
    }
    assert fixtures == {event_type.value for event_type in EventType}


@pytest.mark.parametrize("name", fixture_names())
def test_fixture_round_trips(name: str) -> None:
    text = load(name)
    model = model_for(name).model_validate_json(text)
    assert model.model_dump(mode="json") == json.loads(text)
    assert json.loads(model.model_dump_json()) == json.loads(text)


@pytest.mark.parametrize("name", [n for n in fixture_names() if n.startswith("event_")])
def test_event_fixture_is_an_event_record(name: str) -> None:
    record = protocol.parse_record(load(name))
    assert isinstance(record, RunEvent)
    assert json.loads(protocol.encode_record(record)) == json.loads(load(name))
    data_model = DATA_MODELS.get(record.type)
    if data_model is not None:
        assert data_model.model_validate(record.data).model_dump(mode="json") == record.data


def test_keepalive_fixture_is_a_keepalive_record() -> None:
    record = protocol.parse_record(load("keepalive"))
    assert isinstance(record, KeepAlive)
    line = protocol.encode_record(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert isinstance(protocol.parse_record(line), KeepAlive)


def test_terminal_events_are_the_run_endings() -> None:
    assert {event.value for event in protocol.TERMINAL_EVENTS} == {
        "run.completed",
        "run.failed",
        "run.cancelled",
    }
