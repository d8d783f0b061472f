"""Keyset pagination: opaque cursors and the "rows after this position" predicate.

A listing is totally ordered by a tuple of columns that ends with a unique ID, e.g.
``(created_at, run_id)``. A cursor is the position of the last row of a page, and the next page
is "the rows strictly after it" in that order. Unlike an offset, this neither skips nor repeats
rows when rows are inserted between pages; a row whose order key changes between pages may
move across the cursor (be seen twice, or not at all), which callers document per order.

The cursor names the listing, order and direction it was made for, so it cannot be replayed
against another order, where its position would mean nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import QueryableAttribute

Direction = Literal["asc", "desc"]
# Type of each position value: ``datetime`` values travel as ISO 8601 text.
ValueKind = Literal["datetime", "str", "datetime?"]
Column = ColumnElement[Any] | QueryableAttribute[Any]


class InvalidCursor(ValueError):
    """The pagination cursor is not one this module produced for this listing and order."""


def encode_position(listing: str, order_by: str, direction: str, values: Sequence[Any]) -> str:
    """The opaque cursor of ``values`` (the order key of a row, ID last) in this listing."""
    key = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    payload = {"l": listing, "o": order_by, "d": direction, "k": key}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(
    cursor: str, listing: str, order_by: str, direction: str, kinds: Sequence[ValueKind]
) -> list[Any]:
    """Inverse of ``encode_position``; ``InvalidCursor`` unless made for this very order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:  # also bad UTF-8, bad JSON
        raise InvalidCursor(f"invalid cursor: {cursor!r}") from exc
    if not isinstance(payload, dict) or payload.get("l") != listing:
        raise InvalidCursor(f"invalid cursor: {cursor!r}")
    if (payload.get("o"), payload.get("d")) != (order_by, direction):
        raise InvalidCursor(
            f"cursor made for order {payload.get('o')!r} {payload.get('d')!r}, "
            f"used with {order_by!r} {direction!r}"
        )
    key = payload.get("k")
    if not isinstance(key, list) or len(key) != len(kinds):
        raise InvalidCursor(f"invalid cursor: {cursor!r}")
    return [_decode_value(value, kind, cursor) for value, kind in zip(key, kinds, strict=True)]


def _decode_value(value: Any, kind: ValueKind, cursor: str) -> Any:
    if value is None and kind == "datetime?":
        return None
    if not isinstance(value, str):
        raise InvalidCursor(f"invalid cursor: {cursor!r}")
    if kind == "str":
        if not value.isascii() or "\x00" in value:  # IDs and names we made; a lone surrogate
            raise InvalidCursor(f"invalid cursor: {cursor!r}")  # could not even be bound
        return value
    try:
        stamp = datetime.fromisoformat(value)
        if stamp.tzinfo is None:  # every stored instant is UTC-aware; anything else is forged
            raise ValueError("naive")
        return stamp.astimezone(UTC)  # year 1 at +01:00 overflows here, not in the driver
    except (ValueError, OverflowError) as exc:
        raise InvalidCursor(f"invalid cursor: {cursor!r}") from exc


def after(
    columns: Sequence[Column], values: Sequence[Any], direction: Direction
) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order ``columns`` (all ``direction``, no NULLs).

    Spelled as nested ``OR``/``AND`` (portable, unlike row values on every backend) plus a
    redundant bound on the first column, which both planners turn into an index range start.
    """
    first, *_ = columns
    beyond = _gt if direction == "asc" else _lt
    condition = beyond(columns[-1], values[-1])
    for column, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
        condition = or_(beyond(column, value), and_(column == value, condition))
    bound = first >= values[0] if direction == "asc" else first <= values[0]
    return and_(bound, condition)


def _gt(column: Column, value: Any) -> ColumnElement[bool]:
    return column > value


def _lt(column: Column, value: Any) -> ColumnElement[bool]:
    return column < value
