"""The fast paths (orjson, isoformat times, lazy replay, debounced presence) change no result."""

from __future__ import annotations

import asyncio
import datetime
import json
import math
from typing import Any

import pytest

from ocpplab.broker.keys import presence_key
from ocpplab.broker.memory import MemoryBroker
from ocpplab.config import Settings
from ocpplab.core.frames import Call, InvalidFrame, dumps_compact, encodable, parse
from ocpplab.core.responder import format_time
from tests.page_support import exact_frames, expand, wait_line
from tests.support import exchange, page_socket, raw_charger, serve

STDLIB = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "payload",
    [
        '{"x":NaN}',
        '{"x":123456789012345678901234567890}',
        '{"x":"\\ud800"}',
        '{"x":1E400}',
        '{"x":"é ✓","y":[1.5,-0.0,1e-7]}',
    ],
)
def test_parse_reads_every_payload_as_the_json_module_does(payload: str) -> None:
    frame = parse(f'[2,"id-1","DataTransfer",{payload}]')
    assert isinstance(frame, Call)
    expected = json.loads(payload)
    if isinstance(expected["x"], float) and math.isnan(expected["x"]):
        assert math.isnan(frame.payload["x"])
    else:
        assert frame.payload == expected


def test_invalid_json_is_explained_in_the_json_module_s_words() -> None:
    frame = parse('[2,"id-1","Heartbeat",{]')
    assert isinstance(frame, InvalidFrame)
    with pytest.raises(json.JSONDecodeError) as raised:
        json.loads('[2,"id-1","Heartbeat",{]')
    assert frame.reason == f"not JSON: {raised.value}"


@pytest.mark.parametrize(
    "value",
    [
        {"currentTime": "2026-01-01T00:00:00.000Z", "note": "é ✓ \u2028"},
        {1: "non-string key"},
        {"x": "\ud800"},
        {"x": 2**70},
        {"x": math.nan},
        {"x": -math.inf, "y": None},
        [3, "id", {"nested": [True, None, 1.25]}],
    ],
)
def test_compact_json_is_the_json_module_s_text(value: Any) -> None:
    # Lone surrogates excepted: they are written escaped, the same JSON value, sendable.
    assert dumps_compact(value) == encodable(STDLIB.encode(value))


OFFSET = datetime.timezone(datetime.timedelta(hours=2))
# UTC, but not the `datetime.UTC` object that format_time's shortcut recognises.
OTHER_UTC = datetime.timezone(datetime.timedelta(0), "Z")


@pytest.mark.parametrize(
    ("moment", "written"),
    [
        (datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, datetime.UTC), "2026-01-02T03:04:05.678Z"),
        (datetime.datetime(2026, 1, 2, 3, 4, 5, 0, datetime.UTC), "2026-01-02T03:04:05.000Z"),
        (
            datetime.datetime(2026, 12, 31, 23, 59, 59, 999999, datetime.UTC),
            "2026-12-31T23:59:59.999Z",
        ),
        (datetime.datetime(2027, 1, 1, 1, 30, 0, 1000, OFFSET), "2026-12-31T23:30:00.001Z"),
        (datetime.datetime(2026, 6, 1, 12, 0, 0, 5000, OTHER_UTC), "2026-06-01T12:00:00.005Z"),
    ],
)
def test_format_time_writes_what_the_slow_way_would(
    moment: datetime.datetime, written: str
) -> None:
    # The fast path: isoformat (C code) instead of strftime, and no conversion for a time
    # already in datetime.UTC. Milliseconds are always written and truncated, never rounded
    # up into the next second; any other zone is converted first.
    assert format_time(moment) == written
    slow = moment.astimezone(datetime.UTC)
    assert written == slow.strftime("%Y-%m-%dT%H:%M:%S.") + f"{slow.microsecond // 1000:03d}Z"


async def test_a_page_opened_later_replays_frames_exactly_as_sent() -> None:
    async with serve(Settings(call_timeout=2.0)) as server:
        charger = await raw_charger(server, "CP-replay")
        try:
            heartbeat = '[2,"hb-1","Heartbeat",{}]'
            answer = await exchange(charger, heartbeat)
            server.app.state.services.gateway.sessions["CP-replay"].watched_until = 0.0
            await exchange(charger, '[2,"hb-2","Heartbeat",{ }]')
            async with page_socket(server, "CP-replay") as page:
                second = await wait_line(page, "hb-2", dir="in", type="CALL")
                first = await wait_line(page, "hb-1", dir="in", type="CALL")
                replayed = [await expand(page, number) for number in (first, second)]
        finally:
            await charger.close()
    assert first < second  # oldest first
    first_frames, second_frames = (exact_frames(detail) for detail in replayed)
    assert first_frames[0] == heartbeat
    assert json.dumps(answer[2]["currentTime"]) in first_frames[1]
    assert json.loads(first_frames[1]) == [3, "hb-1", answer[2]]
    assert second_frames[0] == '[2,"hb-2","Heartbeat",{ }]'


class CountingBroker(MemoryBroker):
    """The in-memory broker, counting the presence records written."""

    def __init__(self) -> None:
        super().__init__()
        self.presence_writes = 0

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        if key.startswith(presence_key("")):
            self.presence_writes += 1
        await super().set(key, value, ttl)


async def test_a_busy_charger_writes_its_presence_every_few_seconds_not_per_call() -> None:
    broker = CountingBroker()
    async with serve(Settings(call_timeout=2.0), broker=broker) as server:
        charger = await raw_charger(server, "CP-busy")
        try:
            for number in range(12):
                await exchange(charger, [2, f"hb-{number}", "Heartbeat", {}])
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            await charger.close()
    # The connection, and perhaps the state once; not a write for every call or 0.2 s.
    assert 1 <= broker.presence_writes <= 2
