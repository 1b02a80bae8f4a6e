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


async def test_chargers_get_no_compression_but_pages_do(server: RunningServer) -> None:
    # A deflated frame costs its sender a few bytes and the server a megabyte to inflate.
    async with websockets.connect(
        server.charger_url("CP-Z"), subprotocols=["ocpp1.6"], compression="deflate"
    ) as charger:
        await charger.send('[2,"1","Heartbeat",{}]')
        assert str(await charger.recv()).startswith('[3,"1",')
        charger_extensions = charger.protocol.extensions
    async with websockets.connect(f"{server.ws}/chargers/CP-Z/live", compression="deflate") as page:
        page_extensions = page.protocol.extensions

    assert charger_extensions == []
    assert [extension.name for extension in page_extensions] == ["permessage-deflate"]
