"""What no frame may cost, pure: literal frames in, bounded violations, depths and text out.

Schema checking of one payload is bounded in time and memory whatever the payload; JSON
nested too deep is refused with a CALLERROR instead of a RecursionError; text holding lone
surrogates can always be encoded; strict mode answers with the most specific code even
when the list of violations is cut short (OCPP-J 1.6 section 4.2.3).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import random
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import fastjsonschema
import jsonschema
import pytest

from ocpplab.core import schemas
from ocpplab.core.dialect import AnswerContext
from ocpplab.core.frames import (
    MAX_DEPTH,
    Call,
    CallResult,
    InvalidFrame,
    TooDeep,
    dumps_compact,
    encodable,
    loads,
    nests_too_deep,
    parse,
)
from ocpplab.core.responder import Reply, ResponderSettings, respond
from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.dialects.ocpp16.schemas import SCHEMAS
from ocpplab.server.checking import SWITCH_INTERVAL, CheckRunner
from ocpplab.web.templating import dom_id, frame_body, pretty_json

TIMESTAMP = "2026-01-01T00:00:00Z"
MIB = 1024 * 1024
# Generous: today's code took 12 s for the first of these; the bounded check takes ~50 ms.
DEADLINE = 3.0


def meter_values(samples: list[Any]) -> dict[str, Any]:
    return {"connectorId": 1, "meterValue": [{"timestamp": TIMESTAMP, "sampledValue": samples}]}


def frame_text(action: str, payload: Any) -> str:
    return json.dumps([2, "id-1", action, payload], separators=(",", ":"))


FULL_SAMPLE = {
    "value": "1",
    "context": "Sample.Periodic",
    "format": "Raw",
    "measurand": "Energy.Active.Import.Register",
    "phase": "L1",
    "location": "Outlet",
    "unit": "Wh",
}

# Payloads of about 1 MiB of frame text, each worst in its own way.
WORST_CASES: dict[str, Callable[[], tuple[str, Any]]] = {
    "half a million bare numbers": lambda: ("MeterValues", meter_values([1] * 500_000)),
    "300,000 empty objects": lambda: ("MeterValues", meter_values([{}] * 300_000)),
    "a string of 1 MiB over maxLength": lambda: (
        "BootNotification",
        {"chargePointVendor": "x" * MIB, "chargePointModel": "M"},
    ),
    "a list of 500,000 where a string belongs": lambda: (
        "BootNotification",
        {"chargePointVendor": [1] * 500_000, "chargePointModel": "M"},
    ),
    "100,000 unknown fields": lambda: ("Heartbeat", {f"k{i}": 1 for i in range(100_000)}),
    "a valid payload of 75,000 samples": lambda: (
        "MeterValues",
        meter_values([{"value": "1"}] * 75_000),
    ),
    "75,000 valid samples and one bad at the end": lambda: (
        "MeterValues",
        meter_values([{"value": "1"}] * 75_000 + [1]),
    ),
    "20,000 meter values with bad timestamps": lambda: (
        "MeterValues",
        {"connectorId": 1, "meterValue": [{"timestamp": "x", "sampledValue": [{}]}] * 20_000},
    ),
}

# Those whose cost was listing violations (memory is measured for these).
LISTING_HEAVY = {
    "half a million bare numbers",
    "a string of 1 MiB over maxLength",
    "a list of 500,000 where a string belongs",
    "100,000 unknown fields",
    "20,000 meter values with bad timestamps",
}


def real(violations: list[schemas.Violation]) -> list[schemas.Violation]:
    return [item for item in violations if not isinstance(item, schemas.Omitted)]


def omitted(violations: list[schemas.Violation]) -> schemas.Omitted | None:
    found = [item for item in violations if isinstance(item, schemas.Omitted)]
    assert len(found) <= 1
    return found[0] if found else None


# Schema checking is bounded


@pytest.mark.parametrize("case", list(WORST_CASES))
def test_checking_a_worst_case_payload_is_bounded_in_time_and_memory(case: str) -> None:
    action, payload = WORST_CASES[case]()
    assert 0.5 * MIB < len(frame_text(action, payload)) <= 1.5 * MIB
    started = time.perf_counter()
    violations = OCPP16.validate(action, payload, response=False)
    assert time.perf_counter() - started < DEADLINE
    if case in LISTING_HEAVY:  # tracing every small allocation of a compiled pass takes long
        tracemalloc.start()
        try:
            assert OCPP16.validate(action, payload, response=False) == violations
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 20 * MIB  # today's code: ~230 MiB for the bare numbers
    assert len(real(violations)) <= schemas.MAX_LISTED
    for violation in violations:
        assert len(violation.message) <= schemas.MAX_TEXT
        assert len(violation.path) <= schemas.MAX_TEXT
    assert ("valid payload" in case) == (violations == [])


def test_a_payload_breaking_its_schema_half_a_million_times_lists_twenty_and_says_more() -> None:
    violations = OCPP16.validate("MeterValues", meter_values([1] * 500_000), response=False)

    listed, rest = real(violations), omitted(violations)
    assert len(listed) == schemas.MAX_LISTED
    assert {item.code for item in listed} == {"TypeConstraintViolation"}
    assert rest is not None
    assert not rest.counted
    assert rest.message.startswith("and more violations")
    assert schemas.violation_count(violations) == f"at least {schemas.MAX_COUNTED}"


def test_violations_under_the_counting_cap_are_counted_exactly() -> None:
    violations = OCPP16.validate("MeterValues", meter_values([1] * 30), response=False)

    rest = omitted(violations)
    assert len(real(violations)) == schemas.MAX_LISTED
    assert rest is not None
    assert rest.counted
    assert rest.count == 30 - schemas.MAX_LISTED
    assert rest.message == f"and {30 - schemas.MAX_LISTED} more violations, not listed"
    assert rest.code == "TypeConstraintViolation"
    assert schemas.violation_count(violations) == "30"


def test_a_few_violations_are_all_listed_with_nothing_omitted() -> None:
    payload = {"connectorId": "1", "meterValue": [{"timestamp": "x", "sampledValue": []}]}
    violations = OCPP16.validate("MeterValues", payload, response=False)

    assert omitted(violations) is None
    assert {(item.path, item.code) for item in violations} == {
        ("$.connectorId", "TypeConstraintViolation"),
        ("$.meterValue[0].timestamp", "PropertyConstraintViolation"),
        ("$.meterValue[0].sampledValue", "OccurenceConstraintViolation"),
    }
    assert schemas.violation_count(violations) == "3"


def test_a_violation_after_a_megabyte_of_valid_samples_is_found_and_counted_exactly() -> None:
    # The walk skips the items that pass their compiled check: it reaches the end.
    samples: list[Any] = [{"value": "1"}] * 75_000 + [{"value": 1}]
    violations = OCPP16.validate("MeterValues", meter_values(samples), response=False)

    assert violations == [
        schemas.Violation(
            "$.meterValue[0].sampledValue[75000].value",
            "1 is not of type 'string'",
            "TypeConstraintViolation",
        )
    ]


def test_a_message_quoting_a_megabyte_value_is_cut_short() -> None:
    payload = {"chargePointVendor": "x" * MIB, "chargePointModel": "M"}
    (violation,) = OCPP16.validate("BootNotification", payload, response=False)

    assert violation.path == "$.chargePointVendor"
    assert violation.code == "PropertyConstraintViolation"
    assert violation.message.startswith("'xxxx")
    assert violation.message.endswith("…")
    assert len(violation.message) == schemas.MAX_TEXT


def test_every_kind_found_is_listed_even_after_the_listing_is_full() -> None:
    # 30 wrong types come first; the one missing field (the 31st violation) is still shown.
    samples: list[Any] = [1] * 30 + [{"unit": "Wh"}]
    violations = OCPP16.validate("MeterValues", meter_values(samples), response=False)

    listed = real(violations)
    assert len(listed) == schemas.MAX_LISTED
    assert "$.meterValue[0].sampledValue[30]" in {item.path for item in listed}
    assert {item.code for item in listed} == {
        "TypeConstraintViolation",
        "OccurenceConstraintViolation",
    }
    assert schemas.violation_count(violations) == "31"


@pytest.mark.parametrize(
    ("hidden", "expected"),
    [
        ({"value": "1", "unit": "Hz"}, "PropertyConstraintViolation"),
        ({"value": 1}, "TypeConstraintViolation"),
    ],
)
def test_a_kind_past_every_bound_still_decides_the_strict_code(
    hidden: dict[str, Any], expected: str
) -> None:
    # Far more missing fields (OccurenceConstraintViolation) than are counted or walked,
    # then one violation of a more specific kind at the very end.
    samples: list[Any] = [{}] * 100_000 + [hidden]
    violations = OCPP16.validate("MeterValues", meter_values(samples), response=False)

    rest = omitted(violations)
    assert rest is not None
    assert not rest.counted
    assert schemas.strictest_code(violations) == expected
    assert expected in {item.code for item in real(violations)}
    answer = respond(
        Call("m-1", "MeterValues", meter_values(samples)),
        ResponderSettings(validation="strict"),
        AnswerContext(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), 1),
        violations,
        manual_timeout=60,
        dialect=OCPP16,
    )
    assert isinstance(answer, Reply)
    assert answer.frame.code == expected  # type: ignore[union-attr]
    assert len(answer.frame.description) <= 255  # type: ignore[union-attr]
    assert len(json.dumps(answer.frame.details)) < 16_000  # type: ignore[union-attr]


def test_a_walk_out_of_steps_still_lists_the_first_violation_and_finds_the_strictest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schemas, "MAX_STEPS", 0)
    samples = [{"value": "1", "unit": "x"}]
    payload = {**meter_values(samples), "connectorId": "1"}
    violations = OCPP16.validate("MeterValues", payload, response=False)

    # The first, in the compiled validator's words; the most specific kind, looked for.
    first, specific, rest = violations
    assert first == schemas.Violation("$.connectorId", "must be integer", "TypeConstraintViolation")
    assert specific.path == "$.meterValue[0].sampledValue[0].unit"
    assert specific.message.startswith("must be one of ['Wh', 'kWh'")
    assert specific.code == "PropertyConstraintViolation"
    assert rest == schemas.Omitted(
        "…",
        "and more violations, not all counted: the check stopped after 0",
        "TypeConstraintViolation",
        count=0,
        counted=False,
    )
    assert schemas.strictest_code(violations) == "PropertyConstraintViolation"
    assert schemas.violation_count(violations) == "at least 2"


def test_uri_formats_are_listed_like_every_other_violation() -> None:
    violations = OCPP16.validate("GetDiagnostics", {"location": "not a uri"}, response=False)

    assert violations == [
        schemas.Violation("$.location", "'not a uri' is not a 'uri'", "PropertyConstraintViolation")
    ]


# The compiled validators of one kind each agree with jsonschema's full listing


def _sample(node: Any, definitions: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value for schema `node`: mostly valid, sometimes broken in one of every way."""
    if "$ref" in node:
        node = definitions[node["$ref"].rsplit("/", 1)[-1]]
    roll = rng.random()
    if roll < 0.04:
        return rng.choice([None, True, 1.5, "text", [], {}, -1])
    kind = node.get("type")
    if "enum" in node:
        return rng.choice(node["enum"]) if roll > 0.1 else "NotInTheEnum"
    if kind == "object":
        value = {}
        for name, inner in node.get("properties", {}).items():
            required = name in node.get("required", [])
            if (required and rng.random() > 0.05) or (not required and rng.random() < 0.5):
                value[name] = _sample(inner, definitions, rng, depth + 1)
        if rng.random() < 0.05:
            value["vendorField"] = 1
        return value
    if kind == "array":
        count = rng.choice([0, 1, 2, 3]) if depth < 4 else 0
        return [_sample(node.get("items", {}), definitions, rng, depth + 1) for _ in range(count)]
    if kind == "string":
        if node.get("format") == "date-time":
            return TIMESTAMP if roll > 0.1 else "2026-01-01 00:00"
        if node.get("format") == "uri":
            return "ftp://example.com/x" if roll > 0.1 else "no uri"
        limit = node.get("maxLength", 20)
        return "s" * (limit if roll > 0.1 else limit + 1)
    if kind == "integer":
        return rng.choice([0, 1, 7]) if roll > 0.1 else 1.5
    if kind == "number":
        return rng.choice([0, 0.1, 2.5]) if roll > 0.1 else "1"
    if kind == "boolean":
        return roll > 0.5
    return None


def _kinds_listed_by_jsonschema(action: str, response: bool, payload: Any) -> set[str]:
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time")(schemas._is_date_time)
    checker.checks("uri")(schemas._is_uri)
    root = OCPP16.schema(action, response)
    reference = jsonschema.Draft4Validator(root, format_checker=checker)
    return {schemas._code_of(str(error.validator)) for error in reference.iter_errors(payload)}


def _kinds_found_by_compiled_validators(action: str, response: bool, payload: Any) -> set[str]:
    found = set()
    for code in SPECIFICITY:
        try:
            SCHEMAS.kind_validator(action, response, code)(payload)
        except fastjsonschema.JsonSchemaValueException:
            found.add(code)
    return found


@pytest.mark.parametrize("response", [False, True], ids=["request", "response"])
def test_each_kind_s_compiled_validator_finds_exactly_the_kinds_jsonschema_lists(
    response: bool,
) -> None:
    rng = random.Random(16)
    compared = 0
    for action in sorted({*OCPP16.charger_actions, *OCPP16.central_actions}):
        root = OCPP16.schema(action, response)
        for _ in range(60):
            payload = _sample(root, root.get("definitions", {}), rng)
            expected = _kinds_listed_by_jsonschema(action, response, payload)
            assert _kinds_found_by_compiled_validators(action, response, payload) == expected, (
                action,
                payload,
            )
            listed = {item.code for item in OCPP16.validate(action, payload, response=response)}
            assert listed == expected, (action, payload)
            compared += bool(expected)
    assert compared > 500  # most samples break their schema somewhere


# Strict mode: the most specific code (OCPP-J 1.6 section 4.2.3)

SPECIFICITY = [
    "PropertyConstraintViolation",
    "TypeConstraintViolation",
    "OccurenceConstraintViolation",
    "FormationViolation",
]
# One BootNotification field broken in each way.
BREAKS: dict[str, dict[str, Any]] = {
    "PropertyConstraintViolation": {"firmwareVersion": "v" * 51},
    "TypeConstraintViolation": {"chargePointSerialNumber": 7},
    "OccurenceConstraintViolation": {"chargePointModel": None},
    "FormationViolation": {"Vendor": "capitalised"},
}


def boot_breaking(*codes: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"chargePointVendor": "V", "chargePointModel": "M"}
    for code in codes:
        payload.update(BREAKS[code])
    return {key: value for key, value in payload.items() if value is not None}


@pytest.mark.parametrize(
    "codes",
    [
        (first, second)
        for index, first in enumerate(SPECIFICITY)
        for second in SPECIFICITY[index + 1 :]
    ]
    + [tuple(SPECIFICITY), tuple(reversed(SPECIFICITY))],
)
def test_strict_mode_answers_the_most_specific_code_of_several(codes: tuple[str, ...]) -> None:
    payload = boot_breaking(*codes)
    violations = OCPP16.validate("BootNotification", payload, response=False)
    assert {item.code for item in violations} == set(codes)
    answer = respond(
        Call("b-1", "BootNotification", payload),
        ResponderSettings(validation="strict"),
        AnswerContext(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), 1),
        violations,
        manual_timeout=60,
        dialect=OCPP16,
    )
    expected = min(codes, key=SPECIFICITY.index)
    assert isinstance(answer, Reply)
    assert answer.frame.code == expected  # type: ignore[union-attr]
    # The description cites a violation of the kind answered, and says how many there are.
    example = next(item for item in violations if item.code == expected)
    assert answer.frame.description == (  # type: ignore[union-attr]
        f"{len(codes)} schema violation(s); {example.path}: {example.message}"
    )


# JSON nesting depth


def nested(depth: int) -> str:
    """A CALL whose frame text nests `depth` arrays and objects, its own array included."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return f'[2,"deep-1","DataTransfer",{{"vendorId":"V","data":{inner}}}]'


def test_a_frame_as_deep_as_the_limit_is_read() -> None:
    frame = parse(nested(MAX_DEPTH))
    assert isinstance(frame, Call)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 1100, 100_000])
def test_a_frame_nested_too_deep_gets_formation_violation_not_a_recursion_error(
    depth: int,
) -> None:
    frame = parse(nested(depth))

    assert isinstance(frame, InvalidFrame)
    assert frame.unique_id == "deep-1"
    assert frame.reply is not None
    assert frame.reply.unique_id == "deep-1"
    assert frame.reply.code == "FormationViolation"
    assert f"deeper than {MAX_DEPTH}" in frame.reply.description


def test_a_deep_frame_read_by_the_standard_library_is_refused_too() -> None:
    # A 30-digit number sends the text to json.loads, which would raise RecursionError.
    text = nested(5000).replace('"V"', "123456789012345678901234567890")
    assert isinstance(parse(text), InvalidFrame)
    assert parse(text).reply.code == "FormationViolation"  # type: ignore[union-attr]


def test_a_deep_answer_is_invalid_with_its_unique_id_and_no_reply() -> None:
    frame = parse('[3,"r-1",{"a":' + "[" * 2000 + "]" * 2000 + "}]")

    assert isinstance(frame, InvalidFrame)
    assert frame.unique_id == "r-1"
    assert frame.reply is None


def test_deep_text_that_is_not_json_is_invalid_without_a_reply() -> None:
    frame = parse("[" * 200_000)
    assert isinstance(frame, InvalidFrame)
    assert frame.reply is None


def test_brackets_inside_strings_do_not_count_towards_the_depth() -> None:
    data = "[[[[{{{{" * 50 + '\\"' + "\\\\" + "]]]]"
    frame = parse(json.dumps([2, "s-1", "DataTransfer", {"vendorId": "V", "data": data}]))
    assert isinstance(frame, Call)
    assert frame.payload["data"] == data


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


def _random_json(rng: random.Random, budget: int) -> Any:
    if budget == 0 or rng.random() < 0.25:
        return rng.choice([1, "x", "[{", '"]\\', "\\\\", '}}]]"[', "", None, "\ud800", "é"])
    if rng.random() < 0.5:
        return [_random_json(rng, budget - 1) for _ in range(rng.randint(0, 3))]
    keys = ["a", "[", '"{', "\\", "]}"]
    return {
        rng.choice(keys) + str(i): _random_json(rng, budget - 1) for i in range(rng.randint(0, 3))
    }


def test_the_nesting_check_measures_depth_exactly() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        value = _random_json(rng, rng.randint(1, MAX_DEPTH + 8))
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        data = text.encode(errors="surrogatepass")
        assert nests_too_deep(data) == (_depth(value) > MAX_DEPTH), text


@pytest.mark.parametrize(
    "structure",
    [
        pytest.param(lambda depth: "[" * depth + "]" * depth, id="chains"),
        pytest.param(lambda depth: "[]", id="wide"),
        pytest.param(lambda depth: '"[[[["', id="strings"),
    ],
)
def test_checking_the_depth_of_a_megabyte_costs_little(structure: Callable[[int], str]) -> None:
    chain = structure(MAX_DEPTH - 3)
    text = '[2,"1","DataTransfer",{"data":[' + ",".join([chain] * (MIB // len(chain))) + "]}]"
    started = time.perf_counter()
    assert not nests_too_deep(text.encode())
    assert time.perf_counter() - started < 1.0  # ~40 ms for chains; generous on a loaded host


def test_loads_refuses_too_deep_text_with_a_value_error() -> None:
    with pytest.raises(TooDeep) as refused:
        loads("[" * 50 + "]" * 50)
    assert isinstance(refused.value, ValueError)


# Lone surrogates


def test_a_lone_surrogate_unique_id_is_answered_with_encodable_text() -> None:
    frame = parse('[2,"\\ud800","Heartbeat",{}]')
    assert isinstance(frame, Call)
    assert frame.unique_id == "\ud800"

    text = CallResult(frame.unique_id, {"currentTime": TIMESTAMP}).to_json()
    text.encode()  # a websocket text frame must be UTF-8
    assert text == '[3,"\\ud800",{"currentTime":"2026-01-01T00:00:00Z"}]'
    assert parse(text) == CallResult("\ud800", {"currentTime": TIMESTAMP})


@pytest.mark.parametrize(
    "value",
    [{"x": "\ud800"}, {"\udcff": ["a\udfffb", "é", "\U0001f600"]}, ["\\\ud800", 1.5]],
)
def test_compact_json_escapes_lone_surrogates_and_keeps_the_value(value: Any) -> None:
    text = dumps_compact(value)
    text.encode()
    assert json.loads(text) == value
    assert "é" not in json.dumps(value) or "é" in text  # other characters stay as they are


def test_encodable_escapes_only_lone_surrogates() -> None:
    assert encodable("plain") == "plain"
    assert encodable("é ✓ \U0001f600") == "é ✓ \U0001f600"
    assert encodable("a\ud800b\udcff") == "a\\ud800b\\udcff"


def test_the_page_filters_show_lone_surrogates_escaped() -> None:
    raw = '[2,"1","BootNotification",{"chargePointVendor":"\\udcff","chargePointModel":"é"}]'
    body = frame_body(raw)
    body.encode()
    assert '"chargePointVendor": "\\udcff"' in body
    assert '"chargePointModel": "é"' in body
    pretty = pretty_json({"vendor": "\ud800"})
    pretty.encode()
    assert "\\ud800" in pretty
    assert dom_id("\ud800") != dom_id("\udcff")
    assert encodable("\ud800").encode() == b"\\ud800"


def test_the_page_filters_show_deep_json_as_text() -> None:
    raw = "[" * 5000 + "]" * 5000
    assert frame_body(raw) == raw
    assert pretty_json(raw) == raw


# Large payloads are checked on one worker thread, a bounded number at a time (the
# connection checks small ones at once: tests/test_connection.py)


class RecordingChecks:
    """Checks that note their thread and payload; each waits while `gate` is clear."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.payloads: list[Any] = []
        self.gate = threading.Event()
        self.gate.set()

    def of(self, payload: Any) -> Callable[[], list[schemas.Violation]]:
        def check() -> list[schemas.Violation]:
            self.threads.append(threading.current_thread().name)
            self.payloads.append(payload)
            assert self.gate.wait(10)
            return [schemas.Violation("$", f"checked {payload}", "FormationViolation")]

        return check


@pytest.fixture
def recording() -> RecordingChecks:
    return RecordingChecks()


async def test_checks_run_on_one_worker_thread_in_order(recording: RecordingChecks) -> None:
    checks = CheckRunner()
    results = await asyncio.gather(*(checks.run(recording.of(number)) for number in range(3)))

    assert [result[0].message for result in results if result] == [
        "checked 0",
        "checked 1",
        "checked 2",
    ]
    assert len(set(recording.threads)) == 1
    assert recording.threads[0].startswith("ocpplab-schemas")
    assert recording.threads[0] != threading.current_thread().name


async def test_a_check_shortens_the_switch_interval_for_the_event_loop_s_sake(
    recording: RecordingChecks,
) -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # the interpreter's default
    try:
        assert await CheckRunner().run(recording.of(0)) is not None
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    finally:
        sys.setswitchinterval(before)


async def test_past_max_pending_a_check_is_not_run(recording: RecordingChecks) -> None:
    checks = CheckRunner(max_pending=2)
    recording.gate.clear()
    waiting = [asyncio.ensure_future(checks.run(recording.of(number))) for number in range(2)]
    await asyncio.sleep(0.05)

    assert await checks.run(recording.of(2)) is None
    recording.gate.set()
    assert [len(result or []) for result in await asyncio.gather(*waiting)] == [1, 1]
    assert await checks.run(recording.of(4)) is not None
    assert recording.payloads == [0, 1, 4]


async def test_a_cancelled_check_gives_its_place_back(recording: RecordingChecks) -> None:
    checks = CheckRunner(max_pending=2)
    recording.gate.clear()
    running = asyncio.ensure_future(checks.run(recording.of(0)))
    queued = asyncio.ensure_future(checks.run(recording.of(1)))
    await asyncio.sleep(0.05)
    queued.cancel()  # waiting behind the running check: it never starts
    await asyncio.sleep(0.05)

    again = asyncio.ensure_future(checks.run(recording.of(2)))
    await asyncio.sleep(0.05)
    recording.gate.set()
    assert (await again) is not None
    assert (await running) is not None
    assert recording.payloads == [0, 2]
