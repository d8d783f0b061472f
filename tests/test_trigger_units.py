"""Pure parts of triggers: webhook signatures, input templates, firing IDs, schedule specs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from temporalio.client import ScheduleOverlapPolicy

from api.signatures import SignatureError, new_secret, sign, verify
from clients.schedules import build_schedule
from tether.ids import (
    delivery_id_for,
    firing_run_id,
    firing_session_id,
    firing_workflow_id,
    is_valid_session_id,
)
from tether.settings import Settings
from tether.templating import TemplateError, check_template, firing_context, render
from workflows.trigger_types import (
    DeliveryStatus,
    OverlapPolicy,
    ScheduleConfig,
    TriggerKind,
    TriggerRecord,
    TriggerTarget,
)
from workflows.types import RunStatus

SECRET = "whsec_test_secret_0123456789"
BODY = b'{"event_id": "e1", "pr": 42}'
NOW = 1_800_000_000


# Signatures.


def test_a_signed_request_verifies() -> None:
    verify(SECRET, BODY, str(NOW), sign(SECRET, NOW, BODY), tolerance_s=300, now=NOW + 10)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"sha256={expected}"


def test_any_of_several_signatures_may_match() -> None:
    both = f"{sign('whsec_old_secret_000000', NOW, BODY)}, {sign(SECRET, NOW, BODY)}"
    verify(SECRET, BODY, str(NOW), both, tolerance_s=300, now=NOW)


@pytest.mark.parametrize(
    ("body", "timestamp", "signature", "now", "code"),
    [
        (BODY, None, "sha256=00", NOW, "missing_signature"),
        (BODY, str(NOW), None, NOW, "missing_signature"),
        (BODY, "yesterday", "sha256=00", NOW, "invalid_signature"),
        (BODY + b" ", str(NOW), sign(SECRET, NOW, BODY), NOW, "invalid_signature"),
        (BODY, str(NOW), sign("whsec_another_secret_00", NOW, BODY), NOW, "invalid_signature"),
        (BODY, str(NOW + 1), sign(SECRET, NOW, BODY), NOW, "invalid_signature"),
        (BODY, str(NOW), sign(SECRET, NOW, BODY), NOW + 301, "signature_expired"),
        (BODY, str(NOW), sign(SECRET, NOW, BODY), NOW - 301, "signature_expired"),
        (BODY, str(NOW), "sha256=é", NOW, "invalid_signature"),
    ],
)
def test_bad_signatures_are_refused(
    body: bytes, timestamp: str | None, signature: str | None, now: int, code: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(SECRET, body, timestamp, signature, tolerance_s=300, now=now)
    assert caught.value.code == code


def test_secrets_are_random_and_long() -> None:
    assert new_secret() != new_secret() and len(new_secret()) > 40


# Templates.

CONTEXT = firing_context(
    payload={"pr": 42, "title": "Fix it", "labels": ["bug", "ui"], "user": {"login": "ada"}},
    event_id="e1",
    event_time="2026-01-01T00:00:00+00:00",
    source="webhook",
    trigger_id="trg_1",
    trigger_name="reviews",
)


def test_a_whole_placeholder_keeps_the_json_type() -> None:
    template = {"pr": "{{ payload.pr }}", "labels": "{{payload.labels}}", "all": "{{ payload }}"}
    assert render(template, CONTEXT) == {
        "pr": 42,
        "labels": ["bug", "ui"],
        "all": CONTEXT["payload"],
    }


def test_placeholders_inside_text_become_text() -> None:
    template = [
        "review PR #{{ payload.pr }} by {{ payload.user.login }}: {{ payload.labels.1 }}",
        "labels {{ payload.labels }} from {{ trigger.name }} ({{ event.source }} {{ event.id }})",
    ]
    assert render(template, CONTEXT) == [
        "review PR #42 by ada: ui",
        'labels ["bug","ui"] from reviews (webhook e1)',
    ]


def test_keys_and_other_values_are_left_alone() -> None:
    template = {"{{ payload.pr }}": 1, "n": 2.5, "flag": True, "none": None, "text": "{ x }"}
    assert render(template, CONTEXT) == template


def test_missing_paths_fail_unless_optional() -> None:
    with pytest.raises(TemplateError, match=r"payload\.missing"):
        render("{{ payload.missing }}", CONTEXT)
    with pytest.raises(TemplateError):
        render("PR {{ payload.labels.7 }}", CONTEXT)
    assert render("{{ payload.missing? }}", CONTEXT) is None
    assert render("[{{ payload.missing? }}]", CONTEXT) == "[]"
    schedule = {**CONTEXT, "payload": None}
    with pytest.raises(TemplateError):
        render("{{ payload.pr }}", schedule)


@pytest.mark.parametrize(
    "template", ["{{ }}", "{{ payload.pr + 1 }}", "{{ os.environ }}", ["{{ __class__ }}"]]
)
def test_malformed_placeholders_are_refused(template: object) -> None:
    with pytest.raises(TemplateError):
        check_template(template)


def test_rendering_never_evaluates_payload_text() -> None:
    context = {**CONTEXT, "payload": {"text": "{{ trigger.id }}"}}
    assert render("say {{ payload.text }}", context) == "say {{ trigger.id }}"


# Firing IDs.


def test_firing_ids_are_derived_from_trigger_and_event() -> None:
    assert delivery_id_for("trg_1", "e1") == delivery_id_for("trg_1", "e1")
    assert delivery_id_for("trg_1", "e1") != delivery_id_for("trg_1", "e2")
    assert delivery_id_for("trg_1", "e1") != delivery_id_for("trg_2", "e1")
    run_id = firing_run_id("trg_1", "e1")
    assert run_id.startswith("run_") and len(run_id) == 36
    assert is_valid_session_id(firing_session_id("trg_" + "a" * 32, "x" * 200))
    assert firing_workflow_id("trg_1", "e1") == "firing-trg_1-e1"


def test_delivery_statuses_only_move_forward() -> None:
    assert DeliveryStatus.PENDING.rank < DeliveryStatus.SUBMITTED.rank
    assert DeliveryStatus.SUBMITTED.rank < DeliveryStatus.FAILED.rank
    assert DeliveryStatus.of_run(RunStatus.RUNNING) == DeliveryStatus.SUBMITTED
    assert DeliveryStatus.of_run(RunStatus.FAILED) == DeliveryStatus.FAILED


# Schedules.


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"interval_s": 0.5},
        {"interval_s": 60, "interval_offset_s": 60},
        {"cron": ["0 * * * *"], "time_zone": "Mars/Olympus_Mons"},
        {"cron": ["0 * * * *"], "start_at": "2026-01-02T00:00:00Z", "end_at": "2026-01-01T00:00Z"},
        {"interval_s": 60, "overlap": "terminate_other"},
        {"interval_s": 60, "every": 5},
    ],
)
def test_invalid_schedule_configs(config: dict) -> None:
    with pytest.raises(ValidationError):
        ScheduleConfig.model_validate(config)


def test_build_schedule_maps_the_config() -> None:
    now = datetime.now(UTC)
    trigger = TriggerRecord(
        trigger_id="trg_1",
        project_id="default",
        name="nightly",
        kind=TriggerKind.SCHEDULE,
        target=TriggerTarget(agent="echo", input="hi"),
        schedule=ScheduleConfig(
            cron=["0 3 * * *"],
            interval_s=300,
            time_zone="Europe/Paris",
            jitter_s=5,
            overlap=OverlapPolicy.BUFFER_ONE,
            catchup_window_s=120,
        ),
        paused=True,
        created_at=now,
        updated_at=now,
    )
    schedule = build_schedule(trigger, Settings(task_queue="tq-x"))
    assert schedule.spec.cron_expressions == ["0 3 * * *"]
    assert schedule.spec.intervals[0].every == timedelta(minutes=5)
    assert schedule.spec.time_zone_name == "Europe/Paris"
    assert schedule.spec.jitter == timedelta(seconds=5)
    assert schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ONE
    assert schedule.policy.catchup_window == timedelta(minutes=2)
    assert schedule.state.paused
    assert schedule.action.id == "firing-trg_1"  # type: ignore[attr-defined]
    assert schedule.action.task_queue == "tq-x"  # type: ignore[attr-defined]
