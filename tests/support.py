"""Real servers and real chargers for tests: uvicorn on an ephemeral port, websockets clients.

Nothing here is a stand-in: `serve` runs the real app under the real uvicorn with the options
the CLI uses; `ocpp_charger` is the `ocpp` package's own `ChargePoint` over a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
import websockets
from ocpp.v16 import ChargePoint

from ocpplab.app import create_app
from ocpplab.broker.base import Broker
from ocpplab.config import Settings
from ocpplab.core.dialect import Dialect
from ocpplab.dialects import DIALECTS
from ocpplab.tools.cli import uvicorn_options

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = "/usr/bin/chromium"
REDIS_URL = os.environ.get("OCPPLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def missing(what: str) -> None:
    """A missing service fails the run in CI and skips (saying what to install) elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not available here")


# Debian's Chromium as root, headless, with nothing that reaches for the network on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        missing(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return CHROMIUM


class Loopback:
    """The base URLs of a server on 127.0.0.1 that knows its `port`."""

    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@dataclasses.dataclass
class RunningServer(Loopback):
    app: Any
    server: uvicorn.Server
    port: int

    def charger_url(self, identity: str) -> str:
        return f"{self.ws}/ocpp/{identity}"


def _config(
    settings: Settings, broker: Broker | None, dialects: tuple[Dialect, ...] = DIALECTS
) -> tuple[Any, uvicorn.Config]:
    app = create_app(settings, broker=broker, dialects=dialects)
    options = uvicorn_options(settings)
    options.update(host="127.0.0.1", port=0, log_level="warning")
    return app, uvicorn.Config(app, **options)


def _port_of(server: uvicorn.Server) -> int:
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def serve(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    dialects: tuple[Dialect, ...] = DIALECTS,
) -> AsyncIterator[RunningServer]:
    """Run ocpplab under uvicorn in this event loop, on an ephemeral port."""
    app, config = _config(settings or Settings(), broker, dialects)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped during start-up")
        await asyncio.sleep(0.01)
    try:
        yield RunningServer(app, server, _port_of(server))
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.contextmanager
def serve_in_thread(settings: Settings | None = None) -> Iterator[RunningServer]:
    """Run ocpplab in its own thread and loop: for synchronous clients such as Playwright."""
    app, config = _config(settings or Settings(), None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("the server stopped during start-up")
        threading.Event().wait(0.01)
    try:
        yield RunningServer(app, server, _port_of(server))
    finally:
        server.should_exit = True
        thread.join(10)


class Charger(ChargePoint):  # type: ignore[misc]
    """The `ocpp` package's ChargePoint, acting as a charger in tests."""


@contextlib.asynccontextmanager
async def ocpp_charger(
    url: str, identity: str, *, charger_class: type[ChargePoint] = Charger, **kwargs: Any
) -> AsyncIterator[Any]:
    """Connect the `ocpp` package's ChargePoint (or a subclass) to `url` as `identity`."""
    async with websockets.connect(url, subprotocols=["ocpp1.6"], **kwargs) as connection:  # type: ignore[list-item]
        charger = charger_class(identity, connection, response_timeout=5)
        task = asyncio.create_task(charger.start())
        try:
            yield charger
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class PageClient:
    """A page's live socket: collects the HTML fragments the server pushes."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.received: list[str] = []

    async def wait_for(self, needle: str, timeout: float = 5.0) -> str:
        """The first fragment (received now or later) containing `needle`."""
        for fragment in self.received:
            if needle in fragment:
                return fragment
        async with asyncio.timeout(timeout):
            while True:
                fragment = await self.connection.recv()
                self.received.append(fragment)
                if needle in fragment:
                    return str(fragment)

    async def drain(self, seconds: float = 0.3) -> str:
        """Everything that arrives within `seconds`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    self.received.append(await self.connection.recv())
        return "".join(self.received)


@contextlib.asynccontextmanager
async def page_socket(server: RunningServer, identity: str) -> AsyncIterator[PageClient]:
    from urllib.parse import quote

    url = f"{server.ws}/chargers/{quote(identity, safe='')}/live"
    async with websockets.connect(url) as connection:
        client = PageClient(connection)
        await client.wait_for("Live updates: on")
        yield client


async def raw_charger(server: RunningServer, identity: str, **kwargs: Any) -> Any:
    """A bare websocket client speaking OCPP-J by hand (for malformed frames)."""
    kwargs.setdefault("subprotocols", ["ocpp1.6"])
    return await websockets.connect(server.charger_url(identity), **kwargs)


async def exchange(connection: Any, frame: Any, timeout: float = 5.0) -> Any:
    """Send a frame (a list, or literal text) and return the decoded answer."""
    await connection.send(frame if isinstance(frame, str) else json.dumps(frame))
    async with asyncio.timeout(timeout):
        return json.loads(await connection.recv())
