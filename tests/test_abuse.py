"""Abuse is cut off cheaply: the rate limit, flooders, the connection limit, held calls,
and the replay's byte bounds, against a real server with real websocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ocpplab.config import Settings
from ocpplab.core import connection
from tests.page_support import expand, search, wait_line
from tests.support import exchange, page_socket, raw_charger, serve


def fresh(prefix: str = "CP") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def answers(connection: Any, count: int, timeout: float = 10.0) -> list[Any]:
    received = []
    async with asyncio.timeout(timeout):
        while len(received) < count:
            received.append(json.loads(await connection.recv()))
    return received


# The rate limit


async def test_frames_over_the_rate_limit_get_a_callerror_and_one_notice_not_one_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    real_parse = connection.parse

    def counting_parse(text: str | bytes) -> Any:
        parsed.append(str(text))
        return real_parse(text)

    monkeypatch.setattr(connection, "parse", counting_parse)
    identity = fresh()
    async with (
        serve(Settings(rate_limit=5, flood_disconnect=0)) as server,
        page_socket(server, identity) as page,
    ):
        charger = await raw_charger(server, identity)
        for number in range(30):
            await charger.send(json.dumps([2, f"hb-{number}", "Heartbeat", {}]))
        replies = await answers(charger, 30)
        await asyncio.sleep(1.0)  # the bucket refills: the connection still works
        ok = await exchange(charger, [2, "after", "Heartbeat", {}])
        log = await page.drain(0.5)
        found = await search(page, "hb-25")  # nor in the frames the page keeps for expanding
        kept = await search(page, "hb-5")
        await charger.close()

    answered = [reply for reply in replies if reply[0] == 3]
    refused = [reply for reply in replies if reply[0] == 4]
    assert len(answered) == 10  # burst: twice the rate
    assert {tuple(reply[2:4]) for reply in refused} == {("GenericError", connection.RATE_LIMITED)}
    assert [reply[1] for reply in refused] == [f"hb-{number}" for number in range(10, 30)]
    assert ok[0] == 3
    # Refused frames are not parsed, and the page hears of them once, not twenty times.
    assert len(parsed) == 11
    assert log.count("rate limit of 5 frames/s exceeded") == 1
    assert "hb-25" not in log
    assert found == []
    assert len(kept) == 1  # an answered frame is found, so the search itself works


async def test_a_charger_that_keeps_flooding_is_disconnected_with_the_reason_on_its_page() -> None:
    identity = fresh()
    async with (
        serve(Settings(rate_limit=20, flood_disconnect=1.0)) as server,
        page_socket(server, identity) as page,
    ):
        charger = await raw_charger(server, identity)

        async def flood() -> None:
            for number in range(100_000):
                await charger.send(json.dumps([2, f"f-{number}", "Heartbeat", {}]))
                if number % 50 == 0:
                    await asyncio.sleep(0.005)

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for _ in charger:  # the flooder reads its CALLERRORs
                    pass

        async with asyncio.timeout(10):
            reader = asyncio.create_task(read())
            with pytest.raises(ConnectionClosed):
                await flood()
            await reader
        fragment = await page.wait_for("Disconnected")

    assert charger.close_code == 1008
    assert charger.close_reason == "over the rate limit for 1 s"
    assert "over the rate limit for 1 s" in fragment


async def test_a_short_burst_over_the_limit_is_not_a_flood() -> None:
    identity = fresh()
    async with serve(Settings(rate_limit=20, flood_disconnect=1.0)) as server:
        charger = await raw_charger(server, identity)
        for _ in range(3):  # three bursts over the limit, each followed by a quiet spell
            for number in range(60):
                await charger.send(json.dumps([2, f"b-{number}", "Heartbeat", {}]))
            await answers(charger, 60)
            await asyncio.sleep(1.5)
        reply = await exchange(charger, [2, "still", "Heartbeat", {}])
        await charger.close()

    assert reply[0] == 3


# The connection limit


async def test_connections_over_the_limit_are_refused_with_503_but_a_reconnect_is_not() -> None:
    first, second, third = fresh(), fresh(), fresh()
    async with serve(Settings(max_chargers=2)) as server:
        one = await raw_charger(server, first)
        two = await raw_charger(server, second)
        with pytest.raises(InvalidStatus) as refused:
            await raw_charger(server, third)
        again = await raw_charger(server, first)  # the same charger back: it replaces `one`
        async with asyncio.timeout(5):
            await one.wait_closed()
        reply = await exchange(again, [2, "hb", "Heartbeat", {}])
        await two.close()
        await again.close()
        await asyncio.sleep(0.2)
        four = await raw_charger(server, third)  # room again
        await four.close()

    assert refused.value.response.status_code == 503
    assert b"OCPPLAB_MAX_CHARGERS" in refused.value.response.body
    assert reply[0] == 3


# Held calls


async def test_a_charger_cannot_pile_up_held_calls_past_the_cap() -> None:
    identity = fresh()
    async with serve() as server:
        async with httpx.AsyncClient(base_url=server.http) as client:
            response = await client.put(
                f"/api/chargers/{identity}/responses/Authorize",
                json={"mode": "manual"},
            )
            assert response.status_code == 200
        charger = await raw_charger(server, identity)
        total = connection.MAX_HELD + 5
        for number in range(total):
            await charger.send(json.dumps([2, f"a-{number}", "Authorize", {"idTag": "T"}]))
        replies = await answers(charger, 5)
        session = server.app.state.services.gateway.sessions[identity]
        held = len(session.connection.held)
        await charger.close()

    assert held == connection.MAX_HELD
    assert [reply[1] for reply in replies] == [f"a-{n}" for n in range(connection.MAX_HELD, total)]
    assert all(reply[0] == 3 for reply in replies)  # the fallback: the default answer


# The replay in bytes


async def test_the_replay_is_bounded_in_bytes_and_big_frames_are_kept_truncated() -> None:
    identity = fresh()
    settings = Settings(replay_bytes=40_000)
    big = {"vendorId": "V", "data": "x" * 200_000}
    async with serve(settings) as server:
        charger = await raw_charger(server, identity)
        for number in range(20):
            await exchange(charger, [2, f"dt-{number}", "DataTransfer", big])
        await exchange(charger, [2, "last", "Heartbeat", {}])
        session = server.app.state.services.gateway.sessions[identity]
        kept = session.connection.replay.bytes
        async with page_socket(server, identity) as page:
            opened = await page.drain(1.0)
            big_line = await wait_line(page, "dt-19", dir="in", type="CALL")
            detail = await expand(page, big_line)
        await charger.close()

    assert kept <= 40_000
    assert len(opened.encode()) < 200_000  # a page open sends a bounded replay
    assert 'data-unique-id="last"' in opened
    assert 'data-unique-id="dt-0"' not in opened  # the oldest frames went out of the replay
    size = len(json.dumps([2, "dt-19", "DataTransfer", big]))
    assert f"A frame of {size:,} characters: only its first 10,000 are kept and shown." in detail
    assert len(detail.encode()) < 100_000  # what the page is sent of it is bounded too


async def test_the_replay_budget_of_the_process_holds_for_many_chargers() -> None:
    settings = Settings(replay_bytes=100_000, replay_total_bytes=150_000)
    big = {"vendorId": "V", "data": "y" * 20_000}
    async with serve(settings) as server:
        budget = server.app.state.services.gateway.replay_budget
        chargers = [await raw_charger(server, fresh()) for _ in range(5)]
        for round_ in range(6):
            for charger in chargers:
                await exchange(charger, [2, f"dt-{round_}", "DataTransfer", big])
                assert budget.used <= 150_000
        for charger in chargers:
            await charger.close()
        await asyncio.sleep(0.3)
        left = budget.used

    assert left == 0  # closed connections give their bytes back


# The panel at the edges


async def test_a_state_change_just_before_a_disconnect_reaches_open_pages() -> None:
    identity = fresh()
    async with serve() as server, page_socket(server, identity) as page:
        charger = await raw_charger(server, identity)
        await page.wait_for("Connected")
        await exchange(
            charger,
            [
                2,
                "sn",
                "StatusNotification",
                {"connectorId": 1, "status": "Faulted", "errorCode": "GroundFailure"},
            ],
        )
        await charger.close()  # at once: before the state's 0.2 s flush timer fires
        await page.wait_for("Disconnected")
        await page.drain(0.3)

    states = [fragment for fragment in page.received if 'id="state"' in fragment]
    assert states, "no state update reached the page"
    assert "Faulted" in states[-1]


async def test_a_repeated_stop_transaction_is_shown_as_a_repeat() -> None:
    identity = fresh()
    start = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": "2026-12-01T10:00:00Z"}
    async with serve() as server, page_socket(server, identity) as page:
        charger = await raw_charger(server, identity)
        started = await exchange(charger, [2, "st", "StartTransaction", start])
        stop = {
            "transactionId": started[2]["transactionId"],
            "meterStop": 10,
            "timestamp": "2026-12-01T10:05:00Z",
        }
        await exchange(charger, [2, "stop-1", "StopTransaction", stop])
        await exchange(charger, [2, "stop-2", "StopTransaction", {**stop, "reason": "Local"}])
        notice = await page.wait_for("a repeated StopTransaction for transaction")
        state = await page.wait_for("Stop received 2\N{MULTIPLICATION SIGN}")
        await charger.close()

    assert "stopped at 2026-12-01T10:05:00Z" in notice
    assert state.count("<tr><td>") == 1  # one transaction row, not two


# Pages and request bodies


async def test_page_sockets_over_the_limit_are_refused() -> None:
    identity = fresh()
    async with serve(Settings(max_pages=2)) as server:
        async with page_socket(server, identity), page_socket(server, identity):
            with pytest.raises(InvalidStatus) as refused:
                async with page_socket(server, identity):
                    pass
        async with page_socket(server, identity):  # closed pages make room
            pass

    assert refused.value.response.status_code == 503
    assert b"OCPPLAB_MAX_PAGES" in refused.value.response.body


async def test_a_request_body_over_the_limit_is_refused_however_it_is_sent() -> None:
    identity = fresh()
    body = json.dumps({"type": "Hard", "pad": "x" * 5000}).encode()

    async def chunks() -> Any:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    async with (
        serve(Settings(max_frame_size=1000)) as server,
        httpx.AsyncClient(base_url=server.http) as client,
    ):
        url = f"/api/chargers/{identity}/calls/Reset"
        headers = {"Content-Type": "application/json"}
        declared = await client.post(url, content=body, headers=headers)
        streamed = await client.post(url, content=chunks(), headers=headers)
        small = await client.post(url, json={"type": "Hard"})

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "larger than 4,000 bytes" in streamed.text
    assert small.status_code == 409  # read, and refused for the right reason: no charger
