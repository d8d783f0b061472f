"""The ACP client side of one run: what the agent tells us becomes the run's events."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from acp import RequestError
from acp.schema import PermissionOption, RequestPermissionResponse, ToolCallUpdate
from pydantic import BaseModel

from runner.acp.mapping import (
    Emitted,
    UpdateMapper,
    permission_options,
    permission_outcome,
    permission_prompt,
    tool_call_data,
)
from runner.agents.base import AgentContext
from runner.protocol import InteractionReply

# How long a cancelled permission answer waits for session/cancel to go out first.
_CANCEL_ORDER_TIMEOUT_S = 1.0


class RunnerClient:
    """Implements the ACP ``Client`` interface for one run.

    The SDK handles every incoming message in its own task, so two notifications can be in
    their handlers at once. Handlers here therefore do all their work before their first
    ``await``: tasks start in the order they were created, which is wire order, so each
    event's ``seq`` follows the wire. Text is coalesced: a timer flushes it every
    ``coalesce_s`` as one ``message.delta`` (or ``thought``) event.

    Not offered (the runner advertises no such capability): ``fs/*`` and ``terminal/*``
    requests, extension methods; each is answered "method not found".
    """

    def __init__(self, ctx: AgentContext, coalesce_s: float) -> None:
        self._ctx = ctx
        self._coalesce_s = coalesce_s
        self._flush_timer: asyncio.TimerHandle | None = None
        self.mapper = UpdateMapper()
        # True while session/load runs: the agent replays the session's history then, and the
        # replay is not this run's output (it is in the transcripts of earlier runs already).
        self.replaying = False
        self.replayed = 0
        # Set once session/cancel is sent (or cannot be): see ``request_permission``.
        self.cancel_sent = asyncio.Event()

    async def session_update(self, session_id: str, update: BaseModel, **kwargs: Any) -> None:
        """``session/update``: mapped and appended at once (no await: see the class doc)."""
        if self.replaying:
            self.replayed += 1
            return
        self._emit(self.mapper.update(update))
        if self.mapper.has_pending and self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(self._coalesce_s, self._flush)

    async def request_permission(
        self,
        session_id: str,
        tool_call: ToolCallUpdate,
        options: list[PermissionOption],
        **kwargs: Any,
    ) -> RequestPermissionResponse:
        """``session/request_permission``: an ``interaction.requested`` of kind ``permission``;
        the human's ``option_id`` goes back as the ``selected`` outcome."""
        self._emit(self.mapper.interrupt())
        if self._ctx.ended or self._ctx.cancelled:  # nobody will answer any more
            reply = InteractionReply(outcome="cancelled")
        else:
            reply = await self._ctx.request_interaction(
                "permission",
                permission_prompt(tool_call),
                permission_options(options),
                tool_call=tool_call_data(tool_call),
            )
        if self._ctx.cancelled:
            # ACP wants session/cancel on the wire before the "cancelled" answers, so the agent
            # knows the whole turn is being cancelled, not just this tool call.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cancel_sent.wait(), _CANCEL_ORDER_TIMEOUT_S)
        return permission_outcome(reply, options)

    async def create_terminal(self, session_id: str, command: str, **kwargs: Any) -> Any:
        """Refused: the SDK would otherwise answer ``null``, which agents misread as success."""
        raise RequestError.method_not_found("terminal/create")

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise RequestError.method_not_found(f"_{method}")

    async def ext_notification(self, method: str, params: dict[str, Any]) -> None:
        return None

    def end_turn(self) -> None:
        """The prompt turn ended: emit the text still buffered and the final ``message``."""
        self._cancel_timer()
        self._emit(self.mapper.end_turn())

    def close(self) -> None:
        self._cancel_timer()

    def _flush(self) -> None:
        self._flush_timer = None
        self._emit(self.mapper.flush())

    def _cancel_timer(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    def _emit(self, events: list[Emitted]) -> None:
        for event_type, data in events:
            if self._ctx.ended:  # a forced cancel ended the run; late updates have no place
                return
            self._ctx.emit(event_type, data)
