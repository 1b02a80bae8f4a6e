"""What real chargers do (../shared/QUIRKS.md), each against a real server over real sockets.

The rule for every case: keep the connection, answer as configured, and show the person
what was odd. Handshakes that cannot work are refused *before* the upgrade, with an HTTP
error whose body says why, so an installer reading a charger's log can fix the URL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from ocpplab.config import Settings
from tests.page_support import (
    exact_frames,
    expand,
    expand_all,
    frames,
    line_numbers,
    outcome_of,
    wait_line,
    wait_lines,
    wait_outcome,
)
from tests.support import RunningServer, exchange, page_socket, serve

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
# What a test waits for a message or a close before it fails saying what did not happen.
WITHIN = 10.0


async def next_message(connection: Any, what: str) -> Any:
    """The next message on `connection`; a clear failure when `what` does not come."""
    try:
        async with asyncio.timeout(WITHIN):
            return await connection.recv()
    except TimeoutError:
        pytest.fail(f"{what} did not arrive within {WITHIN} s")


async def closed(connection: Any, what: str) -> None:
    """Wait until `connection` is closed; a clear failure when it stays open."""
    try:
        async with asyncio.timeout(WITHIN):
            await connection.wait_closed()
    except TimeoutError:
        pytest.fail(f"{what} was not closed within {WITHIN} s")


async def refusal(url: str, **kwargs: Any) -> tuple[int, str]:
    """The HTTP status and body with which the server refuses a websocket handshake."""
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url, **kwargs)
    response = refused.value.response
    return response.status_code, bytes(response.body or b"").decode()


# Subprotocol (OCPP-J 1.6 section 3.1.2)


async def test_ocpp16_is_negotiated_when_offered_among_others(server: RunningServer) -> None:
    async with websockets.connect(
        server.charger_url("CP-1"), subprotocols=["ocpp2.0.1", "ocpp1.6"]
    ) as charger:  # type: ignore[list-item]
        assert charger.subprotocol == "ocpp1.6"


async def test_no_subprotocol_header_is_accepted_answered_and_warned_about(
    server: RunningServer,
) -> None:
    # Grizzl-E and some KEBA firmware send no Sec-WebSocket-Protocol at all.
    async with page_socket(server, "GRIZZL-E") as page:
        async with websockets.connect(server.charger_url("GRIZZL-E")) as charger:
            assert charger.subprotocol is None
            answer = await exchange(charger, [2, "1", "BootNotification", BOOT])
            assert answer[:2] == [3, "1"]
            assert answer[2]["status"] == "Accepted"

            status = await page.wait_for('id="status"')
            assert "sent no Sec-WebSocket-Protocol header" in status
            assert "subprotocol none" in status
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{server.http}/api/chargers/GRIZZL-E")
    assert response.json()["subprotocol"] is None


async def test_a_malformed_subprotocol_list_is_accepted_and_shown(server: RunningServer) -> None:
    # KEBA x30 firmware 1.9.0 sends ",ocpp2.0.1" with a leading comma.
    async with (
        page_socket(server, "KEBA") as page,
        websockets.connect(
            server.charger_url("KEBA"), additional_headers={"Sec-WebSocket-Protocol": ",ocpp2.0.1"}
        ) as charger,
    ):
        assert charger.subprotocol is None
        answer = await exchange(charger, [2, "1", "Heartbeat", {}])
        assert answer[0] == 3

        status = await page.wait_for('id="status"')
    assert "ocpp2.0.1" in status
    assert "but not ocpp1.6" in status


async def test_require_subprotocol_refuses_chargers_without_it() -> None:
    async with serve(Settings(require_subprotocol=True)) as server:
        status, body = await refusal(server.charger_url("CP-1"))
        assert status == 400
        assert "ocpp1.6" in body
        async with websockets.connect(server.charger_url("CP-1"), subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
            pass


# Identity in the path


@pytest.mark.parametrize("path", ["/ocpp/", "/ocpp", "/"])
async def test_a_missing_identity_is_refused_before_the_upgrade(
    server: RunningServer, path: str
) -> None:
    status, body = await refusal(server.ws + path, subprotocols=["ocpp1.6"])

    assert status == 400
    assert "no charger identity in the path" in body
    assert "/ocpp/{identity}" in body


async def test_an_over_long_identity_is_refused_before_the_upgrade(server: RunningServer) -> None:
    status, body = await refusal(server.charger_url("x" * 49), subprotocols=["ocpp1.6"])

    assert status == 400
    assert "at most 48 characters, not 49" in body
    async with websockets.connect(server.charger_url("x" * 48), subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
        pass


async def test_a_pasted_url_as_identity_is_refused_with_a_hint(server: RunningServer) -> None:
    status, body = await refusal(
        server.charger_url("ws://ocpp.example.com/ocpp/CP-1"), subprotocols=["ocpp1.6"]
    )

    assert status == 400
    assert "cannot contain '/'" in body
    assert "URL" in body


async def test_a_control_character_in_the_identity_is_refused(server: RunningServer) -> None:
    status, body = await refusal(server.charger_url("CP%091"), subprotocols=["ocpp1.6"])

    assert status == 400
    assert "printable" in body


async def test_a_plain_http_request_to_the_charger_endpoint_says_what_is_missing(
    server: RunningServer,
) -> None:
    # A proxy that strips hop-by-hop headers turns the upgrade into a plain GET.
    async with httpx.AsyncClient() as client:
        missing_upgrade = await client.get(
            server.http + "/ocpp/CP-1", headers={"Upgrade": "websocket"}
        )
        without_identity = await client.get(server.http + "/ocpp/")

    assert missing_upgrade.status_code == 426
    assert "websocket" in missing_upgrade.text
    assert "Connection" in missing_upgrade.text
    assert without_identity.status_code == 400
    assert "no charger identity in the path" in without_identity.text


@pytest.fixture
async def charger_connected_as() -> AsyncIterator[Any]:
    """Connect a bare charger to `url`; closed at the end of the test."""
    connections: list[Any] = []

    async def connect(url: str) -> Any:
        connection = await websockets.connect(url, subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        connections.append(connection)
        return connection

    yield connect
    for connection in connections:
        await connection.close()


async def test_a_percent_encoded_identity_is_decoded(
    server: RunningServer, charger_connected_as: Any
) -> None:
    async with page_socket(server, "RDAM|123") as page:
        charger = await charger_connected_as(server.ws + "/ocpp/RDAM%7C123")
        await exchange(charger, [2, "1", "Heartbeat", {}])
        await page.wait_for("Heartbeat")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{server.http}/api/chargers/RDAM%7C123")

    assert response.json()["identity"] == "RDAM|123"
    assert response.json()["connected"] is True


async def test_identities_are_rendered_escaped_everywhere(charger_connected_as: Any) -> None:
    identity = "<b>CP<b>&\"'|é"
    # The landing page lists identities only when told to (on an open lab they are keys).
    async with serve(Settings(list_chargers=True)) as server, page_socket(server, identity) as page:
        charger = await charger_connected_as(server.charger_url(quote(identity, safe="")))
        await exchange(charger, [2, "1", "Heartbeat", {}])
        await page.wait_for("Heartbeat")
        async with httpx.AsyncClient() as client:
            landing = await client.get(server.http + "/")
            charger_page = await client.get(f"{server.http}/chargers/{quote(identity, safe='')}")

    assert charger_page.status_code == 200
    for html in (landing.text, charger_page.text):
        assert "<b>CP" not in html
        assert "&lt;b&gt;CP&lt;b&gt;&amp;&#34;&#39;|é" in html


@pytest.mark.parametrize("identity", ["Ladesäule-Ü1", "充电桩_7", "CP#1?x=1", "50%off"])
async def test_any_printable_identity_reaches_its_own_page(
    server: RunningServer, charger_connected_as: Any, identity: str
) -> None:
    async with httpx.AsyncClient() as client:
        start = await client.post(server.http + "/start", data={"identity": identity})
        assert start.status_code == 303
        page_html = await client.get(start.headers["location"])
    assert page_html.status_code == 200
    live = f"/chargers/{quote(identity, safe='')}/live"
    assert f'ws-connect="{live}"' in page_html.text

    async with websockets.connect(server.ws + live) as page:
        charger = await charger_connected_as(server.charger_url(quote(identity, safe="")))
        await exchange(charger, [2, "hb-1", "Heartbeat", {}])
        received = ""
        try:
            async with asyncio.timeout(WITHIN):
                while "hb-1" not in received:
                    received += str(await page.recv())
        except TimeoutError:
            pytest.fail(f"the live page did not show the charger's hb-1 within {WITHIN} s")


# Charger Basic auth (OCPP 1.6 security whitepaper, profile 1)


def basic(username: str, password: bytes | str) -> dict[str, str]:
    raw = username.encode() + b":" + (password.encode() if isinstance(password, str) else password)
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def test_charger_basic_auth_uses_a_hex_looking_key_verbatim() -> None:
    key = "0011AABBCCDDEEFF"
    async with serve(Settings(charger_password=key)) as server:
        url = server.charger_url("CP-1")
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url, subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        response = refused.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert "security profile 1" in bytes(response.body or b"").decode()
        for headers in (
            basic("CP-1", "wrong"),
            basic("CP-2", key),
            basic("CP-1", bytes.fromhex(key)),  # the key decoded from hex is not the password
            {"Authorization": "Bearer " + key},
            {"Authorization": "Basic not-base64!"},
        ):
            assert (await refusal(url, subprotocols=["ocpp1.6"], additional_headers=headers))[
                0
            ] == 401

        async with websockets.connect(
            url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-1", key)
        ) as charger:  # type: ignore[list-item]
            assert (await exchange(charger, [2, "1", "Heartbeat", {}]))[0] == 3


# Frames and payloads


async def test_duplicate_unique_ids_are_answered_and_shown(
    server: RunningServer, charger_connected_as: Any
) -> None:
    async with page_socket(server, "CP-1") as page:
        charger = await charger_connected_as(server.charger_url("CP-1"))
        assert (await exchange(charger, [2, "same", "Heartbeat", {}]))[:2] == [3, "same"]
        assert (await exchange(charger, [2, "same", "Heartbeat", {}]))[:2] == [3, "same"]

        await page.wait_for("answered in")
        first, second = await wait_lines(page, "same", 2)
        await wait_outcome(page, second, "answered")
        details = [await expand(page, number) for number in (first, second)]
    # The second line is marked with a note, which says why when expanded.
    assert '<em class="n" title="see the note">ⓘ</em>' in outcome_of(page, second)
    assert '<p class="note">' not in details[0]
    assert "duplicate unique id &#39;same&#39;" in details[1]
    assert [frame[:2] for frame in frames(details[1])] == [[2, "same"], [3, "same"]]


BAD_FRAMES: list[tuple[str, list[Any] | None]] = [
    ('[2,"t1","Heartbeat",{}', None),  # truncated JSON
    ('[,2,"t2","Heartbeat",{}]', None),  # leading comma
    ('{"not": "an array"}', None),
    ('[9,"t3",{}]', None),  # unknown message type
    ('[2,"t4","Heartbeat"]', [4, "t4", "ProtocolError"]),
    ('[2,"t5","Heartbeat",[]]', [4, "t5", "FormationViolation"]),
    ('[2,"t6","FooBar",{}]', [4, "t6", "NotImplemented"]),
    ('[2,"t7","RemoteStartTransaction",{"idTag":"X"}]', [4, "t7", "NotSupported"]),
    ('[3,"nobody-asked",{}]', None),
    ('[4,"nobody-asked-either","GenericError","",{}]', None),
]


async def test_malformed_frames_are_shown_and_the_connection_stays_open(
    server: RunningServer, charger_connected_as: Any
) -> None:
    async with page_socket(server, "CP-1") as page:
        charger = await charger_connected_as(server.charger_url("CP-1"))
        for text, expected in BAD_FRAMES:
            await charger.send(text)
            if expected is not None:
                answer = json.loads(await next_message(charger, f"the answer to {text}"))
                assert answer[:3] == expected
        # Nothing was owed for the rest, and the connection still answers.
        assert (await exchange(charger, [2, "after", "Heartbeat", {}]))[:2] == [3, "after"]

        after = await wait_line(page, "after", dir="in", type="CALL")
        await wait_outcome(page, after, "answered")
        listed = "".join(page.received)
        shown = listed + await expand_all(page)

    assert len(line_numbers(listed, type="invalid")) == 6
    assert len(re.findall(r'class="o bad[^"]*">invalid frame ', listed)) == 6
    # the CALLERROR each was answered with is shown, exact, when its line is expanded
    answered = [json.loads(text) for text in exact_frames(shown) if text.startswith("[4,")]
    for expected in [expected for _, expected in BAD_FRAMES if expected is not None]:
        assert [frame[:3] for frame in answered].count(expected) == 1, expected
    # the answers nobody asked for: a line each, saying so
    assert line_numbers(listed, "nobody-asked", dir="in", type="CALLRESULT")
    assert line_numbers(listed, "nobody-asked-either", dir="in", type="CALLERROR")
    assert "CALLRESULT: answers no call in flight" in listed
    assert "CALLERROR: answers no call in flight" in listed
    assert "not JSON" in shown
    assert "not a JSON array" in shown
    assert "unknown message type 9" in shown
    assert "not an OCPP 1.6 action" in shown
    assert "sent by a central system, not by a charge point" in shown
    assert "answers no call in flight (unique id &#39;nobody-asked&#39;)" in shown
    assert "answers no call in flight (unique id &#39;nobody-asked-either&#39;)" in shown


async def test_a_schema_violation_is_answered_leniently_and_shown(
    server: RunningServer, charger_connected_as: Any
) -> None:
    # QUIRKS.md: numbers where strings belong, vendor fields the schemas forbid.
    async with page_socket(server, "CP-1") as page:
        charger = await charger_connected_as(server.charger_url("CP-1"))
        boot = {**BOOT, "chargePointModel": 7, "vendorField": True}
        answer = await exchange(charger, [2, "v1", "BootNotification", boot])
        assert answer[2]["status"] == "Accepted"

        number = await wait_line(page, "v1", dir="in", type="CALL")
        outcome = await wait_outcome(page, number, "answered")
        fragment = await expand(page, number)
    assert 'class="o ok bad"' in outcome  # answered, and marked as a problem
    assert '<em class="v" title="schema violations">⚠ 2</em>' in outcome
    assert '<ul class="violations" aria-label="Schema violations">' in fragment
    assert "$.chargePointModel" in fragment
    assert "TypeConstraintViolation" in fragment
    assert "FormationViolation" in fragment


async def test_a_binary_frame_is_answered_and_noted(
    server: RunningServer, charger_connected_as: Any
) -> None:
    async with page_socket(server, "CP-1") as page:
        charger = await charger_connected_as(server.charger_url("CP-1"))
        await charger.send(b'[2,"b1","Heartbeat",{}]')
        answer = await next_message(charger, "the answer to a binary Heartbeat")
        assert json.loads(answer)[:2] == [3, "b1"]
        await page.wait_for("binary websocket frame")


async def test_several_calls_without_waiting_are_all_answered(
    server: RunningServer, charger_connected_as: Any
) -> None:
    # QUIRKS.md: Status Finishing and StopTransaction sent at once.
    charger = await charger_connected_as(server.charger_url("CP-1"))
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Finishing"}
    stop = {"transactionId": 1, "meterStop": 10, "timestamp": "2026-01-01T00:00:00Z"}
    await charger.send(json.dumps([2, "s1", "StatusNotification", status]))
    await charger.send(json.dumps([2, "s2", "StopTransaction", stop]))

    answers = {
        json.loads(await next_message(charger, "an answer to calls sent at once"))[1]
        for _ in range(2)
    }
    assert answers == {"s1", "s2"}


# Session behaviour


async def test_a_new_connection_with_the_same_identity_takes_over(
    server: RunningServer, charger_connected_as: Any
) -> None:
    async with page_socket(server, "CP-1") as page:
        old = await charger_connected_as(server.charger_url("CP-1"))
        await exchange(old, [2, "1", "Heartbeat", {}])
        new = await charger_connected_as(server.charger_url("CP-1"))

        await closed(old, "the connection a newer one of its identity replaced")
        assert old.close_reason == "replaced by a new connection with the same identity"
        assert (await exchange(new, [2, "2", "Heartbeat", {}]))[:2] == [3, "2"]
        await page.wait_for("Replaced by a new connection")


async def test_the_api_still_sees_the_new_connection_after_a_takeover(
    server: RunningServer, charger_connected_as: Any
) -> None:
    old = await charger_connected_as(server.charger_url("CP-1"))
    await exchange(old, [2, "1", "Heartbeat", {}])
    new = await charger_connected_as(server.charger_url("CP-1"))
    await closed(old, "the connection a newer one of its identity replaced")
    await exchange(new, [2, "2", "Heartbeat", {}])

    async with httpx.AsyncClient() as client:
        status = (await client.get(f"{server.http}/api/chargers/CP-1")).json()
    assert status["connected"] is True
