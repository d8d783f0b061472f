"""Identifiers: sortable run IDs, validated session IDs."""

from __future__ import annotations

import hashlib
import re

import uuid_utils

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_session_id_re = re.compile(SESSION_ID_PATTERN)


def new_run_id() -> str:
    """``run_`` + UUIDv7: unique, and sorts by creation time."""
    return f"run_{uuid_utils.uuid7().hex}"


def new_session_id() -> str:
    return f"s_{uuid_utils.uuid7().hex}"


def session_for_key(project_id: str, idempotency_key: str) -> str:
    """The session of an idempotent ``POST /v1/runs``: the same key always lands in it."""
    digest = hashlib.sha256(f"{project_id}\x00{idempotency_key}".encode()).hexdigest()
    return f"s_key_{digest[:32]}"


def is_valid_session_id(value: str) -> bool:
    return bool(_session_id_re.match(value))
