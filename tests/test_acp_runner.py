"""ACP agents on the reference runner, over real HTTP, with the scripted ACP agent as a real
subprocess (``examples/scripted_acp_agent.py``): no protocol fakes anywhere."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.acp.config import DEMO_SCRIPT, AcpConfigError, read_agents_file
from runner.app import create_app
from runner.protocol import AgentList, EventType, RunEvent, agent_session_id_of
from tests.test_runner import (
    TOKEN,
    dispatch,
    events,
    follow,
    new_run,
    serve_runner,
    types,
    wait_for_interaction,
)
from tether.settings import Settings

SECRET = "TETHER_ACP_TEST_SECRET"
AGENT = [sys.executable, str(DEMO_SCRIPT)]


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("acp-state")


@pytest.fixture(scope="module")
async def acp_runner_url(
    state_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A runner with ``acp-demo`` plus agents configured by a TOML file and by JSON text."""
    with pytest.MonkeyPatch.context() as patch:
        # Set in the runner's own environment: a configured agent must not see it by default.
        patch.setenv(SECRET, "the-runners-secret")
        agents_file = tmp_path_factory.mktemp("acp-config") / "agents.toml"
        agents_file.write_text(
            "[[agents]]\n"
            'name = "acp-from-file"\n'
            'description = "the scripted agent, configured in TOML"\n'
            f"command = {json.dumps(AGENT)}\n"
            f'env = {{ SCRIPTED_ACP_STATE_DIR = "{state_dir}" }}\n'
        )
        cwd = str(state_dir)  # the agent keeps its sessions under its cwd by default
        configured = [
            {"name": "acp-plain", "command": AGENT, "cwd": cwd},
            {"name": "acp-inherit", "command": AGENT, "cwd": cwd, "inherit_env": [SECRET]},
            {"name": "acp-keyed", "command": AGENT, "cwd": cwd, "env": {SECRET: "configured"}},
            {"name": "acp-missing", "command": ["/nonexistent/acp-agent"]},
        ]
        async with serve_runner(
            data_dir=state_dir.parent / "tether-data",
            runner_agents_file=agents_file,
            runner_agents_json=json.dumps(configured),
        ) as url:
            yield url


@pytest.fixture
async def client(acp_runner_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=acp_runner_url, headers=headers, timeout=10) as http:
        yield http


async def run_to_end(
    http: httpx.AsyncClient, agent: str, input: Any, **fields: Any
) -> list[RunEvent]:
    body = new_run(agent, input, **fields)
    await dispatch(http, body)
    return events(await follow(http, body["run_id"]))


def of_type(run: list[RunEvent], event_type: EventType) -> list[RunEvent]:
    return [event for event in run if event.type == event_type]


def logs(run: list[RunEvent]) -> dict[str, dict[str, Any]]:
    return {event.data["message"]: event.data for event in of_type(run, EventType.LOG)}


async def answer(http: httpx.AsyncClient, option_id: str) -> tuple[dict[str, Any], list[RunEvent]]:
    body = new_run("acp-demo", "clean the build folder")
    await dispatch(http, body)
    asked = await wait_for_interaction(http, body["run_id"])
    url = f"/v1/runs/{body['run_id']}/interactions/{asked.interaction_id}"
    reply = {"outcome": "answered", "response": {"option_id": option_id}, "responder": "alice"}
    ack = await http.post(url, json=reply)
    assert ack.json() == {"ok": True, "duplicate": False}
    return asked.model_dump(), events(await follow(http, body["run_id"]))


async def test_acp_agents_are_listed_with_kind_acp(client: httpx.AsyncClient) -> None:
    listed = AgentList.model_validate((await client.get("/v1/agents")).json())

    kinds = {agent.name: agent.kind for agent in listed.agents}
    assert kinds["echo"] == "python"
    for name in ("acp-demo", "acp-from-file", "acp-plain", "acp-inherit", "acp-keyed"):
        assert kinds[name] == "acp"
    descriptions = {agent.name: agent.description for agent in listed.agents}
    assert descriptions["acp-from-file"] == "the scripted agent, configured in TOML"
    assert descriptions["acp-plain"].startswith("ACP agent: ")


async def test_approve_runs_the_tool(client: httpx.AsyncClient) -> None:
    asked, run = await answer(client, "allow")

    assert asked["kind"] == "permission"
    assert [(o["option_id"], o["name"], o["kind"]) for o in asked["options"]] == [
        ("allow", "Allow", "allow_once"),
        ("deny", "Deny", "reject_once"),
    ]
    tool_call = asked["tool_call"]
    assert tool_call["title"] == "Run `rm -rf build/`"
    assert (tool_call["kind"], tool_call["raw_input"]) == ("execute", {"command": "rm -rf build/"})
    assert [event.seq for event in run] == list(range(1, len(run) + 1))
    kinds = [t for t in types(run) if t not in ("message.delta", "log")]
    assert kinds == [
        "run.started",
        "plan",
        "thought",
        "message",
        "tool_call",
        "interaction.requested",
        "interaction.resolved",
        "tool_call.update",
        "tool_call.update",
        "plan",
        "message",
        "run.completed",
    ]
    initialized = logs(run)["acp agent initialized"]
    assert initialized["agent_capabilities"]["loadSession"] is True
    assert initialized["agent_info"]["name"] == "scripted-acp-agent"
    call = of_type(run, EventType.TOOL_CALL)[0].data
    assert call["tool_call_id"] == tool_call["tool_call_id"]
    assert call["locations"][0]["path"].endswith("/build")
    assert [u.data["status"] for u in of_type(run, EventType.TOOL_CALL_UPDATE)] == [
        "in_progress",
        "completed",
    ]
    first, second = of_type(run, EventType.MESSAGE)
    assert first.data == {"role": "assistant", "text": "I'll clean up the build folder. "}
    deltas = "".join(e.data["text"] for e in of_type(run, EventType.MESSAGE_DELTA))
    assert deltas == first.data["text"] + second.data["text"]
    completed = run[-1]
    assert completed.data["stop_reason"] == "end_turn"
    assert completed.data["output"] == (
        "I'll clean up the build folder. \n\nRemoved build/ (simulated: nothing was deleted)."
    )
    assert agent_session_id_of(completed) == logs(run)["acp session created"]["agent_session_id"]


async def test_deny_does_not_run_the_tool(client: httpx.AsyncClient) -> None:
    _, run = await answer(client, "deny")

    assert [u.data["status"] for u in of_type(run, EventType.TOOL_CALL_UPDATE)] == ["failed"]
    assert run[-1].type == EventType.RUN_COMPLETED
    assert run[-1].data["stop_reason"] == "end_turn"
    assert run[-1].data["output"].endswith("Permission denied; left build/ alone.")


async def test_expired_permission_is_answered_cancelled(client: httpx.AsyncClient) -> None:
    body = new_run("acp-demo", "clean the build folder")
    await dispatch(client, body)
    asked = await wait_for_interaction(client, body["run_id"])

    await client.post(
        f"/v1/runs/{body['run_id']}/interactions/{asked.interaction_id}",
        json={"outcome": "expired"},
    )

    run = events(await follow(client, body["run_id"]))
    assert run[-1].type == EventType.RUN_COMPLETED
    assert run[-1].data["output"].endswith("No answer came; did not run `rm -rf build/`.")


async def test_cancel_while_permission_is_open(client: httpx.AsyncClient) -> None:
    body = new_run("acp-demo", "clean the build folder")
    await dispatch(client, body)
    asked = await wait_for_interaction(client, body["run_id"])

    ack = await client.post(f"/v1/runs/{body['run_id']}/cancel", json={"reason": "user asked"})

    assert ack.json() == {"ok": True, "duplicate": False}
    run = events(await follow(client, body["run_id"]))
    resolved = of_type(run, EventType.INTERACTION_RESOLVED)
    assert [(r.data["interaction_id"], r.data["outcome"]) for r in resolved] == [
        (asked.interaction_id, "cancelled")
    ]
    # The agent heard session/cancel before its permission answer: it marks the tool call
    # failed and ends its turn as cancelled, rather than reporting "no answer".
    assert [u.data["status"] for u in of_type(run, EventType.TOOL_CALL_UPDATE)] == ["failed"]
    assert run[-1].type == EventType.RUN_CANCELLED
    assert run[-1].data["reason"] == "user asked"
    assert agent_session_id_of(run[-1]) is not None
    probe = (await client.get(f"/v1/runs/{body['run_id']}")).json()
    assert probe["status"] == "cancelled"


async def test_cancel_while_streaming(client: httpx.AsyncClient) -> None:
    body = new_run("acp-demo", "slow")
    await dispatch(client, body)
    await follow(client, body["run_id"], until=EventType.MESSAGE_DELTA)

    await client.post(f"/v1/runs/{body['run_id']}/cancel")

    run = events(await follow(client, body["run_id"]))
    assert types(run)[-2:] == ["message", "run.cancelled"]
    streamed = "".join(e.data["text"] for e in of_type(run, EventType.MESSAGE_DELTA))
    assert streamed.startswith("chunk 0 chunk 1 ")
    assert run[-2].data["text"] == streamed  # the partial message is kept
    assert "chunk 199" not in streamed


async def test_agent_crash_fails_the_run_with_exit_code_and_stderr(
    client: httpx.AsyncClient,
) -> None:
    run = await run_to_end(client, "acp-demo", "crash, please")

    assert run[-1].type == EventType.RUN_FAILED
    error = run[-1].data["error"]
    assert error["type"] == "AgentProcessExited"
    assert error["exit_code"] == 3
    assert "exited with code 3" in error["message"]
    assert "crashing on purpose" in error["stderr_tail"]
    assert agent_session_id_of(run[-1]) is not None


async def test_second_run_loads_the_first_runs_session(client: httpx.AsyncClient) -> None:
    first = await run_to_end(client, "acp-demo", "echo hello there")
    session = agent_session_id_of(first[-1])
    assert session is not None

    second = await run_to_end(client, "acp-demo", "what do you remember?", agent_session_id=session)

    loaded = logs(second)["acp session loaded"]
    assert (loaded["agent_session_id"], loaded["replayed_updates"]) == (session, 2)
    assert "acp session created" not in logs(second)
    # The replayed history is not part of this run's transcript: one message, this turn's.
    messages = of_type(second, EventType.MESSAGE)
    assert [m.data["text"] for m in messages] == [
        "I remember 1 earlier turns of this session: echo hello there."
    ]
    assert second[-1].data["output"] == messages[0].data["text"]
    assert agent_session_id_of(second[-1]) == session


async def test_unknown_agent_session_falls_back_to_a_new_session(
    client: httpx.AsyncClient,
) -> None:
    run = await run_to_end(client, "acp-demo", "remember", agent_session_id="scripted-gone")

    failed = logs(run)["acp session/load failed; starting a new session"]
    assert failed["level"] == "warning"
    assert failed["error"]["code"] == -32002
    created = logs(run)["acp session created"]["agent_session_id"]
    assert created != "scripted-gone"
    assert run[-1].data["output"] == "I remember 0 earlier turns of this session: -."
    assert agent_session_id_of(run[-1]) == created


async def test_stderr_flood_does_not_block_the_agent(client: httpx.AsyncClient) -> None:
    run = await run_to_end(client, "acp-demo", "stderr-flood")

    assert run[-1].type == EventType.RUN_COMPLETED
    assert run[-1].data["output"] == "Wrote 4 MiB to stderr."


async def test_refusal_completes_with_its_stop_reason(client: httpx.AsyncClient) -> None:
    run = await run_to_end(client, "acp-demo", "please refuse this")

    assert run[-1].type == EventType.RUN_COMPLETED
    assert run[-1].data["stop_reason"] == "refusal"
    assert run[-1].data["output"] == "I can't help with that."


async def test_echo_streams_and_reports_usage(client: httpx.AsyncClient) -> None:
    blocks = [{"type": "text", "text": "echo one two three"}]
    run = await run_to_end(client, "acp-from-file", {"prompt": blocks})

    usage = of_type(run, EventType.USAGE)
    assert [u.data for u in usage] == [
        {"context_used_tokens": 6, "context_window_tokens": 200000},
        {"input_tokens": 3, "output_tokens": 3, "total_tokens": 6},
    ]
    assert run[-1].data["output"] == "one two three"
    assert of_type(run, EventType.MESSAGE)[0].data["text"] == "one two three"


@pytest.mark.parametrize(
    ("agent", "reply"),
    [
        ("acp-plain", f"{SECRET} is not set"),
        ("acp-inherit", f"{SECRET}=the-runners-secret"),
        ("acp-keyed", f"{SECRET}=configured"),
    ],
)
async def test_agents_get_a_trimmed_environment(
    client: httpx.AsyncClient, agent: str, reply: str
) -> None:
    run = await run_to_end(client, agent, f"env {SECRET}")

    assert run[-1].data["output"] == reply


async def test_agent_that_cannot_start_fails_the_run(client: httpx.AsyncClient) -> None:
    run = await run_to_end(client, "acp-missing", "hello")

    assert types(run) == ["run.started", "run.failed"]
    error = run[-1].data["error"]
    assert error["type"] == "AgentStartError"
    assert error["command"] == ["/nonexistent/acp-agent"]


async def test_input_that_is_not_a_prompt_fails_the_run(client: httpx.AsyncClient) -> None:
    run = await run_to_end(client, "acp-demo", {"steps": []})

    assert run[-1].type == EventType.RUN_FAILED
    assert run[-1].data["error"]["type"] == "InvalidPromptError"


async def test_agent_ignoring_cancel_is_terminated_then_killed(state_dir: Path) -> None:
    async with (
        serve_runner(
            data_dir=state_dir.parent / "tether-stubborn",
            runner_acp_cancel_grace_s=0.2,
            runner_acp_kill_grace_s=0.2,
        ) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        body = new_run("acp-demo", "stubborn")
        await dispatch(http, body)
        started = await follow(http, body["run_id"], until=EventType.MESSAGE_DELTA)
        pid = int(events(started)[-1].data["text"].split()[1])

        await http.post(f"/v1/runs/{body['run_id']}/cancel", json={"reason": "stop"})
        run = events(await follow(http, body["run_id"]))

    assert run[-1].type == EventType.RUN_CANCELLED
    assert run[-1].data["reason"] == "stop"
    assert "acp agent did not end its turn after session/cancel; stopping its process" in logs(run)
    with pytest.raises(ProcessLookupError):  # SIGTERM was ignored: SIGKILL ended it
        os.kill(pid, 0)


async def test_agent_that_never_answers_initialize_fails_the_run(state_dir: Path) -> None:
    hung = {"name": "acp-hung", "command": [sys.executable, "-c", "import time; time.sleep(30)"]}
    async with (
        serve_runner(
            data_dir=state_dir.parent / "tether-hung",
            runner_agents_json=json.dumps([hung]),
            runner_acp_start_timeout_s=0.5,
        ) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        run = await run_to_end(http, "acp-hung", "hello")

    assert types(run) == ["run.started", "run.failed"]
    assert run[-1].data["error"]["type"] == "AgentStartError"
    assert "did not open a session within 0.5 s" in run[-1].data["error"]["message"]


@pytest.mark.parametrize(
    ("agents_json", "problem"),
    [
        ("[{", "TETHER_RUNNER_AGENTS_JSON"),
        ('[{"name": "x"}]', "agent entry 0"),
        ('[{"name": "x", "command": ["a"], "shell": true}]', "agent entry 0"),
        ('[{"name": "x", "command": ["a"]}, {"name": "x", "command": ["b"]}]', "more than once"),
        ('{"agent": []}', "expected a list"),
    ],
)
def test_bad_agent_configuration_stops_the_runner(agents_json: str, problem: str) -> None:
    settings = Settings(_env_file=None, runner_agents_json=agents_json)  # type: ignore[call-arg]

    with pytest.raises(AcpConfigError, match=problem):
        create_app(settings)


def test_acp_agent_cannot_take_a_python_agents_name() -> None:
    agents_json = json.dumps([{"name": "echo", "command": AGENT}])
    settings = Settings(_env_file=None, runner_agents_json=agents_json)  # type: ignore[call-arg]

    with pytest.raises(ValueError, match="echo"):
        create_app(settings)


def test_example_agents_file_is_valid() -> None:
    (scripted,) = read_agents_file(DEMO_SCRIPT.parent / "acp_agents.toml")

    assert (scripted.name, scripted.command[-1]) == (
        "scripted-acp",
        "examples/scripted_acp_agent.py",
    )
    assert scripted.child_environment({"PATH": "/bin", "SECRET": "x"}) == {
        "PATH": "/bin",
        "SCRIPTED_ACP_STATE_DIR": "/tmp/scripted-acp",
    }
