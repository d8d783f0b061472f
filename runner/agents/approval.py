"""``approval-demo``: plans a cleanup and asks permission before a (simulated) shell command."""

from __future__ import annotations

import asyncio
import uuid

from runner.agents.base import AgentContext, AgentResult, agent
from runner.protocol import EventType, InteractionOption

COMMAND = "rm -rf build/"

OPTIONS = [
    InteractionOption(option_id="allow", name="Allow", kind="allow_once"),
    InteractionOption(option_id="deny", name="Deny", kind="reject_once"),
]


@agent(
    "approval-demo",
    "Plans a cleanup, asks permission to run a shell command, and reports the outcome. "
    'Input: {"expires_in": seconds, "delay": seconds}, both optional.',
)
async def approval_demo(ctx: AgentContext) -> AgentResult:
    options = ctx.input if isinstance(ctx.input, dict) else {}
    delay = float(options.get("delay", 0.05))
    expires_in = options.get("expires_in")

    ctx.emit(
        EventType.PLAN,
        {
            "entries": [
                {
                    "content": "Inspect the build directory",
                    "priority": "medium",
                    "status": "completed",
                },
                {
                    "content": "Remove stale build artifacts",
                    "priority": "high",
                    "status": "pending",
                },
            ]
        },
    )
    await asyncio.sleep(delay)
    ctx.emit(
        EventType.THOUGHT, {"text": "build/ holds stale artifacts; removing it needs approval."}
    )
    tool_call = {
        "tool_call_id": f"call_{uuid.uuid4().hex[:16]}",
        "title": f"Run `{COMMAND}`",
        "kind": "execute",
        "status": "pending",
        "raw_input": {"command": COMMAND},
    }
    ctx.emit(EventType.TOOL_CALL, tool_call)

    reply = await ctx.ask(
        "permission",
        f"Allow the agent to run `{COMMAND}`?",
        OPTIONS,
        tool_call=tool_call,
        expires_in=float(expires_in) if expires_in is not None else None,
    )
    call_id = tool_call["tool_call_id"]
    if reply.outcome != "answered":
        ctx.emit(
            EventType.TOOL_CALL_UPDATE,
            {"tool_call_id": call_id, "status": "failed", "reason": reply.outcome},
        )
        return AgentResult(
            f"No answer came (interaction {reply.outcome}); did not run `{COMMAND}`."
        )

    if (reply.response or {}).get("option_id") == "allow":
        await asyncio.sleep(delay)  # the "command"; nothing is actually deleted
        ctx.emit(
            EventType.TOOL_CALL_UPDATE,
            {"tool_call_id": call_id, "status": "completed", "raw_output": {"exit_code": 0}},
        )
        ctx.emit(EventType.MESSAGE, {"role": "assistant", "text": "Removed build/."})
        return AgentResult(f"Ran `{COMMAND}` (approved by {reply.responder or 'a human'}).")

    ctx.emit(
        EventType.TOOL_CALL_UPDATE,
        {"tool_call_id": call_id, "status": "failed", "reason": "rejected"},
    )
    ctx.emit(
        EventType.MESSAGE, {"role": "assistant", "text": "Permission denied; left build/ alone."}
    )
    return AgentResult(f"Permission denied: did not run `{COMMAND}`.")
