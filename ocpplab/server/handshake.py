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

And it is lighter: a server holds thousands of idle chargers, and uvicorn gives each one an
`asyncio.Queue` (four deques of 760 bytes each, one in its `Event`) and an `asyncio.Event`
(another), and keeps the handshake's request and response with their headers for as long
as the connection lasts. `Inbox` and `Flag` do the same work with a list and a future, and
`forget_handshake` lets go of what the open connection no longer needs: some 8 KiB per
charger of the 24 KiB one may cost (README, "Limits").
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, cast

from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from ocpplab.server import tls

SUBPROTOCOL_HEADER = "Sec-WebSocket-Protocol"
EXTENSIONS_HEADER = "Sec-WebSocket-Extensions"


class Inbox:
    """What uvicorn's protocol needs of its `asyncio.Queue` of ASGI messages, in a list.

    One reader (the app's `receive`), any number of `put_nowait` calls, never full.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Flag:
    """What uvicorn's protocol needs of its `asyncio.Event` for "the socket is writable"."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        while not self._set:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter
        return True


class TolerantWebSocketProtocol(WebSocketsSansIOProtocol):
    """websockets-sansio, minus the 400 for an empty Sec-WebSocket-Protocol header and
    permessage-deflate for chargers, plus the ASGI TLS extension; lighter per connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = cast("asyncio.Queue[Any]", Inbox())
        writable = Flag()
        writable.set()
        self.writable = cast("asyncio.Event", writable)

    def forget_handshake(self) -> None:
        """The handshake is over: its request and response are not needed any more."""
        if self.handshake_complete:
            # The request object itself stays alive in websockets' parser (the generator
            # that read it is suspended in a frame that still names it): only its headers
            # can be let go.
            for message in (self.request, self.response):
                if message is not None:
                    message.headers.clear()
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

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

    async def send(self, message: Any) -> None:
        await super().send(message)
        if (
            message.get("type") == "websocket.http.response.body"
            and not message.get("more_body", False)
            and self.close_sent
        ):
            # A refusal (an HTTP answer instead of the upgrade) is complete: uvicorn would
            # log "ASGI callable returned without completing handshake" for every one.
            self.handshake_complete = True


def forget_handshake(websocket: WebSocket) -> None:
    """Let go of an accepted charger websocket's handshake: uvicorn's request and response,
    and the scope's headers (read by then: credentials, subprotocols, TLS)."""
    protocol = getattr(websocket._send, "__self__", None)
    if isinstance(protocol, TolerantWebSocketProtocol):
        protocol.forget_handshake()
    headers = websocket.scope.get("headers")
    if isinstance(headers, list):
        headers.clear()
