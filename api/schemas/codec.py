"""The bodies of the remote codec protocol the Temporal UI and CLI speak: Temporal's
``Payloads`` message in proto3 JSON, so every metadata value and the data are base64."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _is_base64(text: str) -> bool:
    """Standard or URL-safe base64, padded or not: what proto3 JSON accepts for bytes."""
    padded = text + "=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            base64.b64decode(padded, altchars=altchars, validate=True)
            return True
        except binascii.Error:
            continue
    return False


class CodecPayload(BaseModel):
    """One payload. Other fields of Temporal's ``Payload`` (``externalPayloads``) are kept."""

    model_config = ConfigDict(extra="allow")

    metadata: dict[str, str] = Field(
        default_factory=dict, description="metadata values, base64 (`encoding` and the like)"
    )
    data: str = Field("", description="the payload's bytes, base64")

    @field_validator("data")
    @classmethod
    def _data_is_base64(cls, value: str) -> str:
        if not _is_base64(value):
            raise ValueError("data is not base64")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_is_base64(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(key for key, text in value.items() if not _is_base64(text))
        if bad:
            raise ValueError(f"metadata values are not base64: {bad}")
        return value


class CodecPayloads(BaseModel):
    """Request and answer of `/codec/encode` and `/codec/decode`."""

    payloads: list[CodecPayload]
