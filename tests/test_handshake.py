"""Handshake quirks that the websocket layer itself would refuse (QUIRKS.md)."""

from __future__ import annotations

import websockets

from tests.support import RunningServer, page_socket


async def test_an_empty_subprotocol_header_is_accepted_with_a_warning(
    server: RunningServer,
) -> None:
    async with page_socket(server, "CP-E") as page:
        async with websockets.connect(
            server.charger_url("CP-E"), additional_headers={"Sec-WebSocket-Protocol": ""}
        ) as connection:
            assert connection.subprotocol is None
            await connection.send('[2,"1","Heartbeat",{}]')
            answer = await connection.recv()
            assert str(answer).startswith('[3,"1",{"currentTime":')
        await page.wait_for("sent no Sec-WebSocket-Protocol header")
