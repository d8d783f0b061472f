"""Identifiers: sortable run IDs, validated session IDs."""

from __future__ import annotations

import re

import uuid_utils

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_session_id_re = re.compile(SESSION_ID_PATTERN)


def new_run_id() -> str:
    """``run_`` + UUIDv7: unique, and sorts by creation time."""
    return f"run_{uuid_utils.uuid7().hex}"


def new_session_id() -> str:
    return f"s_{uuid_utils.uuid7().hex}"


def is_valid_session_id(value: str) -> bool:
    return bool(_session_id_re.match(value))
