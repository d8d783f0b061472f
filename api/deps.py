"""Dependencies shared by the routes: settings, the Temporal client, store sessions, the
caller's project (from its API key, ``api.auth``), and the paging parameters of every listing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.auth import Principal, authenticate
from tether.secret_box import SecretBox
from tether.settings import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _temporal(request: Request) -> Client:
    return request.app.state.temporal


def _db_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.db


async def _db(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db() as session:
        yield session


def _project(principal: Annotated[Principal, Depends(authenticate)]) -> str:
    # The key's project: every query is scoped by it, so other projects' rows are not found.
    return principal.project_id


def _secret_box(request: Request) -> SecretBox:
    return request.app.state.secret_box


SettingsDep = Annotated[Settings, Depends(_settings)]
TemporalDep = Annotated[Client, Depends(_temporal)]
DbDep = Annotated[AsyncSession, Depends(_db)]
DbFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(_db_factory)]
ProjectDep = Annotated[str, Depends(_project)]
SecretBoxDep = Annotated[SecretBox, Depends(_secret_box)]


@dataclass(frozen=True)
class Page:
    """Which page of a keyset-paged listing: at most ``limit`` rows after ``cursor``."""

    limit: int
    cursor: str | None


def _page(
    limit: Annotated[int, Query(ge=1, le=500, description="rows per page")] = 50,
    cursor: Annotated[
        str | None, Query(description="the previous page's `next_cursor`; none: the first page")
    ] = None,
) -> Page:
    return Page(limit=limit, cursor=cursor)


PageDep = Annotated[Page, Depends(_page)]
