"""The remote codec the Temporal UI (and ``temporal --codec-endpoint``) calls to show payloads
in clear: ``POST /codec/decode`` and ``POST /codec/encode``, Temporal's codec server protocol.

It runs the API's own payload codec (the Temporal client's, so the same keys as every worker).
Pages of the Temporal UI call it from the UI's origin, so these routes, and only these, answer
CORS for ``TETHER_CODEC_CORS_ORIGINS``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client
from temporalio.converter import PayloadCodec

from api.auth import CODEC_OPERATOR, CODEC_VIEWER
from api.deps import SettingsDep, TemporalDep
from api.errors import ApiError
from api.schemas.codec import CodecPayloads
from tether.codec import PayloadDecryptError
from tether.settings import Settings

PREFIX = "/codec"
router = APIRouter(prefix=PREFIX, tags=["codec"])

NamespaceHeader = Annotated[
    str | None,
    Header(alias="X-Namespace", description="the namespace the payloads belong to (the UI's)"),
]


def _parse(body: CodecPayloads) -> Payloads:
    try:
        return json_format.ParseDict(body.model_dump(), Payloads())
    except json_format.ParseError as err:
        raise ApiError(
            422, "invalid_payloads", f"not Temporal payloads in proto3 JSON: {err}"
        ) from err


def _answer(payloads: Payloads) -> CodecPayloads:
    as_json: dict[str, Any] = json_format.MessageToDict(payloads)
    return CodecPayloads.model_validate({"payloads": as_json.get("payloads", [])})


def _check_namespace(namespace: str | None, served: str) -> None:
    if namespace is not None and namespace != served:
        raise ApiError(
            400,
            "namespace_not_served",
            f"this codec serves namespace {served!r}, not {namespace!r}",
            {"namespace": namespace},
        )


def _request(
    body: CodecPayloads, namespace: str | None, temporal: Client, settings: Settings
) -> tuple[Payloads, PayloadCodec | None]:
    """The request's payloads, and the codec the workers use (``None``: encryption is off)."""
    _check_namespace(namespace, settings.temporal_namespace)
    return _parse(body), temporal.data_converter.payload_codec


@router.post("/decode", response_model=CodecPayloads, dependencies=[CODEC_VIEWER])
async def decode_payloads(
    body: CodecPayloads,
    temporal: TemporalDep,
    settings: SettingsDep,
    namespace: NamespaceHeader = None,
) -> CodecPayloads:
    """Decrypt payloads; payloads that are not encrypted come back as they are."""
    payloads, codec = _request(body, namespace, temporal, settings)
    if codec is not None:
        decoded = []
        for index, payload in enumerate(payloads.payloads):
            try:
                decoded.extend(await codec.decode([payload]))
            except PayloadDecryptError as err:
                raise ApiError(422, "payload_not_decodable", str(err), {"index": index}) from err
        payloads = Payloads(payloads=decoded)
    return _answer(payloads)


# Operator: what it encrypts, workers accept as ours.
@router.post("/encode", response_model=CodecPayloads, dependencies=[CODEC_OPERATOR])
async def encode_payloads(
    body: CodecPayloads,
    temporal: TemporalDep,
    settings: SettingsDep,
    namespace: NamespaceHeader = None,
) -> CodecPayloads:
    """Encrypt payloads with the current key (as they are when encryption is off)."""
    payloads, codec = _request(body, namespace, temporal, settings)
    if codec is not None:
        payloads = Payloads(payloads=await codec.encode(payloads.payloads))
    return _answer(payloads)


class CodecCORS:
    """CORS on ``/codec/*`` only: the UI's page may call the codec, nothing else of the API."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["Content-Type", "X-Namespace", "Authorization"],
            allow_credentials=True,  # the UI's "include cross-origin credentials" option
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install_cors(app: FastAPI, origins: list[str]) -> None:
    app.add_middleware(CodecCORS, origins=origins)
