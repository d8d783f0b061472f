"""ACP -> runner events: golden fixtures (``tests/fixtures/acp``), and wire order through the
real SDK on both ends of an in-memory transport."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from acp import (
    PROTOCOL_VERSION,
    start_tool_call,
    update_agent_message_text,
    update_agent_thought_text,
    update_tool_call,
)
from acp._transport import memory_transport_pair
from acp.agent.connection import AgentSideConnection
from acp.client.connection import ClientSideConnection
from acp.interfaces import Agent, Client
from acp.schema import (
    InitializeResponse,
    NewSessionResponse,
    PromptResponse,
    RequestPermissionRequest,
    SessionNotification,
)

from runner import protocol
from runner.acp.client import RunnerClient
from runner.acp.inputs import InvalidPromptError, prompt_blocks
from runner.acp.mapping import (
    UpdateMapper,
    initialized_log,
    permission_options,
    permission_outcome,
    permission_prompt,
    tool_call_data,
)
from runner.agents.base import AgentContext
from runner.protocol import DispatchRequest, EventType, InteractionReply, InteractionRequested
from runner.runs import HostedRun

FIXTURES = Path(__file__).parent / "fixtures" / "acp"
RUNNER_FIXTURES = Path(protocol.__file__).parent / "fixtures"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


def update_fixtures() -> list[str]:
    return sorted(path.name for path in FIXTURES.glob("update_*.json"))


@pytest.mark.parametrize("name", update_fixtures())
def test_session_updates_map_to_runner_events(name: str) -> None:
    fixture = load(name)
    mapper = UpdateMapper()
    emitted: list[tuple[EventType, dict[str, Any]]] = []

    for step in fixture["steps"]:
        if "update" in step:
            notification = SessionNotification.model_validate(step["update"])
            emitted += mapper.update(notification.update)
        elif step.get("flush"):
            emitted += mapper.flush()
        elif step.get("end_turn"):
            emitted += mapper.end_turn()

    assert [{"type": t.value, "data": d} for t, d in emitted] == fixture["events"]
    # What the runner appends must be valid event data on the wire too.
    for event_type, data in emitted:
        record = protocol.RunEvent(seq=1, type=event_type, ts=datetime.now(UTC), data=data)
        assert protocol.parse_record(protocol.encode_record(record)) == record


def test_permission_request_maps_to_an_interaction_and_back() -> None:
    fixture = load("permission_request.json")
    request = RequestPermissionRequest.model_validate(fixture["request"])

    asked = InteractionRequested(
        interaction_id="int_fixture",
        kind="permission",
        prompt=permission_prompt(request.tool_call),
        options=permission_options(request.options),
        tool_call=tool_call_data(request.tool_call),
    )

    expected = {"interaction_id": "int_fixture", **fixture["interaction"]}
    assert asked.model_dump(mode="json") == expected
    for case in fixture["replies"]:
        reply = InteractionReply.model_validate(case["reply"])
        outcome = permission_outcome(reply, request.options)
        wire = outcome.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert wire == case["outcome"], case["reply"]


def test_initialize_answer_becomes_the_capabilities_log() -> None:
    response = InitializeResponse.model_validate(load("initialize_response.json")["response"])
    golden = json.loads((RUNNER_FIXTURES / "event_log_acp_initialized.json").read_text())

    assert initialized_log(response) == golden["data"]


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        ("hello", ["hello"]),
        ({"text": "hello"}, ["hello"]),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], ["a", "b"]),
        ({"prompt": [{"type": "text", "text": "a"}]}, ["a"]),
    ],
)
def test_run_input_becomes_prompt_blocks(value: Any, texts: list[str]) -> None:
    assert [block.text for block in prompt_blocks(value)] == texts


def test_resource_link_blocks_pass_through() -> None:
    link = {"type": "resource_link", "uri": "file:///srv/work/README.md", "name": "README.md"}

    (block,) = prompt_blocks([link])

    assert block.model_dump(mode="json", by_alias=True, exclude_none=True) == link


@pytest.mark.parametrize("value", [None, 42, {"steps": []}, [], "", [{"type": "nope"}]])
def test_input_that_is_not_a_prompt_is_refused(value: Any) -> None:
    with pytest.raises(InvalidPromptError):
        prompt_blocks(value)


class BurstAgent:
    """An in-process ACP agent whose turn is a fast burst of updates, sent without pauses."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.conn: Client | None = None

    def on_connect(self, conn: Client) -> None:
        self.conn = conn

    async def initialize(self, protocol_version: int, **kwargs: Any) -> InitializeResponse:
        return InitializeResponse(protocol_version=PROTOCOL_VERSION)

    async def new_session(self, cwd: str, **kwargs: Any) -> NewSessionResponse:
        return NewSessionResponse(session_id="burst")

    async def prompt(self, prompt: list[Any], session_id: str, **kwargs: Any) -> PromptResponse:
        assert self.conn is not None
        for index in range(self.chunks):
            await self.conn.session_update(session_id, update_agent_message_text(f"{index},"))
            if index % 50 == 49:
                call = f"call_{index}"
                await self.conn.session_update(session_id, start_tool_call(call, f"step {index}"))
                await self.conn.session_update(session_id, update_agent_thought_text("hm"))
                await self.conn.session_update(
                    session_id, update_tool_call(call, status="completed")
                )
        return PromptResponse(stop_reason="end_turn")


async def test_updates_keep_wire_order_through_the_sdk() -> None:
    """The SDK handles each notification in its own task; events must still follow the wire."""
    run = HostedRun("run_burst", "burst", "sess-burst")
    request = DispatchRequest(
        run_id="run_burst", session_id="sess-burst", project_id="default", agent="burst"
    )
    client = RunnerClient(AgentContext(run, request), coalesce_s=0.001)
    agent_end, client_end = memory_transport_pair()
    agent_conn = AgentSideConnection(cast(Agent, BurstAgent(200)), agent_end)
    conn = ClientSideConnection(cast(Client, client), client_end)
    try:
        await conn.initialize(protocol_version=PROTOCOL_VERSION)
        session = await conn.new_session(cwd="/")
        response = await conn.prompt(session_id=session.session_id, prompt=[])
        client.end_turn()
    finally:
        await conn.close()
        await agent_conn.close()

    assert response.stop_reason == "end_turn"
    text = "".join(f"{index}," for index in range(200))
    deltas = [e.data["text"] for e in run.events if e.type == EventType.MESSAGE_DELTA]
    assert "".join(deltas) == text
    messages = [e.data["text"] for e in run.events if e.type == EventType.MESSAGE]
    assert "".join(messages) == text
    assert [m.split(",")[-2] for m in messages] == ["49", "99", "149", "199"]
    calls = [e.data["tool_call_id"] for e in run.events if e.type == EventType.TOOL_CALL]
    assert calls == ["call_49", "call_99", "call_149", "call_199"]
    shape = [e.type for e in run.events if e.type != EventType.MESSAGE_DELTA]
    assert (
        shape
        == [
            EventType.MESSAGE,
            EventType.TOOL_CALL,
            EventType.THOUGHT,
            EventType.TOOL_CALL_UPDATE,
        ]
        * 4
    )
    assert [e.seq for e in run.events] == list(range(1, len(run.events) + 1))
