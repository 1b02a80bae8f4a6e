"""Handshake quirks that the websocket layer itself would refuse (QUIRKS.md)."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from ocpplab.server.handshake import Flag, Inbox
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


# The lighter queue and flag uvicorn's protocol gets per connection


async def test_the_inbox_hands_out_messages_in_order_and_wakes_its_reader() -> None:
    inbox = Inbox()
    inbox.put_nowait("first")
    reader = asyncio.create_task(inbox.get())
    assert await reader == "first"
    assert inbox.empty()

    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait("second")
    inbox.put_nowait("third")
    assert await waiting == "second"
    assert inbox.qsize() == 1
    assert await inbox.get() == "third"


async def test_a_cancelled_reader_loses_nothing() -> None:
    inbox = Inbox()
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    inbox.put_nowait("kept")
    assert await asyncio.wait_for(inbox.get(), 1) == "kept"


async def test_the_flag_blocks_writers_while_cleared() -> None:
    flag = Flag()
    flag.set()
    assert await flag.wait()
    flag.clear()
    writers = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(writer.done() for writer in writers)
    flag.set()
    assert await asyncio.gather(*writers) == [True, True, True]
    assert flag.is_set()


async def test_an_accepted_charger_keeps_no_handshake_headers(server: RunningServer) -> None:
    async with websockets.connect(
        server.charger_url("CP-light"), subprotocols=[websockets.Subprotocol("ocpp1.6")]
    ) as charger:
        await charger.send('[2,"1","Heartbeat",{}]')
        await asyncio.wait_for(charger.recv(), 5)
        session = server.app.state.services.gateway.sessions["CP-light"]
        protocol = session.websocket._send.__self__
        assert isinstance(protocol.queue, Inbox)
        assert protocol.request is None
        assert protocol.response is None
        assert session.websocket.scope["headers"] == []


async def test_a_refused_charger_is_answered_without_an_error_in_the_log(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            server.charger_url("x" * 49),
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        ):
            pass
    assert refused.value.response.status_code == 400
    await asyncio.sleep(0.1)
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert errors == []
