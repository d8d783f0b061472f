"""One run of an ACP agent: spawn, ``initialize``, open a session, prompt, wind down.

Stop reasons: ``end_turn``, ``refusal``, ``max_tokens`` and ``max_turn_requests`` complete the
run with that ``stop_reason``; ``cancelled`` cancels it. A process that exits mid-run fails it
with its exit code and the tail of its stderr (``AgentProcessExited``); a JSON-RPC error
answer fails it with the error (``AcpRequestFailed``).

Cancel (the run's ``cancel_event``): ``session/cancel``, the open permission requests are
answered ``cancelled``, then up to ``cancel_grace_s`` for the agent to end its turn; then
SIGTERM, and SIGKILL after ``kill_grace_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from acp import PROTOCOL_VERSION, RequestError
from acp.client.connection import ClientSideConnection
from acp.interfaces import Client
from acp.schema import ClientCapabilities, Implementation, InitializeResponse
from pydantic import ValidationError

from runner.acp.client import RunnerClient
from runner.acp.config import AcpAgentConfig
from runner.acp.inputs import prompt_blocks
from runner.acp.mapping import initialized_log, turn_usage_data
from runner.acp.process import AgentProcess, AgentStartError
from runner.agents.base import AgentContext, AgentError, AgentResult
from runner.protocol import EventType
from tether.settings import Settings

T = TypeVar("T")

# The runner offers no file system and no terminal: the agent uses its own.
CLIENT_CAPABILITIES = ClientCapabilities(terminal=False)
CLIENT_INFO = Implementation(name="tether-runner", title="Tether runner", version="0.1.0")


class AgentProcessExited(AgentError):
    """The agent process exited (or closed its stdout) before its turn ended."""


class AcpRequestFailed(AgentError):
    """The agent answered a request with a JSON-RPC error, or with something not ACP."""


class _Abandoned(Exception):
    """Cancel requested and the agent did not end its turn within the grace."""


@dataclass(frozen=True)
class AcpOptions:
    """Runner-wide knobs of ACP runs (from settings)."""

    start_timeout_s: float = 120.0  # from spawn to a ready session: a hung agent fails the run
    cancel_grace_s: float = 2.0
    kill_grace_s: float = 1.0
    exit_grace_s: float = 2.0  # after a finished turn: stdin is closed, then this, then SIGTERM
    coalesce_s: float = 0.05
    stderr_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> AcpOptions:
        return cls(
            start_timeout_s=settings.runner_acp_start_timeout_s,
            cancel_grace_s=settings.runner_acp_cancel_grace_s,
            kill_grace_s=settings.runner_acp_kill_grace_s,
            coalesce_s=settings.runner_acp_coalesce_s,
            stderr_bytes=settings.runner_acp_stderr_bytes,
        )


async def run_acp_agent(
    config: AcpAgentConfig, options: AcpOptions, ctx: AgentContext
) -> AgentResult:
    """Run one prompt turn of the agent ``config`` for the run ``ctx``."""
    blocks = prompt_blocks(ctx.input)  # bad input fails before a process is spawned
    process = await AgentProcess.start(config, options.stderr_bytes)
    turn = _Turn(config, options, ctx, process)
    finished = False
    try:
        result = await turn.run(blocks)
        finished = result.stop_reason != "cancelled"
        return result
    finally:
        if finished:
            await turn.close()
            # The outcome does not wait for the process to exit.
            process.stop_in_background(options.exit_grace_s, options.kill_grace_s)
        else:
            # Cancelled, failed or interrupted: stop it now (killing it unblocks any write).
            await process.stop(0.0, options.kill_grace_s)
            await turn.close()


class _Turn:
    def __init__(
        self,
        config: AcpAgentConfig,
        options: AcpOptions,
        ctx: AgentContext,
        process: AgentProcess,
    ) -> None:
        self.config, self.options, self.ctx, self.process = config, options, ctx, process
        self.client = RunnerClient(ctx, options.coalesce_s)
        # RunnerClient implements what the runner offers; the SDK answers the rest itself.
        client = cast(Client, self.client)
        self.conn = ClientSideConnection(client, process.stdin, process.stdout)

    async def run(self, blocks: list[Any]) -> AgentResult:
        try:
            session_id = await self._start()
            self.ctx.set_agent_session_id(session_id)
            response = await self._request(
                self.conn.prompt(session_id=session_id, prompt=blocks), session_id
            )
        except _Abandoned:
            self.client.end_turn()
            self._log(
                "warning",
                "acp agent did not end its turn after session/cancel; stopping its process",
                cancel_grace_s=self.options.cancel_grace_s,
            )
            return AgentResult(output=self.client.mapper.output, stop_reason="cancelled")
        self.client.end_turn()
        if response.usage is not None:
            self._emit(EventType.USAGE, turn_usage_data(response.usage))
        return AgentResult(output=self.client.mapper.output, stop_reason=response.stop_reason)

    async def _start(self) -> str:
        """``initialize`` and a session, within ``start_timeout_s``: a program that is not an
        ACP agent (or a hung one) must fail the run rather than hold it forever."""
        try:
            async with asyncio.timeout(self.options.start_timeout_s):
                init = await self._request(
                    self.conn.initialize(
                        protocol_version=PROTOCOL_VERSION,
                        client_capabilities=CLIENT_CAPABILITIES,
                        client_info=CLIENT_INFO,
                    ),
                )
                self._emit(EventType.LOG, initialized_log(init))
                return await self._open_session(init)
        except TimeoutError:
            raise AgentStartError(
                f"ACP agent {self.config.name!r} did not open a session within "
                f"{self.options.start_timeout_s:g} s",
                {"stderr_tail": self.process.stderr_tail()},
            ) from None

    async def close(self) -> None:
        self.client.close()
        # Bounded: a stuck pipe must not hold the run's task.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(), self.options.kill_grace_s)

    async def _open_session(self, init: InitializeResponse) -> str:
        """``session/load`` of the previous run's session where the agent supports it (falling
        back to a new session if the load fails), else ``session/new``."""
        previous = self.ctx.previous_agent_session_id
        capabilities = init.agent_capabilities
        cwd = str(self.config.cwd)
        if previous and capabilities is not None and capabilities.load_session:
            self.client.replaying = True
            try:
                await self._request(
                    self.conn.load_session(cwd=cwd, session_id=previous, mcp_servers=[])
                )
            except AcpRequestFailed as exc:
                self._log(
                    "warning",
                    "acp session/load failed; starting a new session",
                    previous_agent_session_id=previous,
                    error={"message": str(exc), **exc.details},
                )
            else:
                self._log(
                    "info",
                    "acp session loaded",
                    agent_session_id=previous,
                    replayed_updates=self.client.replayed,
                )
                return previous
            finally:
                self.client.replaying = False
        elif previous:
            self._log(
                "info",
                "acp agent cannot load sessions; starting a new session",
                previous_agent_session_id=previous,
            )
        created = await self._request(self.conn.new_session(cwd=cwd, mcp_servers=[]))
        self._log("info", "acp session created", agent_session_id=created.session_id)
        return created.session_id

    async def _request(self, call: Awaitable[T], session_id: str | None = None) -> T:
        """Await one ACP request, watching for a cancel of the run and for the process dying.

        On cancel, a request of a session gets ``session/cancel`` and ``cancel_grace_s`` to
        answer; any other request is abandoned at once. The process dying shows as the SDK's
        ``ConnectionError`` (stdout EOF), which comes only after every answer the agent wrote.
        """
        request = asyncio.ensure_future(call)
        cancel = asyncio.ensure_future(self.ctx.wait_cancelled())
        try:
            await asyncio.wait({request, cancel}, return_when=asyncio.FIRST_COMPLETED)
            if not request.done():
                await self._send_cancel(session_id)
                if session_id is not None:
                    await asyncio.wait({request}, timeout=self.options.cancel_grace_s)
            if not request.done():
                raise _Abandoned
            return request.result()
        except ConnectionError:
            raise await self._exited() from None
        except RequestError as exc:
            details = {"code": exc.code, "data": exc.data}
            raise AcpRequestFailed(f"ACP agent error: {exc}", details) from None
        except ValidationError as exc:
            raise AcpRequestFailed(f"ACP agent sent an invalid answer: {exc}") from None
        finally:
            cancel.cancel()
            if not request.done():
                request.cancel()

    async def _send_cancel(self, session_id: str | None) -> None:
        try:
            if session_id is not None:
                with contextlib.suppress(ConnectionError):
                    await self.conn.cancel(session_id=session_id)
        finally:
            self.client.cancel_sent.set()

    async def _exited(self) -> AgentProcessExited:
        code = await self.process.wait_exit(self.options.kill_grace_s)
        if code is None:
            message = f"ACP agent {self.config.name!r} closed its connection"
        elif code < 0:
            message = f"ACP agent {self.config.name!r} was killed by signal {-code}"
        else:
            message = f"ACP agent {self.config.name!r} exited with code {code}"
        details = {"exit_code": code, "stderr_tail": self.process.stderr_tail()}
        return AgentProcessExited(message, details)

    def _log(self, level: str, message: str, **fields: Any) -> None:
        self._emit(EventType.LOG, {"level": level, "message": message, **fields})

    def _emit(self, event_type: EventType, data: dict[str, Any]) -> None:
        if not self.ctx.ended:  # the runner may have ended the run (shutdown, forced cancel)
            self.ctx.emit(event_type, data)
