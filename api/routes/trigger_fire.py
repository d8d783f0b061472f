"""``POST /v1/triggers/{id}/fire``: a webhook event, or "fire now" for a schedule.

A webhook is authenticated by its HMAC signature (``api.signatures``), not by an API key, so
a public endpoint can receive it; it is looked up by its random trigger ID. "Fire now" of a
schedule trigger needs an admin key of the trigger's project. The answer comes
as soon as the firing workflow has started (``202``), with the delivery and run IDs, which
are derived from the trigger and event ID: a duplicate event names the same ones.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import Headers

from api.auth import KeyIfSentDep, require_role, unauthenticated
from api.deps import DbDep, SecretBoxDep, SettingsDep, TemporalDep
from api.errors import ApiError, not_found
from api.json_input import InvalidJson, strict_loads
from api.schemas.triggers import DeliveryPublic, FireAccepted
from api.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from clients import schedules
from store import triggers
from store.keys import Role
from tether.ids import delivery_id_for, firing_run_id, firing_session_id, firing_workflow_id
from tether.templating import TemplateError, firing_context, lookup, render
from workflows.trigger_types import TriggerKind, TriggerRecord

router = APIRouter(prefix="/v1/triggers", tags=["triggers"])

# Event ID headers, first found wins: ours, then GitHub's delivery GUID.
EVENT_ID_HEADERS = ("X-Tether-Event-Id", "X-GitHub-Delivery")
_EVENT_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces


@router.post(
    "/{trigger_id}/fire",
    status_code=202,
    response_model=FireAccepted,
    responses={
        200: {"model": FireAccepted, "description": "this event was already fired"},
        401: {"description": "missing, invalid or expired webhook signature (or API key)"},
        403: {"description": "a schedule's fire now, with a key below admin"},
        409: {"description": "the trigger is paused"},
    },
    # Read raw (the signature covers the exact bytes), so declared here for the docs.
    openapi_extra={
        "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}}
    },
)
async def fire_trigger(
    trigger_id: str,
    request: Request,
    response: Response,
    db: DbDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: KeyIfSentDep,
    secret_box: SecretBoxDep,
) -> FireAccepted:
    """Fire the trigger.

    Webhook: the JSON body fills the input template. Headers ``X-Tether-Timestamp`` (unix
    seconds) and ``X-Tether-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw
    body>")>`` are required. The event ID is the body field ``webhook.event_id_field``, else
    the ``X-Tether-Event-Id`` (or ``X-GitHub-Delivery``) header, else derived from the signed
    request, so the same event fires once. Schedule: "fire now", as the schedule would; it
    needs an admin key of the trigger's project (a webhook needs no key: its signature is its
    credential).
    """
    found = await triggers.find_trigger(db, trigger_id)
    if found is None:
        raise not_found("trigger", trigger_id)
    trigger = found.record
    if trigger.kind == TriggerKind.SCHEDULE:
        if principal is None:
            raise unauthenticated(
                "firing a schedule trigger needs an admin key", code="missing_api_key"
            )
        if trigger.project_id != principal.project_id:
            raise not_found("trigger", trigger_id)
        require_role(principal, Role.ADMIN)
        _require_active(trigger)
        await schedules.fire_schedule(temporal, trigger_id)
        return FireAccepted(trigger_id=trigger_id, status="fired")

    body = await _read_body(request, settings.webhook_max_body_bytes)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    signature = request.headers.get(SIGNATURE_HEADER)
    secrets = found.signing_secrets(secret_box, datetime.now(UTC))
    try:
        verify(secrets, body, timestamp, signature, tolerance_s=settings.webhook_tolerance_s)
    except SignatureError as err:
        raise ApiError(401, err.code, err.message) from err
    _require_active(trigger)
    payload = _parse(body)
    event_id = _event_id(trigger, payload, request.headers, f"{timestamp}.".encode() + body)

    accepted = FireAccepted(
        trigger_id=trigger_id,
        status="started",
        delivery_id=delivery_id_for(trigger_id, event_id),
        event_id=event_id,
        run_id=firing_run_id(trigger_id, event_id),
        session_id=trigger.target.session_id or firing_session_id(trigger_id, event_id),
        firing_workflow_id=firing_workflow_id(trigger_id, event_id),
    )
    assert accepted.delivery_id is not None
    recorded = await triggers.get_delivery(db, trigger.project_id, accepted.delivery_id)
    if recorded is not None:  # fired before, maybe long ago: the same delivery
        response.status_code = 200
        return _duplicate(accepted, recorded)

    _check_renders(trigger, payload, event_id)
    if not await schedules.start_webhook_firing(temporal, trigger, event_id, payload, settings):
        response.status_code = 200
        recorded = await triggers.get_delivery(db, trigger.project_id, accepted.delivery_id)
        return _duplicate(accepted, recorded)
    return accepted


def _require_active(trigger: TriggerRecord) -> None:
    if trigger.paused:
        raise ApiError(
            409,
            "trigger_paused",
            f"trigger {trigger.trigger_id} is paused",
            {"trigger_id": trigger.trigger_id},
        )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"the body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"the body is over {limit} bytes")
    return bytes(body)


def _parse(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return strict_loads(body)
    except InvalidJson as err:
        raise ApiError(422, err.code, err.message) from err


def _event_id(trigger: TriggerRecord, payload: Any, headers: Headers, signed: bytes) -> str:
    field = trigger.webhook.event_id_field if trigger.webhook else None
    value = lookup(payload, field) if field else None
    if value is None:
        value = next((headers[h] for h in EVENT_ID_HEADERS if h in headers), None)
    if value is None:  # an exact replay of the same signed request is the same event
        return "sig_" + hashlib.sha256(signed).hexdigest()[:32]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(422, "invalid_event_id", "the event ID must be a string or an integer")
    event_id = str(value)
    if not _EVENT_ID.match(event_id):
        raise ApiError(
            422,
            "invalid_event_id",
            "the event ID must be 1-200 printable ASCII characters without spaces",
            {"event_id": event_id[:200]},
        )
    return event_id


def _check_renders(trigger: TriggerRecord, payload: Any, event_id: str) -> None:
    """422 now, rather than a rejected delivery later, if the body does not fit the template."""
    context = firing_context(
        payload=payload,
        event_id=event_id,
        event_time=datetime.now(UTC).isoformat(),
        source="webhook",
        trigger_id=trigger.trigger_id,
        trigger_name=trigger.name,
    )
    try:
        render(trigger.target.input, context)
    except TemplateError as err:
        raise ApiError(422, "template_error", str(err), {"event_id": event_id}) from err


def _duplicate(accepted: FireAccepted, recorded: Any) -> FireAccepted:
    delivery = DeliveryPublic.of(recorded) if recorded else None
    return accepted.model_copy(update={"duplicate": True, "delivery": delivery})
