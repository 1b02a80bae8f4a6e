"""One charger's websocket: the I/O around its sans-I/O `core.connection.Connection`.

The session feeds the connection what the socket and the broker bring, sends what it
returns, hands its events to the gateway's publisher and arms one timer at its next
deadline. What concerns the identity across instances is done here, through the broker:
the takeover numbers (so that of simultaneous connections exactly one stays), the fenced
presence record, the responder settings and the transaction counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from ocpplab.broker.base import Fence, Signal
from ocpplab.broker.keys import (
    commands_channel,
    events_channel,
    generation_key,
    presence_key,
    sequences_key,
    settings_key,
    transactions_key,
)
from ocpplab.core.connection import Connection, PendingCheck, frame_event
from ocpplab.core.errors import BrokerError
from ocpplab.core.frames import dumps_compact
from ocpplab.core.messages import (
    Disconnected,
    Event,
    NewSettings,
    ReplayEvent,
    Takeover,
    Watch,
    decode_command,
)
from ocpplab.core.replay import Item, shrunk
from ocpplab.core.responder import ResponderSettings
from ocpplab.logs import log_failure

if TYPE_CHECKING:
    from ocpplab.server.gateway import Gateway

logger = logging.getLogger("ocpplab.server.gateway")

PRESENCE_TTL = 90.0
CLOSE_REPLACED = "replaced by a new connection with the same identity"
# An identity's connection counter outlives its last connection by this long (each presence
# write renews it), so that a connection cut off from Redis meanwhile still finds it fenced.
GENERATION_TTL = 3600.0


class ChargerSession:
    """The I/O around one `Connection`: its socket, its timer, its broker writes.

    Everything a frame does is decided by the connection; this moves bytes between it and
    the socket, events to the gateway's publisher, and arms one timer at the connection's
    next deadline. What is about the identity across instances (takeover numbers, the
    presence record, the transaction counter) is done here, through the broker.
    """

    # Slots: thousands of idle sessions, each without an attribute dict.
    __slots__ = (
        "_closed",
        "_heard",
        "_positions_due",
        "_positions_writing",
        "_tasks",
        "_timer",
        "_timer_at",
        "closing",
        "connection",
        "gateway",
        "generation",
        "history",
        "identity",
        "replaced",
        "websocket",
    )

    def __init__(
        self, gateway: Gateway, websocket: WebSocket, identity: str, connection: Connection
    ) -> None:
        self.gateway = gateway
        self.websocket = websocket
        self.identity = identity
        self.connection = connection
        self.replaced = False
        self.generation: int | None = None  # this connection's number; see _take_over
        self._heard = 0  # the highest number another connection of the identity announced
        self._tasks: set[asyncio.Task[Any]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.closing: tuple[int, str] | None = None  # why this side closes, when it does
        self._closed = False
        self._positions_due: dict[str, int] | None = None  # sequence positions to store
        self._positions_writing = False
        self.history: ReplayEvent | None = None  # what pages get once it ended (Histories)

    @property
    def id(self) -> str:
        return self.connection.session

    @property
    def connected_since(self) -> str:
        return self.connection.connected.at

    @property
    def subprotocol(self) -> str | None:
        return self.connection.connected.subprotocol

    @property
    def watched_until(self) -> float:
        return self.connection.watched_until

    @watched_until.setter
    def watched_until(self, value: float) -> None:
        self.connection.watched_until = value

    # Life cycle

    async def run(self) -> None:
        """Serve the connection until the charger goes: then say how it ended."""
        broker, identity = self.gateway.broker, self.identity
        connection = self.connection
        connection.responder = await self._load_responder_settings()
        connection.transaction_id = await self._load_transaction_id()
        connection.positions = await self._load_sequence_positions()
        async with broker.subscribe(commands_channel(identity), self._on_command):
            await self._take_over()
            self._after_input()
            await self._write_presence(connection.presence())
            code, reason = 1006, ""
            try:
                receive = self.websocket._receive  # see _send_asgi
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        code = int(message.get("code", 1006))
                        reason = str(message.get("reason") or "")
                        break
                    text = message.get("text")
                    data = message.get("bytes") or b"" if text is None else None
                    # Drop the frame before waiting for the next: an idle charger must not
                    # keep its last megabyte alive for as long as it stays quiet.
                    del message
                    if text is not None:
                        pending = connection.receive_text(text)
                    else:
                        pending = connection.receive_bytes(data or b"")
                    del text, data
                    if pending is not None:
                        await self._check(pending)
                        del pending
                    await self._send_all(connection.data_to_send())
                    self._after_input()
            finally:
                await self._finish(code, reason)

    async def _check(self, pending: PendingCheck) -> None:
        """A large payload, checked off the event loop; the next frame waits for it."""
        try:
            violations = await self.gateway.checks.run(pending.check)
        except asyncio.CancelledError:
            self.connection.finish_check(pending, None, "not checked: the connection closed first")
            raise
        self.connection.finish_check(pending, violations)

    async def _finish(self, code: int, reason: str) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks or ()):
            task.cancel()
        connection = self.connection
        if self.closing is not None:
            code, reason = self.closing
        if self.replaced:
            reason = CLOSE_REPLACED
        gateway = self.gateway
        # The replay goes with the connection: what it holds now is the history's beginning
        # (of a replaced connection none: the newer one's replay is what pages get).
        keeping = gateway.histories.on and not self.replaced
        kept = list(connection.replay.items) if keeping else None
        connection.connection_lost(code, reason)
        events = connection.events_to_publish()
        self._publish(events)
        history = self._keep_history(kept, events) if kept is not None else None
        if connection.recording:
            self.gateway.recorder.append(self.identity, connection.recorded_lines())
        if gateway.sessions.get(self.identity) is self:
            del gateway.sessions[self.identity]
            gateway.roster.changed()
            if not self.replaced:  # else the new connection, maybe on another host, owns it
                if history is not None:
                    await gateway.histories.keep(self.identity, *history, self._fence())
                await self._broker_call(
                    gateway.broker.delete_fenced(presence_key(self.identity), self._fence())
                )

    def _keep_history(self, kept: list[Item], last: list[Event]) -> tuple[str, Disconnected] | None:
        """The connection's replay as it ended (the events of its close too), for pages
        opened later: its JSON and its close; also kept here for pages that ask while this
        session winds down (`_on_command`)."""
        connection, session = self.connection, self.connection.session
        closing = [event for event in last if event.replayed or isinstance(event, Disconnected)]
        closed = next((event for event in closing if isinstance(event, Disconnected)), None)
        if closed is None:
            return None
        item_bytes = connection.replay.item_bytes
        replay = ReplayEvent(
            page="",
            session=session,
            at=closed.at,
            connected=connection.connected,
            state=connection.state.to_json(),
            events=[
                item if isinstance(item, Event) else frame_event(item, session) for item in kept
            ]
            + [shrunk(event, item_bytes)[0] for event in closing],
        )
        bounded = self.gateway.histories.bounded(replay)
        if bounded is None:
            return None
        self.history, text = bounded
        return text, closed

    async def close(self, code: int, reason: str) -> None:
        self.closing = self.closing or (code, reason)
        if not self._closed:
            with contextlib.suppress(Exception):
                await self.websocket.close(code, reason)

    # Moving what the connection decided

    def _after_input(self) -> None:
        """Carry out what the connection asks for after an input, and arm its timer."""
        connection = self.connection
        events = connection.events_to_publish()
        if events:
            self._publish(events)
        used = connection.transactions_to_count()
        for number in used:
            self.gateway.count_transaction(self, number)
        positions = connection.sequences_to_save()
        if positions is not None:
            self._save_sequence_positions(positions)
        record = connection.take_presence()
        if record is not None:
            self._spawn(self._write_presence(record))
        if connection.recording:
            self.gateway.recorder.append(self.identity, connection.recorded_lines())
        if connection.close_requested is not None and self.closing is None:
            self._spawn(self.close(*connection.close_requested))
        if self._closed:
            return
        deadline = connection.next_deadline()
        if deadline is None or deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self.gateway.clock.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if self._closed:
            return
        self.connection.handle_timeouts()
        self._send_soon()
        self._after_input()

    def _publish(self, events: list[Event]) -> None:
        channel = events_channel(self.identity)
        for event in events:
            self.gateway.publish_soon(channel, event.encode())

    def _send_soon(self) -> None:
        texts = self.connection.data_to_send()
        if texts:
            self._spawn(self._send_all(texts))

    async def _send_all(self, texts: list[str]) -> None:
        send = self._send_asgi
        for text in texts:
            try:
                await send({"type": "websocket.send", "text": text})
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.connection.send_failed()
                self._after_input()
                return

    @property
    def _send_asgi(self) -> Any:
        """The ASGI `send` callable under Starlette's WebSocket.

        Frames go to and come from the ASGI callables directly: Starlette's wrapper only
        checks the message types this session always gets right, and its dict churn per
        message was a measurable share of the server's time under load.
        """
        return self.websocket._send

    # Commands from pages, forms and the API (through the broker)

    def _on_command(self, item: str | Signal) -> None:
        if isinstance(item, Signal):
            if item is Signal.RESUMED:
                self._spawn(self._reload_responder_settings())
                self._spawn(self._reassert())
            return
        try:
            command = decode_command(item)
            if isinstance(command, Takeover):
                self._heard_of(command)
            elif isinstance(command, Watch) and self._closed:
                if command.page and self.history is not None:
                    self._publish([dataclasses.replace(self.history, page=command.page)])
            elif command is not None and not self._closed:
                self.connection.receive_command(command)
                self._send_soon()
                self._after_input()
        except Exception:
            log_failure(logger, "a command for a charger could not be carried out")

    def _heard_of(self, takeover: Takeover) -> None:
        if takeover.session != self.id:
            self._heard = max(self._heard, takeover.generation)
            if self.generation is not None and takeover.generation > self.generation:
                self._replace()

    # Presence and takeover

    def presence(self) -> dict[str, Any]:
        return self._presence_record(self.connection.presence())

    def _presence_record(self, record: dict[str, Any]) -> dict[str, Any]:
        record["identity"] = self.identity
        record["generation"] = self.generation
        record["instance"] = self.gateway.roster.instance
        return record

    async def _write_presence(self, record: dict[str, Any]) -> None:
        """Write the presence record, fenced: once replaced, this connection writes nothing."""
        if self.replaced or self.gateway.sessions.get(self.identity) is not self:
            return
        written = await self._broker_call(
            self.gateway.broker.set_fenced(
                presence_key(self.identity),
                dumps_compact(self._presence_record(record)),
                PRESENCE_TTL,
                self._fence(),
            )
        )
        if written is False and self.generation:
            # A newer connection took a number, and its takeover was missed (an outage).
            self._replace()

    def _fence(self) -> Fence:
        return Fence(generation_key(self.identity), self.generation or 0, GENERATION_TTL)

    async def _take_over(self) -> None:
        """Become the identity's newest connection: of simultaneous ones, exactly one stays.

        The command channel is subscribed (and confirmed) before this connection takes its
        number from the identity's counter, and the number is announced after that. So
        every older connection, on whichever instance, was subscribed before this
        announcement and hears it; and each closes only for a number higher than its own,
        so an older connection's announcement, however late it arrives, closes nobody
        newer. Numbers heard before this one's own was known wait in `_heard`. Number 0
        means none could be taken (no broker): then only this instance's older connection
        is replaced, and a number is taken once the broker is back (`_reassert`).
        """
        gateway, identity = self.gateway, self.identity
        try:
            self.generation = await gateway.broker.incr(generation_key(identity), GENERATION_TTL)
        except BrokerError as exc:
            self.connection.notice(f"broker unavailable: {exc}")
            self.generation = 0
        if self._heard > self.generation:
            self._replace()
            return
        held = gateway.sessions.get(identity)
        if held is not None and held is not self:
            if self.generation and (held.generation or 0) > self.generation:
                self._replace()  # its announcement is on the way
                return
            held._replace()
        gateway.sessions[identity] = self
        await gateway.roster.joined()
        if self.generation:
            announcement = Takeover(session=self.id, generation=self.generation)
            await self._broker_call(
                gateway.broker.publish(commands_channel(identity), announcement.encode())
            )

    def _replace(self) -> None:
        """A newer connection of this identity exists: close, saying so."""
        if not self.replaced:
            self.replaced = True
            self._spawn(self.close(1000, CLOSE_REPLACED))

    async def _reassert(self) -> None:
        """After a broker outage: take a number if none could be taken; restore presence.

        A Redis restarted without persistence has lost the counter and the presence
        record; the fenced write puts both back.
        """
        if self.replaced or self._closed:
            return
        if self.generation == 0:
            await self._take_over()
        await self._write_presence(self.connection.presence())

    async def _load_responder_settings(self) -> ResponderSettings:
        try:
            text = await asyncio.wait_for(
                self.gateway.broker.get(settings_key(self.identity)), timeout=2.0
            )
        except (BrokerError, TimeoutError):
            self.connection.notice(
                "responder settings could not be read from the broker; using defaults"
            )
            return ResponderSettings()
        try:
            return ResponderSettings.from_json(json.loads(text)) if text else ResponderSettings()
        except Exception:
            self.connection.notice("stored responder settings were unreadable; using defaults")
            return ResponderSettings()

    async def _reload_responder_settings(self) -> None:
        """After a broker outage: another host may have saved settings we did not hear of.

        A missing key (a Redis restarted without persistence) keeps the cached settings.
        """
        try:
            text = await self.gateway.broker.get(settings_key(self.identity))
            if text:
                # As a command: an action whose rule changed starts its sequence over.
                self.connection.receive_command(NewSettings(settings=json.loads(text)))
        except Exception:
            logger.warning("responder settings could not be reloaded after a broker outage")

    async def _load_transaction_id(self) -> int:
        """The identity's next transaction id: one past the last one handed out anywhere.

        Ids this instance handed out whose count has not reached the broker yet (a
        charger reconnecting within milliseconds of its answer) count too.
        """
        highest = self.gateway.transactions_unwritten.get(self.identity, (0, 0))[0]
        try:
            text = await asyncio.wait_for(
                self.gateway.broker.get(transactions_key(self.identity)), timeout=2.0
            )
            return max(highest, int(text or 0)) + 1
        except (BrokerError, TimeoutError, ValueError):
            self.connection.notice("the transaction counter could not be read from the broker")
            return highest + 1

    async def _load_sequence_positions(self) -> dict[str, int] | None:
        """Where the identity's answer sequences are, wherever it was connected before."""
        try:
            text = await asyncio.wait_for(
                self.gateway.broker.get(sequences_key(self.identity)), timeout=2.0
            )
            stored = json.loads(text) if text else {}
        except (BrokerError, TimeoutError, ValueError):
            self.connection.notice("answer sequence positions could not be read; they start over")
            return None
        if not isinstance(stored, dict):
            return None
        return {
            action: position
            for action, position in stored.items()
            if isinstance(position, int) and not isinstance(position, bool) and position > 0
        } or None

    def _save_sequence_positions(self, positions: dict[str, int]) -> None:
        """Store the positions without making the answer wait; one write at a time (so they
        land in order), the newest positions in each, and done even if the session ends."""
        self._positions_due = positions
        if not self._positions_writing:
            self._positions_writing = True
            self.gateway.write_soon(self._write_sequence_positions())

    async def _write_sequence_positions(self) -> None:
        broker, key = self.gateway.broker, sequences_key(self.identity)
        try:
            while (positions := self._positions_due) is not None:
                self._positions_due = None
                if positions:
                    await broker.set(
                        key, dumps_compact(positions), self.gateway.settings.settings_ttl
                    )
                else:
                    await broker.delete(key)  # every sequence at its start
        except BrokerError as exc:
            self.connection.notice(f"answer sequence positions not stored: {exc}")
            if not self._closed:
                self._after_input()
        finally:
            self._positions_writing = False

    # Small helpers

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        if self._tasks is None:
            self._tasks = set()
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _broker_call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except BrokerError as exc:
            self.connection.notice(f"broker unavailable: {exc}")
            self._after_input()
            return None
