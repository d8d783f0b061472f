"""Prometheus metrics of the API: request counts and latency by route template, and ``/metrics``.

Series (labels ``method``, ``route``, ``status``):

- ``tether_api_requests_total``: requests answered;
- ``tether_api_request_duration_seconds``: time until the response started (its status and
  headers were sent). For ordinary responses that is the whole request; for the SSE stream it is
  the time to open it, so a stream that stays open for an hour does not read as a slow request.

``route`` is the route's path template (``/v1/runs/{run_id}``), never the raw path, so the label
stays bounded; requests that match no route are labelled ``<unmatched>``.
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import VIEWER

UNMATCHED = "<unmatched>"

REQUESTS = Counter(
    "tether_api_requests",
    "HTTP requests answered by the API.",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "tether_api_request_duration_seconds",
    "Time until the API started its response.",
    ["method", "route", "status"],
)


def _route_template(scope: Scope) -> str:
    # The router stores the matched route in the (shared) scope before calling the endpoint.
    route = scope.get("route")
    path = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    return path or UNMATCHED


class MetricsMiddleware:
    """Pure ASGI, so streaming responses pass through untouched (unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        def observe(status: int) -> None:
            nonlocal observed
            observed = True
            labels = (scope["method"], _route_template(scope), str(status))
            REQUESTS.labels(*labels).inc()
            DURATION.labels(*labels).observe(time.perf_counter() - started)

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                observe(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception:
            if not observed:  # the server turns it into a 500
                observe(500)
            raise


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, *, serve: bool = True) -> None:
    """Measure every request and, with ``serve`` (``TETHER_API_METRICS``), serve ``GET
    /metrics`` to a viewer key (route labels and counts are the project's business)."""
    app.add_middleware(MetricsMiddleware)
    if serve:
        app.add_api_route(
            "/metrics",
            metrics_endpoint,
            methods=["GET"],
            include_in_schema=False,
            dependencies=[VIEWER],
        )
