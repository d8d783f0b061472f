"""The one mapping between a pydantic record and its table's row, derived from both by
column name (``RecordColumns``): the store modules build rows from records and records from
rows through it, so a new field with a column of its name needs no change anywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Table, inspect, null

from store.models import Base, UtcDateTime


@dataclass(frozen=True)
class RecordColumns:
    """The columns a pydantic record shares with a table, by name: the one mapping between a
    record and its row, derived from both, so a new field with a column of its name needs no
    change here or in the store modules.

    ``names`` are column names (``metadata``, as the record calls it), ``attributes`` the ORM
    attributes holding them (``metadata_``: ``metadata`` is taken on a declarative class).
    """

    table: Table
    names: tuple[str, ...]
    attributes: tuple[str, ...]
    json: frozenset[str]
    times: frozenset[str]

    @classmethod
    def of(cls, entity: type[Base], record: type[BaseModel]) -> RecordColumns:
        """The columns of ``entity``'s table that are fields of ``record``, in table order."""
        mapper = inspect(entity)
        table = mapper.local_table
        assert isinstance(table, Table)
        shared = [column for column in table.c if column.name in record.model_fields]
        return cls(
            table=table,
            names=tuple(column.name for column in shared),
            attributes=tuple(mapper.get_property_by_column(column).key for column in shared),
            json=frozenset(c.name for c in shared if isinstance(c.type, JSON)),
            times=frozenset(c.name for c in shared if isinstance(c.type, UtcDateTime)),
        )

    def row(self, record: BaseModel) -> dict[str, Any]:
        """``record``'s values keyed by column name, for a Core ``INSERT`` into the table.

        JSON columns get the JSON form, and SQL NULL rather than the JSON literal ``null`` for
        ``None``, so "IS NULL" means "absent"; times stay datetimes (``UtcDateTime`` makes
        them UTC); any other value gets its JSON form too (an enum its value).
        """
        dumped = record.model_dump(mode="json", include=set(self.names))
        row: dict[str, Any] = {}
        for name in self.names:
            if name in self.times:
                row[name] = getattr(record, name)
            elif name in self.json and dumped[name] is None:
                row[name] = null()
            else:
                row[name] = dumped[name]
        return row

    def fields(self, row: Base) -> dict[str, Any]:
        """The ORM ``row``'s values keyed by field name, for ``record.model_validate``.

        NULL columns are left out, so the record's default applies (``{}`` for a mapping).
        """
        values = zip(self.names, self.attributes, strict=True)
        return {
            name: value
            for name, attribute in values
            if (value := getattr(row, attribute)) is not None
        }
