"""The one way every Tether process connects to Temporal, and the search attributes it uses."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter

from tether.settings import Settings

RUN_ID = SearchAttributeKey.for_keyword("TetherRunId")
SESSION_ID = SearchAttributeKey.for_keyword("TetherSessionId")
PROJECT_ID = SearchAttributeKey.for_keyword("TetherProjectId")
AGENT = SearchAttributeKey.for_keyword("TetherAgent")
RUN_STATUS = SearchAttributeKey.for_keyword("TetherRunStatus")
TRIGGER_ID = SearchAttributeKey.for_keyword("TetherTriggerId")

SEARCH_ATTRIBUTES = (RUN_ID, SESSION_ID, PROJECT_ID, AGENT, RUN_STATUS, TRIGGER_ID)


async def connect(settings: Settings) -> Client:
    """Connect with the shared pydantic data converter."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
