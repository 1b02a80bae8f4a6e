"""Pages and their live sockets, against a real server with real chargers.

The charger's websocket and the page's websocket meet only through the broker: pages see
everything of their identity and nothing of others', and never affect the charger.
"""

from __future__ import annotations

import asyncio
import datetime
import html
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from ocpplab.config import Settings
from tests.support import RunningServer, exchange, page_socket, raw_charger, serve

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http) as client:
        yield client


def shown_json(detail: str, index: int) -> Any:
    """The `index`th payload an expanded line shows: pretty-printed, escaped, exact once decoded."""
    shown = re.findall(r'<pre class="json">(.*?)</pre>', detail, re.DOTALL)
    text = html.unescape(shown[index])
    assert text.startswith("{\n  ")
    return json.loads(text)


async def expand(page: Any, number: int) -> str:
    """What the page socket answers when the page expands line `number`."""
    await page.connection.send(json.dumps({"log": "expand", "n": number}))
    return str(await page.wait_for(f'<div id="b{number}" class="b">'))


async def boot(charger: Any, unique_id: str = "boot-1") -> list[Any]:
    answer: list[Any] = await exchange(charger, [2, unique_id, "BootNotification", BOOT])
    return answer


# Fragments


async def test_an_exchange_is_one_line_and_its_frames_come_when_expanded(
    server: RunningServer,
) -> None:
    async with page_socket(server, "CP-1") as page:
        charger = await raw_charger(server, "CP-1")
        try:
            await boot(charger, "boot-42")
            line = await page.wait_for('data-unique-id="boot-42"')
            number = int(re.search(r'<li id="l(\d+)" class="x in CALL"', line).group(1))  # type: ignore[union-attr]
            detail = await expand(page, number)
        finally:
            await charger.close()

    # One line: time, direction, action, outcome; no payload on the wire until expanded.
    assert re.search(r"<time>\d\d:\d\d:\d\d\.\d{3}</time> <i>in</i> <b>BootNotification</b>", line)
    assert re.search(
        r'<span id="o\d+" class="o ok" data-t="CALLRESULT">answered in [\d.]+ ms', line
    )
    assert "chargePointVendor" not in line
    assert line.count("boot-42") == 1
    # Expanded: both frames, pretty and exact.
    assert shown_json(detail, 0) == BOOT
    assert shown_json(detail, 1)["status"] == "Accepted"
    assert "⬇ charger → central system · CALL · BootNotification" in detail
    assert "⬆ central system → charger · CALLRESULT · BootNotification" in detail
    exact = json.dumps([2, "boot-42", "BootNotification", BOOT])
    assert html.escape(exact, quote=False) in detail.replace("&#34;", '"')


async def test_a_central_system_call_and_a_raw_call_pair_with_the_chargers_answers(
    server: RunningServer,
) -> None:
    async with (
        page_socket(server, "CP-1") as page,
        httpx.AsyncClient(base_url=server.http, headers={"Origin": server.http}) as http,
    ):
        charger = await raw_charger(server, "CP-1")
        try:
            await boot(charger)

            async def answer_one() -> None:
                call = json.loads(await charger.recv())
                await charger.send(json.dumps([3, call[1], {"status": "Accepted"}]))

            answering = asyncio.create_task(answer_one())
            sent = await http.post("/api/chargers/CP-1/calls/Reset", json={"type": "Soft"})
            await answering
            unique_id = sent.headers["X-Unique-Id"]
            # A frame the person typed: the charger's reply pairs with it too.
            raw = json.dumps([2, "raw-1", "Reset", {"type": "Hard"}])
            answering = asyncio.create_task(answer_one())
            frames = "/api/chargers/CP-1/frames"
            sent_raw = await http.post(
                frames, content=raw, headers={"Content-Type": "application/json"}
            )
            assert sent_raw.status_code == 202
            await answering
            await page.wait_for('data-unique-id="raw-1"')
            everything = await page.drain(0.5)
        finally:
            await charger.close()

    for uid in (unique_id, "raw-1"):
        (number,) = re.findall(
            rf'<li id="l(\d+)" class="x out CALL" data-unique-id="{uid}">', everything
        )
        # Its outcome, in the line or swapped into it when the answer came.
        outcome = rf'<span id="o{number}" class="o ok" data-t="CALLRESULT">answered in [\d.]+ ms'
        assert re.search(outcome, everything), uid
    # No line of its own for either answer.
    assert everything.count('class="x in CALLRESULT"') == 0


async def test_the_page_socket_sends_at_most_400_bytes_per_frame_compressed_when_offered(
    server: RunningServer,
) -> None:
    """The benchmark of issue 11: 200 Heartbeat exchanges (400 frames) on the page socket.

    Measured as the text the page receives (before compression): the compact lines, the
    state panel as it changes, everything. permessage-deflate makes the wire smaller still.
    """
    async with page_socket(server, "CP-1") as page:
        offered = page.connection.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in offered
        charger = await raw_charger(server, "CP-1")
        try:
            await boot(charger)
            await page.wait_for("BootNotification")
            await page.drain(0.5)
            start = len(page.received)
            for number in range(200):
                await exchange(charger, [2, f"hb-{number}", "Heartbeat", {}])
            await page.wait_for('data-unique-id="hb-199"')
            await page.drain(0.5)
        finally:
            await charger.close()
        sent = page.received[start:]

    text = "".join(sent)
    assert all(f'data-unique-id="hb-{number}"' in text for number in range(200))
    per_frame = sum(len(message.encode()) for message in sent) / 400
    print(f"page socket: {per_frame:.0f} bytes per frame")
    assert per_frame <= 400, f"{per_frame:.0f} bytes per frame"


async def test_connection_events_show_remote_subprotocol_close_code_and_reason(
    server: RunningServer,
) -> None:
    async with page_socket(server, "CP-1") as page:
        charger = await raw_charger(server, "CP-1")
        local_port = charger.local_address[1]
        connected = await page.wait_for("ev-connected")
        await charger.close(4000, "going for maintenance")
        disconnected = await page.wait_for("ev-disconnected")

    assert f"Charger connected from 127.0.0.1:{local_port}, subprotocol ocpp1.6" in connected
    assert 'class="status status-connected"' in connected
    assert "close code 4000, “going for maintenance”" in disconnected
    assert 'class="status status-disconnected"' in disconnected


async def test_two_pages_on_one_identity_both_get_every_fragment(server: RunningServer) -> None:
    async with page_socket(server, "CP-1") as first, page_socket(server, "CP-1") as second:
        charger = await raw_charger(server, "CP-1")
        try:
            await boot(charger)
            await exchange(charger, [2, "hb-1", "Heartbeat", {}])
            for page in (first, second):
                await page.wait_for("BootNotification")
                await page.wait_for("hb-1")
        finally:
            await charger.close()


async def test_a_page_of_another_identity_gets_nothing(server: RunningServer) -> None:
    async with page_socket(server, "CP-2") as other, page_socket(server, "CP-1") as watcher:
        before = len(other.received)
        charger = await raw_charger(server, "CP-1")
        try:
            await boot(charger)
            await exchange(charger, [2, "hb-1", "Heartbeat", {}])
            await watcher.wait_for("hb-1")
        finally:
            await charger.close()
        await watcher.wait_for("ev-disconnected")
        await other.drain(0.3)

    assert other.received[before:] == []


async def test_identities_that_escape_alike_do_not_share_channels(server: RunningServer) -> None:
    # "A:B" and "A%3AB" would meet if channel names were built without escaping.
    async with page_socket(server, "A%3AB") as other:
        before = len(other.received)
        charger = await websockets.connect(server.ws + "/ocpp/A:B", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        try:
            await boot(charger)
        finally:
            await charger.close()
        await other.drain(0.3)

    assert other.received[before:] == []


async def test_closing_pages_leaves_the_charger_connected_and_answered(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        for _ in range(3):
            async with page_socket(server, "CP-1") as page:
                await exchange(charger, [2, "hb", "Heartbeat", {}])
                await page.wait_for("Heartbeat")
        # Pages are gone: the charger is still connected and still answered.
        answer = await exchange(charger, [2, "after", "Heartbeat", {}])
        assert answer[:2] == [3, "after"]
        assert (await http.get("/api/chargers/CP-1")).json()["connected"] is True
    finally:
        await charger.close()


async def test_a_page_opened_before_the_charger_shows_it_connecting(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    waiting = await http.get("/chargers/CP-1")
    assert "Waiting for the charger to connect" in waiting.text
    assert 'ws-connect="/chargers/CP-1/live"' in waiting.text

    async with page_socket(server, "CP-1") as page:
        charger = await raw_charger(server, "CP-1")
        try:
            status = await page.wait_for('class="status status-connected"')
            assert "subprotocol ocpp1.6" in status
            await boot(charger)
            await page.wait_for("BootNotification")
            await page.wait_for("answered in")
        finally:
            await charger.close()


async def test_a_refreshed_page_gets_a_replay_of_recent_frames(server: RunningServer) -> None:
    charger = await raw_charger(server, "CP-1")
    try:
        # Frames sent while no page is open are kept in memory for the next one.
        await boot(charger, "early-boot")
        async with page_socket(server, "CP-1") as first:
            await first.wait_for("early-boot")
            await exchange(charger, [2, "while-open", "Heartbeat", {}])
            await first.wait_for("while-open")
        async with page_socket(server, "CP-1") as refreshed:
            replay = await refreshed.wait_for("while-open")
    finally:
        await charger.close()

    assert "early-boot" in replay
    assert 'class="status status-connected"' in replay
    # Oldest first, as on the page.
    assert replay.index("early-boot") < replay.index("while-open")


async def test_a_page_sees_the_first_frames_of_every_reconnect(server: RunningServer) -> None:
    # A charger boots the moment it is connected: before the open page asks to watch it.
    async with page_socket(server, "CP-1") as page:
        for number in range(4):
            charger = await raw_charger(server, "CP-1")
            try:
                await boot(charger, f"boot-{number}")
                await page.wait_for(f"boot-{number}", timeout=3.0)
            finally:
                await charger.close()


async def test_the_state_panel_follows_the_frames(server: RunningServer) -> None:
    async with page_socket(server, "CP-1") as page:
        charger = await raw_charger(server, "CP-1")
        try:
            await boot(charger)
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
            await exchange(charger, [2, "s1", "StatusNotification", status])
            panel = await page.wait_for('id="state"', timeout=5.0)
        finally:
            await charger.close()

    assert "Vendor" in panel
    assert "pill-charging" in panel


async def test_the_page_socket_refuses_other_origins(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            f"{server.ws}/chargers/CP-1/live",
            origin="https://evil.example",  # type: ignore[arg-type]
        )
    assert refused.value.response.status_code == 403

    same_origin = f"http://127.0.0.1:{server.port}"
    async with websockets.connect(f"{server.ws}/chargers/CP-1/live", origin=same_origin):  # type: ignore[arg-type]
        pass


# The JSON API and health


async def poll(
    http: httpx.AsyncClient, path: str, done: Callable[[Any], Any], timeout: float = 3.0
) -> Any:
    """GET `path` until `done(body)`: derived state reaches the API within a second or so."""
    for _ in range(int(timeout / 0.05)):
        body = (await http.get(path)).json()
        if done(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"GET {path} never got there; last answer: {body}")


async def test_the_api_reports_connection_since_and_subprotocol(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    offline = (await http.get("/api/chargers/CP-1")).json()
    assert offline == {
        "identity": "CP-1",
        "connected": False,
        "connected_since": None,
        "subprotocol": None,
        "state": None,
    }

    before = datetime.datetime.now(datetime.UTC)
    charger = await raw_charger(server, "CP-1")
    try:
        await boot(charger)
        online = await poll(http, "/api/chargers/CP-1", lambda body: body["state"]["boot"])
    finally:
        await charger.close()

    assert online["identity"] == "CP-1"
    assert online["connected"] is True
    assert online["subprotocol"] == "ocpp1.6"
    assert online["connected_since"].endswith("Z")
    since = datetime.datetime.fromisoformat(online["connected_since"])
    assert before - datetime.timedelta(seconds=1) <= since <= datetime.datetime.now(datetime.UTC)
    assert online["state"]["boot"] == BOOT
    assert online["state"]["boot_status"] == "Accepted"

    gone = await poll(http, "/api/chargers/CP-1", lambda body: not body["connected"])
    assert gone["connected_since"] is None


async def test_the_api_refuses_a_bad_identity(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/chargers/" + "x" * 49)

    assert response.status_code == 400
    assert "at most 48 characters" in response.json()["error"]


async def test_healthz_answers_200(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


# The landing page and Start


async def test_the_landing_page_shows_the_central_system_url_and_start(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    page = (await http.get("/")).text

    assert f'<code class="url" id="central-url">ws://127.0.0.1:{server.port}/ocpp/</code>' in page
    assert '<input id="identity" name="identity"' in page
    assert ">Start</button>" in page


async def test_the_public_url_setting_decides_the_central_system_url() -> None:
    async with (
        serve(Settings(public_url="https://ocpp.example.com")) as server,
        httpx.AsyncClient(base_url=server.http) as client,
    ):
        page = (await client.get("/")).text
        charger_page = (await client.get("/chargers/CP-1")).text

    assert ">wss://ocpp.example.com/ocpp/</code>" in page
    assert "wss://ocpp.example.com/ocpp/CP-1" in charger_page


@pytest.mark.parametrize(
    ("typed", "location"),
    [
        ("CP-1", "/chargers/CP-1"),
        ("  CP-1  ", "/chargers/CP-1"),
        ("ws://ocpp.example.com:8000/ocpp/CP-1", "/chargers/CP-1"),
        ("wss://x.example/ocpp/RDAM%7C123/", "/chargers/RDAM%7C123"),
    ],
)
async def test_start_opens_the_charger_page(
    http: httpx.AsyncClient, typed: str, location: str
) -> None:
    response = await http.post("/start", data={"identity": typed})

    assert response.status_code == 303
    assert response.headers["location"].endswith(location)


@pytest.mark.parametrize(
    ("typed", "error"), [("", "no charger identity"), ("x" * 49, "at most 48")]
)
async def test_start_with_an_unusable_identity_says_why(
    http: httpx.AsyncClient, typed: str, error: str
) -> None:
    response = await http.post("/start", data={"identity": typed})
    if response.status_code == 303:  # back to the landing page, which says why
        response = await http.get(response.headers["location"])

    assert 'role="alert"' in response.text
    assert error in response.text


async def test_pages_forbid_inline_script(http: httpx.AsyncClient) -> None:
    for path in ("/", "/chargers/CP-1"):
        response = await http.get(path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        scripts = re.findall(r"<script\b[^>]*>", response.text)
        assert scripts
        assert all(" src=" in script for script in scripts)
        assert re.search(r"<script\b[^>]*>\s*[^<\s]", response.text) is None


async def test_the_vendored_scripts_are_served(http: httpx.AsyncClient) -> None:
    for path in (
        "/static/vendor/htmx-2.0.11/htmx.min.js",
        "/static/vendor/htmx-ext-ws-2.0.4/ws.min.js",
        "/static/app.js",
        "/static/app.css",
    ):
        assert (await http.get(path)).status_code == 200
