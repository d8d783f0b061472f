"""The one way every Tether process connects to Temporal, and the search attributes it uses."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from tether.codec import codec_from_settings
from tether.settings import Settings

RUN_ID = SearchAttributeKey.for_keyword("TetherRunId")
SESSION_ID = SearchAttributeKey.for_keyword("TetherSessionId")
PROJECT_ID = SearchAttributeKey.for_keyword("TetherProjectId")
AGENT = SearchAttributeKey.for_keyword("TetherAgent")
RUN_STATUS = SearchAttributeKey.for_keyword("TetherRunStatus")
TRIGGER_ID = SearchAttributeKey.for_keyword("TetherTriggerId")

SEARCH_ATTRIBUTES = (RUN_ID, SESSION_ID, PROJECT_ID, AGENT, RUN_STATUS, TRIGGER_ID)


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic converter, plus the payload codec when payload keys are configured.

    With the codec, failure messages and stack traces move into the failure's encoded
    attributes, so they are encrypted too (an error may quote a run's input).
    """
    codec = codec_from_settings(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(settings: Settings) -> Client:
    """Connect with the shared data converter (pydantic, and the codec of the settings)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )
