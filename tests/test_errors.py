"""The one error -> HTTP mapping (`ocpplab.web.errors`), through the real app.

Each of ocpplab's errors gets the status of DESIGN.md's contract table and its message:
`{"error": ...}` from the JSON API, a sentence from the dashboard's forms. The servers,
chargers and Redis here are real (tests/support.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from ocpplab.config import Settings
from ocpplab.core.errors import BrokerUnavailable, ConfigError, NotFound, UnknownAction
from ocpplab.web.errors import refusal
from tests.support import RunningServer, exchange, raw_charger, serve
from tests.test_redis_faults import RedisServer, stopped

BOOT = [2, "boot", "BootNotification", {"chargePointModel": "M", "chargePointVendor": "V"}]


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        yield client


# The table itself


def test_the_nearest_class_in_the_table_decides() -> None:
    assert refusal(BrokerUnavailable("down")).status == 503  # a BrokerError
    assert refusal(UnknownAction("no", actions=["Reset"])).details == {"actions": ["Reset"]}
    assert refusal(NotFound("no preset")).details == {}
    with pytest.raises(TypeError, match="no HTTP answer for ConfigError"):
        refusal(ConfigError("OCPPLAB_PORT must be a number"))


# 400, 404: what the path names


async def test_a_bad_identity_is_400_in_the_api_and_on_the_pages(
    http: httpx.AsyncClient,
) -> None:
    too_long = "x" * 49
    reason = "a charger identity has at most 48 characters, not 49"
    api = await http.get(f"/api/chargers/{too_long}")
    page = await http.get(f"/chargers/{too_long}")
    form = await http.post(f"/chargers/{too_long}/cancel", data={"unique_id": "u"})
    assert (api.status_code, api.json()) == (400, {"error": reason})
    assert (page.status_code, page.text) == (400, reason + "\n")
    assert (form.status_code, form.text) == (400, f"Not cancelled: {reason}\n")


async def test_an_unknown_action_is_404_and_the_api_lists_the_known_ones(
    http: httpx.AsyncClient,
) -> None:
    api = await http.post("/api/chargers/CP-1/calls/MakeCoffee", json={})
    rule = await http.get("/api/chargers/CP-1/responses/Reset")
    form = await http.get("/chargers/CP-1/rules/Reset")
    assert api.status_code == 404
    assert api.json()["error"] == "'MakeCoffee' is not an action a central system sends in OCPP 1.6"
    assert "Reset" in api.json()["actions"]
    assert rule.status_code == 404
    assert "Heartbeat" in rule.json()["actions"]
    assert (form.status_code, form.text) == (
        404,
        "&#x27;Reset&#x27; is not an action a charger sends in OCPP 1.6\n",
    )


# 409: no charger of that identity is connected


async def test_offline_is_409_with_the_same_message_everywhere(http: httpx.AsyncClient) -> None:
    message = "no charger 'CP-9' is connected"
    call = await http.post("/api/chargers/CP-9/calls/Reset", json={"type": "Soft"})
    frame = await http.post(
        "/api/chargers/CP-9/frames", content="[]", headers={"Content-Type": "application/json"}
    )
    held = await http.post("/api/chargers/CP-9/held/u-1", json={"ignore": True})
    cancel = await http.post("/chargers/CP-9/cancel", data={"unique_id": "u-1"})
    change = await http.post("/chargers/CP-9/configuration", data={"key": "K", "value": "1"})
    for response in (call, frame, held):
        assert (response.status_code, response.json()) == (409, {"error": message})
    assert (cancel.status_code, cancel.text) == (
        409,
        "Not cancelled: the charger is offline (no charger &#x27;CP-9&#x27; is connected)\n",
    )
    assert change.status_code == 409
    assert "Not changed: the charger is offline (no charger &#39;CP-9&#39;" in change.text


async def test_a_message_that_quotes_an_identity_is_escaped_on_the_page(
    http: httpx.AsyncClient,
) -> None:
    """htmx swaps a refusal into the page as HTML: an identity with `<` stays text."""
    response = await http.post("/chargers/%3Cb%3Ebold/cancel", data={"unique_id": "u"})
    assert response.status_code == 409
    assert "&lt;b&gt;bold" in response.text
    assert "<b>" not in response.text


# 410: the held call was answered already


async def test_an_answer_to_a_call_no_longer_held_is_410(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        assert (await exchange(charger, BOOT))[0] == 3  # connected and answered
        api = await http.post("/api/chargers/CP-1/held/never-held", json={"ignore": True})
        page = await http.post("/chargers/CP-1/held/never-held", data={"reply": "ignore"})
    finally:
        await charger.close()
    assert (api.status_code, api.json()) == (
        410,
        {"error": "this call is no longer held: it was answered or timed out"},
    )
    assert (page.status_code, page.text) == (410, "Too late: this call was already answered.\n")


# 422: a rule, a body or a payload that cannot be used


async def test_a_bad_rule_is_422_with_its_reason_in_the_api_and_the_form(
    http: httpx.AsyncClient,
) -> None:
    api = await http.put("/api/chargers/CP-1/responses/Heartbeat", json={"mode": "loud"})
    form = await http.post("/chargers/CP-1/rules/Heartbeat", data={"mode": "loud"})
    reason = "mode must be one of default, custom, error, ignore, manual"
    assert (api.status_code, api.json()) == (422, {"error": reason})
    assert form.status_code == 422
    assert f"Not saved: {reason}" in form.text
    assert 'name="mode"' in form.text  # the form comes back, with the reason in it


async def test_an_unreadable_body_is_422(http: httpx.AsyncClient) -> None:
    broken = await http.post(
        "/api/chargers/CP-1/calls/Reset",
        content="{not json",
        headers={"Content-Type": "application/json"},
    )
    reply = await http.post("/api/chargers/CP-1/held/u-1", json={"neither": 1})
    page = await http.post("/chargers/CP-1/held/u-1", data={"payload": "{not json"})
    assert broken.status_code == 422
    assert broken.json()["error"].startswith("the body is not valid JSON: ")
    assert (reply.status_code, reply.json()) == (
        422,
        {"error": 'the body is {"payload": {...}}, {"error": {...}} or {"ignore": true}'},
    )
    assert page.status_code == 422
    assert page.text.startswith("The answer is not valid JSON: ")


async def test_a_payload_that_breaks_its_schema_is_422_with_every_violation(
    http: httpx.AsyncClient,
) -> None:
    call = await http.post("/api/chargers/CP-1/calls/Reset", json={"type": "Sideways"})
    rule = await http.put(
        "/api/chargers/CP-1/responses/Heartbeat", json={"mode": "custom", "payload": {}}
    )
    assert call.status_code == 422
    assert call.json()["error"] == (
        "the payload breaks the Reset request schema (POST with ?validate=false to send it anyway)"
    )
    assert [item["path"] for item in call.json()["violations"]] == ["$.type"]
    assert rule.status_code == 422
    assert rule.json()["error"].startswith("the payload breaks the Heartbeat response schema")
    assert rule.json()["violations"]


# 503: the broker cannot be reached


async def test_a_broker_that_is_down_is_503_in_the_api_and_on_the_forms(
    redis_server: RedisServer,
) -> None:
    settings = Settings(redis_url=redis_server.url, call_timeout=2.0)
    async with serve(settings) as server, httpx.AsyncClient(timeout=10) as client:
        api = f"{server.http}/api/chargers/CP-1"
        page = f"{server.http}/chargers/CP-1"
        await stopped(redis_server)
        status = await client.get(api)
        rule = await client.put(api + "/responses/Heartbeat", json={"mode": "ignore"})
        form = await client.get(page + "/rules/Heartbeat")
        saved = await client.post(page + "/validation", data={"validation": "strict"})
        sent = await client.post(page + "/raw", data={"text": "[]"})
    for response in (status, rule):
        assert response.status_code == 503
        assert response.json()["error"].startswith(f"Redis at {redis_server.url} is unreachable")
    assert form.status_code == 503
    assert form.text.startswith("the broker is unavailable (Redis at ")
    assert saved.status_code == 503
    assert saved.text.startswith("Not saved: the broker is unavailable (Redis at ")
    assert sent.status_code == 503
    assert "Not sent: the broker is unavailable (Redis at " in sent.text


# 504: the charger did not answer in time


async def test_a_call_the_charger_never_answers_is_504_naming_the_call() -> None:
    async with (
        serve(Settings(call_timeout=1)) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as client,
    ):
        charger = await raw_charger(server, "CP-1")
        try:
            response = await client.post("/api/chargers/CP-1/calls/Reset", json={"type": "Soft"})
            sent = json.loads(await charger.recv())
        finally:
            await charger.close()
    assert response.status_code == 504
    assert response.json() == {
        "error": "the charger did not answer Reset in time",
        "unique_id": sent[1],
    }


async def test_the_validation_policy_is_read_and_set_through_the_api_as_the_form_does() -> None:
    """Strict through the API: a charger's invalid call gets the CALLERROR at once."""
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        before = await client.get("/api/chargers/CP-v/validation")
        bad = await client.put("/api/chargers/CP-v/validation", json={"validation": "picky"})
        set_ = await client.put("/api/chargers/CP-v/validation", json={"validation": "strict"})
        after = await client.get("/api/chargers/CP-v/validation")
        charger = await raw_charger(server, "CP-v")
        answer = await exchange(charger, [2, "b", "BootNotification", {}])
        await charger.close()

    assert before.json() == {"validation": "lenient"}
    assert bad.status_code == 422
    assert "lenient" in bad.text
    assert set_.json() == after.json() == {"validation": "strict"}
    assert answer[:3] == [4, "b", "OccurenceConstraintViolation"]
