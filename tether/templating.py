"""Input templates of triggers: JSON whose strings may hold ``{{ path }}`` placeholders.

Deliberately tiny and safe (no expressions, no code): a placeholder is a dotted path into the
firing's context::

    payload.<field>.<0-based index>...   the webhook's JSON body (null for schedules)
    event.id, event.time, event.source   the event ID, when it fired, "schedule" | "webhook"
    trigger.id, trigger.name

- A string that is exactly one placeholder becomes the value itself, keeping its JSON type:
  ``{"pr": "{{ payload.number }}"}`` renders ``{"pr": 42}``.
- Inside longer text a placeholder becomes text (strings as they are, anything else as JSON):
  ``"review PR #{{ payload.number }}"`` renders ``"review PR #42"``.
- A missing path is an error (``TemplateError``), unless it ends with ``?``: then it renders
  as null (whole string) or as nothing (inside text).
- Object keys are never rendered.
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[\w-]+)*)(\?)?\s*\}\}")
_ANY_BRACES = re.compile(r"\{\{(.*?)\}\}")
ROOTS = frozenset({"payload", "event", "trigger"})
_MISSING = object()


class TemplateError(ValueError):
    """The template is malformed, or names something the firing does not have."""


def firing_context(
    *,
    payload: Any,
    event_id: str,
    event_time: str,
    source: str,
    trigger_id: str,
    trigger_name: str,
) -> dict[str, Any]:
    return {
        "payload": payload,
        "event": {"id": event_id, "time": event_time, "source": source},
        "trigger": {"id": trigger_id, "name": trigger_name},
    }


def check_template(template: Any) -> None:
    """Raise ``TemplateError`` if a ``{{ … }}`` of the template is not a valid placeholder."""
    for text in _strings(template):
        for match in _ANY_BRACES.finditer(text):
            placeholder = _PLACEHOLDER.fullmatch(match.group(0))
            if placeholder is None:
                raise TemplateError(f"not a valid placeholder: {match.group(0)!r}")
            root = placeholder.group(1).split(".")[0]
            if root not in ROOTS:
                raise TemplateError(
                    f"{match.group(0)!r}: a path starts with one of {', '.join(sorted(ROOTS))}"
                )


def render(template: Any, context: dict[str, Any]) -> Any:
    """The template with its placeholders replaced from ``context`` (see the module doc)."""
    check_template(template)
    return _render(template, context)


def _render(node: Any, context: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: _render(value, context) for key, value in node.items()}
    if isinstance(node, list):
        return [_render(value, context) for value in node]
    if not isinstance(node, str) or "{{" not in node:
        return node
    whole = _PLACEHOLDER.fullmatch(node.strip())
    if whole is not None:
        value = _lookup(context, whole.group(1), optional=bool(whole.group(2)))
        return None if value is _MISSING else value

    def text(match: re.Match[str]) -> str:
        value = _lookup(context, match.group(1), optional=bool(match.group(2)))
        if value is _MISSING or value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    return _PLACEHOLDER.sub(text, node)


def lookup(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``data``, or ``None`` if there is none."""
    value = _walk(data, path.split("."))
    return None if value is _MISSING else value


def _lookup(context: dict[str, Any], path: str, *, optional: bool) -> Any:
    value = _walk(context, path.split("."))
    if value is _MISSING and not optional:
        raise TemplateError(f"the firing has no {path!r} (end the path with '?' if optional)")
    return value


def _walk(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []
