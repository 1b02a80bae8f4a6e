"""The default answer to every charger-initiated OCPP 1.6 action is valid.

Checked against the official OCPP 1.6 response schemas as the `ocpp` package ships them,
read directly (tests/official_schemas.py) rather than through `ocpplab.core.schemas` or the
dialect, so the adapter is not its own judge.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

from ocpplab.core.dialect import AnswerContext
from ocpplab.core.frames import Call, CallResult
from ocpplab.core.responder import (
    Reply,
    ResponderSettings,
    format_time,
    respond,
)
from ocpplab.dialects.ocpp16 import OCPP16
from tests.official_schemas import assert_official

NOW = datetime.datetime(2026, 11, 26, 14, 3, 5, 123456, tzinfo=datetime.UTC)
CONTEXT = AnswerContext(now=NOW, transaction_id=17)
# What strict chargers accept in currentTime: UTC with "Z" (QUIRKS.md).
UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")


def default_answer(action: str) -> Reply:
    answer = respond(
        Call("u-1", action, {}),
        ResponderSettings(),
        CONTEXT,
        [],
        manual_timeout=120.0,
        dialect=OCPP16,
    )
    assert isinstance(answer, Reply)
    return answer


def test_every_charger_action_of_ocpp16_and_its_security_extension_is_covered() -> None:
    assert set(OCPP16.charger_actions) == {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        "SecurityEventNotification",
        "SignCertificate",
        "LogStatusNotification",
        "SignedFirmwareStatusNotification",
    }


@pytest.mark.parametrize("action", OCPP16.charger_actions)
def test_the_default_answer_validates_against_the_official_response_schema(action: str) -> None:
    answer = default_answer(action)

    assert isinstance(answer.frame, CallResult)
    assert answer.frame.unique_id == "u-1"
    assert answer.delay == 0.0
    assert_official(action, answer.frame.payload, response=True)


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("BootNotification", {"status": "Accepted", "currentTime": "2026-11-26T14:03:05.123Z"}),
        ("Heartbeat", {"currentTime": "2026-11-26T14:03:05.123Z"}),
        ("Authorize", {"idTagInfo": {"status": "Accepted"}}),
        ("StartTransaction", {"idTagInfo": {"status": "Accepted"}, "transactionId": 17}),
        ("StopTransaction", {"idTagInfo": {"status": "Accepted"}}),
        ("StatusNotification", {}),
        ("MeterValues", {}),
        ("DiagnosticsStatusNotification", {}),
        ("FirmwareStatusNotification", {}),
        ("DataTransfer", {"status": "Accepted"}),
        ("SecurityEventNotification", {}),
        ("SignCertificate", {"status": "Accepted"}),
        ("LogStatusNotification", {}),
        ("SignedFirmwareStatusNotification", {}),
    ],
)
def test_the_default_answers_are_the_documented_ones(action: str, payload: dict[str, Any]) -> None:
    answered = default_answer(action).frame.payload  # type: ignore[union-attr]

    if action == "BootNotification":
        assert answered.pop("interval") == 60
    assert answered == payload


@pytest.mark.parametrize("action", ["BootNotification", "Heartbeat"])
def test_current_time_is_utc_with_z(action: str) -> None:
    current_time = default_answer(action).frame.payload["currentTime"]  # type: ignore[union-attr]

    assert UTC_Z.match(current_time)


def test_format_time_converts_other_offsets_to_utc_z() -> None:
    cest = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2026, 6, 1, 2, 0, 0, 5000, tzinfo=cest)

    assert format_time(moment) == "2026-06-01T00:00:00.005Z"


def test_only_start_transaction_consumes_a_transaction_id() -> None:
    using = [
        action for action in OCPP16.charger_actions if default_answer(action).uses_transaction_id
    ]

    assert using == ["StartTransaction"]
