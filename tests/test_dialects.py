"""The OCPP version is a parameter: a made-up dialect runs through the real gateway.

`TOY` is an invented protocol, "toy0.1", of two actions: a charger's `Ping` and a central
system's `Blink`. Nothing of OCPP 1.6 is in it. Served by the unchanged gateway, page
socket, broker and API, a charger speaking it is answered by its rules, checked against its
schemas, folded into its state, and commanded from the API — which is what adding OCPP
2.0.1 will need of the layers outside `dialects/`.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from ocpplab.core.dialect import AnswerContext, Dialect
from ocpplab.core.schemas import SchemaSet
from ocpplab.dialects import DIALECTS
from tests.page_support import expand, line_numbers
from tests.support import exchange, page_socket, serve

SCHEMAS: dict[tuple[str, bool], dict[str, Any]] = {
    ("Ping", False): {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}},
        "required": ["n"],
        "additionalProperties": False,
    },
    ("Ping", True): {
        "type": "object",
        "properties": {"pong": {"type": "integer"}},
        "required": ["pong"],
    },
    ("Blink", False): {
        "type": "object",
        "properties": {"times": {"type": "integer", "minimum": 1}},
        "required": ["times"],
    },
    ("Blink", True): {
        "type": "object",
        "properties": {"blinked": {"type": "boolean"}},
        "required": ["blinked"],
    },
}
TOY_SCHEMAS = SchemaSet(lambda action, response: SCHEMAS[action, response])


class ToyState:
    """The toy's state: how many pings, and the last one's number."""

    def __init__(self) -> None:
        self.pings = 0
        self.last: Any = None

    def apply(self, action: str, payload: Any, answer: Any, at: str) -> str | None:
        if action == "Ping" and isinstance(payload, dict):
            self.pings += 1
            self.last = payload.get("n")
        return None

    def to_json(self) -> dict[str, Any]:
        return {"pings": self.pings, "last": self.last}


def toy_answer(action: str, context: AnswerContext) -> dict[str, Any]:
    return {"pong": 42} if action == "Ping" else {}


TOY = Dialect(
    name="Toy 0.1",
    subprotocol="toy0.1",
    charger_actions=("Ping",),
    central_actions_by_profile={"Toys": ("Blink",)},
    error_codes=("NotImplemented", "NotSupported", "FormationViolation", "GenericError"),
    validate=TOY_SCHEMAS.validate,
    default_answer=toy_answer,
    example_request=lambda action, now: {"times": 2} if action == "Blink" else {},
    schema=TOY_SCHEMAS.schema,
    new_state=ToyState,
)


async def test_a_made_up_dialect_is_answered_checked_and_commanded_through_the_real_server() -> (
    None
):
    identity = "toy-1"
    async with (
        serve(dialects=(TOY, *DIALECTS)) as server,
        connect(server.charger_url(identity), subprotocols=[Subprotocol("toy0.1")]) as charger,
    ):
        assert charger.subprotocol == "toy0.1"
        # The toy's rules: its own default answer, its schema, its actions only.
        assert await exchange(charger, [2, "p1", "Ping", {"n": 1}]) == [3, "p1", {"pong": 42}]
        not_toy = await exchange(charger, [2, "p2", "Heartbeat", {}])
        assert not_toy[2] == "NotImplemented"
        assert "Toy 0.1" in not_toy[3]
        assert (await exchange(charger, [2, "p3", "Blink", {"times": 1}]))[2] == "NotSupported"
        async with httpx.AsyncClient(base_url=server.http) as client:
            # A rule for the toy's action, checked against the toy's response schema.
            bad_rule = await client.put(
                f"/api/chargers/{identity}/responses/Ping",
                json={"mode": "custom", "payload": {"pong": "seven"}},
            )
            rule = await client.put(
                f"/api/chargers/{identity}/responses/Ping",
                json={"mode": "custom", "payload": {"pong": 7}},
            )
            await asyncio.sleep(0.2)  # the gateway hears of the new rule
            async with page_socket(server, identity) as page:
                opened = await page.drain(1.0)
                custom = await exchange(charger, [2, "p4", "Ping", {"n": 5}])
                invalid_ping = await exchange(charger, [2, "p5", "Ping", {"n": -1}])
                live = await page.drain(1.0)
                # Shown as invalid: the line is marked, its expanded frames say why.
                invalid_line = line_numbers(live, "p5", dir="in", type="CALL")
                detail = await expand(page, invalid_line[0]) if invalid_line else ""
            status = (await client.get(f"/api/chargers/{identity}")).json()
            # A central-system call of the toy, sent through the API, answered by the charger.
            call = asyncio.create_task(
                client.post(f"/api/chargers/{identity}/calls/Blink", json={"times": 3})
            )
            sent = json.loads(await asyncio.wait_for(charger.recv(), 5))
            assert sent[0] == 2
            assert sent[2] == "Blink"
            assert sent[3] == {"times": 3}
            await charger.send(json.dumps([3, sent[1], {"blinked": True}]))
            answered = await asyncio.wait_for(call, 5)
            refused = await client.post(f"/api/chargers/{identity}/calls/Reset", json={})
            invalid = await client.post(f"/api/chargers/{identity}/calls/Blink", json={"times": 0})

    assert bad_rule.status_code == 422, bad_rule.text
    assert rule.status_code == 200, rule.text
    assert custom == [3, "p4", {"pong": 7}]
    assert invalid_ping == [3, "p5", {"pong": 7}]  # lenient: answered, and shown as invalid
    assert "p1" in opened  # the replay of frames before the page opened
    assert "p5" in live
    assert re.search(rf'<span id="o{invalid_line[0]}" class="o [^"]*bad"', live)
    assert '<em class="v" title="schema violations">⚠ 1</em>' in live
    assert "minimum" in detail
    assert status["connected"] is True
    assert status["state"] == {"pings": 3, "last": -1}
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"blinked": True}
    assert refused.status_code in {400, 404, 422}, refused.text
    assert invalid.status_code == 422, invalid.text


async def test_a_charger_offering_no_known_subprotocol_gets_the_first_dialect() -> None:
    async with (
        serve(dialects=(TOY, *DIALECTS)) as server,
        connect(server.charger_url("toy-2"), subprotocols=[Subprotocol("ocpp9.9")]) as charger,
    ):
        answer = await exchange(charger, [2, "p1", "Ping", {"n": 0}])
        offered_16 = await exchange(charger, [2, "h1", "Heartbeat", {}])

    assert answer == [3, "p1", {"pong": 42}]
    assert offered_16[2] == "NotImplemented"


async def test_a_charger_offering_ocpp16_among_others_gets_ocpp16() -> None:
    async with (
        serve(dialects=(TOY, *DIALECTS)) as server,
        connect(
            server.charger_url("toy-3"),
            subprotocols=[Subprotocol("ocpp1.6"), Subprotocol("ocpp2.0.1")],
        ) as charger,
    ):
        assert charger.subprotocol == "ocpp1.6"
        answer = await exchange(charger, [2, "h1", "Heartbeat", {}])

    assert answer[0] == 3
    assert "currentTime" in answer[2]
    datetime.datetime.fromisoformat(answer[2]["currentTime"])
