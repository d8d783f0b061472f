"""``echo``: streams the input text back in a few chunks. The smallest complete run."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from runner.agents.base import AgentContext, AgentResult, agent
from runner.protocol import EventType


def _parse(value: Any) -> tuple[str, float, int]:
    """Input: a string, or ``{"text": str, "delay": seconds between chunks, "chunks": n}``."""
    if isinstance(value, dict):
        return (
            str(value.get("text", "")),
            float(value.get("delay", 0.05)),
            int(value.get("chunks", 3)),
        )
    if value is None:
        return "", 0.05, 3
    return (value if isinstance(value, str) else json.dumps(value)), 0.05, 3


def split_text(text: str, chunks: int) -> list[str]:
    """Split ``text`` into at most ``chunks`` consecutive, non-empty pieces."""
    size = -(-len(text) // max(chunks, 1))  # ceiling division
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []


@agent("echo", "Echoes the input text back, streamed in a few chunks.")
async def echo(ctx: AgentContext) -> AgentResult:
    text, delay, chunks = _parse(ctx.input)
    for index, piece in enumerate(split_text(text, chunks)):
        if index:
            await asyncio.sleep(delay)
        ctx.emit(EventType.MESSAGE_DELTA, {"text": piece})
    ctx.emit(EventType.MESSAGE, {"role": "assistant", "text": text})
    tokens = len(text.split())
    ctx.emit(
        EventType.USAGE,
        {"input_tokens": tokens, "output_tokens": tokens, "total_tokens": 2 * tokens},
    )
    return AgentResult(output=text, stop_reason="end_turn")
