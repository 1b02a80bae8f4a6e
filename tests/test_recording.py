"""Recording over real sockets: what a charger did, kept in memory, downloaded as NDJSON."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from ocpplab.config import Settings
from tests.page_support import exact_frames, expand, wait_line
from tests.support import exchange, ocpp_charger, page_socket, raw_charger, serve
from tests.test_redis_processes import Instance, api_client, wait_connected
from tests.test_replay_recording import simulate_replay

# Frames with odd spacing, escapes and non-ASCII text: kept exactly as sent.
BOOT = '[2, "b1",  "BootNotification", {"chargePointVendor": "Vé\\u00e9", "chargePointModel": "M"}]'
HEARTBEAT = '[2,"h1","Heartbeat",{}]'
NOW = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def lines_of(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


async def download(client: httpx.AsyncClient, identity: str) -> httpx.Response:
    # Lines are written a moment after the frames they record.
    for _ in range(50):
        response = await client.get(f"/api/chargers/{identity}/recording")
        if response.status_code == 200 and '"disconnected"' in response.text:
            return response
        await asyncio.sleep(0.05)
    return response


async def test_a_recording_keeps_every_frame_exactly_with_the_connection_and_rule_changes() -> None:
    identity = "rec-1"
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        started = await client.post(f"/api/chargers/{identity}/recording", json={})
        async with connect(
            server.charger_url(identity),
            subprotocols=[Subprotocol("ocpp1.6")],
            additional_headers={"X-Vendor": "lab"},
        ) as charger:
            await charger.send(BOOT)
            boot_answer = await asyncio.wait_for(charger.recv(), 5)
            rule = {"mode": "custom", "payload": {"currentTime": "2026-01-01T00:00:00Z"}}
            await client.put(f"/api/chargers/{identity}/responses/Heartbeat", json=rule)
            await asyncio.sleep(0.2)
            await charger.send(HEARTBEAT)
            heartbeat_answer = await asyncio.wait_for(charger.recv(), 5)
        response = await download(client, identity)
        state = await client.post(f"/api/chargers/{identity}/recording", json={"on": False})
        discarded = await client.delete(f"/api/chargers/{identity}/recording")
        gone = await client.get(f"/api/chargers/{identity}/recording")

    assert started.json()["on"] is True
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in response.headers["content-disposition"]
    lines = lines_of(response.text)
    assert [line["type"] for line in lines] == [
        "recording",
        "rules",
        "connected",
        "frame",
        "frame",
        "rules",
        "frame",
        "frame",
        "disconnected",
    ]
    header, connected = lines[0], lines[2]
    assert (header["format"], header["version"], header["identity"]) == (
        "ocpplab-recording",
        1,
        identity,
    )
    assert all(line["t"].endswith("Z") for line in lines)
    assert connected["subprotocol"] == "ocpp1.6"
    assert ["x-vendor", "lab"] in [[name.lower(), value] for name, value in connected["headers"]]
    frames = [(line["dir"], line["text"]) for line in lines if line["type"] == "frame"]
    assert frames == [
        ("in", BOOT),
        ("out", boot_answer),
        ("in", HEARTBEAT),
        ("out", heartbeat_answer),
    ]
    assert lines[5]["settings"]["rules"]["Heartbeat"]["mode"] == "custom"
    assert lines[-1]["code"] == 1000
    assert state.json()["on"] is False
    assert discarded.status_code == 200
    assert gone.status_code == 404


async def test_recording_started_while_connected_begins_with_the_connection_and_stops() -> None:
    identity = "rec-2"
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        charger = await raw_charger(server, identity)
        await exchange(charger, [2, "before", "Heartbeat", {}])
        await client.post(f"/api/chargers/{identity}/recording", json={"on": True})
        await asyncio.sleep(0.2)
        await exchange(charger, [2, "during", "Heartbeat", {}])
        await client.post(f"/api/chargers/{identity}/recording", json={"on": False})
        await asyncio.sleep(0.2)
        await exchange(charger, [2, "after", "Heartbeat", {}])
        await asyncio.sleep(0.2)
        text = (await client.get(f"/api/chargers/{identity}/recording")).text
        await charger.close()

    lines = lines_of(text)
    assert [line["type"] for line in lines[:3]] == ["recording", "rules", "connected"]
    assert lines[2]["headers"] is None  # the handshake was over before the recording began
    assert "during" in text
    assert "before" not in text
    assert "after" not in text


async def test_a_recording_stops_at_its_limit_saying_so_and_the_charger_goes_on() -> None:
    identity = "rec-3"
    settings = Settings(recording_limit=2000)
    async with (
        serve(settings) as server,
        httpx.AsyncClient(base_url=server.http) as client,
    ):
        await client.post(f"/api/chargers/{identity}/recording", json={})
        async with page_socket(server, identity) as page:
            charger = await raw_charger(server, identity)
            for number in range(40):
                answer = await exchange(charger, [2, f"hb-{number}", "Heartbeat", {}])
                assert answer[0] == 3
            await asyncio.sleep(0.3)
            shown = await page.drain(0.5)
        state = (await client.get(f"/api/chargers/{identity}")).json()
        text = (await client.get(f"/api/chargers/{identity}/recording")).text
        recording = await client.post(f"/api/chargers/{identity}/recording", json={"on": False})
        await charger.close()

    lines = lines_of(text)
    assert lines[-1]["type"] == "truncated"
    assert "2,000" in lines[-1]["reason"]
    assert len(text) <= 2000 + 1024
    assert state["connected"] is True
    assert recording.json()["truncated"] is True
    assert "limit" in shown


@pytest.mark.redis
async def test_a_recording_made_on_one_instance_downloads_from_the_other(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    identity = "rec-pair"
    async with api_client() as client:
        await client.post(b.api(identity, "/recording"), json={})
        async with connect(a.charger_url(identity), subprotocols=[Subprotocol("ocpp1.6")]) as ws:
            await wait_connected(client, b, identity)
            await ws.send(HEARTBEAT)
            await asyncio.wait_for(ws.recv(), 5)
        for _ in range(50):
            text = (await client.get(b.api(identity, "/recording"))).text
            if '"disconnected"' in text:
                break
            await asyncio.sleep(0.1)
        await client.delete(a.api(identity, "/recording"))

    frames = [line["text"] for line in lines_of(text) if line["type"] == "frame"]
    assert frames[0] == HEARTBEAT
    assert len(frames) == 2


# Opening a recording on a page


async def test_a_downloaded_recording_opens_read_only_with_every_frame() -> None:
    identity = "rec-open"
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        await client.post(f"/api/chargers/{identity}/recording", json={})
        charger = await raw_charger(server, identity)
        await exchange(charger, [2, "open-1", "Heartbeat", {}])
        await exchange(charger, [2, "open-2", "Authorize", {"idTag": "<b>tag</b>"}])
        await charger.close()
        text = (await download(client, identity)).text
        opened = await client.post(
            "/recordings/open", files={"recording": ("rec.ndjson", text, "application/x-ndjson")}
        )
        broken = text.replace('"type":"frame"', '"type":"frame"', 1).splitlines()
        broken[2] = "{not json"
        refused = await client.post(
            "/recordings/open",
            files={"recording": ("broken.ndjson", "\n".join(broken), "application/x-ndjson")},
        )

    assert opened.status_code == 200, opened.text
    assert f'Recording of <span class="identity">{identity}</span>' in opened.text
    assert "open-1" in opened.text
    assert "open-2" in opened.text
    assert "<b>tag</b>" not in opened.text  # escaped, as on a live page
    assert "read-only" in opened.text
    assert refused.status_code == 422
    assert "line 3" in refused.text


# A third-party charger client, recorded, then replayed


async def test_a_recording_of_the_ocpp_packages_charge_point_replays_against_ocpplab(
    tmp_path: Path,
) -> None:
    identity = "rec-cp"
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        await client.post(f"/api/chargers/{identity}/recording", json={})
        async with ocpp_charger(server.charger_url(identity), identity) as charger:
            await charger.call(
                call.BootNotification(charge_point_model="CP", charge_point_vendor="ocpp")
            )
            await charger.call(call.Authorize(id_tag="TAG-1"))
            started = await charger.call(
                call.StartTransaction(connector_id=1, id_tag="TAG-1", meter_start=0, timestamp=NOW)
            )
            await charger.call(
                call.StopTransaction(
                    meter_stop=500, timestamp=NOW, transaction_id=started.transaction_id
                )
            )
            reset = await client.post(
                f"/api/chargers/{identity}/calls/Reset", json={"type": "Soft"}
            )
        path = tmp_path / "charge-point.ndjson"
        path.write_text((await download(client, identity)).text, "utf-8")

        returncode, out, err = await simulate_replay(
            f"{server.ws}/ocpp/", path, speed=4, identity="rec-cp-again"
        )
        replayed = (await client.get("/api/chargers/rec-cp-again")).json()

    assert reset.status_code == 502, reset.text  # this ChargePoint has no Reset handler
    assert returncode == 0, (out, err)
    assert "charger calls sent / answered   4 / 4" in out
    assert "no answers differ from the recorded ones" in out
    assert replayed["connected"] is False


async def test_two_recordings_compare_on_the_page_naming_the_field_that_differs() -> None:
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        texts = []
        for identity, status in (("cmp-a", "Accepted"), ("cmp-b", "Blocked")):
            rule = {"mode": "custom", "payload": {"idTagInfo": {"status": status}}}
            await client.put(f"/api/chargers/{identity}/responses/Authorize", json=rule)
            await client.post(f"/api/chargers/{identity}/recording", json={})
            charger = await raw_charger(server, identity)
            await exchange(charger, [2, "a1", "Authorize", {"idTag": "T"}])
            await charger.close()
            texts.append((await download(client, identity)).text)
        same = await client.post(
            "/recordings/compare",
            files={"a": ("a.ndjson", texts[0]), "b": ("a-again.ndjson", texts[0])},
        )
        different = await client.post(
            "/recordings/compare", files={"a": ("a.ndjson", texts[0]), "b": ("b.ndjson", texts[1])}
        )
        missing = await client.post("/recordings/compare", files={"a": ("a.ndjson", texts[0])})

    assert same.status_code == 200
    assert "No differences" in same.text
    assert different.status_code == 200
    assert "idTagInfo.status" in different.text
    assert "Accepted" in different.text
    assert "Blocked" in different.text
    assert missing.status_code == 422
    assert "Choose two files" in missing.text


async def test_the_dashboard_replays_a_recording_as_a_charger_of_this_server() -> None:
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        await client.post("/api/chargers/rec-src/recording", json={})
        charger = await raw_charger(server, "rec-src")
        await exchange(charger, [2, "r1", "Heartbeat", {}])
        await exchange(charger, [2, "r2", "Authorize", {"idTag": "AGAIN"}])
        await charger.close()
        text = (await download(client, "rec-src")).text
        async with page_socket(server, "rec-dst") as page:
            started = await client.post(
                "/recordings/replay",
                files={"recording": ("rec.ndjson", text)},
                data={"identity": "rec-dst", "speed": "8"},
            )
            seen = await page.wait_for('data-unique-id="r2"', timeout=10)
            replayed = await expand(page, await wait_line(page, "r2", dir="in", type="CALL"))
        bad_speed = await client.post(
            "/recordings/replay",
            files={"recording": ("rec.ndjson", text)},
            data={"identity": "rec-x", "speed": "fast"},
        )
        not_a_recording = await client.post(
            "/recordings/replay", files={"recording": ("x.ndjson", "hello\n")}
        )

    assert started.status_code == 303
    assert started.headers["location"].endswith("/chargers/rec-dst")
    assert "<b>Authorize</b>" in seen
    assert json.loads(exact_frames(replayed)[0])[2:] == ["Authorize", {"idTag": "AGAIN"}]
    assert bad_speed.status_code == 422
    assert "speed" in bad_speed.text
    assert not_a_recording.status_code == 422
    assert "line 1" in not_a_recording.text


async def test_uploads_past_the_bound_are_refused_before_their_body_is_read() -> None:
    from ocpplab.web.recordings import MAX_UPLOADS

    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        services = server.app.state.services
        services.uploads = MAX_UPLOADS  # as many as are allowed are being read
        busy = [
            await client.post(path, files=files)
            for path, files in (
                ("/recordings/open", {"recording": ("r.ndjson", "x")}),
                ("/recordings/compare", {"a": ("a.ndjson", "x"), "b": ("b.ndjson", "x")}),
                ("/recordings/replay", {"recording": ("r.ndjson", "x")}),
            )
        ]
        services.uploads = 0
        free = await client.post("/recordings/open", files={"recording": ("r.ndjson", "x")})
        counted = services.uploads

    assert [response.status_code for response in busy] == [503, 503, 503]
    assert all("other uploads" in response.text for response in busy)
    assert free.status_code == 422  # read, and refused as not a recording
    assert counted == 0  # the place was given back
