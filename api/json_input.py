"""Every request body, checked once at the door, before any route sees it.

- At most ``TETHER_API_MAX_BODY_BYTES``: a larger ``Content-Length`` is refused before a byte
  of the body is read, and a body sent without one (chunked) is refused as soon as it grows
  past the limit, so no request holds more than the limit in memory (``413
  payload_too_large``). Webhooks have their own, smaller limit in their route.
- A JSON body is strict JSON (``422``): no ``NaN``/``Infinity`` and no number that overflows a
  double (``1e400`` would become ``inf``, stored as ``null``), no unpaired surrogate
  (``"\\ud800"`` cannot be encoded as UTF-8, so it could never be stored or sent on), no
  U+0000 (PostgreSQL cannot store it in text or ``jsonb``), and at most ``MAX_DEPTH`` levels
  of nesting. Python's decoder accepts all of these; the routes then get only what the
  store, Temporal and every answer can carry.

The check runs in an ASGI middleware so that it holds for every route, including the ones
that read their body raw (webhooks); ``strict_loads`` is the same check for code that decodes
JSON itself.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

# Containers nested deeper than this are refused. Real inputs are a few levels deep; the bound
# keeps every later walk of the value (validation, serialization, the store) far from its
# recursion limits.
MAX_DEPTH = 64


class InvalidJson(ValueError):
    """A body that is not strict JSON; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def strict_loads(raw: bytes | str) -> Any:
    """``json.loads``, refusing what strict JSON and the store cannot carry (see the module)."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except InvalidJson:
        raise
    except RecursionError as err:
        raise _too_deep() from err
    except ValueError as err:  # bad syntax, bad UTF-8, an integer of over 4300 digits
        raise InvalidJson("malformed_json", "the request body is not valid JSON") from err
    _check_tree(value)
    return value


def _no_constant(name: str) -> Any:
    raise InvalidJson("non_finite_number", f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJson("non_finite_number", f"{text[:40]} is out of range for a number")
    return value


def _too_deep() -> InvalidJson:
    return InvalidJson("json_too_deep", f"the JSON is nested deeper than {MAX_DEPTH} levels")


def _check_tree(value: Any) -> None:
    """Depth, and every string (keys included) encodable and free of U+0000. Iterative."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_string(node)
        elif isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            if isinstance(node, dict):
                for key, item in node.items():
                    _check_string(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidJson(
            "unpaired_surrogate", "a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)"
        ) from err
    if "\x00" in text:
        raise InvalidJson("null_character", "a string holds U+0000, which cannot be stored")


def _is_json(headers: Headers) -> bool:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


class RequestBodyGuard:
    """ASGI middleware: the body limit and the strict JSON check of every request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if headers is None or not _has_body(headers):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isascii() and declared.isdigit():
            if int(declared) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        if body and _is_json(headers):
            try:
                strict_loads(bytes(body))
            except InvalidJson as err:
                answer = JSONResponse(error_body(err.code, err.message), status_code=422)
                await answer(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        answer = JSONResponse(
            error_body(
                "payload_too_large",
                f"the request body is over {limit} bytes",
                {"max_body_bytes": limit},
            ),
            status_code=413,
            headers={"Connection": "close"},  # the rest of the body is never read
        )
        await answer(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, read already, as one message; then the client's own messages (disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
