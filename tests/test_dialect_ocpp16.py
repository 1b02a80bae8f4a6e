"""The OCPP 1.6 dialect as data, and the core's checks run with a made-up dialect. Pure.

Payloads are judged with the official schema files and `jsonschema` directly
(tests/official_schemas.py), never only through the dialect, so it is not its own judge.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest

from ocpplab.core import schemas
from ocpplab.core.clock import SystemClock
from ocpplab.core.connection import Connection, Limits, PendingCheck
from ocpplab.core.dialect import AnswerContext, Dialect, choose
from ocpplab.core.frames import Call, CallError, check_call
from ocpplab.core.messages import Connected
from ocpplab.core.replay import ReplayBudget
from ocpplab.core.responder import (
    Reply,
    ResponderSettings,
    Sequence,
    fill_placeholders,
    respond,
    rule_from_json,
)
from ocpplab.core.schemas import SchemaSet, Violation
from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.dialects.ocpp16.state import ChargerState
from ocpplab.server.checking import CheckRunner
from ocpplab.web.templating import make_templates
from tests.official_schemas import assert_official, official_schema

NOW = datetime.datetime(2026, 11, 26, 14, 3, 5, 123000, tzinfo=datetime.UTC)
CONTEXT = AnswerContext(NOW, transaction_id=42)
ALL_ACTIONS = sorted(set(OCPP16.charger_actions) | set(OCPP16.central_actions))


# Actions by direction (OCPP 1.6 sections 3.1, 4 and 5)


def test_the_dialect_names_its_version_and_subprotocol() -> None:
    assert (OCPP16.name, OCPP16.subprotocol) == ("OCPP 1.6", "ocpp1.6")
    assert choose((OCPP16,), ["ocpp2.0.1", "ocpp1.6"]) is OCPP16
    assert choose((OCPP16,), ["ocpp2.0.1"]) is None


def test_only_data_transfer_goes_both_ways() -> None:
    # OCPP 1.6 sections 4.3 and 5.6: DataTransfer is the one action either side may send.
    assert set(OCPP16.charger_actions) & set(OCPP16.central_actions) == {"DataTransfer"}


def test_no_action_is_listed_twice_nor_in_two_profiles() -> None:
    assert len(set(OCPP16.charger_actions)) == len(OCPP16.charger_actions)
    assert len(set(OCPP16.central_actions)) == len(OCPP16.central_actions)
    assert OCPP16.profile_of("Reset") == "Core"
    assert OCPP16.profile_of("GetLog") == "Security"
    assert OCPP16.profile_of("Heartbeat") is None


def test_the_directions_are_the_specification_s() -> None:
    assert OCPP16.is_charger_action("StartTransaction")
    assert not OCPP16.is_central_action("StartTransaction")
    assert OCPP16.is_central_action("RemoteStartTransaction")
    assert not OCPP16.is_charger_action("RemoteStartTransaction")
    assert OCPP16.transaction_action == "StartTransaction"
    assert OCPP16.transaction_action in OCPP16.charger_actions
    assert not OCPP16.knows("TransactionEvent")  # OCPP 2.0.1's


def test_the_error_codes_are_ocpp_j_1_6_s_spellings() -> None:
    # OCPP-J 1.6 section 4.2.3; 2.0.1 renamed two of them.
    assert "OccurenceConstraintViolation" in OCPP16.error_codes
    assert "FormationViolation" in OCPP16.error_codes
    assert "OccurrenceConstraintViolation" not in OCPP16.error_codes
    assert "FormatViolation" not in OCPP16.error_codes
    assert len(set(OCPP16.error_codes)) == len(OCPP16.error_codes) == 10


def test_every_code_a_schema_violation_maps_to_is_one_of_the_dialect_s() -> None:
    codes = set(schemas._CODE_BY_KEYWORD.values()) | {schemas._code_of("anything else")}

    assert codes <= set(OCPP16.error_codes)
    assert schemas.strictest_code([]) in OCPP16.error_codes


# Schemas


@pytest.mark.parametrize("action", ALL_ACTIONS)
@pytest.mark.parametrize("response", [False, True], ids=["request", "answer"])
def test_every_action_has_the_official_request_and_answer_schema(
    action: str, response: bool
) -> None:
    assert OCPP16.schema(action, response) == official_schema(action, response=response)


@pytest.mark.parametrize("action", ["TransactionEvent", "heartbeat", ""])
def test_an_action_the_dialect_does_not_know_has_no_schema(action: str) -> None:
    with pytest.raises(KeyError):
        OCPP16.schema(action, False)


def test_validate_lists_violations_with_their_codes() -> None:
    assert OCPP16.validate("Heartbeat", {}, False) == []
    assert OCPP16.validate("Heartbeat", {"extra": 1}, response=False) == [
        Violation(
            "$",
            "Additional properties are not allowed ('extra' was unexpected)",
            "FormationViolation",
        )
    ]
    answer = {"status": "Maybe", "currentTime": "2026-11-26T14:03:05Z", "interval": 60}
    assert OCPP16.validate("BootNotification", answer, True) == [
        Violation(
            "$.status",
            "'Maybe' is not one of ['Accepted', 'Pending', 'Rejected']",
            "PropertyConstraintViolation",
        )
    ]


def test_a_valid_heartbeat_validates_in_microseconds() -> None:
    OCPP16.validate("Heartbeat", {}, False)  # compiled on first use
    started = time.perf_counter()
    for _ in range(10_000):
        OCPP16.validate("Heartbeat", {}, False)
    # ~1 µs each; 100 µs each leaves room for a loaded machine, not for recompiling.
    assert time.perf_counter() - started < 1.0


# Default answers (OCPP 1.6 section 4)


@pytest.mark.parametrize("action", OCPP16.charger_actions)
def test_every_default_answer_is_valid_by_the_official_schema(action: str) -> None:
    payload = OCPP16.default_answer(action, CONTEXT)

    assert_official(action, payload, response=True)
    assert OCPP16.validate(action, payload, True) == []


def test_the_transaction_action_s_default_answer_hands_out_the_context_s_id() -> None:
    assert OCPP16.transaction_action is not None
    assert OCPP16.default_answer(OCPP16.transaction_action, CONTEXT)["transactionId"] == 42


@pytest.mark.parametrize("action", OCPP16.central_actions)
def test_every_example_request_is_valid_by_the_official_schema(action: str) -> None:
    assert_official(action, OCPP16.example_request(action, NOW), response=False)


# Presets


@pytest.mark.parametrize("preset", OCPP16.presets, ids=lambda preset: preset.key)
def test_every_preset_is_a_valid_rule_with_a_valid_answer(preset: Any) -> None:
    parsed = rule_from_json(dict(preset.rule))
    rules = [step.rule for step in parsed.steps] if isinstance(parsed, Sequence) else [parsed]

    assert preset.action is None or OCPP16.is_charger_action(preset.action)
    for rule in rules:
        if rule.payload is not None:
            assert preset.action is not None
            filled, _ = fill_placeholders(rule.payload, CONTEXT)
            assert_official(preset.action, filled, response=True)


def test_each_action_offers_its_own_presets_then_the_common_ones() -> None:
    keys = [preset.key for preset in OCPP16.presets_for("StartTransaction")]

    assert keys == ["invalid", "fixed-id", "ignore", "manual", "error", "answer-answer-error"]
    assert [preset.key for preset in OCPP16.presets_for("Heartbeat")] == [
        "ignore",
        "manual",
        "error",
        "answer-answer-error",
    ]
    for action in OCPP16.charger_actions:
        offered = [preset.key for preset in OCPP16.presets_for(action)]
        assert len(set(offered)) == len(offered), action


# The core with a made-up dialect: two invented actions, nothing of 1.6


PING_SCHEMAS = {
    ("Ping", False): {"type": "object", "properties": {"n": {"type": "integer"}}},
    ("Ping", True): {
        "type": "object",
        "properties": {"pong": {"type": "integer"}},
        "required": ["pong"],
    },
    ("Poke", False): {"type": "object"},
    ("Poke", True): {"type": "object"},
}


class CountingLoader:
    def __init__(self) -> None:
        self.loads: list[tuple[str, bool]] = []

    def __call__(self, action: str, response: bool) -> dict[str, Any]:
        self.loads.append((action, response))
        return PING_SCHEMAS[action, response]


def made_up_dialect(loader: CountingLoader) -> Dialect:
    schema_set = SchemaSet(loader)
    return Dialect(
        name="Ping 0.1",
        subprotocol="ping0.1",
        charger_actions=("Ping",),
        central_actions_by_profile={"Core": ("Poke",)},
        error_codes=("NotImplemented", "NotSupported", "TypeConstraintViolation"),
        validate=schema_set.validate,
        default_answer=lambda action, context: {"pong": context.transaction_id},
        example_request=lambda action, now: {},
        schema=schema_set.schema,
        new_state=ChargerState,
        transaction_action="Ping",
    )


@pytest.mark.parametrize("action", ["Heartbeat", "StartTransaction", "FooBar"])
def test_an_action_the_dialect_does_not_know_gets_not_implemented(action: str) -> None:
    dialect = made_up_dialect(CountingLoader())

    assert check_call(Call("7", action, {}), dialect) == CallError(
        "7", "NotImplemented", f"{action!r} is not an Ping 0.1 action"
    )


def test_the_made_up_dialect_s_directions_decide_the_refusals() -> None:
    dialect = made_up_dialect(CountingLoader())

    assert check_call(Call("1", "Ping", {}), dialect) is None
    refusal = check_call(Call("2", "Poke", {}), dialect)
    assert refusal is not None
    assert refusal.code == "NotSupported"
    assert check_call(Call("3", "Ping", {}), OCPP16) is not None


def test_the_responder_answers_with_the_made_up_dialect_s_default() -> None:
    dialect = made_up_dialect(CountingLoader())

    answer = respond(
        Call("1", "Ping", {}), ResponderSettings(), CONTEXT, [], manual_timeout=60, dialect=dialect
    )

    assert isinstance(answer, Reply)
    assert answer.frame.payload == {"pong": 42}  # type: ignore[union-attr]
    assert answer.uses_transaction_id  # the made-up dialect's transaction action


def test_a_schema_set_validates_any_dialect_s_schemas_and_compiles_each_once() -> None:
    loader = CountingLoader()
    dialect = made_up_dialect(loader)

    assert dialect.validate("Ping", {"n": 1}, False) == []
    (violation,) = dialect.validate("Ping", {"n": "one"}, False)
    assert (violation.path, violation.code) == ("$.n", "TypeConstraintViolation")
    assert dialect.validate("Ping", {}, True)[0].code == "OccurenceConstraintViolation"
    for _ in range(3):
        dialect.validate("Ping", {"n": "one"}, False)
    assert sorted(set(loader.loads)) == [("Ping", False), ("Ping", True)]
    assert len(loader.loads) == 2  # loaded once each, then cached by the set
    with pytest.raises(KeyError):
        dialect.validate("Heartbeat", {}, False)


@pytest.mark.parametrize("inline_check_bytes", [2**20, 10], ids=["inline", "on-the-worker-thread"])
async def test_a_connection_checks_with_its_dialect_s_schemas(inline_check_bytes: int) -> None:
    dialect = made_up_dialect(CountingLoader())
    connection = Connection(
        dialect=dialect,
        clock=SystemClock(),
        limits=Limits(inline_check_bytes=inline_check_bytes),
        connected=Connected(session="s1"),
        replay_budget=ReplayBudget(2**20),
        responder=ResponderSettings(validation="strict"),
    )
    checks = CheckRunner()

    async def answer(text: str) -> list[Any]:
        pending = connection.receive_text(text)
        assert (pending is None) == (len(text) <= inline_check_bytes)
        if pending is not None:
            connection.finish_check(pending, await checks.run(pending.check))
        return [json.loads(frame) for frame in connection.data_to_send()]

    assert await answer('[2,"1","Ping",{"n":1}]') == [[3, "1", {"pong": 1}]]
    [refusal] = await answer('[2,"2","Ping",{"n":"one"}]')
    assert refusal[:3] == [4, "2", "TypeConstraintViolation"]


async def test_a_pending_check_uses_its_dialect_s_schemas() -> None:
    dialect = made_up_dialect(CountingLoader())
    pending = PendingCheck(dialect, "Heartbeat", {}, False, 11, lambda violations, note: None)

    with pytest.raises(KeyError):  # not OCPP 1.6's schemas: the made-up dialect has no Heartbeat
        await CheckRunner().run(pending.check)


def test_the_templates_list_the_dialect_s_actions_and_error_codes() -> None:
    dialect = made_up_dialect(CountingLoader())

    env = make_templates(dialect).env

    assert env.globals["dialect"] is dialect
    assert env.globals["CHARGER_ACTIONS"] == ("Ping",)
    assert env.globals["CENTRAL_ACTIONS_BY_PROFILE"] == {"Core": ("Poke",)}
    assert env.globals["ERROR_CODES"] == dialect.error_codes
    assert make_templates().env.globals["ERROR_CODES"] == OCPP16.error_codes
