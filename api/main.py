"""The HTTP API: starts workflows, signals them, and reads the store. Never calls a runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, metrics
from api.auth import check_auth_settings
from api.routes import (
    agents,
    health,
    interactions,
    keys,
    runs,
    sessions,
    trigger_fire,
    triggers,
)
from store.db import create_engine, session_factory
from tether.settings import Settings, get_settings
from tether.temporal import connect


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_auth_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.settings = settings
        app.state.db = session_factory(engine)
        app.state.temporal = await connect(settings)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Tether",
        version="0.1.0",
        description="Durable, detached agent runs on Temporal.",
        lifespan=lifespan,
    )
    errors.install(app)
    metrics.install(app)
    for module in (runs, sessions, interactions, triggers, trigger_fire, agents, keys, health):
        app.include_router(module.router)
    return app


def app() -> FastAPI:
    """Factory for ``uvicorn --factory api.main:app``."""
    return create_app()
