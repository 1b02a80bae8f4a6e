"""What happened stays: a charger's last connection outlives it, in memory, for a while.

When a connection ends, its replay (the frames a page opened then would have got, the
close code and reason, the last state) is kept in the broker for `history_ttl` seconds,
so that a page opened after the charger left is not blank, and the status says since
when it is offline. A stopped simulated charger can be started again under its identity.
Real chargers over real sockets against a real server, with each broker (Redis real).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from ocpplab.broker.base import Fence
from ocpplab.broker.keys import commands_channel, disconnect_key, events_channel, history_key
from ocpplab.broker.memory import MemoryBroker
from ocpplab.config import Settings
from ocpplab.core.messages import Disconnected, FrameEvent, ReplayEvent, Watch, decode_event
from tests.support import REDIS_URL, RunningServer, exchange, raw_charger, serve

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
WAIT = 10.0  # generous: a loaded 2-core machine


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def broker_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "memory" else REDIS_URL


@contextlib.asynccontextmanager
async def lab(broker_url: str | None, **settings: Any) -> AsyncIterator[RunningServer]:
    if broker_url is not None:
        from tests.test_broker_contract import redis_or_missing

        await redis_or_missing()
    async with serve(Settings(redis_url=broker_url, call_timeout=2.0, **settings)) as server:
        yield server


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def central(server: RunningServer) -> Any:
    return server.app.state.services.central


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll `check` until it gives something true; fail saying `what` never happened."""
    try:
        async with asyncio.timeout(WAIT):
            while not (result := await check()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} never happened within {WAIT} s") from None
    return result


async def history_of(server: RunningServer, identity: str) -> ReplayEvent:
    history: ReplayEvent = await eventually(
        lambda: central(server).history(identity), f"a history of {identity}"
    )
    return history


async def offline(server: RunningServer, identity: str) -> dict[str, Any]:
    async def status() -> dict[str, Any] | None:
        found: dict[str, Any] = await central(server).status(identity)
        return None if found["connected"] else found

    result: dict[str, Any] = await eventually(status, f"{identity} offline")
    return result


def raws(history: ReplayEvent) -> list[str]:
    return [event.raw for event in history.events if isinstance(event, FrameEvent)]


async def live_replay(server: RunningServer, identity: str) -> ReplayEvent:
    """What the gateway holding the charger sends a page that opens now (`Watch`)."""
    broker = server.app.state.services.broker
    async with broker.subscribe(events_channel(identity)) as events:
        assert await broker.publish(commands_channel(identity), Watch(page="p").encode()) == 1
        async with asyncio.timeout(WAIT):
            while True:
                item = await events.get()
                event = decode_event(item) if isinstance(item, str) else None
                if isinstance(event, ReplayEvent):
                    return event


async def one_connection(
    server: RunningServer, identity: str, unique_id: str, code: int, reason: str
) -> None:
    """Connect, boot, send one Heartbeat with `unique_id`, close with `code` and `reason`."""
    charger = await raw_charger(server, identity)
    try:
        await exchange(charger, [2, f"boot-{unique_id}", "BootNotification", BOOT])
        await exchange(charger, [2, unique_id, "Heartbeat", {}])
    finally:
        await charger.close(code, reason)


# What stays after a disconnect


async def test_the_last_connection_s_frames_and_close_stay_after_it_ends(
    broker_url: str | None,
) -> None:
    identity = unique("CP-history")
    async with lab(broker_url) as server:
        await one_connection(server, identity, "hb-1", 4000, "bye now")
        history = await history_of(server, identity)
        status = await offline(server, identity)
        async with httpx.AsyncClient(base_url=server.http) as http:
            api = (await http.get(f"/api/chargers/{identity}")).json()
        # The page's premise: no process holds the charger, so this is what it shows.
        watch = Watch(page="a-page").encode()
        broker = server.app.state.services.broker
        assert await broker.publish(commands_channel(identity), watch) == 0
        for_page = await central(server).history(identity, page="a-page")

    assert [json.loads(raw)[:2] for raw in raws(history)] == [
        [2, "boot-hb-1"],
        [3, "boot-hb-1"],
        [2, "hb-1"],
        [3, "hb-1"],
    ]
    closed = history.events[-1]
    assert isinstance(closed, Disconnected)
    assert (closed.code, closed.reason) == (4000, "bye now")
    assert history.session == history.connected.session == closed.session
    assert "Model" in json.dumps(history.state["boot"])
    assert history.page == ""
    assert for_page is not None
    assert for_page.page == "a-page"
    facts = {key: status[key] for key in ("disconnected_at", "close_code", "close_reason")}
    assert facts == {"disconnected_at": closed.at, "close_code": 4000, "close_reason": "bye now"}
    assert api["connected"] is False
    assert {key: api[key] for key in facts} == facts


async def test_the_history_is_gone_after_its_ttl(broker_url: str | None) -> None:
    identity = unique("CP-expires")
    async with lab(broker_url, history_ttl=2.0) as server:
        await one_connection(server, identity, "hb-1", 1000, "")
        assert raws(await history_of(server, identity))
        assert "close_code" in await offline(server, identity)
        await asyncio.sleep(2.5)
        assert await central(server).history(identity) is None
        status = await central(server).status(identity)
    assert "close_code" not in status
    assert "disconnected_at" not in status


async def test_history_ttl_0_keeps_nothing(broker_url: str | None) -> None:
    identity = unique("CP-off")
    async with lab(broker_url, history_ttl=0) as server:
        await one_connection(server, identity, "hb-1", 4000, "bye now")
        status = await offline(server, identity)
        await asyncio.sleep(0.5)  # a write, were there one, lands within this
        broker = server.app.state.services.broker
        stored = [await broker.get(key(identity)) for key in (history_key, disconnect_key)]
        history = await central(server).history(identity)
        used = server.app.state.services.gateway.histories.used
    assert stored == [None, None]
    assert used == 0
    assert history is None
    assert "close_code" not in status


async def test_a_reconnect_starts_fresh_and_replaces_the_history_when_it_ends(
    broker_url: str | None,
) -> None:
    identity = unique("CP-again")
    async with lab(broker_url) as server:
        await one_connection(server, identity, "first-1", 4001, "first")
        first = await history_of(server, identity)
        charger = await raw_charger(server, identity)
        try:
            await exchange(charger, [2, "second-1", "Heartbeat", {}])
            live = await live_replay(server, identity)
            during = await central(server).history(identity)
        finally:
            await charger.close(4002, "second")

        async def replaced() -> ReplayEvent | None:
            history: ReplayEvent | None = await central(server).history(identity)
            return history if history is not None and history.session != first.session else None

        second = await eventually(replaced, "the second connection's history")
        status = await offline(server, identity)

    assert [json.loads(raw)[1] for raw in raws(live)] == ["second-1", "second-1"]
    assert during is not None
    assert during.session == first.session
    assert [json.loads(raw)[1] for raw in raws(second)] == ["second-1", "second-1"]
    closed = second.events[-1]
    assert isinstance(closed, Disconnected)
    assert closed.code == 4002
    assert (status["close_code"], status["close_reason"]) == (4002, "second")


async def test_a_replaced_connection_leaves_its_successor_s_history_alone(
    broker_url: str | None,
) -> None:
    """With Redis, across two instances: the older connection's instance still holds it
    when it hears of the newer one."""
    identity = unique("CP-takeover")
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(lab(broker_url))
        other = await stack.enter_async_context(lab(broker_url)) if broker_url else server
        await one_connection(server, identity, "zero-1", 4000, "zero")
        zero = await history_of(server, identity)
        older = await raw_charger(server, identity)
        await exchange(older, [2, "older-1", "Heartbeat", {}])
        newer = await raw_charger(other, identity)
        try:
            await exchange(newer, [2, "newer-1", "Heartbeat", {}])
            async with asyncio.timeout(WAIT):
                await older.wait_closed()
            await asyncio.sleep(0.3)  # the replaced connection's writes, were there any
            during = await central(server).history(identity)
        finally:
            await newer.close(4003, "newer")
            await older.close()

        async def newest() -> ReplayEvent | None:
            history: ReplayEvent | None = await central(server).history(identity)
            return history if history is not None and history.session != zero.session else None

        last = await eventually(newest, "the newer connection's history")

    assert older.close_code == 1000
    assert during is not None
    assert during.session == zero.session
    assert "older-1" not in "".join(raws(last))
    assert [json.loads(raw)[1] for raw in raws(last)] == ["newer-1", "newer-1"]


class HeldHistoryBroker(MemoryBroker):
    """The in-memory broker, with the history's write held until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self.go_on = asyncio.Event()

    async def set_fenced(self, key: str, value: str, ttl: float, fence: Fence) -> bool:
        if key.startswith(history_key("")):
            self.writing.set()
            await self.go_on.wait()
        return await super().set_fenced(key, value, ttl, fence)


async def test_a_page_that_asks_while_the_connection_winds_down_gets_its_history() -> None:
    broker = HeldHistoryBroker()
    identity = unique("CP-late")
    async with (
        serve(Settings(call_timeout=2.0), broker=broker) as server,
        broker.subscribe(events_channel(identity)) as events,
    ):
        charger = await raw_charger(server, identity)
        await exchange(charger, [2, "hb-late", "Heartbeat", {}])
        await charger.close(4000, "late")
        try:
            async with asyncio.timeout(WAIT):
                await broker.writing.wait()
            # The session still listens to its commands while it stores its history.
            watch = Watch(page="late").encode()
            assert await broker.publish(commands_channel(identity), watch) == 1
            async with asyncio.timeout(5):
                while not isinstance(replay := decode_event(str(await events.get())), ReplayEvent):
                    pass
        finally:
            broker.go_on.set()
        await history_of(server, identity)
    assert replay.page == "late"
    assert [json.loads(raw)[1] for raw in raws(replay)] == ["hb-late", "hb-late"]
    assert isinstance(replay.events[-1], Disconnected)


@pytest.mark.redis
async def test_a_server_that_stops_leaves_its_chargers_history_in_redis() -> None:
    identity = unique("CP-stop")
    async with lab(REDIS_URL) as server:
        charger = await raw_charger(server, identity)
        await exchange(charger, [2, "hb-stop", "Heartbeat", {}])
    await charger.close()
    async with lab(REDIS_URL) as later:
        history = await central(later).history(identity)
    assert history is not None
    assert [json.loads(raw)[1] for raw in raws(history)] == ["hb-stop", "hb-stop"]
    assert isinstance(history.events[-1], Disconnected)


# Bounds


# Not JSON, so the log keeps the frame as it came, and the history's JSON writes each of
# these characters as a six-character escape: the replay's bound alone would let its
# history grow to six times its bytes.
CONTROL = "\x01" * 6000


async def test_one_history_is_bounded_in_bytes_its_newest_events_kept(
    broker_url: str | None,
) -> None:
    identity = unique("CP-big")
    async with lab(broker_url, replay_bytes=65536) as server:
        histories = server.app.state.services.gateway.histories
        charger = await raw_charger(server, identity)
        try:
            for _ in range(30):
                await charger.send(CONTROL)
            await exchange(charger, [2, "hb-last", "Heartbeat", {}])
        finally:
            await charger.close(4000, "big")
        history = await history_of(server, identity)
        text = await server.app.state.services.broker.get(history_key(identity))

    assert len(text) <= histories.max_bytes
    kept = raws(history)
    assert [json.loads(raw)[1] for raw in kept[-2:]] == ["hb-last", "hb-last"]
    assert 1 <= kept.count(CONTROL) < 10  # the replay held ten; the oldest gave way
    assert isinstance(history.events[-1], Disconnected)


async def test_histories_together_are_bounded_the_oldest_deleted_first(
    broker_url: str | None,
) -> None:
    identities = [unique(f"CP-many-{number}") for number in range(4)]
    settings = {"replay_bytes": 65536, "replay_total_bytes": 150_000}
    async with lab(broker_url, **settings) as server:
        histories = server.app.state.services.gateway.histories
        for identity in identities:
            charger = await raw_charger(server, identity)
            try:
                for number in range(8):
                    payload = {"vendorId": "v", "data": "x" * 6000}
                    await exchange(charger, [2, f"dt-{number}", "DataTransfer", payload])
            finally:
                await charger.close(4000, "many")
            await history_of(server, identity)
        kept = [await central(server).history(identity) for identity in identities]
        used = histories.used

    assert kept[0] is None  # deleted to make room
    assert kept[-1] is not None
    assert used <= settings["replay_total_bytes"]


# A stopped simulated charger starts again under its identity


async def test_a_stopped_simulated_charger_starts_again_under_its_identity(
    broker_url: str | None,
) -> None:
    async with (
        lab(broker_url, max_simulated=2) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as client,
    ):
        started = await client.post("/simulate")
        identity = started.headers["location"].rsplit("/", 1)[-1]
        simulations = server.app.state.simulations
        await eventually(lambda: connected(server, identity, True), "the simulated charger")
        assert (await client.post(f"/chargers/{identity}/simulation/stop")).status_code == 303
        await offline(server, identity)
        history = await history_of(server, identity)
        assert simulations.restartable(identity)

        again = await client.post(f"/chargers/{identity}/simulation/start")
        assert again.status_code == 303
        assert again.headers["location"].endswith(f"/chargers/{identity}")
        await eventually(lambda: connected(server, identity, True), "the restarted charger")
        assert simulations.running_charger(identity) is not None
        twice = await client.post(f"/chargers/{identity}/simulation/start")
        never = await client.post("/chargers/sim-000000/simulation/start")
        real = await client.post("/chargers/CP-real/simulation/start")

    assert "BootNotification" in "".join(raws(history))
    assert twice.status_code == 409
    assert "connected already" in twice.text
    assert never.status_code == 409
    assert "not a simulated charger this server ran" in never.text
    assert real.status_code == 409


async def test_starting_a_simulated_charger_again_obeys_the_limit() -> None:
    async with (
        lab(None, max_simulated=1) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as client,
    ):
        first = (await client.post("/simulate")).headers["location"].rsplit("/", 1)[-1]
        await eventually(lambda: connected(server, first, True), "the simulated charger")
        assert (await client.post(f"/chargers/{first}/simulation/stop")).status_code == 303
        await offline(server, first)
        assert (await client.post("/simulate")).status_code == 303  # the one there may be
        refused = await client.post(f"/chargers/{first}/simulation/start")
        running = list(server.app.state.simulations.running)

    assert refused.status_code == 409
    assert "already runs 1 simulated charger, the most it allows" in refused.text
    assert first not in running


async def test_a_simulated_identity_is_forgotten_after_history_ttl() -> None:
    async with (
        lab(None, history_ttl=0.5) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as client,
    ):
        identity = (await client.post("/simulate")).headers["location"].rsplit("/", 1)[-1]
        await eventually(lambda: connected(server, identity, True), "the simulated charger")
        assert (await client.post(f"/chargers/{identity}/simulation/stop")).status_code == 303
        await offline(server, identity)
        await asyncio.sleep(1.0)
        refused = await client.post(f"/chargers/{identity}/simulation/start")
    assert refused.status_code == 409
    assert "not a simulated charger this server ran lately" in refused.text


async def connected(server: RunningServer, identity: str, wanted: bool) -> bool:
    status: dict[str, Any] = await central(server).status(identity)
    return bool(status["connected"]) == wanted
