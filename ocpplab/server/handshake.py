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
"""

from __future__ import annotations

import ssl
from typing import cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from ocpplab.server import tls

SUBPROTOCOL_HEADER = "Sec-WebSocket-Protocol"
EXTENSIONS_HEADER = "Sec-WebSocket-Extensions"


class TolerantWebSocketProtocol(WebSocketsSansIOProtocol):
    """websockets-sansio, minus the 400 for an empty Sec-WebSocket-Protocol header and
    permessage-deflate for chargers, plus the ASGI TLS extension."""

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
