"""``scripted``: plays back a list of steps, so tests can build any run shape they need."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from runner.agents.base import AgentContext, AgentError, AgentResult, agent


class ScriptedFailure(AgentError):
    """Raised by a ``{"fail": message}`` step."""


@agent(
    "scripted",
    'Test agent. Input {"steps": [...]}, each one of {"emit": type, "data": {...}}, '
    '{"sleep": s}, {"ask": {kind, prompt, options, tool_call, expires_in}}, {"fail": message}, '
    '{"output": text, "stop_reason": reason}.',
)
async def scripted(ctx: AgentContext) -> AgentResult:
    """Run the steps in order.

    Without an ``output`` step the output is the text of the last answered ``ask``
    (``response["text"]``, else the response as JSON), so a test can see an answer arrive.
    """
    steps = ctx.input.get("steps") if isinstance(ctx.input, dict) else None
    if not isinstance(steps, list):
        raise AgentError('scripted input must be {"steps": [...]}')
    output: str | None = None
    stop_reason = "end_turn"
    last_answer = ""
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise AgentError(f"step {index} is not an object: {step!r}")
        if "emit" in step:
            ctx.emit(step["emit"], step.get("data"))
        elif "sleep" in step:
            await asyncio.sleep(float(step["sleep"]))
        elif "ask" in step:
            last_answer = await _ask(ctx, step["ask"]) or last_answer
        elif "fail" in step:
            raise ScriptedFailure(str(step["fail"]))
        elif "output" in step:
            output = str(step["output"])
            stop_reason = str(step.get("stop_reason", stop_reason))
        else:
            raise AgentError(f"step {index} is not a known step: {step!r}")
    return AgentResult(output=last_answer if output is None else output, stop_reason=stop_reason)


async def _ask(ctx: AgentContext, spec: dict[str, Any]) -> str | None:
    """Ask as told; the answer's text, or None if no answer came."""
    reply = await ctx.ask(
        spec.get("kind", "input"),
        str(spec.get("prompt", "")),
        spec.get("options", []),
        tool_call=spec.get("tool_call"),
        expires_in=spec.get("expires_in"),
        response_schema=spec.get("response_schema"),
    )
    if reply.outcome != "answered" or reply.response is None:
        return None
    text = reply.response.get("text")
    return str(text) if text is not None else json.dumps(reply.response)
