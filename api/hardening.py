"""HTTP hardening of the API, installed by ``install(app, settings)`` in one call.

- Security headers on every answer (``SecurityHeadersMiddleware``): ``nosniff``, no framing, no
  referrer, ``Cache-Control: no-store`` unless the route chose its own (the SSE stream), and a
  Content-Security-Policy: ``default-src 'none'`` for the API, a strict one naming the CDN the
  docs pages load from (and the hash of their one inline script) for ``/docs`` and ``/redoc``.
- Allowed hosts (Starlette's ``TrustedHostMiddleware``): ``TETHER_ALLOWED_HOSTS``, by default
  the loopback names and the host of ``TETHER_PUBLIC_API_URL``; any other ``Host`` is ``400``.
- CORS only for the origins of ``TETHER_CORS_ORIGINS``; none by default.
- No stack trace in any answer: an unexpected error is logged with its traceback and answered
  ``500 internal_error`` in the JSON envelope.
- ``/docs``, ``/redoc`` and ``/openapi.json`` only with ``TETHER_API_DOCS`` (``/metrics`` with
  ``TETHER_API_METRICS``, in ``api.metrics``); ``tether dev`` turns both on.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from tether.settings import Settings

log = logging.getLogger("tether.api")

OPENAPI_URL = "/openapi.json"
DOCS_PATHS = ("/docs", "/redoc")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
CORS_HEADERS = ["Authorization", "Content-Type", "X-Api-Key", "Last-Event-ID"]


def app_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``FastAPI(...)``: debug off, the schema only when docs are on, and
    the docs pages left to ``install`` (it serves them with their CSP)."""
    return {
        "debug": False,
        "docs_url": None,
        "redoc_url": None,
        "openapi_url": OPENAPI_URL if settings.api_docs else None,
    }


def allowed_hosts(settings: Settings) -> list[str]:
    """``TETHER_ALLOWED_HOSTS``, or the loopback names and the public URL's host."""
    configured = [h.strip() for h in settings.allowed_hosts.split(",") if h.strip()]
    if configured:
        return configured
    public = urlsplit(settings.public_api_url).hostname
    return list(dict.fromkeys([*LOOPBACK_HOSTS, *([public] if public else [])]))


def cors_origins(settings: Settings) -> list[str]:
    return [o.strip().rstrip("/") for o in settings.cors_origins.split(",") if o.strip()]


def _inline_script_hashes(html: str) -> list[str]:
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    ]


def _docs_csp(pages: list[str]) -> str:
    hashes = " ".join(h for page in pages for h in _inline_script_hashes(page))
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src https://cdn.jsdelivr.net {hashes}".strip(),
            # Swagger UI and ReDoc set inline styles at run time; no script can come from them.
            "style-src https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'",
            "font-src https://fonts.gstatic.com",
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net",
            "connect-src 'self'",
            "worker-src blob:",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


class SecurityHeadersMiddleware:
    """Adds the security headers to every answer. Pure ASGI, so streams pass untouched."""

    def __init__(self, app: ASGIApp, docs_csp: str) -> None:
        self.app, self.docs_csp = app, docs_csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.docs_csp if scope["path"] in DOCS_PATHS else API_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {**BASE_HEADERS, "Content-Security-Policy": csp}.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _install_docs(app: FastAPI) -> str:
    """Serve ``/docs`` and ``/redoc``; returns their Content-Security-Policy."""
    swagger = get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} - Swagger UI")
    redoc = get_redoc_html(openapi_url=OPENAPI_URL, title=f"{app.title} - ReDoc")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return swagger

    @app.get("/redoc", include_in_schema=False)
    async def redoc_ui() -> HTMLResponse:
        return redoc

    return _docs_csp([bytes(swagger.body).decode(), bytes(redoc.body).decode()])


def _install_internal_error(app: FastAPI) -> None:
    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log only. This answer leaves through the outermost
        # middleware, past SecurityHeadersMiddleware, so it carries the headers itself.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        body = error_body("internal_error", "the server failed to answer; see its log")
        headers = {**BASE_HEADERS, "Content-Security-Policy": API_CSP, "Cache-Control": "no-store"}
        return JSONResponse(body, status_code=500, headers=headers)


def install(app: FastAPI, settings: Settings) -> None:
    """Install everything above; call after every other middleware (these wrap them)."""
    docs_csp = _install_docs(app) if settings.api_docs else API_CSP
    _install_internal_error(app)
    origins = cors_origins(settings)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=CORS_HEADERS,
        )
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings), www_redirect=False
    )
    app.add_middleware(SecurityHeadersMiddleware, docs_csp=docs_csp)
