"""Forms that tell everything at once: every problem in one round, next to its field and in a
summary; optional groups folded; help from the OCPP 1.6 specification's meaning.

Pure tests read forms with `read_operation` and the OCPP 1.6 dialect; the rest post to the
real server under uvicorn (the `server` fixture) and read the HTML it answers.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from ocpplab.core.schemas import Violation
from ocpplab.dialects.ocpp16 import OCPP16, descriptions
from ocpplab.web import operations
from ocpplab.web.forms import (
    Field,
    attach_violations,
    build_fields,
    help_for,
    problems_of,
    read_form,
)
from tests.support import RunningServer, raw_charger

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def by_path(fields: list[Field]) -> dict[str, Field]:
    found: dict[str, Field] = {}
    for field in fields:
        found[field.path] = field
        found.update(by_path(field.children))
    return found


class Elements(HTMLParser):
    """Every element with an id: its tag and attributes, and the text inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, dict[str, str]] = {}
        self.text: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        element_id = values.get("id")
        if element_id:
            self.attrs[element_id] = {"tag": tag, **values}
            self.text[element_id] = ""
        if tag not in {"input", "br", "meta", "link", "img"}:
            self._open.append((tag, element_id))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            opened, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id:
                self.text[element_id] += data


def elements(html: str) -> Elements:
    parsed = Elements()
    parsed.feed(html)
    return parsed


def described_by(parsed: Elements, element_id: str) -> list[str]:
    return parsed.attrs[element_id].get("aria-describedby", "").split()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        yield http


# One round: unreadable values and schema violations together (pure)


def test_an_unreadable_number_and_a_missing_required_value_are_found_together() -> None:
    submitted = {"source": "form", "f.connectorId": "abc", "f.type": ""}
    form, _, problems = operations.read_operation(OCPP16, "ChangeAvailability", submitted, NOW)
    fields = by_path(form.fields)
    assert fields["connectorId"].errors == ["must be a whole number"]
    assert fields["connectorId"].value == "abc"  # kept as typed
    assert fields["type"].errors == ["required, but left empty (OccurenceConstraintViolation)"]
    assert problems[0].startswith(
        "Some values cannot be read and the payload breaks the ChangeAvailability request "
        "schema in 1 place(s)."
    )
    assert [(p.label, p.target) for p in problems_of(form.fields)] == [
        ("connectorId", "field-connectorId"),
        ("type", "field-type"),
    ]


def test_a_value_that_cannot_be_read_is_not_also_reported_missing() -> None:
    submitted = {"source": "form", "f.transactionId": "twelve"}
    form, _, problems = operations.read_operation(OCPP16, "RemoteStopTransaction", submitted, NOW)
    assert by_path(form.fields)["transactionId"].errors == ["must be a whole number"]
    assert problems == [
        "Some values cannot be read. Fix them (each is marked at its field)."
    ]  # the schema's "required" for the value left out is not said twice


def test_send_anyway_skips_the_schema_but_not_unreadable_values() -> None:
    submitted = {"source": "form", "f.connectorId": "abc", "skip_validation": "on"}
    form, _, problems = operations.read_operation(OCPP16, "ChangeAvailability", submitted, NOW)
    assert problems == ["Some values cannot be read. Fix them (each is marked at its field)."]
    assert by_path(form.fields)["type"].errors == []


def test_violations_inside_an_optional_group_reach_their_fields() -> None:
    fields = build_fields(OCPP16.schema("RemoteStartTransaction", False), {})
    submitted = {
        "f.idTag": "T1",
        "f.chargingProfile.stackLevel": "low",
        "f.chargingProfile.chargingSchedule.chargingRateUnit": "A",
    }
    payload, ok = read_form(fields, submitted)
    assert not ok
    assert "chargingProfile" in payload  # typed into, so kept, without the unreadable value
    leftover = attach_violations(fields, OCPP16.validate("RemoteStartTransaction", payload, False))
    found = by_path(fields)
    assert found["chargingProfile.stackLevel"].errors == ["must be a whole number"]
    assert found["chargingProfile.chargingProfileId"].errors[0].startswith("required")
    assert (
        found["chargingProfile.chargingSchedule.chargingSchedulePeriod"]
        .errors[0]
        .startswith("required")
    )
    assert found["chargingProfile"].problem_count == 5  # id, stack, purpose, kind, periods
    assert leftover == []


def test_json_nested_too_deep_is_a_problem_at_its_field_not_a_crash() -> None:
    fields = build_fields(OCPP16.schema("GetConfiguration", False), {})
    _, ok = read_form(fields, {"f.key": "[" * 100_000})
    assert not ok
    assert fields[0].errors == ["nests deeper than 20 levels"]


def test_a_violation_for_no_field_is_left_over() -> None:
    fields = build_fields(OCPP16.schema("Reset", False), {})
    leftover = attach_violations(fields, [Violation("$", "is not an object", "TypeConstraint")])
    assert leftover == ["$: is not an object (TypeConstraint)"]


# Help texts (pure)

LISTED = [  # the brief's list: the fields people meet most
    ("ChangeAvailability", False, "connectorId", "0 changes the whole charger"),
    ("ChangeAvailability", False, "type", "Inoperative"),
    ("Reset", False, "type", "Soft"),
    ("RemoteStartTransaction", False, "idTag", "idTag"),
    ("RemoteStopTransaction", False, "transactionId", "transaction"),
    ("ChangeConfiguration", False, "key", "configuration key"),
    ("ChangeConfiguration", False, "value", "as text"),
    ("SetChargingProfile", False, "csChargingProfiles.stackLevel", "Priority"),
    ("SetChargingProfile", False, "csChargingProfiles.chargingProfilePurpose", "TxProfile"),
    ("SetChargingProfile", False, "csChargingProfiles.chargingProfileKind", "Recurring"),
    (
        "SetChargingProfile",
        False,
        "csChargingProfiles.chargingSchedule.chargingRateUnit",
        "ampere",
    ),
    ("RemoteStartTransaction", False, "chargingProfile.transactionId", "TxProfile"),
    ("GetDiagnostics", False, "retries", "tries again"),
    ("GetDiagnostics", False, "retryInterval", "Seconds"),
    ("GetDiagnostics", False, "location", "uploads"),
    ("GetDiagnostics", False, "startTime", "from this time"),
    ("GetDiagnostics", False, "stopTime", "up to this time"),
    ("UpdateFirmware", False, "retrieveDate", "download"),
    ("TriggerMessage", False, "requestedMessage", "send now"),
    ("DataTransfer", False, "vendorId", "UnknownVendorId"),
    ("DataTransfer", False, "messageId", "vendor's messages"),
    ("DataTransfer", False, "data", "Free text"),
    ("ReserveNow", False, "reservationId", "reservation"),
    ("ReserveNow", False, "expiryDate", "reservation ends"),
    ("SendLocalList", False, "listVersion", "version"),
    ("SendLocalList", False, "updateType", "Differential"),
    ("BootNotification", True, "status", "Pending"),
    ("BootNotification", True, "interval", "heartbeat interval"),
    ("Authorize", True, "idTagInfo.status", "Blocked"),
    ("StartTransaction", True, "idTagInfo.expiryDate", "cache"),
    ("StopTransaction", True, "idTagInfo.parentIdTag", "group"),
]


@pytest.mark.parametrize(("action", "response", "path", "words"), LISTED)
def test_the_fields_people_meet_most_have_help(
    action: str, response: bool, path: str, words: str
) -> None:
    fields = by_path(
        build_fields(
            OCPP16.schema(action, response), {}, describe=help_for(OCPP16, action, response)
        )
    )
    assert words in fields[path].help


def _paths(action: str, response: bool) -> set[str]:
    return set(by_path(build_fields(OCPP16.schema(action, response), {})))


def _names_a_field(key: str, paths: set[str]) -> bool:
    return any(path == key or path.endswith("." + key) for path in paths)


def test_every_help_line_is_one_short_line_about_a_real_field() -> None:
    every = [(a, False) for a in OCPP16.central_actions] + [
        (a, True) for a in OCPP16.charger_actions
    ]
    all_paths = set().union(*(_paths(action, response) for action, response in every))
    lines = list(descriptions.COMMON.items())
    for (action, response), table in descriptions.BY_MESSAGE.items():
        assert (action, response) in every, action
        for key in table:
            assert _names_a_field(key, _paths(action, response)), (action, key)
        lines += table.items()
    for key, line in lines:
        assert _names_a_field(key, all_paths), key
        assert 0 < len(line) <= descriptions.MAX_HELP_LENGTH, key
        assert "\n" not in line, key


def test_a_schema_description_comes_before_the_table() -> None:
    schema = {"properties": {"connectorId": {"type": "integer", "description": "Own words."}}}
    fields = build_fields(schema, {}, describe=help_for(OCPP16, "UnlockConnector", False))
    assert fields[0].help == "Own words."


# Over HTTP: Operations


async def test_the_operation_form_shows_every_problem_at_once(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        response = await client.post(
            "/chargers/CP-1/operations/ChangeAvailability",
            data={"source": "form", "f.connectorId": "abc", "f.type": "", "json": "{}"},
        )
        assert response.status_code == 422
        page = elements(response.text)
        # Next to each field, tied to it for assistive technology.
        assert page.text["op-field-connectorId-error"] == "must be a whole number"
        assert "required" in page.text["op-field-type-error"]
        for field in ("op-field-connectorId", "op-field-type"):
            assert page.attrs[field]["aria-invalid"] == "true"
            assert f"{field}-error" in described_by(page, field)
        assert page.attrs["op-field-connectorId"]["value"] == "abc"  # nothing typed is lost
        # And all of them in the summary at the top, with links to the fields.
        summary = page.attrs["op-error-summary"]
        assert (summary["role"], summary["tabindex"]) == ("alert", "-1")
        assert "2 problems to fix" in page.text["op-error-summary"]
        links = re.findall(r'<a href="#(op-field-[\w-]+)">', response.text)
        assert links == ["op-field-connectorId", "op-field-type"]
        assert response.text.index('id="op-error-summary"') < response.text.index(
            'id="op-field-connectorId"'
        )
        status = (await client.get("/api/chargers/CP-1")).json()
        assert (status["queued_calls"], status["calls_in_flight"]) == (0, 0)  # nothing sent
    finally:
        await charger.close()


async def test_json_that_nests_too_deep_is_refused_with_a_reason(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/chargers/CP-1/operations/DataTransfer",
        data={"source": "json", "json": "[" * 50_000},
    )
    assert response.status_code == 422
    assert "This is not valid JSON" in response.text


async def test_optional_groups_are_folded_and_marked_optional(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/chargers/CP-1/operations/RemoteStartTransaction")
    assert response.status_code == 200
    page = elements(response.text)
    group = page.attrs["op-field-chargingProfile"]
    assert group["tag"] == "details"
    assert "open" not in group  # folded: the example leaves it out
    assert "chargingProfile (optional)" in page.text["op-field-chargingProfile"]
    # A required group inside is a plain fieldset; required fields say so in words.
    assert page.attrs["op-field-chargingProfile-chargingSchedule"]["tag"] == "fieldset"
    label = re.search(r'<label for="op-field-idTag">(.*?)</label>', response.text)
    assert label is not None
    assert label.group(1) == 'idTag <span class="req">required</span>'
    assert page.attrs["op-field-idTag"]["aria-required"] == "true"
    assert "aria-required" not in page.attrs["op-field-connectorId"]


async def test_an_optional_group_with_a_problem_opens(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/chargers/CP-1/operations/RemoteStartTransaction",
        data={"source": "form", "f.idTag": "T1", "f.chargingProfile.stackLevel": "x"},
    )
    assert response.status_code == 422
    page = elements(response.text)
    assert "open" in page.attrs["op-field-chargingProfile"]
    assert page.attrs["op-field-chargingProfile-stackLevel"]["value"] == "x"
    assert page.text["op-field-chargingProfile-stackLevel-error"] == "must be a whole number"


async def test_help_texts_sit_under_their_fields(client: httpx.AsyncClient) -> None:
    response = await client.get("/chargers/CP-1/operations/ChangeAvailability")
    page = elements(response.text)
    assert "0 changes the whole charger" in page.text["op-field-connectorId-help"]
    assert described_by(page, "op-field-connectorId") == ["op-field-connectorId-help"]
    assert "Inoperative" in page.text["op-field-type-help"]

    response = await client.get("/chargers/CP-1/operations/SetChargingProfile")
    page = elements(response.text)
    unit = "op-field-csChargingProfiles-chargingSchedule-chargingRateUnit"
    assert "ampere" in page.text[f"{unit}-help"]
    assert described_by(page, unit) == [f"{unit}-help"]


# Over HTTP: Configure


async def test_the_rule_form_shows_every_problem_at_once(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/chargers/CP-1/rules/BootNotification",
        data={
            "mode": "custom",
            "f.status": "",
            "f.currentTime": "{now}",
            "f.interval": "soon",
            "delay": "999",
            "source": "form",
        },
    )
    assert response.status_code == 422
    prefix = "rf-BootNotification-"
    page = elements(response.text)
    assert page.text[f"{prefix}field-interval-error"] == "must be a whole number"
    assert "required" in page.text[f"{prefix}field-status-error"]  # the schema, same round
    assert page.text[f"{prefix}delay-error"] == "must be between 0 and 300 seconds"
    assert page.attrs[f"{prefix}field-interval"]["value"] == "soon"
    assert page.attrs[f"{prefix}field-currentTime"]["value"] == "{now}"
    assert "2 problems to fix" in page.text[f"{prefix}error-summary"]
    links = re.findall(r'<a href="#(rf-BootNotification-[\w-]+)">', response.text)
    assert links == [f"{prefix}field-status", f"{prefix}field-interval"]
    assert "Not saved: the answer breaks the BootNotification response schema" in response.text
    rule = (await client.get("/api/chargers/CP-1/responses/BootNotification")).json()
    assert rule["mode"] == "default"  # nothing saved


async def test_answer_forms_fold_optional_groups_and_carry_help(
    client: httpx.AsyncClient,
) -> None:
    stop = elements((await client.get("/chargers/CP-1/rules/StopTransaction")).text)
    group = stop.attrs["rf-StopTransaction-field-idTagInfo"]
    assert group["tag"] == "details"
    assert "idTagInfo (optional)" in stop.text["rf-StopTransaction-field-idTagInfo"]
    assert "Accepted" in stop.text["rf-StopTransaction-field-idTagInfo-status-help"]

    boot = elements((await client.get("/chargers/CP-1/rules/BootNotification")).text)
    assert "Pending" in boot.text["rf-BootNotification-field-status-help"]
    assert "heartbeat" in boot.text["rf-BootNotification-field-interval-help"]
    assert "rf-BootNotification-error-summary" not in boot.attrs  # no problems, no summary


def test_rule_form_problems_outside_the_fields_name_their_inputs() -> None:
    from ocpplab.web.configure import RuleForm

    form = RuleForm("Heartbeat", errors={"delay": "must be a number of seconds"})
    assert [(p.label, p.target) for p in form.other_problems] == [("Delay", "delay")]
    helper: Any = operations.OperationForm("Reset", [], "", "", json_error="bad")
    assert [p.target for p in helper.other_problems] == ["json"]


def test_the_summary_lists_problems_of_inputs_outside_the_fields() -> None:
    from ocpplab.web.templating import make_templates

    environment = make_templates().env
    template = environment.from_string(
        '{% from "_fields.html" import render_fields, error_summary %}'
        '{{ render_fields(fields, "op-", extra=extra) }}'
    )
    form = operations.OperationForm("Reset", [], "", "", json_error="This is not valid JSON")
    html = template.render(fields=form.fields, extra=form.other_problems)
    page = elements(html)
    assert "1 problem to fix" in page.text["op-error-summary"]
    assert '<a href="#op-json">Payload as JSON: This is not valid JSON</a>' in html
    assert template.render(fields=[], extra=[]).strip() == ""  # no problems, no summary
