"""``ApplicationError`` types shared by workflows, activities and the API's error mapping."""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    SESSION_BUSY = "SessionBusy"
    SESSION_CLOSING = "SessionClosing"
    IDEMPOTENCY_CONFLICT = "IdempotencyConflict"
    UNKNOWN_AGENT = "UnknownAgent"
    RUNNER_LOST = "RunnerLost"
    RUNNER_REJECTED = "RunnerRejected"
