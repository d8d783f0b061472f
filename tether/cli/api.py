"""The CLI's view of the HTTP API: JSON calls, the API's errors, and the run's SSE stream with
resume (``Last-Event-ID``) when the connection drops.

The CLI talks to the API only; it imports nothing from the server side.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"

# The API sends a keepalive comment every 15 s on an idle stream: a longer silence is a dead
# connection, which is resumed like a dropped one.
STREAM_READ_TIMEOUT_S = 45.0
# How long the stream keeps trying to reconnect before the CLI gives up.
RECONNECT_BUDGET_S = 120.0


class CliError(Exception):
    """An error to show the user: an API error answer, or the API being unreachable."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.code, self.details = message, status, code, details or {}

    def as_json(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code or "cli_error",
                "message": self.message,
                "details": self.details,
                "status": self.status,
            }
        }


def api_url_from_env() -> str:
    return os.environ.get("TETHER_API_URL") or DEFAULT_API_URL


# Where ``tether dev`` leaves its admin key, relative to the checkout it runs in.
DEV_KEY_FILE = "dev-admin-key"


def api_key_from_env() -> str | None:
    """``$TETHER_API_KEY``, else the dev stack's key when run from its checkout
    (``$TETHER_DATA_DIR``, default ``.tether``, holds ``dev-admin-key``), else none."""
    key = os.environ.get("TETHER_API_KEY")
    if key:
        return key.strip()
    path = Path(os.environ.get("TETHER_DATA_DIR") or ".tether") / DEV_KEY_FILE
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _error_from(response: httpx.Response) -> CliError:
    try:
        body = response.json()
        error = body["error"]
        return CliError(
            str(error.get("message") or response.reason_phrase),
            status=response.status_code,
            code=error.get("code"),
            details=error.get("details") or {},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        text = response.text.strip()[:300] or response.reason_phrase
        return CliError(text, status=response.status_code, code="http_error")


@dataclass
class SseMessage:
    """One server-sent event: ``id`` (the event's seq), ``event`` (its type) and parsed data."""

    id: int | None
    event: str
    data: Any


class Api:
    """Async client of Tether's HTTP API."""

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        headers["User-Agent"] = "tether-cli"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(30.0)
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
    ) -> Any:
        """The JSON answer; a ``CliError`` carrying the API's message for an error answer."""
        if params:
            params = {k: v for k, v in params.items() if v is not None and v != []}
        try:
            response = await self._http.request(method, path, params=params, json=json_body)
        except httpx.TransportError as err:
            raise CliError(
                f"cannot reach the Tether API at {self.base_url} ({type(err).__name__}: {err}); "
                "start it with `tether dev`, or point --api / TETHER_API_URL at it",
                code="unreachable",
            ) from err
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json() if response.content else None

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.request("POST", path, json_body=body)

    async def stream(
        self,
        run_id: str,
        after: int = 0,
        on_reconnect: Callable[[str | None, int], None] | None = None,
    ) -> AsyncIterator[SseMessage]:
        """The run's events with ``seq > after``, live, until (and including) ``end``.

        A dropped connection is resumed from the last event seen with ``Last-Event-ID``, so no
        event is lost or repeated. ``on_reconnect(reason, last_seq)`` is told when the
        connection is lost, and ``on_reconnect(None, last_seq)`` when the stream is back.
        """
        last_seq = after
        delay = 0.2
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            headers = {"Last-Event-ID": str(last_seq)} if last_seq else {}
            try:
                async with self._http.stream(
                    "GET",
                    f"/v1/runs/{run_id}/stream",
                    headers=headers,
                    timeout=httpx.Timeout(30.0, read=STREAM_READ_TIMEOUT_S),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise _error_from(response)
                    if failing_since is not None and on_reconnect is not None:
                        on_reconnect(None, last_seq)
                    failing_since, delay = None, 0.2
                    async for message in _parse_sse(response.aiter_lines()):
                        if message.id is not None:
                            last_seq = message.id
                        yield message
                        if message.event == "end":
                            return
                reason = "the stream closed before the run ended"
            except (httpx.TransportError, CliError) as err:
                if isinstance(err, CliError) and (err.status or 0) < 500:
                    raise  # 404 and friends: retrying will not help
                reason = str(err) or type(err).__name__
            now = loop.time()
            if failing_since is None:
                failing_since = now
                if on_reconnect is not None:
                    on_reconnect(reason, last_seq)
            elif now - failing_since > RECONNECT_BUDGET_S:
                raise CliError(
                    f"lost the stream of run {run_id} after event {last_seq} and could not "
                    f"reconnect for {RECONNECT_BUDGET_S:.0f}s ({reason})",
                    code="stream_lost",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SseMessage]:
    """Server-sent events from text lines (comments, i.e. keepalives, are skipped)."""
    event_id: str | None = None
    event, data = "message", list[str]()
    async for line in lines:
        if line == "":
            if data:
                payload = "\n".join(data)
                try:
                    parsed: Any = json.loads(payload)
                except ValueError:
                    parsed = payload
                seq = int(event_id) if event_id and event_id.isdigit() else None
                yield SseMessage(seq, event, parsed)
            event_id, event, data = None, "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                event_id = value
            elif field == "event":
                event = value
            elif field == "data":
                data.append(value)
