"""uvicorn's websocket protocol, made tolerant of one handshake quirk real chargers have.

Some chargers and simulators send `Sec-WebSocket-Protocol:` with an empty value
(QUIRKS.md). The websockets library refuses such a request with 400 before the app is
asked, so the charger could never connect. An empty header offers nothing, so it is
dropped before the handshake is checked; the gateway then treats the charger like one that
sent no header at all (accepted as OCPP 1.6, with a warning on its page).
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

SUBPROTOCOL_HEADER = "Sec-WebSocket-Protocol"


class TolerantWebSocketProtocol(WebSocketsSansIOProtocol):
    """websockets-sansio, minus the 400 for an empty Sec-WebSocket-Protocol header."""

    def handle_connect(self, event: Request) -> None:
        offered = event.headers.get_all(SUBPROTOCOL_HEADER)
        if offered and not any(value.strip(" \t,") for value in offered):
            del event.headers[SUBPROTOCOL_HEADER]
        super().handle_connect(event)
