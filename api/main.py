"""The HTTP API: starts workflows, signals them, and reads the store. Never calls a runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, hardening, metrics, shutdown
from api.auth import check_auth_settings
from api.json_input import RequestBodyGuard
from api.routes import (
    agents,
    codec,
    health,
    interactions,
    keys,
    runs,
    sessions,
    trigger_fire,
    triggers,
)
from store.db import create_engine, session_factory
from tether.secret_box import SecretBox
from tether.settings import Settings, get_settings
from tether.temporal import connect


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_auth_settings(settings)
    # Fails here, before serving, without TETHER_SECRETS_KEY: webhook secrets need it.
    secret_box = SecretBox.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.settings = settings
        app.state.secret_box = secret_box
        app.state.db = session_factory(engine)
        app.state.temporal = await connect(settings)
        shutdown.install()
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Tether",
        version="0.1.0",
        description="Durable, detached agent runs on Temporal.",
        lifespan=lifespan,
        **hardening.app_options(settings),
    )
    errors.install(app)
    app.add_middleware(RequestBodyGuard, max_body_bytes=settings.api_max_body_bytes)
    metrics.install(app, serve=settings.api_metrics)
    modules = (runs, sessions, interactions, triggers, trigger_fire, agents, keys, codec, health)
    for module in modules:
        app.include_router(module.router)
    hardening.install(app, settings)
    codec.install_cors(app, settings.codec_cors_origin_list)
    return app


def app() -> FastAPI:
    """Factory for ``uvicorn --factory api.main:app``."""
    return create_app()
