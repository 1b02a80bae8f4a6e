"""Takeover is exact: of N simultaneous connections of one identity, the newest alone stays.

Real sockets on both brokers: one in-process ocpplab with the in-memory broker, and two
real `python -m ocpplab` processes sharing a real Redis, with the connections spread over
both. Each connection takes a number from the identity's counter; the one with the
highest number must stay open, every other one must be closed with the reason pages show,
every instance's API must name the survivor, and once it goes every instance must say "not
connected" within seconds, not when a presence record expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
import websockets

from ocpplab.broker.keys import generation_key
from ocpplab.config import Settings
from ocpplab.server.session import CLOSE_REPLACED
from tests.support import REDIS_URL, exchange, serve
from tests.test_redis_faults import RedisServer
from tests.test_redis_processes import Instance

ROUNDS = 3  # each round is a fresh identity
SETTLE = 0.3  # a wrong, late takeover would close the survivor within this
ROUND_TIMEOUT = 30.0  # a broken takeover fails the round with a message, not the 120 s timeout
GONE_WITHIN = 3.0


@dataclasses.dataclass
class Lab:
    """Where chargers connect (round robin) and APIs answer, and how to read the counter."""

    bases: list[tuple[str, str]]  # (http, ws) base URLs, one per instance
    counter: Callable[[str], Awaitable[int]]

    def charger_url(self, index: int, identity: str) -> str:
        return f"{self.bases[index % len(self.bases)][1]}/ocpp/{quote(identity, safe='')}"

    def apis(self, identity: str) -> list[str]:
        return [f"{http}/api/chargers/{quote(identity, safe='')}" for http, _ in self.bases]


def redis_counter(url: str) -> Callable[[str], Awaitable[int]]:
    async def counter(identity: str) -> int:
        # A blocking client: its socket timeout, not the test's deadline, bounds a hung Redis.
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            return int(client.get(generation_key(identity)) or 0)
        finally:
            client.close()

    return counter


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def lab(request: pytest.FixtureRequest) -> AsyncIterator[Lab]:
    if request.param == "redis":
        instances: tuple[Instance, Instance] = request.getfixturevalue("pair")
        yield Lab([(item.http, item.ws) for item in instances], redis_counter(REDIS_URL))
        return
    async with serve(Settings(call_timeout=2.0)) as server:
        broker = server.app.state.services.broker

        async def counter(identity: str) -> int:
            return int(await broker.get(generation_key(identity)) or 0)

        yield Lab([(server.http, server.ws)], counter)


@contextlib.asynccontextmanager
async def within(seconds: float, failure: str) -> AsyncIterator[None]:
    """A deadline that fails the test with `failure` rather than a bare TimeoutError."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        pytest.fail(f"{failure} (within {seconds} s)")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, failure: str) -> None:
    """Poll `check` until it holds; fail with `failure` (not a bare timeout) when it does not."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(failure)


async def connect(url: str) -> Any:
    return await websockets.connect(url, subprotocols=["ocpp1.6"])  # type: ignore[list-item]


async def statuses(client: httpx.AsyncClient, lab: Lab, identity: str) -> list[dict[str, Any]]:
    return [(await client.get(api)).json() for api in lab.apis(identity)]


async def the_survivor(connections: list[Any]) -> Any:
    """Wait until all but one connection are closed; that one must then stay open."""
    closing = {
        asyncio.ensure_future(connection.wait_closed()): connection for connection in connections
    }
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while sum(task.done() for task in closing) < len(connections) - 1:
                    await asyncio.wait(
                        [task for task in closing if not task.done()],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
        await asyncio.sleep(SETTLE)
        still_open = [connection for task, connection in closing.items() if not task.done()]
    finally:
        for task in closing:
            task.cancel()
    assert len(still_open) == 1, (
        f"{len(still_open)} of {len(connections)} connections of one identity stayed open"
    )
    for connection in connections:
        if connection is not still_open[0]:
            assert connection.close_code == 1000
            assert connection.close_reason == CLOSE_REPLACED
    return still_open[0]


async def one_round(lab: Lab, client: httpx.AsyncClient, identity: str, count: int) -> None:
    connections = await asyncio.gather(
        *(connect(lab.charger_url(index, identity)) for index in range(count))
    )
    try:
        survivor = await the_survivor(connections)
        answer = await exchange(survivor, [2, "hb-1", "Heartbeat", {}])
        assert answer[:2] == [3, "hb-1"]
        # Every connection took a number; the survivor holds the last one handed out.
        assert await lab.counter(identity) == count
        seen: list[dict[str, Any]] = []

        async def all_name_the_newest() -> bool:
            seen[:] = await statuses(client, lab, identity)
            return all(status.get("generation") == count for status in seen)

        await eventually(all_name_the_newest, GONE_WITHIN, f"not every instance says so: {seen}")
        assert all(status["connected"] for status in seen), seen
        assert len({status["session"] for status in seen}) == 1, seen
        await survivor.close()

        async def none_connected() -> bool:
            return not any(status["connected"] for status in await statuses(client, lab, identity))

        await eventually(
            none_connected,
            GONE_WITHIN,
            f"still 'connected' {GONE_WITHIN} s after the last connection closed",
        )
    finally:
        for connection in connections:
            await connection.close()


@pytest.mark.parametrize("count", [2, 5, 10])
async def test_of_simultaneous_connections_exactly_the_newest_stays(lab: Lab, count: int) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(ROUNDS):
            identity = f"CP-{uuid.uuid4().hex[:10]}"
            async with within(
                ROUND_TIMEOUT, f"a takeover round of {count} connections did not finish"
            ):
                await one_round(lab, client, identity, count)


async def test_healthz_and_the_landing_page_count_this_instance_s_chargers() -> None:
    """The memory broker: this process's chargers, by the code path Redis uses too."""
    settings = Settings(list_chargers=True)
    async with serve(settings) as server, httpx.AsyncClient(base_url=server.http) as client:
        identities = sorted(f"CP-{uuid.uuid4().hex[:8]}" for _ in range(3))
        connections = [await connect(f"{server.ws}/ocpp/{identity}") for identity in identities]

        def counted(number: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return bool((await client.get("/healthz")).json()["chargers"] == number)

            return check

        try:
            await eventually(counted(3), GONE_WITHIN, "/healthz did not count 3 chargers")
            page = (await client.get("/")).text
            assert all(identity in page for identity in identities)
            await connections[0].close()
            await eventually(counted(2), GONE_WITHIN, "/healthz did not count 2 chargers")
            page = (await client.get("/")).text
            assert identities[0] not in page
            assert all(identity in page for identity in identities[1:])
        finally:
            for connection in connections:
                await connection.close()


@pytest.mark.redis
async def test_after_a_redis_restart_the_holder_restores_its_number_and_presence(
    redis_server: RedisServer,
) -> None:
    """Redis without persistence forgets the counter and presence; the newest still wins.

    Were the holder not to put its number back, the next connection would be number 1
    again, lower than the holder's: neither would close, and the API would say "not
    connected" about a connected charger for as long as it stays.
    """
    identity = f"CP-{uuid.uuid4().hex[:8]}"
    async with (
        serve(Settings(redis_url=redis_server.url)) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as client,
    ):
        api = f"/api/chargers/{identity}"

        async def connected() -> bool:
            response = await client.get(api)
            return response.status_code == 200 and bool(response.json()["connected"])

        first = await connect(f"{server.ws}/ocpp/{identity}")
        try:
            await eventually(connected, GONE_WITHIN, "the first connection never showed")
            assert (await client.get(api)).json()["generation"] == 1
            redis_server.stop()
            redis_server.start()
            await eventually(connected, 15, "the holder did not restore its presence")
            assert redis_server.client().get(generation_key(identity)) == "1"
            second = await connect(f"{server.ws}/ocpp/{identity}")
            try:
                async with within(5, "the holder was not replaced by the newer connection"):
                    await first.wait_closed()
                assert first.close_reason == CLOSE_REPLACED
                async with within(10, "the newer connection's Heartbeat was not answered"):
                    answer = await exchange(second, [2, "hb", "Heartbeat", {}])
                assert answer[:2] == [3, "hb"]
                await eventually(connected, GONE_WITHIN, "the second connection never showed")
                assert (await client.get(api)).json()["generation"] == 2
            finally:
                await second.close()
        finally:
            await first.close()
