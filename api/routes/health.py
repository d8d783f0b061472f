"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.auth import OPEN
from api.deps import DbDep, TemporalDep

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[OPEN])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", dependencies=[OPEN])
async def readyz(db: DbDep, temporal: TemporalDep) -> JSONResponse:
    """Ready when both the store and Temporal answer."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(db.execute(text("SELECT 1")), 2.0)
        checks["store"] = "ok"
    except Exception as err:
        checks["store"] = f"error: {err}"
    try:
        await asyncio.wait_for(temporal.service_client.check_health(), 2.0)
        checks["temporal"] = "ok"
    except Exception as err:
        checks["temporal"] = f"error: {err}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
