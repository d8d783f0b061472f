"""JSON errors (``{"error": {"code", "message", "details"}}``) and the one place where errors
become HTTP answers: the API's own ``ApiError``, the domain errors of the workflow clients
(``clients.errors``), bad cursors and invalid requests."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException as StarletteHTTPException

from clients import errors as domain
from store.keyset import InvalidCursor


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}
        self.headers = headers


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind}_not_found", f"{kind} {ident!r} not found", {kind + "_id": ident})


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


# Status and code of each domain error; the error's message and details go in the body.
DOMAIN_ERRORS: dict[type[domain.WorkflowCallError], tuple[int, str]] = {
    domain.SessionBusy: (409, "session_busy"),
    domain.IdempotencyConflict: (409, "idempotency_conflict"),
    domain.RunNotActive: (409, "run_not_active"),
    domain.ScheduleInvalid: (422, "invalid_schedule"),
    domain.ScheduleMissing: (409, "schedule_missing"),
    domain.ScheduleExists: (409, "schedule_exists"),
    domain.SessionUnavailable: (503, "session_unavailable"),
    domain.TemporalUnavailable: (503, "temporal_unavailable"),
}

# How soon a client may retry a 503.
RETRY_AFTER_S = 1

# The store is down, refuses connections, dropped one, or its pool is exhausted: the driver's
# errors as SQLAlchemy wraps them (``OperationalError``, ``InterfaceError``, a pool
# ``TimeoutError``), and connection errors raised before SQLAlchemy could wrap them.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa.OperationalError,
    sa.InterfaceError,
    sa.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def store_unavailable(exc: Exception) -> bool:
    """``exc`` says the store cannot be reached now (worth a retry), not that a query is wrong."""
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, STORE_UNAVAILABLE)


def store_unavailable_answer() -> JSONResponse:
    return JSONResponse(
        error_body("store_unavailable", "the store cannot be reached; retry"),
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _domain_answer(exc: domain.WorkflowCallError) -> JSONResponse:
    status, code = DOMAIN_ERRORS.get(type(exc), (503, "temporal_unavailable"))
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return JSONResponse(
        error_body(code, exc.message, exc.details), status_code=status, headers=headers
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(domain.WorkflowCallError)
    async def _domain_error(_: Request, exc: domain.WorkflowCallError) -> JSONResponse:
        return _domain_answer(exc)

    async def _store_error(_: Request, exc: Exception) -> JSONResponse:
        if not store_unavailable(exc):
            raise exc  # a bug, not an outage: the server error it is
        return store_unavailable_answer()

    for kind in (sa.DBAPIError, sa.TimeoutError, ConnectionError, TimeoutError):
        app.add_exception_handler(kind, _store_error)

    @app.exception_handler(InvalidCursor)
    async def _invalid_cursor(request: Request, _: InvalidCursor) -> JSONResponse:
        # Every listing pages with a ``cursor`` query parameter; one mapping for all of them.
        cursor = request.query_params.get("cursor")
        body = error_body("invalid_cursor", "the cursor is not valid", {"cursor": cursor})
        return JSONResponse(body, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), exclude={"ctx", "url", "input"})
        malformed = any(e.get("type") == "json_invalid" for e in errors)
        code, message = (
            ("malformed_json", "the request body is not valid JSON")
            if malformed
            else ("invalid_request", "the request is not valid")
        )
        return JSONResponse(error_body(code, message, {"errors": errors}), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )
