"""What every API schema shares: strict request bodies, and public views built by field."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A request body: unknown fields are a 422, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Public(BaseModel):
    """An answer. Built from a record by ``of``, taking only the fields the schema declares."""

    @classmethod
    def of(cls, record: BaseModel, **extra: Any) -> Self:
        """The public view of ``record`` (plus ``extra`` fields it does not have)."""
        fields = set(cls.model_fields) - set(extra)
        return cls.model_validate({**record.model_dump(include=fields), **extra})
