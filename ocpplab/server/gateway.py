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
import dataclasses
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket

from ocpplab.broker.base import Broker, Fence
from ocpplab.broker.keys import disconnect_key, history_key, refused_key, transactions_key
from ocpplab.config import Settings
from ocpplab.core.clock import Clock
from ocpplab.core.connection import Connection, Limits
from ocpplab.core.dialect import Dialect, choose
from ocpplab.core.errors import BrokerError
from ocpplab.core.frames import dumps_compact
from ocpplab.core.identity import identity_problem
from ocpplab.core.messages import Connected, Disconnected, ReplayEvent
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
# A history is one connection's replay, whose frames JSON writes with their quotes escaped
# (some twice their length), and besides it the connection, its last state and its close.
HISTORY_EXTRA_BYTES = 65_536
HISTORY_OVERHEAD = 200  # what one history costs the broker besides its text


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
        self.histories = Histories(settings, broker)
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
        if await self._refused(identity):
            await refuse(
                websocket,
                503,
                "this charger is kept offline for a while on purpose (a check cuts it off); "
                "try again in a few seconds",
                {"Retry-After": "5"},
            )
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

    async def _refused(self, identity: str) -> bool:
        """Whether a check keeps the identity offline (`CentralSystem.cut`); never while
        the broker is unreachable: chargers are answered through an outage."""
        try:
            return bool(await self.broker.get(refused_key(identity)))
        except BrokerError:
            return False

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


class Histories:
    """What each identity's last connection showed, kept for pages opened after it ended.

    When a connection ends, its replay (what a page opened at that moment would have got,
    the close included) goes to the broker under `history_key` for `history_ttl` seconds
    (0: never), and the close alone under `disconnect_key`, for status lines. Memory only:
    the memory broker's dict, or Redis keys with an expiry; never a log line.

    Bounded in bytes: one history is at most `max_bytes` characters (its oldest events give
    way), and the histories this process wrote that have not expired hold at most
    `replay_total_bytes` together (the oldest are deleted first). With Redis each process
    bounds what it wrote: one that evicts a history another process rewrote since deletes
    that one, a little early.
    """

    def __init__(self, settings: Settings, broker: Broker) -> None:
        self.ttl = settings.history_ttl
        self.max_bytes = 2 * settings.replay_bytes + HISTORY_EXTRA_BYTES
        self.total_bytes = settings.replay_total_bytes
        self.used = 0
        self._broker = broker
        # identity -> (characters written, monotonic expiry), oldest first; as every
        # history has the same TTL, also the order in which they expire
        self._written: dict[str, tuple[int, float]] = {}

    @property
    def on(self) -> bool:
        return self.ttl > 0 and self.total_bytes > 0

    def bounded(self, replay: ReplayEvent) -> tuple[ReplayEvent, str] | None:
        """`replay` and its JSON within `max_bytes`, without its oldest events if need be;
        None when even its connection and state alone are larger."""
        text = replay.encode()
        if len(text) <= self.max_bytes:
            return replay, text
        events = replay.events
        room = self.max_bytes - len(dataclasses.replace(replay, events=[]).encode())
        if room < 0:
            return None
        first = len(events)
        while first > 0:
            size = len(events[first - 1].encode()) + 1  # and its comma
            if size > room:
                break
            room -= size
            first -= 1
        kept = dataclasses.replace(replay, events=events[first:])
        text = kept.encode()
        return (kept, text) if len(text) <= self.max_bytes else None

    async def keep(self, identity: str, text: str, closed: Disconnected, fence: Fence) -> None:
        """Store `text` (see `bounded`) as the identity's history, fenced: a connection that
        a newer one replaced meanwhile, on any instance, leaves the newer one's alone."""
        if not self.on:
            return
        close = dumps_compact(
            {
                "session": closed.session,
                "at": closed.at,
                "code": closed.code,
                "reason": closed.reason,
            }
        )
        size = len(text) + len(close) + HISTORY_OVERHEAD
        try:
            for gone in self._make_room(identity, size):
                await self._broker.delete(history_key(gone))
                await self._broker.delete(disconnect_key(gone))
            if size > self.total_bytes:
                return
            self._written[identity] = (size, time.monotonic() + self.ttl)
            self.used += size
            if await self._broker.set_fenced(history_key(identity), text, self.ttl, fence):
                await self._broker.set_fenced(disconnect_key(identity), close, self.ttl, fence)
            else:
                self._forget(identity)
        except BrokerError:
            pass  # a page opened later shows less; the charger is gone already

    def _make_room(self, identity: str, size: int) -> list[str]:
        """Forget the identity's previous history and the expired ones; the identities
        whose histories must be deleted for `size` more characters to fit."""
        self._forget(identity)
        now = time.monotonic()
        evicted = []
        while self._written:
            oldest, (_, expires) = next(iter(self._written.items()))
            if expires > now and self.used + size <= self.total_bytes:
                break
            self._forget(oldest)
            if expires > now:
                evicted.append(oldest)
        return evicted

    def _forget(self, identity: str) -> None:
        written = self._written.pop(identity, None)
        if written is not None:
            self.used -= written[0]


async def refuse(
    websocket: WebSocket, status: int, reason: str, headers: dict[str, str] | None = None
) -> None:
    """Refuse a websocket before the upgrade, with an HTTP error that says why."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = PlainTextResponse(reason + "\n", status_code=status, headers=headers)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(1008, reason[:120])
