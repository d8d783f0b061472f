"""The run's input as an ACP prompt: the content blocks of ``session/prompt``."""

from __future__ import annotations

from typing import Annotated, Any

from acp.helpers import ContentBlock
from acp.schema import TextContentBlock
from pydantic import Field, TypeAdapter, ValidationError

from runner.agents.base import AgentError

_blocks: TypeAdapter[list[Any]] = TypeAdapter(
    list[Annotated[ContentBlock, Field(discriminator="type")]]
)


class InvalidPromptError(AgentError):
    """The run's input cannot be made into an ACP prompt."""


def prompt_blocks(value: Any) -> list[Any]:
    """ACP content blocks for a run input.

    Accepted: a string (one text block); a list of ACP content blocks (ACP JSON, passed
    through); ``{"text": str}``; ``{"prompt": [blocks]}``.
    """
    if isinstance(value, str):
        raw: Any = [{"type": "text", "text": value}]
    elif isinstance(value, dict) and "prompt" in value:
        raw = value["prompt"]
    elif isinstance(value, dict) and isinstance(value.get("text"), str):
        raw = [{"type": "text", "text": value["text"]}]
    elif isinstance(value, list):
        raw = value
    else:
        raise InvalidPromptError(
            'an ACP agent takes a string, a list of ACP content blocks, {"text": ...} or '
            f'{{"prompt": [...]}} as input, not {type(value).__name__}'
        )
    try:
        blocks = _blocks.validate_python(raw)
    except ValidationError as exc:
        raise InvalidPromptError(f"the input is not a list of ACP content blocks: {exc}") from None
    if not blocks or all(isinstance(b, TextContentBlock) and not b.text for b in blocks):
        raise InvalidPromptError("the prompt is empty")
    return blocks
