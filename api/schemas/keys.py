"""Bodies of ``/v1/keys``: a project's API keys. The token is in the creation answer only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.base import Body, Public
from store.keys import Role

# The longest lifetime a key may be given at creation: ten years, in seconds.
MAX_EXPIRES_IN_S = 10 * 365 * 24 * 3600


class KeyCreate(Body):
    name: str = Field(
        min_length=1,
        max_length=128,
        description="who holds the key: the actor recorded for its answers and cancels",
    )
    role: Role = Field(description="viewer < operator < admin")
    expires_in_s: int | None = Field(
        None, ge=1, le=MAX_EXPIRES_IN_S, description="seconds until it expires; none: never"
    )


class KeyPublic(Public):
    """A key as listed: never its token or hash."""

    key_id: str
    project_id: str
    name: str
    role: Role
    prefix: str = Field(description="the token's visible start, `tk_<key_id>`")
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = Field(None, description="to the minute")
    revoked_at: datetime | None = None


class KeyCreated(KeyPublic):
    token: str = Field(description="the key itself: shown once, here, and stored only hashed")


class KeyList(BaseModel):
    keys: list[KeyPublic]
