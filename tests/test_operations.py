"""Operations: central-system calls and raw frames, from the API and from the page's forms.

Every test runs the real server under uvicorn, with the `ocpp` package's ChargePoint (or a
bare websocket, where a charger must misbehave on purpose) as the charger.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import call_result

from ocpplab.config import Settings
from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.dialects.ocpp16.examples import example_request
from ocpplab.web import operations
from ocpplab.web.forms import build_fields
from ocpplab.web.templating import dom_id
from tests.official_schemas import assert_official
from tests.page_support import expand, frames, pretty_frames, wait_line, wait_outcome
from tests.support import (
    REDIS_URL,
    Charger,
    RunningServer,
    missing,
    ocpp_charger,
    page_socket,
    raw_charger,
    serve,
)

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)

# The issue's list of central-system actions, by feature profile.
ISSUE_ACTIONS = {
    "Core": {
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "DataTransfer",
        "GetConfiguration",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "Reset",
        "UnlockConnector",
    },
    "Firmware Management": {"GetDiagnostics", "UpdateFirmware"},
    "Local Auth List Management": {"GetLocalListVersion", "SendLocalList"},
    "Reservation": {"ReserveNow", "CancelReservation"},
    "Smart Charging": {"SetChargingProfile", "ClearChargingProfile", "GetCompositeSchedule"},
    "Remote Trigger": {"TriggerMessage"},
    "Security": {
        "ExtendedTriggerMessage",
        "CertificateSigned",
        "InstallCertificate",
        "DeleteCertificate",
        "GetInstalledCertificateIds",
        "GetLog",
        "SignedUpdateFirmware",
    },
}

# One call per feature profile, and what the charger below answers to it.
ONE_PER_PROFILE = {
    "Core": ("Reset", {"status": "Accepted"}),
    "Firmware Management": ("GetDiagnostics", {"fileName": "diagnostics.zip"}),
    "Local Auth List Management": ("GetLocalListVersion", {"listVersion": 7}),
    "Reservation": ("ReserveNow", {"status": "Accepted"}),
    "Smart Charging": ("SetChargingProfile", {"status": "Accepted"}),
    "Remote Trigger": ("TriggerMessage", {"status": "Accepted"}),
    "Security": ("ExtendedTriggerMessage", {"status": "Accepted"}),
}

CONFIGURATION = [
    {"key": "HeartbeatInterval", "readonly": False, "value": "60"},
    {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
]


class AnsweringCharger(Charger):
    """A charger that answers one action of every profile, and records every frame."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[Any] = []
        self.arrived = asyncio.Event()

    async def route_message(self, raw_msg: str) -> None:
        self.frames.append(json.loads(raw_msg))
        self.arrived.set()
        await super().route_message(raw_msg)

    async def wait_for_call(self, action: str) -> list[Any]:
        async with asyncio.timeout(5):
            while True:
                for frame in self.frames:
                    if frame[0] == 2 and frame[2] == action:
                        return list(frame)
                self.arrived.clear()
                await self.arrived.wait()

    @on("Reset")
    def on_reset(self, type: str) -> call_result.Reset:
        return call_result.Reset(status="Accepted")

    @on("GetDiagnostics")
    def on_get_diagnostics(self, **_: Any) -> call_result.GetDiagnostics:
        return call_result.GetDiagnostics(file_name="diagnostics.zip")

    @on("GetLocalListVersion")
    def on_get_local_list_version(self) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(list_version=7)

    @on("ReserveNow")
    def on_reserve_now(self, **_: Any) -> call_result.ReserveNow:
        return call_result.ReserveNow(status="Accepted")

    @on("SetChargingProfile")
    def on_set_charging_profile(self, **_: Any) -> call_result.SetChargingProfile:
        return call_result.SetChargingProfile(status="Accepted")

    @on("TriggerMessage")
    def on_trigger_message(self, **_: Any) -> call_result.TriggerMessage:
        return call_result.TriggerMessage(status="Accepted")

    @on("ExtendedTriggerMessage")
    def on_extended_trigger_message(self, **_: Any) -> call_result.ExtendedTriggerMessage:
        return call_result.ExtendedTriggerMessage(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, **_: Any) -> call_result.GetConfiguration:
        return call_result.GetConfiguration(
            configuration_key=CONFIGURATION, unknown_key=["NoSuchKey"]
        )

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        return call_result.ChangeConfiguration(status="Accepted")

    @on("UnlockConnector")
    def on_unlock_connector(self, connector_id: int) -> call_result.UnlockConnector:
        raise NotSupportedError("this charger has a fixed cable")


# Reading the forms as a browser would


class FormReader(HTMLParser):
    """The name=value pairs a browser would submit from the form with id `form_id`."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._option: tuple[str | None, bool] | None = None
        self._first_option: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.inside = attributes.get("id") == self.form_id
        if not self.inside:
            return
        name = attributes.get("name")
        if tag == "input" and name:
            if attributes.get("type") != "checkbox" or "checked" in attributes:
                self.values[name] = attributes.get("value", "on")
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select:
            self._option = (dict(attrs).get("value"), "selected" in attributes)
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data
        elif self._option is not None and self._select:
            value, selected = self._option
            value = data if value is None else value
            self._first_option.setdefault(self._select, value)
            if selected:
                self.values[self._select] = value
            self._option = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self._textarea:
            # HTML drops one line break right after <textarea>.
            self.values[self._textarea] = self.values[self._textarea].removeprefix("\n")
            self._textarea = None
        elif tag == "select" and self._select:
            self.values.setdefault(self._select, self._first_option.get(self._select, ""))
            self._select = None


def form_values(html: str, form_id: str = "op-form") -> dict[str, str]:
    reader = FormReader(form_id)
    reader.feed(html)
    return reader.values


async def open_form(client: httpx.AsyncClient, identity: str, action: str) -> dict[str, str]:
    response = await client.get(f"/chargers/{identity}/operations/{action}")
    assert response.status_code == 200
    return form_values(response.text)


def row_id(unique_id: str) -> str:
    return f'id="call-{dom_id(unique_id)}"'


def sent_as(html: str) -> str:
    """The unique id the form reports after "sent as"."""
    assert "sent as <code>" in html, html
    return html.split("sent as <code>", 1)[1].split("</code>", 1)[0]


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        yield http


# Examples and pure helpers


def test_the_panel_offers_exactly_the_issues_actions() -> None:
    offered = {
        profile: set(actions) for profile, actions in OCPP16.central_actions_by_profile.items()
    }
    assert offered == ISSUE_ACTIONS
    assert set(ONE_PER_PROFILE) == set(ISSUE_ACTIONS)
    assert set(operations.ACTION_HELP) == set(OCPP16.central_actions)


@pytest.mark.parametrize("action", OCPP16.central_actions)
def test_every_example_validates_against_the_official_request_schema(action: str) -> None:
    assert_official(action, example_request(action, NOW), response=False)


@pytest.mark.parametrize("action", OCPP16.central_actions)
def test_every_prefilled_form_reads_back_as_its_example(action: str) -> None:
    example = example_request(action, NOW)
    submitted: dict[str, str] = {"source": "form"}

    def flatten(fields: list[Any]) -> None:
        for field in fields:
            if field.children:
                flatten(field.children)
            else:
                submitted[field.name] = field.value

    flatten(build_fields(OCPP16.schema(action, False), example))
    _, payload, problems = operations.read_operation(OCPP16, action, submitted, NOW)
    assert problems == []
    assert payload == example


def test_now_placeholder_becomes_the_time_of_sending() -> None:
    payload = {"a": "{now}", "b": [{"c": "{now}"}], "d": "later {now}"}
    assert operations.with_now(payload, NOW) == {
        "a": "2026-03-01T12:00:00.000Z",
        "b": [{"c": "2026-03-01T12:00:00.000Z"}],
        "d": "later {now}",
    }


def test_configuration_rows_tolerate_odd_chargers() -> None:
    rows, unknown = operations.configuration_rows(
        {
            "configurationKey": [
                {"key": "MeterValueSampleInterval", "readonly": False, "value": 60},
                {"key": "NoValue", "readonly": True},
                "not an entry",
            ],
            "unknownKey": ["Foo"],
        }
    )
    assert rows == [
        operations.ConfigRow("MeterValueSampleInterval", "60", False),
        operations.ConfigRow("NoValue", None, True),
    ]
    assert unknown == ["Foo"]


# The page


async def test_charger_page_lists_every_action_by_profile(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    page = (await client.get("/chargers/CP-1")).text
    operations_panel = page.split('id="operations"', 1)[1]
    for profile, actions in OCPP16.central_actions_by_profile.items():
        assert f">{profile}" in operations_panel
        for action in actions:
            assert f'hx-get="/chargers/CP-1/operations/{action}"' in operations_panel
    assert 'id="calls"' in operations_panel
    assert 'id="raw-form"' in operations_panel


async def test_every_prefilled_form_can_be_sent_as_it_opens(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    # No charger is connected: a valid payload is refused only for being offline (409),
    # never for breaking its schema (422).
    for action in OCPP16.central_actions:
        values = await open_form(client, "CP-1", action)
        response = await client.post(f"/chargers/CP-1/operations/{action}", data=values)
        assert response.status_code == 409, (action, response.text)
        assert "Charger offline" in response.text


async def test_remote_stop_is_prefilled_with_the_running_transaction(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    from ocpp.v16 import call

    async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
        started = await charger.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG", meter_start=0, timestamp="2026-03-01T12:00:00Z"
            )
        )
        values = await open_form(client, "CP-1", "RemoteStopTransaction")
    assert values["f.transactionId"] == str(started.transaction_id)


# Round trips, one call per feature profile


@pytest.mark.parametrize("profile", sorted(ONE_PER_PROFILE))
async def test_a_call_per_profile_round_trips_through_the_api(
    server: RunningServer, client: httpx.AsyncClient, profile: str
) -> None:
    action, answer = ONE_PER_PROFILE[profile]
    example = example_request(action, NOW)
    async with ocpp_charger(
        server.charger_url("CP-1"), "CP-1", charger_class=AnsweringCharger
    ) as charger:
        response = await client.post(f"/api/chargers/CP-1/calls/{action}", json=example)
        assert response.status_code == 200, response.text
        assert response.json() == answer
        received = await charger.wait_for_call(action)
    assert received[1] == response.headers["x-unique-id"]
    assert received[3] == example


@pytest.mark.parametrize("profile", sorted(ONE_PER_PROFILE))
async def test_a_call_per_profile_round_trips_through_the_form(
    server: RunningServer, client: httpx.AsyncClient, profile: str
) -> None:
    action, answer = ONE_PER_PROFILE[profile]
    async with (
        page_socket(server, "CP-1") as page,
        ocpp_charger(server.charger_url("CP-1"), "CP-1", charger_class=AnsweringCharger) as charger,
    ):
        values = await open_form(client, "CP-1", action)
        response = await client.post(f"/chargers/CP-1/operations/{action}", data=values)
        assert response.status_code == 200, response.text
        unique_id = sent_as(response.text)
        received = await charger.wait_for_call(action)
        row = await page.wait_for(f'{row_id(unique_id)} class="call call-result"')
    assert received[1] == unique_id
    assert_official(action, received[3], response=False)
    assert "Answered in" in row
    assert json.dumps(answer, indent=2).replace('"', "&#34;") in row


async def test_the_calls_list_shows_a_call_sent_then_answered(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    async with (
        page_socket(server, "CP-1") as page,
        ocpp_charger(server.charger_url("CP-1"), "CP-1", charger_class=AnsweringCharger),
    ):
        response = await client.post("/api/chargers/CP-1/calls/Reset", json={"type": "Soft"})
        unique_id = response.headers["x-unique-id"]
        waiting = await page.wait_for(f'{row_id(unique_id)} class="call call-waiting"')
        answered = await page.wait_for(f'{row_id(unique_id)} class="call call-result"')
        number = await wait_line(page, unique_id, dir="out", type="CALL")
        outcome = await wait_outcome(page, number, 'data-t="CALLRESULT"')
        detail = await expand(page, number)
    assert 'hx-swap-oob="afterbegin"' in waiting  # the first news of a call inserts its row
    assert "Sent, waiting for the answer" in waiting
    assert 'class="countdown"' in waiting
    assert "Accepted" in answered
    assert "answered in" in outcome
    # the frame itself is in the log: the call's line, expanded, shows the charger's answer
    assert '"status": "Accepted"' in pretty_frames(detail)[1]
    assert frames(detail)[1] == [3, unique_id, {"status": "Accepted"}]


async def test_a_page_opened_later_gets_the_calls_list_back(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    async with ocpp_charger(server.charger_url("CP-1"), "CP-1", charger_class=AnsweringCharger):
        response = await client.post("/api/chargers/CP-1/calls/Reset", json={"type": "Hard"})
        unique_id = response.headers["x-unique-id"]
        async with page_socket(server, "CP-1") as page:
            fragment = await page.wait_for('<ol id="calls"')
    assert 'hx-swap-oob="innerHTML"' in fragment
    assert f'{row_id(unique_id)} class="call call-result"' in fragment


# CALLERROR, timeout, offline


async def test_a_callerror_is_a_502_and_shows_in_the_log_and_calls(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    async with (
        page_socket(server, "CP-1") as page,
        ocpp_charger(server.charger_url("CP-1"), "CP-1", charger_class=AnsweringCharger),
    ):
        response = await client.post(
            "/api/chargers/CP-1/calls/UnlockConnector", json={"connectorId": 1}
        )
        assert response.status_code == 502
        body = response.json()
        unique_id = body["unique_id"]
        number = await wait_line(page, unique_id, dir="out", type="CALL")
        log = await wait_outcome(page, number, 'data-t="CALLERROR"')
        detail = await expand(page, number)
        row = await page.wait_for(f'{row_id(unique_id)} class="call call-error"')
    assert body["callerror"]["code"] == "NotSupported"
    assert body["callerror"]["description"] == "this charger has a fixed cable"
    assert "CALLERROR NotSupported" in log
    assert 'class="o bad' in log
    answer = frames(detail)[1]
    assert answer[:4] == [4, unique_id, "NotSupported", "this charger has a fixed cable"]
    assert "CALLERROR NotSupported" in row
    assert "this charger has a fixed cable" in row


async def test_a_charger_that_never_answers_gives_504_after_the_timeout() -> None:
    async with (
        serve(Settings(call_timeout=1)) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as client,
        page_socket(server, "CP-1") as page,
    ):
        charger = await raw_charger(server, "CP-1")
        try:
            response = await client.post("/api/chargers/CP-1/calls/Reset", json={"type": "Soft"})
            sent = json.loads(await charger.recv())
        finally:
            await charger.close()
        row = await page.wait_for(f'{row_id(sent[1])} class="call call-timeout"')
    assert response.status_code == 504
    assert response.json()["unique_id"] == sent[1]
    assert "timed out" in row


async def test_offline_is_409_in_the_api_and_said_on_every_form(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    api_call = await client.post("/api/chargers/CP-9/calls/Reset", json={"type": "Soft"})
    api_frame = await client.post(
        "/api/chargers/CP-9/frames", content="[]", headers={"Content-Type": "application/json"}
    )
    form = await client.post(
        "/chargers/CP-9/operations/Reset", data={"source": "form", "f.type": "Soft"}
    )
    raw = await client.post("/chargers/CP-9/raw", data={"text": "[]"})
    change = await client.post("/chargers/CP-9/configuration", data={"key": "K", "value": "1"})
    assert (api_call.status_code, api_frame.status_code) == (409, 409)
    assert form.status_code == 409
    assert "Charger offline" in form.text
    assert "nothing was sent or queued" in form.text
    assert 'name="f.type"' in form.text  # the form stays, as it was
    assert raw.status_code == 409
    assert "Charger offline" in raw.text
    assert change.status_code == 409
    assert "offline" in change.text


# The queue


async def test_queued_calls_go_out_in_order(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        async with page_socket(server, "CP-1") as page:
            first = asyncio.create_task(
                client.post("/api/chargers/CP-1/calls/Reset", json={"type": "Soft"})
            )
            reset = json.loads(await charger.recv())
            second = asyncio.create_task(client.post("/api/chargers/CP-1/calls/ClearCache"))
            queued = await page.wait_for("Queued, position 1")
            status = (await client.get("/api/chargers/CP-1")).json()
            assert (status["queued_calls"], status["calls_in_flight"]) == (1, 1)
            assert reset[2] == "Reset"
            assert "ClearCache" in queued
            await charger.send(json.dumps([3, reset[1], {"status": "Accepted"}]))
            clear_cache = json.loads(await charger.recv())
            assert clear_cache[2] == "ClearCache"
            await charger.send(json.dumps([3, clear_cache[1], {"status": "Accepted"}]))
            assert (await first).status_code == 200
            assert (await second).status_code == 200
    finally:
        await charger.close()


async def test_an_expert_call_from_the_form_skips_the_queue(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        first = asyncio.create_task(
            client.post("/api/chargers/CP-1/calls/Reset", json={"type": "Soft"})
        )
        reset = json.loads(await charger.recv())
        values = await open_form(client, "CP-1", "ClearCache")
        response = await client.post(
            "/chargers/CP-1/operations/ClearCache", data={**values, "concurrent": "on"}
        )
        clear_cache = json.loads(await charger.recv())  # arrives while Reset is unanswered
        assert clear_cache[1] == sent_as(response.text)
        assert clear_cache[2] == "ClearCache"
        await charger.send(json.dumps([3, reset[1], {"status": "Accepted"}]))
        assert (await first).status_code == 200
    finally:
        await charger.close()


async def test_a_queued_call_can_be_cancelled(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        async with page_socket(server, "CP-1") as page:
            first = asyncio.create_task(
                client.post("/api/chargers/CP-1/calls/Reset", json={"type": "Soft"})
            )
            reset = json.loads(await charger.recv())
            values = await open_form(client, "CP-1", "ClearCache")
            response = await client.post("/chargers/CP-1/operations/ClearCache", data=values)
            unique_id = sent_as(response.text)
            queued = await page.wait_for(f'{row_id(unique_id)} class="call call-queued"')
            assert 'action="/chargers/CP-1/cancel"' in queued
            cancel = await client.post("/chargers/CP-1/cancel", data={"unique_id": unique_id})
            assert cancel.status_code == 204
            row = await page.wait_for(f'{row_id(unique_id)} class="call call-cancelled"')
            assert "Cancelled before it was sent" in row
            await charger.send(json.dumps([3, reset[1], {"status": "Accepted"}]))
            assert (await first).status_code == 200
            assert (await client.get("/api/chargers/CP-1")).json()["calls_in_flight"] == 0
    finally:
        await charger.close()


# Validation on the form


async def test_a_bad_value_is_shown_at_its_field_and_nothing_is_sent(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        values = await open_form(client, "CP-1", "ChangeAvailability")
        values.update({"f.connectorId": "one", "f.type": "Sideways"})
        response = await client.post("/chargers/CP-1/operations/ChangeAvailability", data=values)
        assert response.status_code == 422
        assert 'value="one"' in response.text  # what was typed stays
        assert 'id="op-field-connectorId-error"' in response.text
        assert "must be a whole number" in response.text
        assert "Not sent." in response.text
        status = (await client.get("/api/chargers/CP-1")).json()
        assert (status["queued_calls"], status["calls_in_flight"]) == (0, 0)

        values["f.connectorId"] = "0"
        response = await client.post("/chargers/CP-1/operations/ChangeAvailability", data=values)
        assert response.status_code == 422
        assert 'id="op-field-type-error"' in response.text
        assert "&#39;Sideways&#39; is not one of" in response.text
        assert "<option selected>Sideways</option>" in response.text

        response = await client.post(
            "/chargers/CP-1/operations/ChangeAvailability",
            data={**values, "skip_validation": "on"},
        )
        assert response.status_code == 200
        sent = json.loads(await charger.recv())
        assert sent[1:] == [
            sent_as(response.text),
            "ChangeAvailability",
            {"connectorId": 0, "type": "Sideways"},
        ]
    finally:
        await charger.close()


async def test_edit_as_json_sends_the_json_and_keeps_broken_json_as_typed(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        values = await open_form(client, "CP-1", "DataTransfer")
        broken = '{"vendorId": "ocpplab", '
        response = await client.post(
            "/chargers/CP-1/operations/DataTransfer",
            data={**values, "json": broken, "source": "json"},
        )
        assert response.status_code == 422
        assert "This is not valid JSON" in response.text
        assert f"\n{broken}</textarea>".replace('"', "&#34;") in response.text
        assert '<details class="op-json" open>' in response.text

        payload = {"vendorId": "acme", "messageId": "Hi", "data": "{now}"}
        response = await client.post(
            "/chargers/CP-1/operations/DataTransfer",
            data={**values, "json": json.dumps(payload), "source": "json"},
        )
        assert response.status_code == 200
        sent = json.loads(await charger.recv())
        assert sent[3]["vendorId"] == "acme"
        assert sent[3]["data"].endswith("Z")  # {now} became the time of sending
        assert 'value="acme"' in response.text  # the fields follow the JSON that was sent
    finally:
        await charger.close()


async def test_form_posts_from_another_site_are_refused(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        evil = {"origin": "https://evil.example"}
        ours = {"origin": server.http}
        for path, data in [
            ("/chargers/CP-1/operations/Reset", {"f.type": "Hard", "source": "form"}),
            ("/chargers/CP-1/raw", {"text": "[]"}),
            ("/chargers/CP-1/configuration", {"key": "K", "value": "1"}),
            ("/chargers/CP-1/cancel", {"unique_id": "x"}),
        ]:
            response = await client.post(path, data=data, headers=evil)
            assert response.status_code == 403, path
        response = await client.post("/chargers/CP-1/raw", data={"text": "[]"}, headers=ours)
        assert response.status_code == 200
        assert await charger.recv() == "[]"  # the first frame that reached the charger
    finally:
        await charger.close()


# Raw frames


async def test_a_raw_frame_reaches_the_charger_byte_for_byte(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    text = ' [2 ,"dup-1","MakeCoffee",{"größe":"☕ groß"}  \n] '
    charger = await raw_charger(server, "CP-1")
    try:
        response = await client.post(
            "/api/chargers/CP-1/frames",
            content=text.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 202
        assert await charger.recv() == text

        # A browser submits a textarea's line breaks as CRLF; the charger gets what was typed.
        typed = '[2, "dup-1", "Reset", {"type":\n"Soft"}'
        response = await client.post(
            "/chargers/CP-1/raw", data={"text": typed.replace("\n", "\r\n")}
        )
        assert response.status_code == 200
        assert await charger.recv() == typed
        assert f"Sent {len(typed)} characters exactly as typed" in response.text
        assert "\n" + typed.replace('"', "&#34;") + "</textarea>" in response.text

        empty = await client.post("/chargers/CP-1/raw", data={"text": ""})
        assert empty.status_code == 422
    finally:
        await charger.close()


async def test_raw_examples_fill_the_box(server: RunningServer, client: httpx.AsyncClient) -> None:
    for key in operations.RAW_EXAMPLES:
        response = await client.get(f"/chargers/CP-1/raw?example={key}")
        assert response.status_code == 200
        assert form_values(response.text, "raw-form")["text"].startswith("[")
    assert (await client.get("/chargers/CP-1/raw?example=nope")).status_code == 404


# GetConfiguration as a table, and ChangeConfiguration in one step


async def test_get_configuration_table_changes_a_value_in_one_step(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    async with (
        page_socket(server, "CP-1") as page,
        ocpp_charger(server.charger_url("CP-1"), "CP-1", charger_class=AnsweringCharger) as charger,
    ):
        response = await client.post("/api/chargers/CP-1/calls/GetConfiguration", json={})
        unique_id = response.headers["x-unique-id"]
        row = await page.wait_for(f'{row_id(unique_id)} class="call call-result"')
        table = row.split("<table", 1)[1].split("</table>", 1)[0]
        assert "<code>HeartbeatInterval</code>" in table
        assert "<code>NumberOfConnectors</code>" in table
        assert table.count('class="cfg-change"') == 1  # read-only keys cannot be changed
        assert "NoSuchKey" in row

        change = await client.post(
            "/chargers/CP-1/configuration", data={"key": "HeartbeatInterval", "value": "30"}
        )
        received = await charger.wait_for_call("ChangeConfiguration")
    assert change.status_code == 200
    assert '<span class="form-ok">Accepted' in change.text
    assert received[3] == {"key": "HeartbeatInterval", "value": "30"}


# The same through Redis: a call is answered and "offline" is known at once


@pytest.mark.redis
async def test_calls_and_offline_through_redis() -> None:
    import redis.asyncio

    connection = redis.asyncio.from_url(REDIS_URL)
    try:
        await connection.ping()
    except Exception:
        missing(f"Redis at {REDIS_URL}")
    finally:
        await connection.aclose()
    identity = f"CP-{uuid.uuid4().hex[:8]}"
    async with (
        serve(Settings(redis_url=REDIS_URL, call_timeout=2)) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as client,
    ):
        offline = await client.post(f"/api/chargers/{identity}/calls/Reset", json={"type": "Soft"})
        assert offline.status_code == 409
        async with (
            page_socket(server, identity) as page,
            ocpp_charger(server.charger_url(identity), identity, charger_class=AnsweringCharger),
        ):
            values = await open_form(client, identity, "Reset")
            response = await client.post(f"/chargers/{identity}/operations/Reset", data=values)
            assert response.status_code == 200
            await page.wait_for(f'{row_id(sent_as(response.text))} class="call call-result"')


async def test_the_api_refuses_a_bad_payload_unless_told_to_send_it_anyway(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        unknown = await client.post("/api/chargers/CP-1/calls/MakeCoffee", json={})
        assert unknown.status_code == 404
        refused = await client.post("/api/chargers/CP-1/calls/Reset", json={"type": "Sideways"})
        assert refused.status_code == 422
        assert refused.json()["violations"][0]["path"] == "$.type"
        sending = asyncio.create_task(
            client.post("/api/chargers/CP-1/calls/Reset?validate=false", json={"type": "Sideways"})
        )
        sent = json.loads(await charger.recv())  # the first frame the charger gets
        assert sent[2:] == ["Reset", {"type": "Sideways"}]
        await charger.send(json.dumps([4, sent[1], "PropertyConstraintViolation", "no", {}]))
        assert (await sending).status_code == 502
    finally:
        await charger.close()
