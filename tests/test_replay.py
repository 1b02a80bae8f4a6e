"""The replay's bounds, pure: counts and bytes per charger, bytes for all of them together."""

from __future__ import annotations

import datetime

import orjson

from ocpplab.core.messages import Notice, Outcome
from ocpplab.core.replay import (
    ITEM_OVERHEAD,
    FrameRecord,
    Replay,
    ReplayBudget,
    frame_size,
    item_limit,
    shrunk,
    truncated,
)

AT = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def record(seq: int, raw: str) -> FrameRecord:
    return (seq, AT, "in", "CALL", "Heartbeat", str(seq), raw, None, None, 0)


def add(replay: Replay, seq: int, size: int) -> None:
    item = record(seq, "x" * (size - ITEM_OVERHEAD - len("Heartbeat")))
    replay.append(item, frame_size(item))


def seqs(replay: Replay) -> list[int]:
    return [item[0] for item in replay.items if isinstance(item, tuple)]


def test_a_replay_keeps_at_most_its_count_oldest_leaving_first() -> None:
    replay = Replay(ReplayBudget(10**9), max_items=3, max_bytes=10**6)
    for seq in range(5):
        add(replay, seq, 300)

    assert seqs(replay) == [2, 3, 4]
    assert replay.bytes == 900


def test_a_replay_keeps_at_most_its_bytes() -> None:
    budget = ReplayBudget(10**9)
    replay = Replay(budget, max_items=1000, max_bytes=10_000)
    for seq in range(100):
        add(replay, seq, 1000)

    assert seqs(replay) == list(range(90, 100))
    assert replay.bytes == budget.used == 10_000


def test_one_item_is_never_more_than_a_quarter_of_the_replay_nor_64_kib() -> None:
    assert item_limit(262_144) == 65_536
    assert item_limit(40_000) == 10_000
    assert item_limit(100) == 1024
    assert truncated("abcdef", 4) == ("abcd", 6)
    assert truncated("abc", 4) == ("abc", 0)


def test_an_event_with_a_big_payload_keeps_a_note_of_its_size_instead() -> None:
    event = Outcome(
        unique_id="u1", action="DataTransfer", outcome="result", payload={"data": "x" * 100_000}
    )

    small, size = shrunk(event, 1024)

    assert isinstance(small, Outcome)
    assert small.unique_id == "u1"
    assert small.payload == {"not kept": f"{len(orjson.dumps(event.payload))} bytes"}
    assert size < 1024
    notice = Notice(text="hi")
    assert shrunk(notice, 1024) == (notice, shrunk(notice, 1024)[1])


def test_all_replays_together_stay_within_the_budget_the_adder_trimming_first() -> None:
    budget = ReplayBudget(10_000)
    first = Replay(budget, max_items=1000, max_bytes=8_000)
    second = Replay(budget, max_items=1000, max_bytes=8_000)
    for seq in range(8):
        add(first, seq, 1000)  # first holds 8,000: more than its fair share of 5,000
    for seq in range(8):
        add(second, 100 + seq, 1000)
        assert budget.used <= 10_000

    assert budget.used == first.bytes + second.bytes <= 10_000
    assert first.bytes <= 5_000  # the one over its share gave way
    assert seqs(second) == [103, 104, 105, 106, 107]


def test_a_closed_replay_gives_its_bytes_back_and_keeps_nothing_more() -> None:
    budget = ReplayBudget(10_000)
    replay = Replay(budget, max_items=10, max_bytes=10_000)
    add(replay, 1, 1000)
    replay.close()
    add(replay, 2, 1000)

    assert budget.used == 0
    assert replay.items == []
    assert budget.fair_share() == 10_000


def test_an_item_larger_than_the_bounds_is_not_kept() -> None:
    budget = ReplayBudget(5_000)
    replay = Replay(budget, max_items=10, max_bytes=10_000)
    add(replay, 1, 6_000)

    assert replay.items == []
    assert budget.used == 0
