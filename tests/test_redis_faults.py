"""Redis faults: a Redis of the test's own is stopped, paused and started again.

Charger connections stay open and are answered from cached settings; pages are told that
live updates are interrupted, then resumed (with a marker where frames may be missing);
the broker reconnects on its own; nothing has to be restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from ocpp.v16 import call

from ocpplab.broker.base import Signal, Subscription
from ocpplab.broker.keys import settings_key
from ocpplab.broker.redis import RedisBroker
from ocpplab.config import Settings
from ocpplab.core.errors import BrokerUnavailable
from ocpplab.core.responder import ResponderSettings, Rule
from tests.page_support import expand, wait_action
from tests.support import RunningServer, missing, ocpp_charger, page_socket, serve

pytestmark = pytest.mark.redis

WAIT = 10.0  # generous: reconnecting backs off up to a few seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server process of this test's own, on a free port, that keeps nothing."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--dir", str(self.directory), "--loglevel", "warning"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                if self.client().ping():
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def kill_subscribers(self) -> None:
        """Drop every subscribed connection (flag P), as a proxy or network fault would."""
        client = self.client()
        for entry in client.client_list():
            if "P" in entry["flags"]:
                client.client_kill_filter(_id=entry["id"])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if not (shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server")):
        missing("redis-server (apt-get install -y redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def started(broker: RedisBroker) -> AsyncIterator[RedisBroker]:
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


async def next_item(subscription: Subscription) -> str | Signal:
    async with asyncio.timeout(WAIT):
        return await subscription.get()


async def stopped(server: RedisServer) -> None:
    await asyncio.to_thread(server.stop)


async def restarted(server: RedisServer) -> None:
    await asyncio.to_thread(server.start)


# The broker alone


async def test_broker_signals_interrupted_once_then_resumed_and_reconnects_itself(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ocpplab.redis")
    signals: list[str | Signal] = []
    async with (
        started(RedisBroker(redis_server.url)) as broker,
        broker.subscribe("ocpplab:test:queued") as queued,
        broker.subscribe("ocpplab:test:callback", signals.append),
    ):
        assert await broker.publish("ocpplab:test:queued", "before") == 1
        assert await next_item(queued) == "before"

        await stopped(redis_server)
        assert await next_item(queued) is Signal.INTERRUPTED
        assert signals == [Signal.INTERRUPTED]
        assert broker.connected is False
        assert await broker.ping() is False
        for operation in (
            broker.publish("ocpplab:test:queued", "lost"),
            broker.publish_many([("ocpplab:test:queued", "lost")]),
            broker.get("ocpplab:test:key"),
            broker.set("ocpplab:test:key", "value", ttl=10),
            broker.delete("ocpplab:test:key"),
        ):
            with pytest.raises(BrokerUnavailable):
                await operation

        # Subscribing while Redis is away works, and says so at once.
        async with broker.subscribe("ocpplab:test:during") as during:
            assert await next_item(during) is Signal.INTERRUPTED

            await restarted(redis_server)
            assert await next_item(queued) is Signal.RESUMED
            assert await next_item(during) is Signal.RESUMED
            assert broker.connected is True
            assert await broker.ping() is True
            # Every channel was subscribed again, including the one added meanwhile.
            assert await broker.publish("ocpplab:test:queued", "after") == 1
            assert await broker.publish("ocpplab:test:during", "after") == 1
            assert await next_item(queued) == "after"
            assert await next_item(during) == "after"
        assert signals == [Signal.INTERRUPTED, Signal.RESUMED]
        assert queued.get_nowait() is None

    messages = [record.getMessage() for record in caplog.records]
    assert any("unreachable" in message for message in messages)
    assert any("reachable again" in message for message in messages)


async def test_broker_notices_a_redis_that_stops_answering(redis_server: RedisServer) -> None:
    """No socket error at all: the PubSub connection's PING goes unanswered."""
    broker = RedisBroker(redis_server.url, health_interval=0.2, socket_timeout=0.5)
    async with started(broker), broker.subscribe("ocpplab:test:paused") as subscription:
        redis_server.client().execute_command("CLIENT", "PAUSE", "1500", "ALL")
        assert await next_item(subscription) is Signal.INTERRUPTED
        with pytest.raises(BrokerUnavailable):
            await broker.publish("ocpplab:test:paused", "lost")
        assert await next_item(subscription) is Signal.RESUMED
        assert await broker.publish("ocpplab:test:paused", "after") == 1
        assert await next_item(subscription) == "after"


# The whole central system


async def http_status(server: RunningServer, path: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(server.http + path)).status_code


async def authorize(charger: Any) -> str:
    result = await charger.call(call.Authorize(id_tag="TAG"))
    return str(result.id_tag_info["status"])


async def test_chargers_are_answered_through_an_outage_and_pages_resume(
    redis_server: RedisServer,
) -> None:
    settings = Settings(redis_url=redis_server.url, call_timeout=2.0, manual_timeout=5.0)
    blocked = {"mode": "custom", "payload": {"idTagInfo": {"status": "Blocked"}}}
    async with serve(settings) as server, httpx.AsyncClient(timeout=10) as client:
        api = f"{server.http}/api/chargers/CP-1"
        assert (await client.put(api + "/responses/Authorize", json=blocked)).status_code == 200
        async with (
            page_socket(server, "CP-1") as page,
            ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger,
        ):
            await charger.call(
                call.BootNotification(charge_point_model="M", charge_point_vendor="V")
            )
            await page.wait_for("BootNotification")

            await stopped(redis_server)
            await page.wait_for("Live updates interrupted", WAIT)
            # The charger is answered from the settings cached before the outage.
            assert await authorize(charger) == "Blocked"
            await charger.call(call.Heartbeat())
            assert await http_status(server, "/healthz") == 503
            response = await client.post(
                api + "/frames",
                content='[2,"x","Heartbeat",{}]',
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 503
            # A charger that connects during the outage is served too.
            async with ocpp_charger(server.charger_url("CP-2"), "CP-2") as newcomer:
                boot = await newcomer.call(
                    call.BootNotification(charge_point_model="M", charge_point_vendor="V")
                )
                assert boot.status == "Accepted"

            await restarted(redis_server)
            resumed = await page.wait_for("frames may be missing here", WAIT)
            assert "Live updates: on" in resumed
            assert await http_status(server, "/healthz") == 200
            # The page hears the charger again, and commands reach it again.
            await charger.call(call.DataTransfer(vendor_id="after-the-outage"))
            number = await wait_action(page, "DataTransfer", dir="in", timeout=WAIT)
            assert "after-the-outage" in await expand(page, number)
            response = await client.post(
                api + "/frames",
                content='[2,"r","Heartbeat",{}]',
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 202
            assert await authorize(charger) == "Blocked"


async def test_settings_missed_during_an_outage_are_reloaded(redis_server: RedisServer) -> None:
    """Another host saved settings while this one's PubSub connection was gone."""
    settings = Settings(redis_url=redis_server.url, call_timeout=2.0)
    async with (
        serve(settings) as server,
        page_socket(server, "CP-1") as page,
        ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger,
    ):
        assert await authorize(charger) == "Accepted"
        expired = {"mode": "custom", "payload": {"idTagInfo": {"status": "Expired"}}}
        saved = ResponderSettings().with_rule("Authorize", Rule.from_json(expired))
        redis_server.client().set(settings_key("CP-1"), json.dumps(saved.to_json()))
        assert await authorize(charger) == "Accepted"  # answering never reads Redis

        await asyncio.to_thread(redis_server.kill_subscribers)
        await page.wait_for("frames may be missing here", WAIT)
        async with asyncio.timeout(WAIT):
            while True:
                if await authorize(charger) == "Expired":
                    break
