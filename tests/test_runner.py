"""The reference runner over real HTTP: a uvicorn server on a free port, driven with httpx."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from runner.agents import AGENTS, AgentContext, AgentResult, AgentSpec, agent
from runner.app import create_app
from runner.protocol import (
    AgentList,
    EventType,
    InteractionRequested,
    KeepAlive,
    RunEvent,
    RunProbe,
    RunStartedData,
    StreamRecord,
    parse_record,
)
from tether.settings import Settings

TOKEN = "test-runner-token"
KEEPALIVE_S = 0.2
STEP_TIMEOUT_S = 5.0


@contextlib.asynccontextmanager
async def serve_runner(
    agents: Mapping[str, AgentSpec] | None = None, **overrides: Any
) -> AsyncIterator[str]:
    """Serve a runner app on a free port in this event loop; yields its base URL."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        runner_token=SecretStr(TOKEN),
        runner_replica_id="runner-test",
        runner_keepalive_s=KEEPALIVE_S,
        **overrides,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, agents),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(STEP_TIMEOUT_S):
        while not server.started:
            assert not task.done(), "the runner did not start"
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture(scope="module")
async def runner_url() -> AsyncIterator[str]:
    async with serve_runner() as url:
        yield url


@pytest.fixture
async def client(runner_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=runner_url, headers=headers, timeout=10) as http:
        yield http


def new_run(agent: str, input: Any = None, **fields: Any) -> dict[str, Any]:
    return {
        "run_id": f"run_{uuid.uuid4().hex}",
        "session_id": f"sess-{uuid.uuid4().hex[:8]}",
        "project_id": "default",
        "agent": agent,
        "input": input,
        **fields,
    }


async def records(response: httpx.Response) -> AsyncIterator[StreamRecord]:
    async for line in response.aiter_lines():
        if line.strip():
            yield parse_record(line)


async def dispatch(http: httpx.AsyncClient, body: dict[str, Any]) -> RunEvent:
    """The detach handshake: read the first record, then hang up."""
    async with asyncio.timeout(STEP_TIMEOUT_S), http.stream("POST", "/v1/runs", json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        async for record in records(resp):
            assert isinstance(record, RunEvent)
            return record
    raise AssertionError("the dispatch stream ended before its first record")


async def follow(
    http: httpx.AsyncClient, run_id: str, after: int = 0, until: EventType | None = None
) -> list[StreamRecord]:
    """Read the events stream until it ends (or until an event of type ``until``)."""
    seen: list[StreamRecord] = []
    url = f"/v1/runs/{run_id}/events"
    async with (
        asyncio.timeout(STEP_TIMEOUT_S),
        http.stream("GET", url, params={"after": after}) as resp,
    ):
        assert resp.status_code == 200, await resp.aread()
        async for record in records(resp):
            seen.append(record)
            if until is not None and isinstance(record, RunEvent) and record.type == until:
                break
    return seen


def events(seen: Sequence[StreamRecord]) -> list[RunEvent]:
    return [record for record in seen if isinstance(record, RunEvent)]


def types(seen: Sequence[StreamRecord]) -> list[str]:
    return [event.type.value for event in events(seen)]


async def wait_for_interaction(http: httpx.AsyncClient, run_id: str) -> InteractionRequested:
    asked = events(await follow(http, run_id, until=EventType.INTERACTION_REQUESTED))[-1]
    assert asked.type == EventType.INTERACTION_REQUESTED
    return InteractionRequested.model_validate(asked.data)


async def test_echo_run_completes_with_contiguous_seqs(client: httpx.AsyncClient) -> None:
    body = new_run("echo", {"text": "hello detached world", "delay": 0.01, "chunks": 3})
    async with client.stream("POST", "/v1/runs", json=body) as resp:
        seen = [record async for record in records(resp)]  # the whole run, to its end

    run = events(seen)
    assert [event.seq for event in run] == list(range(1, len(run) + 1))
    assert types(seen) == ["run.started"] + ["message.delta"] * 3 + [
        "message",
        "usage",
        "run.completed",
    ]
    assert "".join(e.data["text"] for e in run if e.type == EventType.MESSAGE_DELTA) == (
        "hello detached world"
    )
    started = RunStartedData.model_validate(run[0].data)
    assert (started.replica_id, started.agent, started.attempt) == ("runner-test", "echo", 1)
    assert run[-1].data == {"output": "hello detached world", "stop_reason": "end_turn"}


async def test_run_continues_after_dispatch_caller_hangs_up(client: httpx.AsyncClient) -> None:
    steps = [{"sleep": 0.1}, {"emit": "log", "data": {"message": "still here"}}, {"output": "done"}]
    body = new_run("scripted", {"steps": steps})

    first = await dispatch(client, body)

    assert (first.seq, first.type) == (1, EventType.RUN_STARTED)
    seen = await follow(client, body["run_id"])
    assert types(seen) == ["run.started", "log", "run.completed"]
    assert events(seen)[0] == first
    probe = RunProbe.model_validate((await client.get(f"/v1/runs/{body['run_id']}")).json())
    assert (probe.status, probe.last_seq, probe.replica_id) == ("completed", 3, "runner-test")


async def test_events_resume_after_cursor(client: httpx.AsyncClient) -> None:
    body = new_run("echo", {"text": "one two three four", "delay": 0.01, "chunks": 4})
    await dispatch(client, body)
    everything = events(await follow(client, body["run_id"]))

    resumed = events(await follow(client, body["run_id"], after=3))
    past_end = await follow(client, body["run_id"], after=len(everything))

    assert resumed == everything[3:]
    assert [event.seq for event in resumed] == list(range(4, len(everything) + 1))
    assert past_end == []


async def test_approval_allow_runs_the_tool(client: httpx.AsyncClient) -> None:
    body = new_run("approval-demo", {"expires_in": 30, "delay": 0.01})
    await dispatch(client, body)
    asked = await wait_for_interaction(client, body["run_id"])
    probe = (await client.get(f"/v1/runs/{body['run_id']}")).json()

    reply = {"outcome": "answered", "response": {"option_id": "allow"}, "responder": "alice"}
    ack = await client.post(
        f"/v1/runs/{body['run_id']}/interactions/{asked.interaction_id}", json=reply
    )

    assert probe["status"] == "waiting_for_input"
    assert asked.interaction_id.startswith("int_")
    assert (asked.kind, asked.expires_in) == ("permission", 30)
    assert [(o.option_id, o.kind) for o in asked.options] == [
        ("allow", "allow_once"),
        ("deny", "reject_once"),
    ]
    assert asked.tool_call is not None and asked.tool_call["kind"] == "execute"
    assert ack.json() == {"ok": True, "duplicate": False}
    seen = await follow(client, body["run_id"])
    assert types(seen) == [
        "run.started",
        "plan",
        "thought",
        "tool_call",
        "interaction.requested",
        "interaction.resolved",
        "tool_call.update",
        "message",
        "run.completed",
    ]
    resolved, update = events(seen)[5:7]
    assert resolved.data == {"interaction_id": asked.interaction_id, **reply}
    assert update.data["status"] == "completed"
    assert events(seen)[-1].data["output"].startswith("Ran `rm -rf build/`")


async def test_approval_deny_does_not_run_the_tool(client: httpx.AsyncClient) -> None:
    body = new_run("approval-demo", {"delay": 0.01})
    await dispatch(client, body)
    asked = await wait_for_interaction(client, body["run_id"])

    await client.post(
        f"/v1/runs/{body['run_id']}/interactions/{asked.interaction_id}",
        json={"outcome": "answered", "response": {"option_id": "deny"}},
    )

    run = events(await follow(client, body["run_id"]))
    update = next(e for e in run if e.type == EventType.TOOL_CALL_UPDATE)
    assert (update.data["status"], update.data["reason"]) == ("failed", "rejected")
    assert run[-1].type == EventType.RUN_COMPLETED
    assert run[-1].data == {
        "output": "Permission denied: did not run `rm -rf build/`.",
        "stop_reason": "end_turn",
    }


async def test_approval_expired_reports_no_answer(client: httpx.AsyncClient) -> None:
    body = new_run("approval-demo", {"expires_in": 0.1, "delay": 0.01})
    await dispatch(client, body)
    asked = await wait_for_interaction(client, body["run_id"])

    await client.post(
        f"/v1/runs/{body['run_id']}/interactions/{asked.interaction_id}",
        json={"outcome": "expired"},
    )

    run = events(await follow(client, body["run_id"]))
    assert run[-1].type == EventType.RUN_COMPLETED
    assert "No answer came (interaction expired)" in run[-1].data["output"]


async def test_duplicate_interaction_reply_is_idempotent(client: httpx.AsyncClient) -> None:
    ask = {"kind": "input", "prompt": "Favourite colour?"}
    body = new_run("scripted", {"steps": [{"ask": ask}]})
    await dispatch(client, body)
    asked = await wait_for_interaction(client, body["run_id"])
    url = f"/v1/runs/{body['run_id']}/interactions/{asked.interaction_id}"

    first = await client.post(url, json={"outcome": "answered", "response": {"text": "blue"}})
    second = await client.post(url, json={"outcome": "answered", "response": {"text": "red"}})
    unknown = await client.post(
        f"/v1/runs/{body['run_id']}/interactions/int_nope", json={"outcome": "expired"}
    )

    assert (first.status_code, first.json()) == (200, {"ok": True, "duplicate": False})
    assert (second.status_code, second.json()) == (200, {"ok": True, "duplicate": True})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_interaction")
    run = events(await follow(client, body["run_id"]))
    assert types(run).count("interaction.resolved") == 1
    assert run[-1].data == {"output": "blue", "stop_reason": "end_turn"}


async def test_cancel_while_waiting_for_input(client: httpx.AsyncClient) -> None:
    body = new_run("approval-demo", {"delay": 0.01})
    await dispatch(client, body)
    asked = await wait_for_interaction(client, body["run_id"])

    ack = await client.post(f"/v1/runs/{body['run_id']}/cancel", json={"reason": "user asked"})

    assert ack.json() == {"ok": True, "duplicate": False}
    run = events(await follow(client, body["run_id"]))
    assert types(run)[-2:] == ["interaction.resolved", "run.cancelled"]
    assert run[-2].data["interaction_id"] == asked.interaction_id
    assert run[-2].data["outcome"] == "cancelled"
    assert run[-1].data == {"reason": "user asked"}
    again = await client.post(f"/v1/runs/{body['run_id']}/cancel", json={"reason": "again"})
    assert again.json() == {"ok": True, "duplicate": True}
    late_reply = await client.post(
        f"/v1/runs/{body['run_id']}/interactions/{asked.interaction_id}",
        json={"outcome": "answered", "response": {"option_id": "allow"}},
    )
    assert late_reply.json() == {"ok": True, "duplicate": True}
    probe = (await client.get(f"/v1/runs/{body['run_id']}")).json()
    assert probe["status"] == "cancelled"


async def test_cancel_while_running(client: httpx.AsyncClient) -> None:
    steps = [{"emit": "log", "data": {"message": "working"}}, {"sleep": 30}, {"output": "never"}]
    body = new_run("scripted", {"steps": steps})
    await dispatch(client, body)
    await follow(client, body["run_id"], until=EventType.LOG)

    ack = await client.post(f"/v1/runs/{body['run_id']}/cancel")  # no body: reason is optional

    assert ack.json() == {"ok": True, "duplicate": False}
    run = events(await follow(client, body["run_id"]))
    assert types(run) == ["run.started", "log", "run.cancelled"]
    assert run[-1].data == {"reason": None}


async def test_agent_failure_ends_the_run_as_failed(client: httpx.AsyncClient) -> None:
    steps = [{"emit": "thought", "data": {"text": "hmm"}}, {"fail": "the disk is full"}]
    body = new_run("scripted", {"steps": steps})
    await dispatch(client, body)

    run = events(await follow(client, body["run_id"]))

    assert types(run) == ["run.started", "thought", "run.failed"]
    assert run[-1].data == {"error": {"type": "ScriptedFailure", "message": "the disk is full"}}
    probe = (await client.get(f"/v1/runs/{body['run_id']}")).json()
    assert probe["status"] == "failed"


async def test_idle_stream_sends_keepalives(client: httpx.AsyncClient) -> None:
    body = new_run("scripted", {"steps": [{"sleep": KEEPALIVE_S * 3}, {"output": "ok"}]})
    await dispatch(client, body)

    seen = await follow(client, body["run_id"])

    assert sum(isinstance(record, KeepAlive) for record in seen) >= 1
    assert types(seen) == ["run.started", "run.completed"]


async def test_dispatch_is_idempotent_on_run_id(client: httpx.AsyncClient) -> None:
    steps = [{"emit": "log", "data": {"message": "ran once"}}, {"sleep": 0.1}]
    body = new_run("scripted", {"steps": steps})

    first, second = await asyncio.gather(dispatch(client, body), dispatch(client, body))
    third = await dispatch(client, {**body, "attempt": 2})

    assert first == second == third
    run = events(await follow(client, body["run_id"]))
    assert types(run) == ["run.started", "log", "run.completed"]
    conflict = await client.post("/v1/runs", json={**body, "agent": "echo"})
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "run_conflict")


async def test_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    calls = [
        client.get("/v1/runs/run_unknown"),
        client.get("/v1/runs/run_unknown/events"),
        client.post("/v1/runs/run_unknown/cancel", json={}),
        client.post("/v1/runs/run_unknown/interactions/int_x", json={"outcome": "expired"}),
    ]
    for response in await asyncio.gather(*calls):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "unknown_run"


async def test_unknown_agent_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/runs", json=new_run("no-such-agent"))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_agent"


async def test_token_is_required(runner_url: str) -> None:
    async with httpx.AsyncClient(base_url=runner_url) as anonymous:
        missing = await anonymous.get("/v1/agents")
        wrong = await anonymous.get("/v1/agents", headers={"Authorization": "Bearer nope"})
        dispatch_wrong = await anonymous.post(
            "/v1/runs", json=new_run("echo"), headers={"Authorization": "Bearer nope"}
        )
        health = await anonymous.get("/healthz")

    for response in (missing, wrong, dispatch_wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert health.status_code == 200


async def test_agents_are_listed(client: httpx.AsyncClient) -> None:
    agents = AgentList.model_validate((await client.get("/v1/agents")).json())

    assert agents.replica_id == "runner-test"
    assert {"echo", "approval-demo", "scripted"} <= {agent.name for agent in agents.agents}
    python_agents = {"echo", "approval-demo", "scripted"}
    assert all(a.kind == "python" for a in agents.agents if a.name in python_agents)
    assert all(agent.description for agent in agents.agents)


async def test_invalid_request_uses_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/runs", json={"run_id": "run_x"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_finished_runs_are_dropped_after_retention() -> None:
    async with (
        serve_runner(runner_retention_s=0.2) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        body = new_run("echo", {"text": "short-lived", "delay": 0})
        await dispatch(http, body)
        await follow(http, body["run_id"])
        probes = []
        for _ in range(100):  # the sweep runs every retention/4; allow it a few seconds
            probes.append((await http.get(f"/v1/runs/{body['run_id']}")).status_code)
            if probes[-1] == 404:
                break
            await asyncio.sleep(0.05)

    assert probes[-1] == 404


async def test_agent_ignoring_cancel_is_ended_after_the_grace() -> None:
    agents = dict(AGENTS)

    @agent("stubborn", "ignores cancellation for a while", registry=agents)
    async def stubborn(ctx: AgentContext) -> AgentResult:
        for _ in range(20):  # ~1 s, far past the grace; then it ends by itself
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)
        return AgentResult("finished anyway")

    async with (
        serve_runner(agents, cancel_grace_s=0.4) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        body = new_run("stubborn")
        await dispatch(http, body)
        await http.post(f"/v1/runs/{body['run_id']}/cancel", json={"reason": "stop"})

        run = events(await follow(http, body["run_id"]))

    assert types(run) == ["run.started", "run.cancelled"]
    assert run[-1].data == {"reason": "stop"}


async def test_shutdown_ends_open_streams_and_running_agents() -> None:
    loop = asyncio.get_running_loop()
    async with (
        serve_runner() as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        body = new_run("scripted", {"steps": [{"sleep": 30}]})
        await dispatch(http, body)
        stream = http.stream("GET", f"/v1/runs/{body['run_id']}/events")
        response = await stream.__aenter__()
        first = parse_record(await anext(response.aiter_lines()))
        stopping = loop.time()
    # Leaving serve_runner stopped the server with the stream still open and the agent asleep.
    assert loop.time() - stopping < 3
    await stream.__aexit__(None, None, None)
    assert isinstance(first, RunEvent) and first.type == EventType.RUN_STARTED
