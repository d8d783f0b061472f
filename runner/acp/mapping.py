"""ACP -> runner events: pure, synchronous translation of ``session/update`` and permissions.

| ACP                                   | runner event(s)                                        |
|---------------------------------------|--------------------------------------------------------|
| ``agent_message_chunk`` (text)        | ``message.delta`` ``{text}``, coalesced per interval;  |
|                                       | ``message`` ``{role, text[, message_id][, content]}``  |
|                                       | when the message ends                                   |
| ``agent_thought_chunk`` (text)        | ``thought`` ``{text}``, coalesced per interval          |
| ``tool_call``                         | ``tool_call`` ``{tool_call_id, title, kind, status,     |
|                                       | locations, raw_input, raw_output, content}``           |
| ``tool_call_update``                  | ``tool_call.update``: ``tool_call_id`` and the fields   |
|                                       | the update sets                                         |
| ``plan``                              | ``plan`` ``{entries: [{content, priority, status}]}``   |
| ``usage_update``                      | ``usage`` ``{context_used_tokens,                       |
|                                       | context_window_tokens[, cost]}``                        |
| ``PromptResponse.usage``              | ``usage`` ``{input_tokens, output_tokens,               |
|                                       | total_tokens, ...}``                                    |
| other updates (commands, mode, config | ``log`` ``{level: "debug", message: "acp <kind>",       |
| options, session info, plan_update)   | acp_update}``                                           |
| ``user_message_chunk``                | nothing (the prompt is the run's input)                 |
| ``session/request_permission``        | ``interaction.requested`` (kind ``permission``)         |

A message ends at the end of the turn, when its ``messageId`` changes, or when a thought, tool
call, tool call update or plan arrives. Usage and the other updates do not end it (they arrive
at any time), but text received before them is emitted first, so the transcript keeps wire
order. Field names are snake_case; nested ACP structures (``content``, ``locations``,
capabilities) keep ACP's own JSON form.
"""

from __future__ import annotations

from typing import Any, Literal

from acp.schema import (
    AgentCapabilities,
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    AllowedOutcome,
    DeniedOutcome,
    InitializeResponse,
    PermissionOption,
    RequestPermissionResponse,
    TextContentBlock,
    ToolCall,
    ToolCallProgress,
    ToolCallStart,
    ToolCallUpdate,
    Usage,
    UsageUpdate,
    UserMessageChunk,
)
from pydantic import BaseModel

from runner.protocol import EventType, InteractionOption, InteractionReply

Emitted = tuple[EventType, dict[str, Any]]


def _acp_json(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def tool_call_data(call: ToolCall | ToolCallUpdate) -> dict[str, Any]:
    """A tool call (or an update of one): its ID and every field it sets."""
    data: dict[str, Any] = {"tool_call_id": call.tool_call_id}
    for name in ("title", "kind", "status"):
        value = getattr(call, name)
        if value is not None:
            data[name] = value
    if call.locations is not None:
        data["locations"] = [_acp_json(location) for location in call.locations]
    if call.raw_input is not None:
        data["raw_input"] = call.raw_input
    if call.raw_output is not None:
        data["raw_output"] = call.raw_output
    if call.content is not None:
        data["content"] = [_acp_json(item) for item in call.content]
    return data


def turn_usage_data(usage: Usage) -> dict[str, Any]:
    """``PromptResponse.usage`` (tokens of the turn) as a ``usage`` event."""
    return usage.model_dump(mode="json", exclude_none=True, exclude={"field_meta"})


def permission_options(options: list[PermissionOption]) -> list[InteractionOption]:
    """ACP permission options as interaction options (same ID, name and kind)."""
    return [
        InteractionOption(option_id=option.option_id, name=option.name, kind=option.kind)
        for option in options
    ]


def permission_prompt(tool_call: ToolCallUpdate) -> str:
    """The question a human sees; ACP has none of its own, so it is made from the tool call."""
    title = tool_call.title or f"tool call {tool_call.tool_call_id}"
    return f"Allow the agent to proceed with: {title}?"


def permission_outcome(
    reply: InteractionReply, options: list[PermissionOption]
) -> RequestPermissionResponse:
    """The ACP answer to a permission request, from the human's reply.

    An answer naming one of the options selects it; expiry, cancellation and anything else
    answer ``cancelled`` (ACP has no "no answer" outcome, and guessing an option would be
    worse).
    """
    option_id = (reply.response or {}).get("option_id") if reply.outcome == "answered" else None
    if option_id in {option.option_id for option in options}:
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=str(option_id))
        )
    return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))


class UpdateMapper:
    """Turns one run's ``session/update`` stream into runner events, keeping wire order.

    Never awaits, so its caller can append the events the moment an update arrives. Text waits
    in a buffer until ``flush`` (called on a short interval by the client), the next update
    that is not text of the same kind, or ``end_turn``.
    """

    def __init__(self) -> None:
        self._open: Literal["message", "thought"] | None = None
        self._pending: list[str] = []  # text received but not yet emitted
        self._message: list[str] = []  # the open message's whole text
        self._blocks: list[Any] = []  # the open message's non-text content blocks
        self._message_id: str | None = None
        self.messages: list[str] = []  # text of every message ended this turn

    @property
    def has_pending(self) -> bool:
        """True when buffered text waits for ``flush``."""
        return bool(self._pending)

    def update(self, update: BaseModel) -> list[Emitted]:
        """The events one ``session/update`` becomes (maybe none yet: text is buffered)."""
        if isinstance(update, AgentMessageChunk):
            return self._message_chunk(update)
        if isinstance(update, AgentThoughtChunk):
            events = self._close_message()
            self._open = "thought"
            if isinstance(update.content, TextContentBlock):
                self._pending.append(update.content.text)
            return events
        if isinstance(update, UserMessageChunk):
            return []
        if isinstance(update, ToolCallStart):
            return [*self.interrupt(), (EventType.TOOL_CALL, tool_call_data(update))]
        if isinstance(update, ToolCallProgress):
            return [*self.interrupt(), (EventType.TOOL_CALL_UPDATE, tool_call_data(update))]
        if isinstance(update, AgentPlanUpdate):
            entries = [
                entry.model_dump(mode="json", exclude_none=True, exclude={"field_meta"})
                for entry in update.entries
            ]
            return [*self.interrupt(), (EventType.PLAN, {"entries": entries})]
        if isinstance(update, UsageUpdate):
            data: dict[str, Any] = {
                "context_used_tokens": update.used,
                "context_window_tokens": update.size,
            }
            if update.cost is not None:
                data["cost"] = _acp_json(update.cost)
            return [*self.flush(), (EventType.USAGE, data)]
        kind = getattr(update, "session_update", type(update).__name__)
        log = {"level": "debug", "message": f"acp {kind}", "acp_update": _acp_json(update)}
        return [*self.flush(), (EventType.LOG, log)]

    def flush(self) -> list[Emitted]:
        """Emit the buffered text (as ``message.delta`` or ``thought``); the message stays open."""
        if not self._pending:
            return []
        text = "".join(self._pending)
        self._pending.clear()
        if self._open == "thought":
            return [(EventType.THOUGHT, {"text": text})]
        return [(EventType.MESSAGE_DELTA, {"text": text})]

    def interrupt(self) -> list[Emitted]:
        """End the open message or thought (something else happens in the turn now)."""
        if self._open == "thought":
            events = self.flush()
            self._open = None
            return events
        return self._close_message()

    def end_turn(self) -> list[Emitted]:
        """The prompt turn is over: emit everything still buffered."""
        return self.interrupt()

    @property
    def output(self) -> str:
        """The turn's reply: the text of its messages, a blank line apart."""
        return "\n\n".join(text for text in self.messages if text)

    def _message_chunk(self, chunk: AgentMessageChunk) -> list[Emitted]:
        events: list[Emitted] = []
        if self._open == "message" and chunk.message_id != self._message_id:
            events += self._close_message()  # ACP: a new messageId starts a new message
        elif self._open == "thought":
            events += self.interrupt()
        if self._open is None:
            self._open = "message"
            self._message_id = chunk.message_id
        if isinstance(chunk.content, TextContentBlock):
            self._pending.append(chunk.content.text)
            self._message.append(chunk.content.text)
        else:
            self._blocks.append(_acp_json(chunk.content))
        return events

    def _close_message(self) -> list[Emitted]:
        if self._open != "message":
            return []
        events = self.flush()
        text = "".join(self._message)
        data: dict[str, Any] = {"role": "assistant", "text": text}
        if self._message_id is not None:
            data["message_id"] = self._message_id
        if self._blocks:
            data["content"] = list(self._blocks)
        events.append((EventType.MESSAGE, data))
        self.messages.append(text)
        self._open, self._message_id = None, None
        self._message.clear()
        self._blocks.clear()
        return events


def initialized_log(init: InitializeResponse) -> dict[str, Any]:
    """The ``log`` event recording the agent's ``initialize`` answer (its capabilities)."""
    capabilities = init.agent_capabilities or AgentCapabilities()
    return {
        "level": "info",
        "message": "acp agent initialized",
        "protocol_version": init.protocol_version,
        "agent_info": _acp_json(init.agent_info) if init.agent_info is not None else None,
        "agent_capabilities": _acp_json(capabilities),
        "auth_methods": [_acp_json(method) for method in init.auth_methods or []],
    }
