"""The replay: a charger's recent events, kept in memory so a newly opened page is not blank.

Bounded three ways, all in bytes or counts that a charger cannot stretch: at most
`replay_size` items and `replay_bytes` per charger, and `replay_total_bytes` for every
charger of the process together (`ReplayBudget`). One item is never larger than
`item_limit(...)`: a bigger frame is kept truncated, and marked so, and an event with a
big payload keeps a note of its size instead of the payload. When the process-wide budget
is full, the charger that adds trims itself to its fair share first, then the others that
hold more than theirs give up their oldest items.
"""

from __future__ import annotations

import datetime
from typing import Any

from ocpplab.core.frames import dumps_compact
from ocpplab.core.messages import EVENTS, Event

# The most one item may hold, and the least the per-charger bound lets it have.
ITEM_BYTES = 65_536
MIN_ITEM_BYTES = 1024
# What an item costs besides its text: the tuple or dict, its timestamps and small fields.
ITEM_OVERHEAD = 200

# A frame as the replay keeps it: seq, at, dir, type, action, unique_id, raw, violations,
# note, and the size of the frame when `raw` holds only its beginning (else 0). Its event
# is built only when a page asks: most frames of most chargers are never watched. A plain
# tuple of atoms, because the garbage collector stops tracking those; tens of thousands of
# tracked records made each full collection a pause of 100 ms or more.
FrameRecord = tuple[
    int,
    datetime.datetime | str,
    str,
    str,
    str | None,
    str | None,
    str,
    tuple[dict[str, str], ...] | None,
    str | None,
    int,
]
Item = FrameRecord | Event


def item_limit(replay_bytes: int) -> int:
    """The largest one item may be for a replay of `replay_bytes`."""
    return max(MIN_ITEM_BYTES, min(ITEM_BYTES, replay_bytes // 4))


def truncated(text: str, limit: int) -> tuple[str, int]:
    """`text` cut to `limit` characters, and its full length when it was cut (else 0)."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text)


def frame_size(record: FrameRecord) -> int:
    violations = record[7] or ()
    return (
        ITEM_OVERHEAD
        + len(record[6])
        + len(record[4] or "")
        + len(record[8] or "")
        + sum(len(item["message"]) + len(item["path"]) + 40 for item in violations)
    )


def shrunk(event: Event, limit: int) -> tuple[Event, int]:
    """`event` and its size, with any value too big for the replay replaced by a note."""
    data = event.to_json()
    text = dumps_compact(data)
    if len(text) <= limit:
        return event, ITEM_OVERHEAD + len(text)
    small: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, str | int | float | bool) or value is None:
            small[key] = value[:200] if isinstance(value, str) else value
        else:
            size = len(dumps_compact(value))
            small[key] = value if size <= 200 else {"not kept": f"{size} bytes"}
    kept: Event = EVENTS[event.tag].from_json(small)
    return kept, ITEM_OVERHEAD + len(dumps_compact(small))


class ReplayBudget:
    """The bytes every charger's replay holds together, and who gives way when it is full."""

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.used = 0
        self._replays: dict[int, Replay] = {}

    def register(self, replay: Replay) -> None:
        self._replays[id(replay)] = replay

    def unregister(self, replay: Replay) -> None:
        if self._replays.pop(id(replay), None) is not None:
            replay.clear()

    def fair_share(self) -> int:
        return self.total_bytes // max(1, len(self._replays))

    def make_room(self, adding: Replay, size: int) -> None:
        """Free bytes until `size` more fit: first `adding`'s own excess, then others'."""
        if self.used + size <= self.total_bytes:
            return
        share = self.fair_share()
        adding.trim_to(max(0, share - size))
        if self.used + size <= self.total_bytes:
            return
        for replay in list(self._replays.values()):
            if replay is not adding and replay.bytes > share:
                replay.trim_to(share)
                if self.used + size <= self.total_bytes:
                    return
        adding.trim_to(0)


class Replay:
    """One charger connection's recent events, oldest first, bounded by count and bytes."""

    __slots__ = ("_budget", "_sizes", "bytes", "item_bytes", "items", "max_bytes", "max_items")

    def __init__(self, budget: ReplayBudget, *, max_items: int, max_bytes: int) -> None:
        self._budget = budget
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.item_bytes = item_limit(max_bytes)
        # Lists, trimmed by hand: an idle charger's deques cost 760 bytes each.
        self.items: list[Item] = []
        self._sizes: list[int] = []
        self.bytes = 0
        budget.register(self)

    def append(self, item: Item, size: int) -> None:
        if self.max_items == 0 or size > self.max_bytes or size > self._budget.total_bytes:
            return
        self._budget.make_room(self, size)
        self.items.append(item)
        self._sizes.append(size)
        self._account(size)
        excess_items = len(self.items) - self.max_items
        if excess_items > 0:
            self._drop(excess_items)
        if self.bytes > self.max_bytes:
            self.trim_to(self.max_bytes)

    def trim_to(self, max_bytes: int) -> None:
        """Drop the oldest items until at most `max_bytes` remain."""
        dropped, freed = 0, 0
        while self.bytes - freed > max_bytes and dropped < len(self.items):
            freed += self._sizes[dropped]
            dropped += 1
        if dropped:
            self._drop(dropped)

    def clear(self) -> None:
        self._drop(len(self.items))

    def close(self) -> None:
        """The connection is gone: give its bytes back to the budget, and keep no more."""
        self.max_items = 0
        self._budget.unregister(self)

    def _drop(self, count: int) -> None:
        freed = sum(self._sizes[:count])
        del self.items[:count]
        del self._sizes[:count]
        self._account(-freed)

    def _account(self, delta: int) -> None:
        self.bytes += delta
        self._budget.used += delta
