"""The reference runner service: ``create_app(settings)`` builds the FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runner.acp import acp_agents
from runner.agents import AGENTS, AgentSpec
from runner.protocol import ErrorInfo, ErrorResponse
from runner.routes import RunnerError, router
from runner.runs import RunRegistry
from tether.settings import DEV_RUNNER_TOKEN, Settings, get_settings, is_loopback


def _error(
    status_code: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorInfo(code=code, message=message)).model_dump()
    body["error"].update(extra)
    return JSONResponse(body, status_code=status_code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answer has the protocol's shape, so callers branch on ``error.code``."""

    @app.exception_handler(RunnerError)
    async def runner_error(_: Request, exc: RunnerError) -> JSONResponse:
        return _error(exc.status_code, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = jsonable_encoder(exc.errors())
        return _error(422, "invalid_request", "the request is not valid", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return _error(exc.status_code, code, str(exc.detail), exc.headers)


def default_agents(settings: Settings) -> dict[str, AgentSpec]:
    """The Python agents and the configured ACP agents; a name may mean only one of them."""
    configured = acp_agents(settings)
    clashes = sorted(set(configured) & set(AGENTS))
    if clashes:
        raise ValueError(f"ACP agents named like Python agents: {', '.join(clashes)}")
    return {**AGENTS, **configured}


class UnsafeRunnerConfig(Exception):
    """The runner would start in a way anyone could use: ``python -m runner`` refuses."""


def check_config(settings: Settings) -> None:
    """Refuse a runner without a token, or one reachable from other machines that accepts
    the built-in dev token (anyone who read the docs could start runs on it)."""
    tokens = settings.runner_accepted_tokens
    if not settings.runner_token.get_secret_value().strip():
        raise UnsafeRunnerConfig("TETHER_RUNNER_TOKEN is empty; set a long random token")
    if DEV_RUNNER_TOKEN in tokens and not is_loopback(settings.runner_host):
        raise UnsafeRunnerConfig(
            f"the runner would listen on {settings.runner_host}, beyond this machine, with the "
            "built-in dev token; set TETHER_RUNNER_TOKEN (and the workers' one) to a long "
            "random token, e.g. `openssl rand -hex 32`"
        )


def create_app(
    settings: Settings | None = None, agents: Mapping[str, AgentSpec] | None = None
) -> FastAPI:
    """Build a runner app hosting ``agents`` (default: every agent in ``runner.agents`` and
    the ACP agents the settings configure, see ``runner/acp/config.py``).

    Runs live in the app's ``RunRegistry`` (``app.state.registry``); finished runs are swept
    after ``settings.runner_retention_s``, and shutdown stops every agent still running.
    """
    settings = settings or get_settings()
    registry = RunRegistry(
        default_agents(settings) if agents is None else agents,
        replica_id=settings.runner_replica_id,
        retention_s=settings.runner_retention_s,
        # Well inside the time the orchestrator waits for run.cancelled after asking.
        cancel_grace_s=settings.cancel_grace_s / 2,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(registry.sweep_forever(), name="runner-sweeper")
        try:
            yield
        finally:
            sweeper.cancel()
            await registry.aclose()

    # No /docs or /openapi.json: only workers talk to a runner, and only /healthz is open.
    app = FastAPI(
        title="Tether runner", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.settings = settings
    app.state.registry = registry
    _install_error_handlers(app)
    app.include_router(router)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness, without the token: for load balancers and the dev supervisor."""
        return {"ok": True, "replica_id": settings.runner_replica_id}

    return app
