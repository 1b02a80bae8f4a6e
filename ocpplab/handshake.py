"""uvicorn's websocket protocol, made tolerant of one handshake quirk real chargers have,
and telling the app about TLS.

Some chargers and simulators send `Sec-WebSocket-Protocol:` with an empty value
(QUIRKS.md). The websockets library refuses such a request with 400 before the app is
asked, so the charger could never connect. An empty header offers nothing, so it is
dropped before the handshake is checked; the gateway then treats the charger like one that
sent no header at all (accepted as OCPP 1.6, with a warning on its page).

uvicorn's websockets-sansio protocol does not provide the ASGI TLS extension; the gateway
needs it to tie a client certificate to the identity (security profile 3) and to show the
TLS version and cipher suite, so it is added to the scope before the app sees it.

uvicorn holds, per connection, the frame being read and the message waiting for the app:
up to twice `ws_max_size` each. A thousand chargers sending megabyte frames faster than
they are answered would make that gigabytes. `ReceiveBudget` bounds the bytes all
connections of the process hold that way: past it, connections stop being read (TCP pushes
back on the charger) until the others drain, except those that have sent only small
frames, which are read on as before.
"""

from __future__ import annotations

import ssl
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from ocpplab import tls

SUBPROTOCOL_HEADER = "Sec-WebSocket-Protocol"
EXTENSIONS_HEADER = "Sec-WebSocket-Extensions"
BUDGET_FRAMES = 64  # the budget, in largest frames (`ws_max_size`)
SMALL = 65_536  # a connection holding less than this is never paused by the budget


class ReceiveBudget:
    """Bytes held by every connection of this process between the socket and the app.

    Over the limit, every connection that has not shown it sends only small messages stops
    being read until half the limit is free again: its next read could be a whole large
    frame already waiting in the kernel. Connections that have sent only small frames (a
    charger's Heartbeats) are read on meanwhile.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # the most `used` has been
        self.connections: set[TolerantWebSocketProtocol] = set()
        self.paused: set[TolerantWebSocketProtocol] = set()

    def change(self, connection: TolerantWebSocketProtocol, delta: int) -> None:
        self.used += delta
        self.peak = max(self.peak, self.used)
        if delta > 0 and self.used > self.limit:
            for waiting in self.connections - self.paused:
                if not waiting.sends_small:
                    self.paused.add(waiting)
                    waiting.transport.pause_reading()
        elif delta < 0 and self.paused and self.used <= self.limit // 2:
            paused, self.paused = self.paused, set()
            for waiting in paused:
                if not waiting.read_paused and not waiting.transport.is_closing():
                    waiting.transport.resume_reading()


class TolerantWebSocketProtocol(WebSocketsSansIOProtocol):
    """websockets-sansio, minus the 400 for an empty Sec-WebSocket-Protocol header, plus
    the ASGI TLS extension and the process-wide `ReceiveBudget`."""

    # One budget per process, made by the first connection (it needs `ws_max_size`): it
    # bounds a process-wide resource, memory, as the event loop itself is one per process.
    budget: ReceiveBudget | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if TolerantWebSocketProtocol.budget is None:
            limit = BUDGET_FRAMES * (self.config.ws_max_size or 2**20)
            TolerantWebSocketProtocol.budget = ReceiveBudget(limit)
        self.held = 0  # bytes this connection holds for the app, as the budget counts them
        self.largest = -1  # the largest message it sent so far (-1: none yet)
        # Sizes of the messages waiting in the queue (a list: an empty deque is 600 bytes).
        self._queued: list[int] = []

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._budget.connections.add(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._account()

    def send_receive_event_to_app(self) -> None:
        size = sum(len(frame) for frame in self.frames)
        before = self.queue.qsize()
        super().send_receive_event_to_app()
        if self.queue.qsize() > before:
            self._queued.append(size)
            self.largest = max(self.largest, size)

    async def receive(self) -> Any:
        message = await super().receive()
        if message["type"] == "websocket.receive" and self._queued:
            del self._queued[0]
            self._account()
        if self in self._budget.paused and not self.read_paused:
            self.transport.pause_reading()  # uvicorn resumed it; the budget still says no
        return message

    def connection_lost(self, exc: Exception | None) -> None:
        self._queued.clear()
        self._budget.connections.discard(self)
        self._budget.paused.discard(self)
        self._budget.change(self, -self.held)
        self.held = 0
        super().connection_lost(exc)

    @property
    def sends_small(self) -> bool:
        """Whether every message so far was small, and nothing large is being read."""
        return 0 <= self.largest <= SMALL and self.held <= SMALL

    @property
    def _budget(self) -> ReceiveBudget:
        assert TolerantWebSocketProtocol.budget is not None
        return TolerantWebSocketProtocol.budget

    def _account(self) -> None:
        held = len(self.conn.reader.buffer) + sum(map(len, self.frames)) + sum(self._queued)
        delta, self.held = held - self.held, held
        if delta:
            self._budget.change(self, delta)

    def handle_connect(self, event: Request) -> None:
        offered = event.headers.get_all(SUBPROTOCOL_HEADER)
        if offered and not any(value.strip(" \t,") for value in offered):
            del event.headers[SUBPROTOCOL_HEADER]
        if event.path.startswith("/ocpp") and EXTENSIONS_HEADER in event.headers:
            # No compression for chargers: a deflated frame costs its sender a few bytes
            # and the server up to a megabyte of inflating (OCPP-J 1.6 asks for none).
            del event.headers[EXTENSIONS_HEADER]
        super().handle_connect(event)

    async def run_asgi(self) -> None:
        ssl_object = self.transport.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            extensions = self.scope.setdefault("extensions", {})
            if extensions is not None:
                # uvicorn types an extension's value loosely, as dict[object, object].
                extensions["tls"] = cast("dict[object, object]", tls.asgi_extension(ssl_object))
        await super().run_asgi()
