"""The gateway: holds charger websockets and answers them, page or no page.

A thin I/O loop around the sans-I/O `core.connection.Connection`, which decides what every
frame, command and deadline does. Each socket is a `ChargerSession`: it feeds the
connection, sends what it returns, publishes its events through one gateway-wide publisher
task and arms one timer at its next deadline, so an idle charger costs no task of its own
besides the one the server gives its socket. Commands (operations, raw frames, answers,
settings, takeovers) arrive through a callback subscription; answering never waits on the
broker, because the responder settings are cached in the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket

from ocpplab.broker.base import Broker
from ocpplab.broker.keys import (
    transactions_key,
)
from ocpplab.config import Settings
from ocpplab.core.clock import Clock
from ocpplab.core.connection import Connection, Limits
from ocpplab.core.dialect import Dialect, choose
from ocpplab.core.errors import BrokerError
from ocpplab.core.identity import identity_problem
from ocpplab.core.messages import Connected
from ocpplab.core.replay import ReplayBudget
from ocpplab.core.responder import format_time
from ocpplab.logs import log_failure
from ocpplab.server import tls
from ocpplab.server.checking import CheckRunner
from ocpplab.server.credentials import ChargerCredentials
from ocpplab.server.handshake import forget_handshake
from ocpplab.server.recorder import Recorder
from ocpplab.server.roster import Roster
from ocpplab.server.session import ChargerSession

logger = logging.getLogger("ocpplab.server.gateway")

PUBLISH_QUEUE_SIZE = 50_000
PUBLISH_BATCH = 500
PUBLISH_QUEUE_BYTES = 64 * 2**20


class Gateway:
    """This process's charger connections, and the one task that publishes their events."""

    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        clock: Clock,
        dialects: tuple[Dialect, ...],
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.clock = clock
        self.dialects = dialects  # in order of preference; the first when none is offered
        self.limits = Limits(
            call_timeout=settings.call_timeout,
            manual_timeout=settings.manual_timeout,
            rate_limit=settings.rate_limit,
            flood_disconnect=settings.flood_disconnect,
            replay_size=settings.replay_size,
            replay_bytes=settings.replay_bytes,
        )
        self.checks = CheckRunner()
        self.recorder = Recorder(
            settings, broker, clock
        )  # large payloads, checked on one thread of its own
        self.sessions: dict[str, ChargerSession] = {}
        self.roster = Roster(broker, self.sessions)
        self._writes: set[asyncio.Task[Any]] = set()
        # identity -> (highest transaction id handed out, its writes to the broker pending)
        self.transactions_unwritten: dict[str, tuple[int, int]] = {}
        self.replay_budget = ReplayBudget(settings.replay_total_bytes)
        self.connections = 0  # charger websockets being served, handshakes included
        self.credentials = ChargerCredentials.from_settings(settings)
        self._outbound: asyncio.Queue[tuple[str, str]] = asyncio.Queue(PUBLISH_QUEUE_SIZE)
        self._outbound_bytes = 0
        self._publisher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._publisher = asyncio.create_task(self._publish_forever(), name="ocpplab-publisher")

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            await session.close(1001, "the central system is shutting down")
        await self.roster.close()
        await self.recorder.close()
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher

    def publish_soon(self, channel: str, text: str) -> None:
        """Queue an event for the broker; never waits, so a charger is never slowed.

        Bounded in count and in bytes: a broker slower than the chargers loses events (the
        pages are told by their subscription), never memory.
        """
        if self._outbound_bytes + len(text) > PUBLISH_QUEUE_BYTES:
            logger.warning("event queue full: an event for a charger's pages was dropped")
            return
        try:
            self._outbound.put_nowait((channel, text))
        except asyncio.QueueFull:
            logger.warning("event queue full: an event for a charger's pages was dropped")
            return
        self._outbound_bytes += len(text)

    async def _publish_forever(self) -> None:
        # Whatever queued up meanwhile goes out as one batch (one Redis round trip).
        while True:
            batch = [await self._outbound.get()]
            while len(batch) < PUBLISH_BATCH and not self._outbound.empty():
                batch.append(self._outbound.get_nowait())
            self._outbound_bytes -= sum(len(text) for _, text in batch)
            try:
                await self.broker.publish_many(batch)
            except BrokerError:
                pass  # the broker reports the outage to pages itself; answering goes on
            except Exception:
                log_failure(logger, "publishing events failed")

    def write_soon(self, write: Coroutine[Any, Any, None]) -> None:
        """Run a broker write that must not be cancelled when its session ends first."""
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def serve(self, websocket: WebSocket) -> None:
        """The charger endpoint, `WS /ocpp/{identity}`, within `max_chargers` connections.

        A charger whose identity is connected already may still come in over the limit: it
        is most likely the same charger reconnecting, and it replaces its old connection.
        (One coroutine from here to the read loop, not a chain of them: each frame of the
        chain would stay alive, on every idle charger, for as long as it is connected.)
        """
        limit = self.settings.max_chargers
        if self.connections >= limit and websocket.path_params.get("identity") not in self.sessions:
            await refuse(
                websocket,
                503,
                f"this central system holds {limit} charger connections, the most it allows "
                "(OCPPLAB_MAX_CHARGERS); try again later",
            )
            return
        self.connections += 1
        try:
            session = await self._accept(websocket)
            if session is not None:
                await session.run()
        finally:
            self.connections -= 1

    async def _accept(self, websocket: WebSocket) -> ChargerSession | None:
        """Check the identity, credentials and subprotocol; accept, or refuse saying why."""
        identity = websocket.path_params.get("identity", "")
        problem = identity_problem(identity, self.settings.max_identity_length)
        if problem:
            await refuse(websocket, 400, problem)
            return None
        refusal = await self.credentials.check(websocket.scope, identity)
        if refusal is not None:
            await refuse(websocket, refusal.status, refusal.reason, refusal.headers)
            return None
        offered = [item.strip() for item in websocket.scope.get("subprotocols", [])]
        warnings: list[str] = []
        dialect = choose(self.dialects, offered)
        subprotocol = dialect.subprotocol if dialect is not None else None
        if dialect is None:
            dialect = self.dialects[0]
            ours = " or ".join(item.subprotocol for item in self.dialects)
            if not [item for item in offered if item]:
                warnings.append(
                    f"the charger sent no Sec-WebSocket-Protocol header; treated as {dialect.name}"
                )
            else:
                warnings.append(
                    f"the charger offered {', '.join(map(repr, offered))} but not {ours}; "
                    f"treated as {dialect.name}"
                )
            if self.settings.require_subprotocol:
                await refuse(
                    websocket, 400, f"this central system speaks only {ours}; " + warnings[0]
                )
                return None
        recording = await self.recorder.is_on(identity)
        headers = (
            [
                [name.decode("latin-1"), value.decode("latin-1")]
                for name, value in websocket.scope["headers"]
            ]
            if recording
            else None
        )
        await websocket.accept(subprotocol=subprotocol)
        forget_handshake(websocket)
        remote = websocket.client
        connected = Connected(
            session=uuid.uuid4().hex,
            at=format_time(self.clock.now()),
            remote=f"{remote.host}:{remote.port}" if remote else "unknown",
            subprotocol=subprotocol,
            dialect=dialect.name,
            warnings=warnings,
            tls=tls.summary((websocket.scope.get("extensions") or {}).get("tls")),
        )
        connection = Connection(
            dialect=dialect,
            clock=self.clock,
            limits=self.limits,
            connected=connected,
            replay_budget=self.replay_budget,
        )
        if recording:
            connection.start_recording(headers)
        return ChargerSession(self, websocket, identity, connection)

    def count_transaction(self, session: ChargerSession, used: int) -> None:
        """Tell the broker a transaction id went out, without making the answer wait.

        The broker's counter is what the identity's next connection starts from, on any
        instance; its answer also brings the connection up to date when another connection
        of the identity handed out ids meanwhile.
        """
        identity = session.identity
        highest, pending = self.transactions_unwritten.get(identity, (0, 0))
        self.transactions_unwritten[identity] = (max(highest, used), pending + 1)
        self.write_soon(self._count_transaction(session, used))

    async def _count_transaction(self, session: ChargerSession, used: int) -> None:
        identity = session.identity
        try:
            counted = await self.broker.incr(transactions_key(identity), self.settings.settings_ttl)
            session.connection.transaction_counted(used, counted)
        except BrokerError:
            pass  # the next connection may repeat an id; answering goes on
        finally:
            highest, pending = self.transactions_unwritten.pop(identity, (0, 1))
            if pending > 1:
                self.transactions_unwritten[identity] = (highest, pending - 1)

    async def not_upgraded(self, request: Request) -> Response:
        """`GET /ocpp/{identity}` without a websocket upgrade: say what is missing.

        A proxy that strips hop-by-hop headers turns a charger's handshake into a plain
        GET (QUIRKS.md); so does a person opening the charger URL in a browser.
        """
        identity = request.path_params.get("identity", "")
        problem = identity_problem(identity, self.settings.max_identity_length)
        if problem:
            return PlainTextResponse(problem + "\n", status_code=400)
        return PlainTextResponse(
            "this is the OCPP-J endpoint for chargers and needs a websocket upgrade, but the "
            "request had no 'Upgrade: websocket' and 'Connection: Upgrade' headers; a proxy "
            "in front must forward both\n",
            status_code=426,
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )


async def refuse(
    websocket: WebSocket, status: int, reason: str, headers: dict[str, str] | None = None
) -> None:
    """Refuse a websocket before the upgrade, with an HTTP error that says why."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = PlainTextResponse(reason + "\n", status_code=status, headers=headers)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(1008, reason[:120])
