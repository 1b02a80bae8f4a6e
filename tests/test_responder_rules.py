"""The responder, pure: every mode, placeholders, delay, strict vs lenient, manual fallback."""

from __future__ import annotations

import datetime

import pytest

from ocpplab.core.dialect import AnswerContext
from ocpplab.core.errors import InvalidRule
from ocpplab.core.frames import Call, CallError, CallResult
from ocpplab.core.responder import (
    ErrorSpec,
    Hold,
    Reply,
    ResponderSettings,
    Rule,
    Silence,
    fallback_answer,
    respond,
)
from ocpplab.dialects.ocpp16 import OCPP16

NOW = datetime.datetime(2026, 11, 26, 14, 3, 5, 123000, tzinfo=datetime.UTC)
CONTEXT = AnswerContext(NOW, transaction_id=7)
REPRESENTATIVE = ("BootNotification", "Authorize", "StartTransaction", "Heartbeat", "MeterValues")
VALID_REQUESTS = {
    "BootNotification": {"chargePointVendor": "V", "chargePointModel": "M"},
    "Authorize": {"idTag": "TAG"},
    "StartTransaction": {
        "connectorId": 1,
        "idTag": "TAG",
        "meterStart": 0,
        "timestamp": "2026-11-26T14:00:00Z",
    },
    "Heartbeat": {},
    "MeterValues": {
        "connectorId": 1,
        "meterValue": [{"timestamp": "2026-11-26T14:00:00Z", "sampledValue": [{"value": "1"}]}],
    },
}


def answer(action: str, rule: Rule, *, validation: str = "lenient", payload: object = None):  # type: ignore[no-untyped-def]
    settings = ResponderSettings({action: rule}, validation)  # type: ignore[arg-type]
    call = Call("id-1", action, VALID_REQUESTS[action] if payload is None else payload)
    violations = OCPP16.validate(action, call.payload, False)
    return respond(call, settings, CONTEXT, violations, manual_timeout=60, dialect=OCPP16)


@pytest.mark.parametrize("action", REPRESENTATIVE)
def test_default_mode_answers_with_a_valid_payload(action: str) -> None:
    result = answer(action, Rule())
    assert isinstance(result, Reply)
    assert isinstance(result.frame, CallResult)
    assert result.frame.unique_id == "id-1"
    assert OCPP16.validate(action, result.frame.payload, True) == []


@pytest.mark.parametrize("action", REPRESENTATIVE)
def test_custom_mode_answers_with_the_payload(action: str) -> None:
    result = answer(action, Rule(mode="custom", payload={"anything": ["goes", 1]}))
    assert isinstance(result, Reply)
    assert result.frame == CallResult("id-1", {"anything": ["goes", 1]})


@pytest.mark.parametrize("action", REPRESENTATIVE)
def test_error_mode_answers_with_the_callerror(action: str) -> None:
    spec = ErrorSpec("SecurityError", "no", {"why": "test"})
    result = answer(action, Rule(mode="error", error=spec))
    assert isinstance(result, Reply)
    assert result.frame == CallError("id-1", "SecurityError", "no", {"why": "test"})


@pytest.mark.parametrize("action", REPRESENTATIVE)
def test_ignore_mode_answers_nothing(action: str) -> None:
    assert isinstance(answer(action, Rule(mode="ignore")), Silence)


@pytest.mark.parametrize("action", REPRESENTATIVE)
def test_manual_mode_holds_the_call_with_the_default_proposed(action: str) -> None:
    result = answer(action, Rule(mode="manual", timeout=30, fallback="ignore"))
    assert isinstance(result, Hold)
    assert result.call.action == action
    assert result.timeout == 30
    assert result.fallback == "ignore"
    assert OCPP16.validate(action, result.proposal, True) == []


def test_manual_mode_uses_the_server_timeout_when_the_rule_has_none() -> None:
    result = answer("Heartbeat", Rule(mode="manual"))
    assert isinstance(result, Hold)
    assert result.timeout == 60


def test_manual_mode_prefills_the_custom_payload() -> None:
    rule = Rule(mode="manual", payload={"currentTime": "{now}"})
    result = answer("Heartbeat", rule)
    assert isinstance(result, Hold)
    assert result.proposal == {"currentTime": "2026-11-26T14:03:05.123Z"}


@pytest.mark.parametrize("mode", ["default", "custom", "error"])
def test_delay_applies_to_any_answering_mode(mode: str) -> None:
    rule = Rule.from_json(
        {"mode": mode, "payload": {}, "error": {"code": "GenericError"}, "delay": 2.5}
    )
    result = answer("Heartbeat", rule)
    assert isinstance(result, Reply)
    assert result.delay == 2.5


def test_manual_hold_carries_the_delay() -> None:
    result = answer("Heartbeat", Rule(mode="manual", delay=4))
    assert isinstance(result, Hold)
    assert result.delay == 4


def test_placeholders_are_filled_at_answer_time() -> None:
    rule = Rule(
        mode="custom",
        payload={
            "idTagInfo": {"status": "Accepted", "expiryDate": "{now}"},
            "transactionId": "{transactionId}",
        },
    )
    result = answer("StartTransaction", rule)
    assert isinstance(result, Reply)
    assert result.frame.payload == {  # type: ignore[union-attr]
        "idTagInfo": {"status": "Accepted", "expiryDate": "2026-11-26T14:03:05.123Z"},
        "transactionId": 7,
    }
    assert result.uses_transaction_id


def test_a_fixed_transaction_id_does_not_use_up_the_counter() -> None:
    rule = Rule(mode="custom", payload={"idTagInfo": {"status": "Accepted"}, "transactionId": 42})
    result = answer("StartTransaction", rule)
    assert isinstance(result, Reply)
    assert not result.uses_transaction_id


def test_default_start_transaction_uses_the_next_transaction_id() -> None:
    result = answer("StartTransaction", Rule())
    assert isinstance(result, Reply)
    assert result.frame.payload["transactionId"] == 7  # type: ignore[union-attr]
    assert result.uses_transaction_id


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"chargePointVendor": "V"}, "OccurenceConstraintViolation"),
        ({"chargePointVendor": 5, "chargePointModel": "M"}, "TypeConstraintViolation"),
        ({"chargePointVendor": "V" * 21, "chargePointModel": "M"}, "PropertyConstraintViolation"),
        ({"chargePointVendor": "V", "chargePointModel": "M", "Vendor": 1}, "FormationViolation"),
    ],
)
def test_strict_mode_answers_with_the_prescribed_error_code(payload: object, code: str) -> None:
    result = answer("BootNotification", Rule(), validation="strict", payload=payload)
    assert isinstance(result, Reply)
    assert isinstance(result.frame, CallError)
    assert result.frame.code == code
    assert result.frame.details["violations"]


@pytest.mark.parametrize(
    "payload",
    [
        # Real chargers: numeric sampledValue.value, local time without offset, units outside
        # the enum, a vendor field the schema forbids.
        {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": "2026-11-26T14:00:00",
                    "sampledValue": [{"value": 230.1, "unit": "Hz", "vendorField": 1}],
                }
            ],
        },
    ],
)
def test_lenient_mode_answers_what_real_chargers_send(payload: object) -> None:
    violations = OCPP16.validate("MeterValues", payload, False)
    assert len(violations) >= 4  # every violation is listed, not only the first
    result = answer("MeterValues", Rule(), payload=payload)
    assert isinstance(result, Reply)
    assert result.frame == CallResult("id-1", {})


def test_strict_mode_still_answers_valid_calls_as_configured() -> None:
    result = answer(
        "Authorize",
        Rule(mode="custom", payload={"idTagInfo": {"status": "Blocked"}}),
        validation="strict",
    )
    assert isinstance(result, Reply)
    assert result.frame == CallResult("id-1", {"idTagInfo": {"status": "Blocked"}})


def test_fallback_default_answers_with_the_default() -> None:
    hold = answer("Heartbeat", Rule(mode="manual", fallback="default"))
    assert isinstance(hold, Hold)
    result = fallback_answer(hold, CONTEXT, dialect=OCPP16)
    assert isinstance(result, Reply)
    assert result.frame == CallResult("id-1", {"currentTime": "2026-11-26T14:03:05.123Z"})


def test_fallback_ignore_answers_nothing() -> None:
    hold = answer("Heartbeat", Rule(mode="manual", fallback="ignore"))
    assert isinstance(hold, Hold)
    assert isinstance(fallback_answer(hold, CONTEXT, dialect=OCPP16), Silence)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "loud"}, "mode must be one of"),
        ({"mode": "custom"}, "needs a payload"),
        ({"mode": "error"}, "needs an error"),
        ({"mode": "error", "error": {"code": ""}}, "error.code"),
        ({"delay": 301}, "between 0 and 300"),
        ({"delay": "soon"}, "number of seconds"),
        ({"mode": "manual", "timeout": 0}, "between 1 and 3600"),
        ({"mode": "manual", "fallback": "panic"}, "fallback must be"),
        ({"payload": [1]}, "payload must be a JSON object"),
        ({"colour": "red"}, "unknown field"),
        ([], "a rule is a JSON object"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(data: object, message: str) -> None:
    with pytest.raises(InvalidRule, match=message):
        Rule.from_json(data)


def test_rules_round_trip_through_json() -> None:
    rule = Rule.from_json(
        {"mode": "manual", "payload": {"a": 1}, "delay": 1.5, "timeout": 20, "fallback": "ignore"}
    )
    assert Rule.from_json(rule.to_json()) == rule
    settings = ResponderSettings({"Heartbeat": rule}, "strict")
    assert ResponderSettings.from_json(settings.to_json(), OCPP16.charger_actions) == settings


def test_settings_keep_only_the_rules_of_the_dialect_s_charger_actions() -> None:
    data = {"rules": {"Heartbeat": {"mode": "ignore"}, "Reset": {"mode": "ignore"}}}

    kept = ResponderSettings.from_json(data, OCPP16.charger_actions)

    assert set(kept.rules) == {"Heartbeat"}
    assert ResponderSettings.from_json(data, ("Reset",)).rules == {"Reset": Rule(mode="ignore")}
    assert set(ResponderSettings.from_json(data).rules) == {"Heartbeat", "Reset"}


def test_the_dialect_s_transaction_action_consumes_an_id_also_as_a_fallback() -> None:
    hold = answer("StartTransaction", Rule(mode="manual", fallback="default"))
    assert isinstance(hold, Hold)
    result = fallback_answer(hold, CONTEXT, dialect=OCPP16)
    assert isinstance(result, Reply)
    assert result.uses_transaction_id
    assert result.frame == CallResult(
        "id-1", {"idTagInfo": {"status": "Accepted"}, "transactionId": 7}
    )


def test_setting_the_default_rule_removes_the_entry() -> None:
    settings = ResponderSettings().with_rule("Heartbeat", Rule(mode="ignore"))
    assert settings.rule("Heartbeat").mode == "ignore"
    assert settings.with_rule("Heartbeat", None).rules == {}
