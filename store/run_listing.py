"""The keyset listing behind ``store.runs.list_runs``, imported by that module only.

``store.runs`` builds the filters and maps rows to ``RunState``; this module orders and pages
them: the orders and their index-friendly segments, the opaque cursor, and the range-first
planner. Pagination guarantees (keyset on ``(order key, run_id)``, see ``store.keyset``):

- Runs inserted while paging never make a page skip or repeat a run. A new run shows up in a
  later page if it sorts after the cursor (``created_at`` asc: new runs come at the end), and
  never if it sorts before it (``created_at`` desc: new runs are at the front, already passed).
- ``created_at`` never changes once written, so paging by ``created_at`` (either direction)
  returns every run that existed when paging began and matches the filters exactly once,
  however the runs progress meanwhile.
- ``updated_at``, ``ended_at`` and ``status`` change as runs progress: a run whose key changes
  between two page fetches can move across the cursor and be returned twice or not at all.
  Only inserts are guaranteed not to disturb these orders.
- ``ended_at`` is NULL until a run ends. NULL sorts before every time: last with ``desc``,
  first with ``asc``, the same on SQLite and PostgreSQL.
- ``status`` orders by the status name, then ``created_at``, then ``run_id``.

Every filter and order is served by an index starting with ``project_id`` (``store.models``);
a created range combined with an ``updated_at``/``ended_at`` order is planned by
``_range_first``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, Select, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from store.keyset import Direction, ValueKind, after, decode_position, encode_position
from store.models import Interaction, RunRow

RunOrder = Literal["created_at", "updated_at", "ended_at", "status"]

# ``(project_id, runs)`` -> the ``(RunRow, Interaction | None)`` rows of the project's runs, where
# ``runs`` is ``RunRow`` or an ``aliased(RunRow, subquery)`` that already narrowed them down.
WithPending = Callable[[str, Any], Select[RunRow, Interaction]]
RunAndPending = tuple[RunRow, Interaction | None]

_LISTING = "runs"


@dataclass(frozen=True)
class _Segment:
    """A stretch of the listing paged with one index-friendly keyset query.

    A nullable order key cannot be paged with one range over the index (``x < k OR x IS
    NULL`` is no range), so its rows are two segments, the NULL ones paged by ``run_id``.
    """

    where: ColumnElement[bool] | None
    columns: tuple[Any, ...]  # keyset order of the segment, ``run_id`` last
    null_key: bool  # rows here have a NULL first order key (dropped from the keyset)

    def holds(self, position: Sequence[Any]) -> bool:
        return (position[0] is None) == self.null_key

    def keyset(self, position: Sequence[Any]) -> list[Any]:
        return list(position[1:] if self.null_key else position)


@dataclass(frozen=True)
class _Order:
    keys: tuple[str, ...]  # attributes of the order key; ``run_id`` follows
    kinds: tuple[ValueKind, ...]  # cursor value kinds of keys + run_id
    nullable: bool = False

    def segments(self, direction: Direction, runs: Any) -> list[_Segment]:
        columns = (*(getattr(runs, key) for key in self.keys), runs.run_id)
        if not self.nullable:
            return [_Segment(None, columns, null_key=False)]
        key = columns[0]
        values = _Segment(key.is_not(None), columns, null_key=False)
        nulls = _Segment(key.is_(None), (runs.run_id,), null_key=True)
        # NULL sorts before every value, as SQLite does natively.
        return [nulls, values] if direction == "asc" else [values, nulls]


_ORDERS: dict[str, _Order] = {
    "created_at": _Order(("created_at",), ("datetime", "str")),
    "updated_at": _Order(("updated_at",), ("datetime", "str")),
    "ended_at": _Order(("ended_at",), ("datetime?", "str"), nullable=True),
    "status": _Order(("status", "created_at"), ("str", "datetime", "str")),
}


def _order(order_by: str, direction: str) -> _Order:
    if order_by not in _ORDERS:
        raise ValueError(f"order_by must be one of {sorted(_ORDERS)}, not {order_by!r}")
    if direction not in get_args(Direction):
        raise ValueError(f"direction must be 'asc' or 'desc', not {direction!r}")
    return _ORDERS[order_by]


def _cursor(run: RunRow, order_by: str, direction: Direction) -> str:
    """The cursor that resumes the listing right after ``run`` in this order."""
    values = [getattr(run, key) for key in _ORDERS[order_by].keys]
    return encode_position(_LISTING, order_by, direction, [*values, run.run_id])


# How many runs the range-first probe counts at most (two index-only counts).
RANGE_PROBE_CAP = 5_000


async def _range_first(
    session: AsyncSession,
    project_id: str,
    created_after: datetime | None,
    created_before: datetime | None,
    direction: Direction,
) -> bool:
    """Whether to read the created range first and sort it, rather than walk the order index.

    Only asked for ``updated_at``/``ended_at`` orders with a created range. Those keys follow
    ``created_at`` closely (a run is updated and ends soon after it starts), so the range's
    runs sit together in the order index; the planner assumes they are spread evenly and
    walks the index from its end, passing every run between that end and the range (35-85 ms
    at 100k runs for an old one-day range on PostgreSQL, against ~10 ms range-first; see
    ``bench/list_runs.py``). The walk passes about the runs created beyond the range on the
    side it starts from; range-first reads and sorts the runs in the range. Two index-only
    counts, capped at ``RANGE_PROBE_CAP``, tell which is fewer (range-first on a tie: it is
    bounded by the range). A range of many thousand runs far from where the walk starts
    stays slow either way (tens of ms at 100k runs): both read that many rows.
    """
    beyond: ColumnElement[bool] | None
    if direction == "desc":
        beyond = None if created_before is None else RunRow.created_at >= created_before
    else:
        beyond = None if created_after is None else RunRow.created_at < created_after
    if beyond is None:
        return False  # the walk starts inside the range: it finds its page at once
    in_range = [RunRow.created_at >= created_after] if created_after is not None else []
    if created_before is not None:
        in_range.append(RunRow.created_at < created_before)

    def capped(*conditions: ColumnElement[bool]) -> Any:
        runs = select(literal(1)).where(RunRow.project_id == project_id, *conditions)
        limited = runs.limit(RANGE_PROBE_CAP).subquery()
        return select(func.count()).select_from(limited).scalar_subquery()

    size, passed = (await session.execute(select(capped(*in_range), capped(beyond)))).one()
    return bool(size <= passed)


async def page(
    session: AsyncSession,
    project_id: str,
    with_pending: WithPending,
    filters: Sequence[ColumnElement[bool]],
    *,
    created_after: datetime | None,
    created_before: datetime | None,
    order_by: RunOrder,
    direction: Direction,
    limit: int,
    cursor: str | None,
) -> tuple[list[RunAndPending], str | None]:
    """A page of the project's runs matching ``filters`` and the cursor of the next one.

    ``filters`` are conditions on ``RunRow``, the created range among them; the range is given
    again to plan the query. Ordered by ``order_by`` then ``run_id``, both in ``direction``.
    ``ValueError`` on an unknown order or a limit below 1, ``InvalidCursor`` on a cursor that
    is malformed or made for another order.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    order = _order(order_by, direction)
    position = None
    if cursor is not None:
        position = decode_position(cursor, _LISTING, order_by, direction, order.kinds)

    runs: Any = RunRow
    stmt = with_pending(project_id, runs).where(*filters)
    ranged = created_after is not None or created_before is not None
    if (
        ranged
        and order_by in ("updated_at", "ended_at")
        and await _range_first(session, project_id, created_after, created_before, direction)
    ):
        # OFFSET 0 keeps the planner from merging the subquery into the outer query: the
        # range is read by the created_at index, then sorted (both backends honour it).
        narrowed = select(RunRow).where(RunRow.project_id == project_id, *filters).offset(0)
        runs = aliased(RunRow, narrowed.subquery())
        stmt = with_pending(project_id, runs)

    rows: list[RunAndPending] = []
    for segment in order.segments(direction, runs):
        query = stmt if segment.where is None else stmt.where(segment.where)
        if position is not None:
            if not segment.holds(position):
                continue  # the cursor is further on
            query = query.where(after(segment.columns, segment.keyset(position), direction))
            position = None  # later segments start from their beginning
        sort = [c.asc() if direction == "asc" else c.desc() for c in segment.columns]
        # One row more than asked tells whether there is a next page.
        query = query.order_by(*sort).limit(limit + 1 - len(rows))
        rows += [(run, interaction) for run, interaction in (await session.execute(query)).all()]
        if len(rows) > limit:
            break
    next_cursor = _cursor(rows[limit - 1][0], order_by, direction) if len(rows) > limit else None
    return rows[:limit], next_cursor
