"""The broker's one interface: the only place where charger connections and pages meet.

Two implementations, `memory.MemoryBroker` (one process, the default) and
`redis.RedisBroker` (PubSub, many processes), chosen by URL scheme in `ocpplab.broker`
(`broker_from_url`). A subscriber gets its own bounded queue, so a slow
page can never slow a charger or another page: when its queue is full it loses messages
and is told so with `Signal.OVERFLOW` instead.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import enum
from collections.abc import AsyncIterator, Callable, Sequence

SUBSCRIBER_QUEUE_SIZE = 2000
SUBSCRIBER_QUEUE_BYTES = 8 * 2**20  # one message larger than this is still taken alone


class Signal(enum.Enum):
    """Out-of-band news a subscription yields between messages."""

    OVERFLOW = "overflow"  # this subscriber was too slow; messages were dropped
    INTERRUPTED = "interrupted"  # the broker connection is lost; messages may be missed
    RESUMED = "resumed"  # the broker connection is back


@dataclasses.dataclass(frozen=True, slots=True)
class Fence:
    """What makes a write the newest connection's only: its number in a counter.

    Each connection of an identity takes the next number from `counter` (`Broker.incr`).
    A fenced write goes through only while no higher number is there, so a connection that
    was replaced, on whichever host, can neither overwrite nor delete its successor's
    record. The write also restores a counter lost with a Redis restart and renews its
    expiry (`ttl` seconds), so a counter outlives every connection it numbered.
    """

    counter: str
    generation: int
    ttl: float


Callback = Callable[[str | Signal], None]


class Subscription:
    """Messages of one channel for one subscriber, in order; iterate with `async for`.

    With a `callback`, each message is handed to it at once instead of being queued: the
    gateway uses this so that an idle charger costs no task (and no queue) of its own.
    """

    __slots__ = ("_bytes", "_callback", "_max_bytes", "_overflowed", "_queue", "channel")

    def __init__(
        self,
        channel: str,
        callback: Callback | None = None,
        size: int = SUBSCRIBER_QUEUE_SIZE,
        max_bytes: int = SUBSCRIBER_QUEUE_BYTES,
    ) -> None:
        self.channel = channel
        self._callback = callback
        # An asyncio.Queue is four deques (some 3 KiB): only subscribers that read get one.
        self._queue: asyncio.Queue[str | Signal] | None = None if callback else asyncio.Queue(size)
        self._overflowed = False
        self._bytes = 0  # characters of the messages waiting in the queue
        self._max_bytes = max_bytes

    def deliver(self, item: str | Signal) -> bool:
        """Queue `item` without waiting; False when the subscriber is too slow to take it."""
        if self._callback is not None:
            self._callback(item)
            return True
        queue = self._reading_queue()
        size = len(item) if isinstance(item, str) else 0
        # Bounded in bytes too (a page's messages may be big); one message always fits.
        too_big = self._bytes + size > self._max_bytes and not queue.empty()
        room = queue.maxsize - queue.qsize() - (1 if self._overflowed else 0)
        if too_big or room < 1:
            self._overflowed = True
            return False
        if self._overflowed:
            # Tell of the loss once, as soon as there is room again.
            queue.put_nowait(Signal.OVERFLOW)
            self._overflowed = False
        queue.put_nowait(item)
        self._bytes += size
        return True

    def _taken(self, item: str | Signal) -> str | Signal:
        if isinstance(item, str):
            self._bytes -= len(item)
        return item

    def _reading_queue(self) -> asyncio.Queue[str | Signal]:
        if self._queue is None:
            raise RuntimeError(
                "this subscription hands its messages to a callback; there is nothing to get"
            )
        return self._queue

    async def get(self) -> str | Signal:
        return self._taken(await self._reading_queue().get())

    def get_nowait(self) -> str | Signal | None:
        if self._queue is None:
            return None  # a callback took every message already
        try:
            return self._taken(self._queue.get_nowait())
        except asyncio.QueueEmpty:
            return None

    def __aiter__(self) -> AsyncIterator[str | Signal]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | Signal]:
        queue = self._reading_queue()
        while True:
            yield self._taken(await queue.get())


class Broker(abc.ABC):
    """Publish/subscribe plus a small key-value store with expiry."""

    async def start(self) -> None:
        """Connect; raise `BrokerError` with a clear message when that is impossible."""

    async def stop(self) -> None:
        """Disconnect and end every subscription."""

    @abc.abstractmethod
    async def publish(self, channel: str, message: str) -> int:
        """Send `message` to every subscriber of `channel`; returns how many received it.

        With Redis the count is of processes subscribed, not of subscribers, so it tells
        "nobody" from "somebody", which is what "charger offline" needs.
        """

    async def publish_many(self, items: Sequence[tuple[str, str]]) -> list[int]:
        """Publish `(channel, message)` pairs in order; Redis sends them in one pipeline."""
        return [await self.publish(channel, message) for channel, message in items]

    @abc.abstractmethod
    def subscribe(
        self, channel: str, callback: Callback | None = None
    ) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Receive what is published on `channel` while the context is open.

        Messages are queued for `async for`, or handed to `callback` (which must not block).
        """

    @abc.abstractmethod
    async def get(self, key: str) -> str | None: ...

    @abc.abstractmethod
    async def set(self, key: str, value: str, ttl: float | None = None) -> None: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def incr(self, key: str, ttl: float) -> int:
        """Add one to the number at `key` (0 when missing), renew its expiry; the new number."""

    @abc.abstractmethod
    async def set_fenced(self, key: str, value: str, ttl: float, fence: Fence) -> bool:
        """`set(key, value, ttl)` unless `fence.counter` holds a higher number; True if written."""

    @abc.abstractmethod
    async def delete_fenced(self, key: str, fence: Fence) -> bool:
        """`delete(key)` unless `fence.counter` holds a higher number; True if deleted."""

    @abc.abstractmethod
    async def append_bounded(
        self, key: str, values: Sequence[str], ttl: float, max_bytes: int
    ) -> int:
        """Append `values` to the list at `key` in order while its text stays within
        `max_bytes` in all (counted in characters); renew its TTL. Returns how many of
        `values` were appended: the rest would have passed the bound."""

    @abc.abstractmethod
    async def read_list(self, key: str) -> list[str]:
        """The list at `key`, oldest first; empty when there is none."""

    @abc.abstractmethod
    async def delete_list(self, key: str) -> None: ...

    @abc.abstractmethod
    async def put_member(self, group: str, key: str, value: str, ttl: float) -> None:
        """Set `key` to `value` for `ttl` seconds and list it in `group` (see `members`)."""

    @abc.abstractmethod
    async def members(self, group: str) -> dict[str, str]:
        """The keys listed in `group` that have not expired, with their values.

        Readers find every instance's record this way, without scanning the key space;
        an instance that died unannounced drops out when its key expires.
        """

    @abc.abstractmethod
    async def delete_member(self, group: str, key: str) -> None:
        """Delete `key` and take it out of `group`."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the broker answers now."""

    @property
    def connected(self) -> bool:
        """False while the broker is unreachable (only Redis can be)."""
        return True
