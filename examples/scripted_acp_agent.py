"""A scripted, offline ACP agent, for demos and tests. No model, no network, nothing deleted.

Run it as ``python examples/scripted_acp_agent.py``: it speaks the Agent Client Protocol
(JSON-RPC, one message a line) on stdin/stdout, written with the agent side of the
``agent-client-protocol`` SDK. The runner registers it as ``acp-demo``.

What a prompt does depends on its text (case-insensitive; the first rule that matches wins):

- contains ``crash``: writes a line to stderr and exits with code 3 in the middle of the turn.
- contains ``stderr-flood``: writes 4 MiB to stderr (blocking until the client reads it), then
  answers normally and ends the turn with ``end_turn``.
- contains ``refuse``: says it cannot help and ends the turn with ``refusal``.
- contains ``slow``: streams 200 chunks 50 ms apart (about 10 s), stopping with ``cancelled``
  as soon as ``session/cancel`` arrives.
- contains ``stubborn``: sends one chunk ``pid <its pid> ``, then ignores SIGTERM and blocks
  for 30 s without reading anything (so neither ``session/cancel`` nor the end of its stdin
  reaches it): only SIGKILL ends it early.
- starts with ``env NAME``: reports ``NAME=value`` from its environment, or that it is not set.
- contains ``remember``: reports how many earlier turns the session holds, and their prompts.
- starts with ``echo ``: streams the rest of the prompt back in chunks, with a usage update and
  token usage in the prompt response.
- anything else: the approval flow. A plan, a thought, a message, a tool call running
  ``rm -rf build/`` (simulated), then ``session/request_permission`` with options ``allow``
  (``allow_once``) and ``deny`` (``reject_once``). Allowed: the tool call completes. Denied: it
  fails. Answered ``cancelled`` after ``session/cancel``: the turn ends with ``cancelled``;
  answered ``cancelled`` otherwise (nobody answered): it reports that and ends the turn.

Sessions: each session is a JSON file ``<session id>.json`` in ``$SCRIPTED_ACP_STATE_DIR``
(default ``./.scripted-acp``) holding its turns, so another process can ``session/load`` it.
The agent advertises ``loadSession``; on load it replays the history as user and agent message
chunks, as ACP requires, and later turns see the earlier ones (try ``remember``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any, cast

from acp import (
    PROTOCOL_VERSION,
    RequestError,
    plan_entry,
    run_agent,
    start_tool_call,
    update_agent_message_text,
    update_agent_thought_text,
    update_plan,
    update_tool_call,
    update_user_message_text,
)
from acp.interfaces import Agent, Client
from acp.schema import (
    AgentCapabilities,
    AllowedOutcome,
    Implementation,
    InitializeResponse,
    LoadSessionResponse,
    NewSessionResponse,
    PermissionOption,
    PromptResponse,
    StopReason,
    TextContentBlock,
    ToolCallLocation,
    ToolCallUpdate,
    Usage,
    UsageUpdate,
)

STATE_DIR_ENV = "SCRIPTED_ACP_STATE_DIR"
COMMAND = "rm -rf build/"
SESSION_ID = re.compile(r"^scripted-[0-9a-f]{32}$")
OPTIONS = [
    PermissionOption(option_id="allow", name="Allow", kind="allow_once"),
    PermissionOption(option_id="deny", name="Deny", kind="reject_once"),
]


class ScriptedAgent:
    """The agent: one instance per process, any number of sessions."""

    def __init__(self, state_dir: Path) -> None:
        self._client: Client | None = None
        self._state_dir = state_dir
        self._cancelled: dict[str, asyncio.Event] = {}

    def on_connect(self, conn: Client) -> None:
        self._client = conn

    async def initialize(self, protocol_version: int, **kwargs: Any) -> InitializeResponse:
        return InitializeResponse(
            protocol_version=PROTOCOL_VERSION,
            agent_capabilities=AgentCapabilities(load_session=True),
            agent_info=Implementation(
                name="scripted-acp-agent", title="Scripted ACP agent", version="1.0.0"
            ),
        )

    async def new_session(self, cwd: str, **kwargs: Any) -> NewSessionResponse:
        session_id = f"scripted-{uuid.uuid4().hex}"
        self._save(session_id, [])
        return NewSessionResponse(session_id=session_id)

    async def load_session(self, cwd: str, session_id: str, **kwargs: Any) -> LoadSessionResponse:
        turns = self._load(session_id)
        if turns is None:
            raise RequestError.resource_not_found(session_id)
        for turn in turns:  # ACP: the client gets the whole conversation back before the answer
            await self._send(session_id, update_user_message_text(turn["prompt"]))
            await self._send(session_id, update_agent_message_text(turn["reply"]))
        return LoadSessionResponse()

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        event = self._cancelled.get(session_id)
        if event is not None:
            event.set()

    async def prompt(self, prompt: list[Any], session_id: str, **kwargs: Any) -> PromptResponse:
        text = " ".join(b.text for b in prompt if isinstance(b, TextContentBlock)).strip()
        turns = self._load(session_id) or []
        self._cancelled[session_id] = cancel = asyncio.Event()
        turn = Turn(self, session_id, cancel)
        reply, stop_reason, usage = await turn.respond(text, turns)
        if stop_reason != "cancelled":
            self._save(session_id, [*turns, {"prompt": text, "reply": reply}])
        return PromptResponse(stop_reason=stop_reason, usage=usage)

    async def _send(self, session_id: str, update: Any) -> None:
        assert self._client is not None
        await self._client.session_update(session_id=session_id, update=update)

    def _path(self, session_id: str) -> Path:
        return self._state_dir / f"{session_id}.json"

    def _load(self, session_id: str) -> list[dict[str, str]] | None:
        if not SESSION_ID.match(session_id):
            return None
        try:
            return list(json.loads(self._path(session_id).read_text())["turns"])
        except (OSError, ValueError, KeyError):
            return None

    def _save(self, session_id: str, turns: list[dict[str, str]]) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        self._path(session_id).write_text(json.dumps({"turns": turns}))


class Turn:
    """One prompt turn: the scripted behaviour chosen by the prompt's text."""

    def __init__(self, agent: ScriptedAgent, session_id: str, cancel: asyncio.Event) -> None:
        self.agent, self.session_id, self.cancel = agent, session_id, cancel

    async def respond(
        self, text: str, turns: list[dict[str, str]]
    ) -> tuple[str, StopReason, Usage | None]:
        lowered = text.lower()
        if "crash" in lowered:
            sys.stderr.write("scripted-acp-agent: crashing on purpose (the prompt said crash)\n")
            sys.stderr.flush()
            os._exit(3)
        if "stderr-flood" in lowered:
            line = "scripted-acp-agent: flooding stderr " + "x" * 987 + "\n"  # 1 KiB
            for _ in range(4 * 1024):
                sys.stderr.write(line)
            sys.stderr.flush()
            return await self.say("Wrote 4 MiB to stderr."), "end_turn", None
        if "refuse" in lowered:
            return await self.say("I can't help with that."), "refusal", None
        if "slow" in lowered:
            return await self.slow()
        if "stubborn" in lowered:
            await self.send(update_agent_message_text(f"pid {os.getpid()} "))
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            # Blocking on purpose: this agent hears nothing until it is killed.
            time.sleep(30)  # noqa: ASYNC251
            return "", "end_turn", None
        if lowered.startswith("env "):
            name = text.split()[1]
            value = os.environ.get(name)
            reply = f"{name}={value}" if value is not None else f"{name} is not set"
            return await self.say(reply), "end_turn", None
        if "remember" in lowered:
            earlier = "; ".join(turn["prompt"] for turn in turns)
            reply = f"I remember {len(turns)} earlier turns of this session: {earlier or '-'}."
            return await self.say(reply), "end_turn", None
        if lowered.startswith("echo "):
            return await self.echo(text[5:])
        return await self.approval()

    async def say(self, text: str, pieces: int = 3) -> str:
        """Stream ``text`` as a few agent message chunks."""
        size = max(1, -(-len(text) // pieces))
        for start in range(0, len(text), size):
            await self.send(update_agent_message_text(text[start : start + size]))
            await asyncio.sleep(0.005)
        return text

    async def echo(self, text: str) -> tuple[str, StopReason, Usage | None]:
        await self.say(text)
        tokens = len(text.split())
        await self.send(UsageUpdate(session_update="usage_update", used=2 * tokens, size=200_000))
        usage = Usage(input_tokens=tokens, output_tokens=tokens, total_tokens=2 * tokens)
        return text, "end_turn", usage

    async def slow(self) -> tuple[str, StopReason, Usage | None]:
        sent: list[str] = []
        for index in range(200):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cancel.wait(), 0.05)
            if self.cancel.is_set():
                return "".join(sent), "cancelled", None
            sent.append(f"chunk {index} ")
            await self.send(update_agent_message_text(sent[-1]))
        return "".join(sent), "end_turn", None

    async def approval(self) -> tuple[str, StopReason, Usage | None]:
        await self.send(update_plan(self._plan("pending")))
        await self.send(
            update_agent_thought_text("build/ holds stale artifacts; removing it needs approval.")
        )
        opening = await self.say("I'll clean up the build folder. ")
        call_id = f"call_{uuid.uuid4().hex[:16]}"
        title = f"Run `{COMMAND}`"
        raw_input = {"command": COMMAND}
        location = ToolCallLocation(path=str(Path.cwd() / "build"))
        await self.send(
            start_tool_call(
                call_id,
                title,
                kind="execute",
                status="pending",
                locations=[location],
                raw_input=raw_input,
            )
        )
        assert self.agent._client is not None
        answer = await self.agent._client.request_permission(
            session_id=self.session_id,
            tool_call=ToolCallUpdate(
                tool_call_id=call_id,
                title=title,
                kind="execute",
                status="pending",
                raw_input=raw_input,
            ),
            options=OPTIONS,
        )
        outcome = answer.outcome
        if isinstance(outcome, AllowedOutcome) and outcome.option_id == "allow":
            await self.send(update_tool_call(call_id, status="in_progress"))
            await asyncio.sleep(0.01)  # the "command": nothing is actually deleted
            await self.send(
                update_tool_call(call_id, status="completed", raw_output={"exit_code": 0})
            )
            await self.send(update_plan(self._plan("completed")))
            reply = "Removed build/ (simulated: nothing was deleted)."
        else:
            await self.send(update_tool_call(call_id, status="failed"))
            if self.cancel.is_set():
                return opening, "cancelled", None
            denied = isinstance(outcome, AllowedOutcome)
            reply = (
                "Permission denied; left build/ alone."
                if denied
                else f"No answer came; did not run `{COMMAND}`."
            )
        return opening + await self.say(reply), "end_turn", None

    async def send(self, update: Any) -> None:
        await self.agent._send(self.session_id, update)

    @staticmethod
    def _plan(removal: str) -> list[Any]:
        return [
            plan_entry("Inspect the build directory", priority="medium", status="completed"),
            plan_entry("Remove stale build artifacts", priority="high", status=removal),  # type: ignore[arg-type]
        ]


def main() -> None:
    state_dir = Path(os.environ.get(STATE_DIR_ENV) or Path.cwd() / ".scripted-acp")
    # ScriptedAgent implements the methods it supports; the SDK answers the others itself.
    asyncio.run(run_agent(cast(Agent, ScriptedAgent(state_dir))))


if __name__ == "__main__":
    main()
