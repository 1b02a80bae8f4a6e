"""Two real `python -m ocpplab` processes sharing one real Redis act as one central system.

The charger connects to instance A; the page socket, the API calls, the responder settings
and the manual answers go to instance B. Nothing may assume that the charger and the page
share a process. Also here: takeover across the two, `--workers`, a wrong Redis URL, and
that Redis never holds a frame.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import pytest
import redis
import websockets
from ocpp.routing import on
from ocpp.v16 import call, call_result

from ocpplab.broker.keys import generation_key, presence_key, settings_key, transactions_key
from ocpplab.server.session import CLOSE_REPLACED
from tests.page_support import expand, wait_action, wait_outcome
from tests.page_support import frames as shown_frames
from tests.support import (
    REDIS_URL,
    Charger,
    Loopback,
    PageClient,
    exchange,
    missing,
    ocpp_charger,
)
from tests.test_redis_faults import RedisServer

pytestmark = pytest.mark.redis

START_TIMEOUT = 20.0
CALL_TIMEOUT = 2.0
SETTINGS_TTL = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def require_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except (redis.ConnectionError, OSError):
        missing(f"Redis at {REDIS_URL} (apt-get install -y redis-server)")
    finally:
        client.close()


def ocpplab_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OCPPLAB_")}
    env.update(
        OCPPLAB_LOG_LEVEL="warning",
        OCPPLAB_CALL_TIMEOUT=str(CALL_TIMEOUT),
        OCPPLAB_MANUAL_TIMEOUT="10",
        OCPPLAB_SETTINGS_TTL=str(SETTINGS_TTL),  # what tests leave in a shared Redis expires
        **extra,
    )
    return env


@dataclasses.dataclass
class Instance(Loopback):
    """One running `python -m ocpplab` process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def charger_url(self, identity: str) -> str:
        return f"{self.ws}/ocpp/{quote(identity, safe='')}"

    def api(self, identity: str, rest: str = "") -> str:
        return f"{self.http}/api/chargers/{quote(identity, safe='')}{rest}"

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def start_instance(name: str, *args: str, env: dict[str, str] | None = None) -> Instance:
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_instance
    command = [sys.executable, "-m", "ocpplab", "--port", str(port), *args]
    process = subprocess.Popen(
        command, env=env or ocpplab_env(), stdout=log, stderr=subprocess.STDOUT
    )
    instance = Instance(name, port, process, log)
    try:
        wait_until_healthy(instance)
    except BaseException:
        stop_instance(instance)
        raise
    return instance


def wait_until_healthy(instance: Instance) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            raise RuntimeError(f"ocpplab {instance.name} exited:\n{instance.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(instance.http + "/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"ocpplab {instance.name} did not become healthy:\n{instance.output()}")


def stop_instance(instance: Instance) -> None:
    instance.process.terminate()
    try:
        instance.process.wait(10)
    except subprocess.TimeoutExpired:
        instance.process.kill()
        instance.process.wait(5)
    instance.log.close()


@contextlib.contextmanager
def running(*instances: Instance) -> Iterator[None]:
    try:
        yield
    finally:
        for instance in instances:
            stop_instance(instance)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Instance, Instance]]:
    """Instances A and B, on their own ports, sharing the Redis at REDIS_URL."""
    require_redis()
    a = start_instance("A", "--redis-url", REDIS_URL)
    try:
        b = start_instance("B", "--redis-url", REDIS_URL)
    except BaseException:
        stop_instance(a)
        raise
    with running(a, b):
        yield a, b


@pytest.fixture
def identity() -> str:
    return f"CP-{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def page_on(instance: Instance, identity: str) -> AsyncIterator[PageClient]:
    url = f"{instance.ws}/chargers/{quote(identity, safe='')}/live"
    async with websockets.connect(url) as connection:
        page = PageClient(connection)
        await page.wait_for("Live updates: on")
        yield page


@contextlib.asynccontextmanager
async def api_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


class LabCharger(Charger):
    """The `ocpp` package's ChargePoint, answering a few central-system calls."""

    @on("GetConfiguration")
    def on_get_configuration(self, **_: Any) -> call_result.GetConfiguration:
        return call_result.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        )

    @on("Reset")
    def on_reset(self, type: str) -> call_result.Reset:
        return call_result.Reset(status="Rejected")


async def boot(charger: Any) -> Any:
    return await charger.call(
        call.BootNotification(charge_point_model="Lab", charge_point_vendor="ocpplab")
    )


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll `check` until it holds: state that crosses processes has no event to await."""
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def is_connected(client: httpx.AsyncClient, instance: Instance, identity: str) -> bool:
    return bool((await client.get(instance.api(identity))).json().get("connected"))


async def is_gone(client: httpx.AsyncClient, instance: Instance, identity: str) -> bool:
    return not await is_connected(client, instance, identity)


async def wait_connected(client: httpx.AsyncClient, instance: Instance, identity: str) -> None:
    """The charger's presence reached Redis (it is written right after the connection)."""
    await until(lambda: is_connected(client, instance, identity))


# Frames, status and operations cross processes


async def test_frames_of_a_charger_on_a_reach_a_page_on_b(
    pair: tuple[Instance, Instance], identity: str
) -> None:
    a, b = pair
    async with (
        page_on(b, identity) as page,
        ocpp_charger(a.charger_url(identity), identity) as charger,
    ):
        await page.wait_for("Charger connected from")
        result = await boot(charger)
        assert result.status == "Accepted"
        number = await wait_action(page, "BootNotification", dir="in")
        outcome = await wait_outcome(page, number, 'data-t="CALLRESULT"')
        assert "answered in" in outcome
        detail = await expand(page, number)  # asked of b, which holds the page's lines
        call_frame, answer = shown_frames(detail)
        assert call_frame[2] == "BootNotification"
        assert answer[2]["status"] == "Accepted"


async def test_b_knows_a_charger_held_by_a(pair: tuple[Instance, Instance], identity: str) -> None:
    a, b = pair
    async with api_client() as client:
        assert (await client.get(b.api(identity))).json()["connected"] is False
        async with ocpp_charger(a.charger_url(identity), identity) as charger:
            await boot(charger)
            await wait_connected(client, b, identity)
            status = (await client.get(b.api(identity))).json()
            assert status["subprotocol"] == "ocpp1.6"
        await until(lambda: is_gone(client, b, identity))


async def test_operations_sent_on_b_are_answered_by_the_charger_on_a(
    pair: tuple[Instance, Instance], identity: str
) -> None:
    a, b = pair
    async with (
        api_client() as client,
        page_on(b, identity) as page,
        ocpp_charger(a.charger_url(identity), identity, charger_class=LabCharger),
    ):
        await wait_connected(client, b, identity)
        response = await client.post(b.api(identity, "/calls/GetConfiguration"), json={})
        assert response.status_code == 200, response.text
        assert response.json()["configurationKey"][0]["key"] == "HeartbeatInterval"
        response = await client.post(b.api(identity, "/calls/Reset"), json={"type": "Soft"})
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "Rejected"}
        reset = await wait_action(page, "Reset", dir="out")
        await wait_outcome(page, reset, 'data-t="CALLRESULT"')
        offline = await client.post(
            b.api(identity + "-nobody", "/calls/Reset"), json={"type": "Soft"}
        )
        assert offline.status_code == 409


async def test_a_raw_frame_sent_on_b_reaches_the_charger_on_a_as_typed(
    pair: tuple[Instance, Instance], identity: str
) -> None:
    a, b = pair
    text = ' [2, "raw-1", "Heartbeat", {"odd": true}] '
    async with (
        api_client() as client,
        websockets.connect(a.charger_url(identity), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        await wait_connected(client, b, identity)
        response = await client.post(
            b.api(identity, "/frames"), content=text, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 202, response.text
        async with asyncio.timeout(5):
            assert await charger.recv() == text


async def test_settings_saved_on_b_answer_the_charger_on_a(
    pair: tuple[Instance, Instance], identity: str
) -> None:
    a, b = pair
    blocked = {"mode": "custom", "payload": {"idTagInfo": {"status": "Blocked"}}}
    expired = {"mode": "custom", "payload": {"idTagInfo": {"status": "Expired"}}}
    async with api_client() as client:
        # Saved before the charger connects: A reads them from Redis.
        response = await client.put(b.api(identity, "/responses/Authorize"), json=blocked)
        assert response.status_code == 200, response.text
        assert 0 < settings_ttl_ms(identity) <= SETTINGS_TTL * 1000
        assert (await client.get(a.api(identity, "/responses/Authorize"))).json()["payload"] == (
            blocked["payload"]
        )
        async with ocpp_charger(a.charger_url(identity), identity) as charger:
            result = await charger.call(call.Authorize(id_tag="TAG"))
            assert result.id_tag_info["status"] == "Blocked"
            # Changed while it is connected: A is told, and answers at once.
            response = await client.put(b.api(identity, "/responses/Authorize"), json=expired)
            assert response.status_code == 200, response.text

            async def expired_now() -> bool:
                result = await charger.call(call.Authorize(id_tag="TAG"))
                return bool(result.id_tag_info["status"] == "Expired")

            await until(expired_now)


async def test_a_manual_answer_given_on_b_reaches_the_charger_on_a(
    pair: tuple[Instance, Instance], identity: str
) -> None:
    a, b = pair
    manual = {"mode": "manual", "payload": {"idTagInfo": {"status": "Accepted"}}}
    async with api_client() as client:
        response = await client.put(b.api(identity, "/responses/Authorize"), json=manual)
        assert response.status_code == 200, response.text
        async with (
            page_on(b, identity) as page,
            websockets.connect(a.charger_url(identity), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
        ):
            await charger.send(json.dumps([2, "held-1", "Authorize", {"idTag": "TAG"}]))
            await page.wait_for("waits for your answer")
            answer = {"payload": {"idTagInfo": {"status": "Blocked"}}}
            response = await client.post(b.api(identity, "/held/held-1"), json=answer)
            assert response.status_code == 200, response.text
            async with asyncio.timeout(5):
                assert json.loads(await charger.recv()) == [3, "held-1", answer["payload"]]
            again = await client.post(b.api(identity, "/held/held-1"), json=answer)
            assert again.status_code == 410


# Takeover


@pytest.mark.parametrize("order", ["A then B", "B then A"])
async def test_a_new_connection_on_the_other_instance_takes_over(
    pair: tuple[Instance, Instance], identity: str, order: str
) -> None:
    a, b = pair
    first, second = (a, b) if order == "A then B" else (b, a)
    async with api_client() as client, page_on(b, identity) as page:
        old = await websockets.connect(
            first.charger_url(identity),
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        )
        try:
            await wait_connected(client, b, identity)
            await page.wait_for("Charger connected from")
            async with websockets.connect(
                second.charger_url(identity),
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            ) as new:
                async with asyncio.timeout(5):
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await old.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.reason == CLOSE_REPLACED
                await page.wait_for("Replaced by a new connection")
                answer = await exchange(new, [2, "hb-1", "Heartbeat", {}])
                assert answer[:2] == [3, "hb-1"]
                for instance in (a, b):
                    assert await is_connected(client, instance, identity)
        finally:
            await old.close()


async def test_a_silent_old_socket_is_replaced_and_its_end_erases_nothing(
    pair: tuple[Instance, Instance], identity: str
) -> None:
    """Real chargers reconnect before the old socket is known dead (QUIRKS.md).

    The old socket never answers the close, and goes only after the new connection is set
    up: the new connection is served, and its presence (written by B) must survive the old
    session's clean-up on A.
    """
    a, b = pair
    async with api_client() as client, page_on(b, identity) as page:
        old = await HalfDeadCharger.connect(a, identity)
        try:
            await wait_connected(client, b, identity)
            async with websockets.connect(
                b.charger_url(identity),
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            ) as new:
                assert await old.close_reason() == CLOSE_REPLACED
                answer = await exchange(new, [2, "hb-1", "Heartbeat", {}])
                assert answer[:2] == [3, "hb-1"]
                old.vanish()  # only now, after the new connection is fully set up
                await page.wait_for("Replaced by a new connection")
                await asyncio.sleep(0.3)  # the old session's clean-up has finished
                assert await is_connected(client, a, identity)
        finally:
            old.vanish()


class HalfDeadCharger:
    """A charger whose socket never answers the server's close, like one that lost power."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, instance: Instance, identity: str) -> HalfDeadCharger:
        reader, writer = await asyncio.open_connection("127.0.0.1", instance.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ocpp/{quote(identity, safe='')} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{instance.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
            ).encode()
        )
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def close_reason(self) -> str:
        """Read frames until the server's close frame (RFC 6455, 5.5.1); its reason."""
        async with asyncio.timeout(5):
            while True:
                first, second = await self.reader.readexactly(2)
                length = second & 0x7F
                if length == 126:
                    length = int.from_bytes(await self.reader.readexactly(2))
                elif length == 127:
                    length = int.from_bytes(await self.reader.readexactly(8))
                payload = await self.reader.readexactly(length)
                if first & 0x0F == 0x8:
                    return payload[2:].decode()

    def vanish(self) -> None:
        self.writer.close()


# Many instances, one central system: transaction ids, counts, status


async def test_transaction_ids_count_on_when_the_charger_moves_between_instances(
    pair: tuple[Instance, Instance], identity: str
) -> None:
    """Back on the same instance at once; on another one once the count reached Redis.

    The count goes to Redis just after the answer, never before it (answering does not wait
    on Redis): milliseconds, less than any charger takes to reconnect. The instance itself
    knows at once.
    """
    a, b = pair
    start = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": "2025-01-01T00:00:00Z"}
    ids: list[int] = []
    previous: Instance | None = None
    for visit, instance in enumerate((a, b, b, a)):
        if previous is not None and instance is not previous:
            await until(lambda: counted_transactions(identity, len(ids)), 2)
        async with websockets.connect(
            instance.charger_url(identity),
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        ) as charger:
            for number in range(2):
                frame = [2, f"start-{visit}-{number}", "StartTransaction", start]
                ids.append((await exchange(charger, frame))[2]["transactionId"])
        previous = instance
    assert ids == list(range(1, 9))


async def counted_transactions(identity: str, number: int) -> bool:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return bool(client.get(transactions_key(identity)) == str(number).encode())
    finally:
        client.close()


async def test_healthz_and_the_landing_page_count_every_instance_s_chargers(
    tmp_path: Path,
) -> None:
    """On a Redis of the test's own, so that no other run's instances are counted.

    A and B each count all five chargers; one closing is counted off everywhere; and when
    A dies without a word (SIGKILL), B stops counting A's chargers and stops calling them
    connected once A's instance record has expired, not when their presence records do.
    """
    if not shutil.which("redis-server"):
        missing("redis-server (apt-get install -y redis-server)")
    private = RedisServer(tmp_path)
    private.start()
    env = ocpplab_env(OCPPLAB_LIST_CHARGERS="true")
    hexes = uuid.uuid4().hex
    on_a = [f"CP-A{number}-{hexes[:8]}" for number in range(2)]
    on_b = [f"CP-B{number}-{hexes[:8]}" for number in range(3)]
    try:
        a = start_instance("A", "--redis-url", private.url, env=env)
        try:
            b = start_instance("B", "--redis-url", private.url, env=env)
        except BaseException:
            stop_instance(a)
            raise
        with running(a, b):
            async with contextlib.AsyncExitStack() as chargers, api_client() as client:
                sockets = {
                    identity: await chargers.enter_async_context(
                        websockets.connect(
                            instance.charger_url(identity),
                            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                        )
                    )
                    for instance, identities in ((a, on_a), (b, on_b))
                    for identity in identities
                }

                async def counted(number: int, *instances: Instance) -> bool:
                    for instance in instances:
                        health = (await client.get(instance.http + "/healthz")).json()
                        if health["chargers"] != number:
                            return False
                    return True

                await until(lambda: counted(5, a, b), 10)
                for instance in (a, b):
                    page = (await client.get(instance.http + "/")).text
                    assert all(identity in page for identity in on_a + on_b), instance.name
                await sockets[on_b[0]].close()
                await until(lambda: counted(4, a, b), 10)
                assert on_b[0] not in (await client.get(a.http + "/")).text
                assert await is_connected(client, b, on_a[0])
                a.process.kill()
                await until(lambda: counted(2, b), 20)
                await until(lambda: is_gone(client, b, on_a[0]), 5)
                assert await is_connected(client, b, on_b[1])
    finally:
        private.stop()


# Redis is a broker, not a log


async def test_redis_holds_settings_presence_and_counters_but_never_a_frame(
    pair: tuple[Instance, Instance], identity: str
) -> None:
    a, b = pair
    marker = uuid.uuid4().hex
    frames = [
        [2, f"{marker}-1", "BootNotification", {"chargePointModel": "M", "chargePointVendor": "V"}],
        [
            2,
            f"{marker}-2",
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"},
        ],
        [2, f"{marker}-3", "Authorize", {"idTag": marker[:20]}],
        [
            2,
            f"{marker}-4",
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": marker[:20],
                "meterStart": 0,
                "timestamp": "2025-01-01T00:00:00Z",
            },
        ],
        [
            2,
            f"{marker}-5",
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [
                    {"timestamp": "2025-01-01T00:01:00Z", "sampledValue": [{"value": "1234"}]}
                ],
            },
        ],
    ]
    rule = {"mode": "custom", "payload": {"idTagInfo": {"status": "Accepted"}}}
    async with api_client() as client:
        await client.put(b.api(identity, "/responses/Authorize"), json=rule)
        async with (
            page_on(b, identity) as page,
            websockets.connect(a.charger_url(identity), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
        ):
            for frame in frames:
                assert (await exchange(charger, frame))[0] == 3
            started = await exchange(charger, frames[3])
            stop = [
                2,
                f"{marker}-6",
                "StopTransaction",
                {
                    "transactionId": started[2]["transactionId"],
                    "meterStop": 1234,
                    "timestamp": "2025-01-01T00:02:00Z",
                },
            ]
            assert (await exchange(charger, stop))[0] == 3
            await page.wait_for(f"{marker}-6")
            await asyncio.sleep(1.5)  # the state snapshot is flushed to presence each second
            await wait_connected(client, b, identity)
            keys, values = keys_and_values(identity)
    counters = {generation_key(identity), transactions_key(identity)}
    assert keys <= {settings_key(identity), presence_key(identity), *counters}
    assert settings_key(identity) in keys
    assert presence_key(identity) in keys
    for key in counters:
        assert values[key].isdigit(), f"{key} holds {values[key]!r}, not a count"
    for key, value in values.items():
        if key.startswith("ocpplab:history:"):
            # A disconnected charger's last frames, by design (history_ttl): never kept
            # without an expiry.
            assert history_ttl_ms(key) > 0, f"{key} has no expiry"
            continue
        assert marker not in value.replace(marker[:20], ""), f"{key} holds a frame"
        assert '"StartTransaction"' not in value, f"{key} holds a frame"
        assert "[2," not in value.replace(" ", ""), f"{key} holds a frame"


def history_ttl_ms(key: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.pttl(key))
    finally:
        client.close()


def settings_ttl_ms(identity: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.pttl(settings_key(identity)))
    finally:
        client.close()


def keys_and_values(identity: str) -> tuple[set[str], dict[str, str]]:
    """The keys that name `identity`, and every string value in Redis (frames anywhere?)."""
    escaped = quote(identity, safe="")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = set(client.scan_iter(match=f"*{escaped}*", count=1000))
        values: dict[str, str] = {}
        for key in client.scan_iter(match="ocpplab:*", count=1000):
            if client.type(key) == "string":
                value = client.get(key)
                if value is not None:
                    values[key] = value
        return keys, values
    finally:
        client.close()


# Starting: workers and a wrong Redis URL


def test_workers_without_redis_refuse_to_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ocpplab", "--port", str(free_port()), "--workers", "2"],
        env=ocpplab_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "OCPPLAB_REDIS_URL" in result.stderr
    assert "worker" in result.stderr


def test_an_unreachable_redis_stops_the_app_with_a_clear_message() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocpplab",
            "--port",
            str(free_port()),
            "--redis-url",
            "redis://user:hunter2@127.0.0.1:1/0",
        ],
        env=ocpplab_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "Redis at redis://user:***@127.0.0.1:1/0 is unreachable" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


async def test_two_workers_with_redis_serve_as_one() -> None:
    require_redis()
    instance = start_instance("workers", "--workers", "2", "--redis-url", REDIS_URL)
    identity = f"CP-{uuid.uuid4().hex[:10]}"
    with running(instance):
        async with (
            api_client() as client,
            ocpp_charger(instance.charger_url(identity), identity, charger_class=LabCharger) as c,
        ):
            assert (await boot(c)).status == "Accepted"
            # Each request may land on either worker; each must reach the charger.
            for _ in range(6):
                async with httpx.AsyncClient(timeout=10) as fresh:
                    response = await fresh.post(
                        instance.api(identity, "/calls/GetConfiguration"), json={}
                    )
                assert response.status_code == 200, response.text
            assert (await client.get(instance.http + "/healthz")).status_code == 200
