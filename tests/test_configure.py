"""Configure over real sockets: rules set by the API or the forms reach a real charger."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from ocpp.v16 import call

from ocpplab.config import Settings
from tests.page_support import exact_frames, expand_until, wait_line
from tests.support import (
    RunningServer,
    exchange,
    ocpp_charger,
    page_socket,
    raw_charger,
    serve,
)

BOOT = call.BootNotification(charge_point_model="M", charge_point_vendor="V")


def client(server: RunningServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http, timeout=10)


async def held_unique_id(page: Any, action: str) -> str:
    fragment = await page.wait_for(f"{action} waits for your answer")
    return str(
        fragment.split('class="card held-card"')[1].split('data-unique-id="')[1].split('"')[0]
    )


async def test_a_configured_boot_rejected_reaches_the_charger(server: RunningServer) -> None:
    async with client(server) as http:
        response = await http.put(
            "/api/chargers/CP-1/responses/BootNotification",
            json={
                "mode": "custom",
                "payload": {"status": "Rejected", "currentTime": "{now}", "interval": 90},
            },
        )
        assert response.status_code == 200
    async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
        result = await charger.call(BOOT)
    assert (result.status, result.interval) == ("Rejected", 90)
    assert result.current_time.endswith("Z")


async def test_an_ignore_rule_lets_the_chargers_call_time_out(server: RunningServer) -> None:
    async with client(server) as http:
        await http.put("/api/chargers/CP-1/responses/Heartbeat", json={"mode": "ignore"})
    async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
        charger._response_timeout = 0.5
        with pytest.raises(asyncio.TimeoutError):
            await charger.call(call.Heartbeat())
        charger._response_timeout = 5
        assert (await charger.call(BOOT)).status == "Accepted"  # the connection lives on


async def test_a_manual_answer_reaches_the_charger_exactly(server: RunningServer) -> None:
    async with client(server) as http:
        await http.put("/api/chargers/CP-1/responses/Authorize", json={"mode": "manual"})
        async with (
            page_socket(server, "CP-1") as page,
            ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger,
        ):
            pending = asyncio.create_task(charger.call(call.Authorize(id_tag="TAG")))
            unique_id = await held_unique_id(page, "Authorize")
            edited = {"idTagInfo": {"status": "Blocked", "parentIdTag": "PARENT"}}
            response = await http.post(
                f"/api/chargers/CP-1/held/{unique_id}", json={"payload": edited}
            )
            assert response.status_code == 200
            result = await pending
            assert result.id_tag_info == {"status": "Blocked", "parent_id_tag": "PARENT"}
            # the log shows what the charger received, byte for byte, on the call's line
            raw = json.dumps([3, unique_id, edited], separators=(",", ":"))
            number = await wait_line(page, unique_id, dir="in", type="CALL")
            detail = await expand_until(page, number, "CALLRESULT")
            assert exact_frames(detail)[1] == raw
            # a second answer is too late
            late = await http.post(f"/api/chargers/CP-1/held/{unique_id}", json={"ignore": True})
            assert late.status_code == 410


async def test_held_calls_do_not_block_other_frames(server: RunningServer) -> None:
    async with client(server) as http:
        await http.put("/api/chargers/CP-1/responses/StartTransaction", json={"mode": "manual"})
    async with page_socket(server, "CP-1") as page:
        connection = await raw_charger(server, "CP-1")
        try:
            start = {
                "connectorId": 1,
                "idTag": "T",
                "meterStart": 0,
                "timestamp": "2026-11-26T12:00:00Z",
            }
            await connection.send(json.dumps([2, "s1", "StartTransaction", start]))
            await held_unique_id(page, "StartTransaction")
            # The charger sends more without waiting; those are answered meanwhile.
            answer = await exchange(connection, [2, "h1", "Heartbeat", {}])
            assert answer[:2] == [3, "h1"]
            async with client(server) as http:
                await http.post(
                    "/api/chargers/CP-1/held/s1",
                    json={"payload": {"idTagInfo": {"status": "Accepted"}, "transactionId": 5}},
                )
            held = json.loads(await connection.recv())
            assert held == [3, "s1", {"idTagInfo": {"status": "Accepted"}, "transactionId": 5}]
        finally:
            await connection.close()


async def test_a_held_call_falls_back_to_the_default_when_nobody_answers() -> None:
    async with serve(Settings(call_timeout=2, manual_timeout=0.5)) as server:
        async with client(server) as http:
            await http.put("/api/chargers/CP-1/responses/Heartbeat", json={"mode": "manual"})
        async with (
            page_socket(server, "CP-1") as page,
            ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger,
        ):
            result = await charger.call(call.Heartbeat())
            assert result.current_time.endswith("Z")
            await page.wait_for("nobody answered in time, the default answer was sent")


async def test_a_held_call_with_fallback_ignore_stays_unanswered(server: RunningServer) -> None:
    async with client(server) as http:
        await http.put(
            "/api/chargers/CP-1/responses/Heartbeat",
            json={"mode": "manual", "timeout": 1, "fallback": "ignore"},
        )
    async with (
        page_socket(server, "CP-1") as page,
        ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger,
    ):
        charger._response_timeout = 2
        with pytest.raises(asyncio.TimeoutError):
            await charger.call(call.Heartbeat())
        await page.wait_for("nobody answered in time, left unanswered")


async def test_a_delay_holds_the_answer_back(server: RunningServer) -> None:
    async with client(server) as http:
        await http.put("/api/chargers/CP-1/responses/Heartbeat", json={"delay": 0.6})
    async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
        started = time.monotonic()
        await charger.call(call.Heartbeat())
        assert time.monotonic() - started >= 0.6


async def test_rules_survive_a_charger_reconnect_and_a_page_refresh(server: RunningServer) -> None:
    async with client(server) as http:
        await http.put(
            "/api/chargers/CP-1/responses/Authorize",
            json={"mode": "custom", "payload": {"idTagInfo": {"status": "Expired"}}},
        )
        for _ in range(2):
            async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
                result = await charger.call(call.Authorize(id_tag="T"))
                assert result.id_tag_info["status"] == "Expired"
        page = await http.get("/chargers/CP-1")
        assert "custom: {&#34;idTagInfo&#34;:{&#34;status&#34;:&#34;Expired&#34;}}" in page.text


async def test_rules_expire_after_the_settings_ttl() -> None:
    async with serve(Settings(settings_ttl=1)) as server, client(server) as http:
        await http.put("/api/chargers/CP-1/responses/Heartbeat", json={"mode": "ignore"})
        assert (await http.get("/api/chargers/CP-1/responses/Heartbeat")).json()["mode"] == "ignore"
        await asyncio.sleep(1.2)
        assert (await http.get("/api/chargers/CP-1/responses/Heartbeat")).json()[
            "mode"
        ] == "default"


async def test_reset_restores_the_default(server: RunningServer) -> None:
    async with client(server) as http:
        await http.put("/api/chargers/CP-1/responses/Heartbeat", json={"mode": "ignore"})
        assert (await http.delete("/api/chargers/CP-1/responses/Heartbeat")).json()["mode"] == (
            "default"
        )
        form = await http.post("/chargers/CP-1/rules/Authorize", data={"preset": "blocked"})
        assert "Saved" in form.text
        form = await http.post("/chargers/CP-1/rules/Authorize", data={"reset": "1"})
        assert "is now answered with default" in form.text
    async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
        assert (await charger.call(call.Heartbeat())).current_time
        assert (await charger.call(call.Authorize(id_tag="T"))).id_tag_info["status"] == "Accepted"


async def test_every_open_page_shows_the_current_rule(server: RunningServer) -> None:
    async with page_socket(server, "CP-1") as first, page_socket(server, "CP-1") as second:
        async with client(server) as http:
            await http.put("/api/chargers/CP-1/responses/Heartbeat", json={"mode": "ignore"})
        for page in (first, second):
            fragment = await page.wait_for('id="rule-summary-Heartbeat"')
            assert "no answer (ignore)" in fragment.split('id="rule-summary-Heartbeat"')[1][:200]


async def test_the_boot_pending_preset_is_one_click(server: RunningServer) -> None:
    async with client(server) as http:
        form = await http.post("/chargers/CP-1/rules/BootNotification", data={"preset": "pending"})
        assert form.status_code == 200
        assert "Saved" in form.text
    async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
        result = await charger.call(BOOT)
    assert (result.status, result.interval) == ("Pending", 15)


async def test_the_form_saves_a_custom_payload_from_its_fields(server: RunningServer) -> None:
    async with client(server) as http:
        form = await http.post(
            "/chargers/CP-1/rules/BootNotification",
            data={
                "mode": "custom",
                "f.status": "Pending",
                "f.currentTime": "{now}",
                "f.interval": "15",
                "delay": "0",
                "source": "form",
            },
        )
        assert "Saved" in form.text
        rule = (await http.get("/api/chargers/CP-1/responses/BootNotification")).json()
    assert rule["payload"] == {"status": "Pending", "currentTime": "{now}", "interval": 15}


async def test_the_form_shows_every_problem_next_to_its_field(server: RunningServer) -> None:
    async with client(server) as http:
        form = await http.post(
            "/chargers/CP-1/rules/BootNotification",
            data={
                "mode": "custom",
                "f.status": "Pending",
                "f.interval": "soon",
                "delay": "999",
                "source": "form",
            },
        )
        assert form.status_code == 422
        assert 'id="rf-BootNotification-field-interval-error">must be a whole number' in form.text
        assert 'id="rf-BootNotification-delay-error">must be between 0 and 300' in form.text
        assert 'value="soon"' in form.text  # nothing typed is lost
        rule = (await http.get("/api/chargers/CP-1/responses/BootNotification")).json()
        assert rule["mode"] == "default"  # nothing saved


async def test_an_invalid_payload_lists_every_violation_and_can_be_forced(
    server: RunningServer,
) -> None:
    invalid = {"status": "Maybe", "interval": "60"}
    async with client(server) as http:
        form = await http.post(
            "/chargers/CP-1/rules/BootNotification",
            data={
                "mode": "custom",
                "payload_json": json.dumps(invalid),
                "source": "json",
                "delay": "0",
            },
        )
        assert form.status_code == 422
        assert "Not saved" in form.text
        assert "in 3 place(s)" in form.text  # bad enum, wrong type, missing currentTime
        assert "&#39;Maybe&#39; is not one of" in form.text
        assert "required, but left empty (OccurenceConstraintViolation)" in form.text
        api = await http.put(
            "/api/chargers/CP-1/responses/BootNotification",
            json={"mode": "custom", "payload": invalid},
        )
        assert api.status_code == 422
        assert len(api.json()["violations"]) == 3
        forced = await http.post(
            "/chargers/CP-1/rules/BootNotification",
            data={
                "mode": "custom",
                "payload_json": json.dumps(invalid),
                "source": "json",
                "delay": "0",
                "force": "on",
            },
        )
        assert "Saved" in forced.text
    connection = await raw_charger(server, "CP-1")
    try:
        answer = await exchange(
            connection,
            [2, "b1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}],
        )
        assert answer == [3, "b1", invalid]  # invalid on purpose, exactly as configured
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("validation", "expected"),
    [("strict", [4, "m1", "TypeConstraintViolation"]), ("lenient", [3, "m1", {}])],
)
async def test_the_validation_policy_decides_answers_to_invalid_calls(
    server: RunningServer, validation: str, expected: list[Any]
) -> None:
    async with client(server) as http:
        response = await http.post("/chargers/CP-1/validation", data={"validation": validation})
        assert response.status_code == 200
    connection = await raw_charger(server, "CP-1")
    try:
        answer = await exchange(
            connection,
            [
                2,
                "m1",
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {"timestamp": "2026-11-26T12:00:00Z", "sampledValue": [{"value": 230.1}]}
                    ],
                },
            ],
        )
        assert answer[: len(expected)] == expected
    finally:
        await connection.close()


async def test_strict_validation_survives_api_rule_changes_and_a_reconnect(
    server: RunningServer,
) -> None:
    # Only the form sets the validation policy (the JSON API has no face for it); the API's
    # rule changes rewrite the same per-identity settings, and a reconnect reads them anew.
    invalid_boot = [2, "b", "BootNotification", {"chargePointVendor": "V"}]
    fixed_time = {"currentTime": "2026-01-01T00:00:00.000Z"}
    async with client(server) as http:
        saved = await http.post("/chargers/CP-1/validation", data={"validation": "strict"})
        assert saved.status_code == 200
        rule = await http.put(
            "/api/chargers/CP-1/responses/Heartbeat", json={"mode": "custom", "payload": fixed_time}
        )
        assert rule.status_code == 200, rule.text
        for connection_number, heartbeat in ((1, fixed_time), (2, None)):
            connection = await raw_charger(server, "CP-1")
            try:
                answer = await exchange(connection, invalid_boot)
                assert answer[:3] == [4, "b", "OccurenceConstraintViolation"], (
                    f"connection {connection_number} was not answered strictly: {answer}"
                )
                assert answer[4]["violations"][0]["path"] == "$"
                answered = await exchange(connection, [2, "h", "Heartbeat", {}])
                assert answered[:2] == [3, "h"]
                assert heartbeat is None or answered[2] == heartbeat
                assert heartbeat is not None or answered[2] != fixed_time
            finally:
                await connection.close()
            # Between the connections, the API resets the rule: strict must stay all the same.
            reset = await http.delete("/api/chargers/CP-1/responses/Heartbeat")
            assert reset.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"mode": "loud"}, 422, "mode must be one of"),
        ({"mode": "error"}, 422, "needs an error"),
        ({"delay": -1}, 422, "between 0 and 300"),
    ],
)
async def test_the_api_refuses_bad_rules_with_the_reason(
    server: RunningServer, body: dict[str, Any], status: int, reason: str
) -> None:
    async with client(server) as http:
        response = await http.put("/api/chargers/CP-1/responses/Heartbeat", json=body)
    assert response.status_code == status
    assert reason in response.json()["error"]


async def test_the_api_knows_only_charger_actions(server: RunningServer) -> None:
    async with client(server) as http:
        response = await http.get("/api/chargers/CP-1/responses/Reset")
        assert response.status_code == 404
        form = await http.get("/chargers/CP-1/rules/Reset")
        assert form.status_code == 404


async def test_a_cross_site_form_post_is_refused(server: RunningServer) -> None:
    async with client(server) as http:
        response = await http.post(
            "/chargers/CP-1/rules/Heartbeat",
            data={"preset": "ignore"},
            headers={"Origin": "https://evil.example"},
        )
        assert response.status_code == 403
        rule = (await http.get("/api/chargers/CP-1/responses/Heartbeat")).json()
    assert rule["mode"] == "default"


async def test_a_held_call_is_answered_from_the_page_form(server: RunningServer) -> None:
    async with client(server) as http:
        await http.put("/api/chargers/CP-1/responses/Heartbeat", json={"mode": "manual"})
        async with (
            page_socket(server, "CP-1") as page,
            ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger,
        ):
            pending = asyncio.create_task(charger.call(call.Heartbeat(), suppress=False))
            unique_id = await held_unique_id(page, "Heartbeat")
            response = await http.post(
                f"/chargers/CP-1/held/{unique_id}",
                data={"reply": "error", "error_code": "NotSupported"},
            )
            assert response.status_code == 204
            with pytest.raises(Exception, match=r"NotSupported|answered by hand"):
                await pending
            await page.wait_for("answered from a page")
