"""Instants as the store and Temporal hold them: a datetime with an offset must be one that
exists in UTC. ``0001-01-01T00:00:00+05:00`` parses, but is before year 1 in UTC, and would
overflow in the database driver or the Temporal client instead of being refused as input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def in_utc(value: datetime) -> datetime:
    """``value`` in UTC (naive values are left as they are); ``ValueError`` if out of range."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError as err:
        raise ValueError("the instant is out of range in UTC") from err


Instant = Annotated[datetime, AfterValidator(in_utc)]
