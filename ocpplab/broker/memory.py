"""The in-memory broker: one process, no other service; the default (`memory://`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from ocpplab.broker.base import Broker, Callback, Fence, Subscription

SWEEP_MIN = 1024  # the memory broker drops expired keys once it holds twice as many as after


class MemoryBroker(Broker):
    """Everything in this process: the default, and enough for one charger or a thousand."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        self._values: dict[str, tuple[str, float | None]] = {}
        self._groups: dict[str, set[str]] = {}
        self._sweep_at = SWEEP_MIN
        # key -> (items, their length in characters, monotonic expiry)
        self._lists: dict[str, tuple[list[str], int, float]] = {}

    async def publish(self, channel: str, message: str) -> int:
        subscribers = self._subscribers.get(channel, ())
        for subscription in list(subscribers):
            subscription.deliver(message)
        return len(subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, callback: Callback | None = None
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(channel, callback)
        self._subscribers.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers[channel]
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[channel]

    async def get(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.monotonic():
            del self._values[key]
            return None
        return value

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._values[key] = (value, None if ttl is None else time.monotonic() + ttl)
        if len(self._values) >= self._sweep_at:
            self._sweep()

    def _sweep(self) -> None:
        # Keys that expire unread (one counter per identity that ever connected) would
        # otherwise stay for good; sweeping at each doubling costs O(1) per write.
        now = time.monotonic()
        self._values = {
            key: entry for key, entry in self._values.items() if entry[1] is None or entry[1] > now
        }
        self._lists = {key: entry for key, entry in self._lists.items() if entry[2] > now}
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._values))

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    # The compound operations below are atomic because nothing in them suspends: `get`
    # and `set` of this broker never wait. They call `get`, `set` and `delete` (not the
    # dict), so a subclass that watches those sees every write.

    async def incr(self, key: str, ttl: float) -> int:
        number = _number(await self.get(key)) + 1
        await self.set(key, str(number), ttl)
        return number

    async def set_fenced(self, key: str, value: str, ttl: float, fence: Fence) -> bool:
        if not await self._pass(fence):
            return False
        await self.set(key, value, ttl)
        return True

    async def delete_fenced(self, key: str, fence: Fence) -> bool:
        if _number(await self.get(fence.counter)) > fence.generation:
            return False
        await self.delete(key)
        return True

    async def _pass(self, fence: Fence) -> bool:
        current = _number(await self.get(fence.counter))
        if current > fence.generation:
            return False
        await self.set(fence.counter, str(max(current, fence.generation)), fence.ttl)
        return True

    async def append_bounded(
        self, key: str, values: Sequence[str], ttl: float, max_bytes: int
    ) -> int:
        now = time.monotonic()
        entry = self._lists.get(key)
        items, size = (entry[0], entry[1]) if entry is not None and entry[2] > now else ([], 0)
        taken = 0
        for value in values:
            if size + len(value) > max_bytes:
                break
            items.append(value)
            size += len(value)
            taken += 1
        self._lists[key] = (items, size, now + ttl)
        return taken

    async def read_list(self, key: str) -> list[str]:
        entry = self._lists.get(key)
        if entry is None or entry[2] <= time.monotonic():
            self._lists.pop(key, None)
            return []
        return list(entry[0])

    async def delete_list(self, key: str) -> None:
        self._lists.pop(key, None)

    async def put_member(self, group: str, key: str, value: str, ttl: float) -> None:
        await self.set(key, value, ttl)
        self._groups.setdefault(group, set()).add(key)

    async def members(self, group: str) -> dict[str, str]:
        found: dict[str, str] = {}
        keys = self._groups.get(group, set())
        for key in list(keys):
            value = await self.get(key)
            if value is None:
                keys.discard(key)
            else:
                found[key] = value
        return found

    async def delete_member(self, group: str, key: str) -> None:
        await self.delete(key)
        self._groups.get(group, set()).discard(key)

    async def ping(self) -> bool:
        return True


def _number(text: str | None) -> int:
    """A counter's value; a missing (or, never written by us, unreadable) one counts as 0."""
    try:
        return int(text) if text else 0
    except ValueError:
        return 0
