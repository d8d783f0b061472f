"""JSON errors (``{"error": {"code", "message", "details"}}``) and the one place where
Temporal errors become HTTP errors."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from store.keyset import InvalidCursor
from workflows.errors import ErrorType


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind}_not_found", f"{kind} {ident!r} not found", {kind + "_id": ident})


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def from_temporal(err: Exception) -> ApiError | None:
    """Map a Temporal client error to the HTTP error a user should see, if it is one."""
    if isinstance(err, WorkflowUpdateFailedError) and isinstance(err.cause, ApplicationError):
        cause = err.cause
        details = cause.details[0] if cause.details else {}
        if cause.type == ErrorType.SESSION_BUSY:
            return ApiError(409, "session_busy", cause.message, details)
        if cause.type == ErrorType.IDEMPOTENCY_CONFLICT:
            return ApiError(409, "idempotency_conflict", cause.message, details)
    if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
        return ApiError(409, "run_not_active", "the run is no longer active")
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)

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
