"""The broker: the only place where charger connections and pages meet.

One small interface with two implementations, chosen by URL as in encode/broadcaster:
`MemoryBroker` (one process, the default) and `RedisBroker` (PubSub, many processes; see
`redis_broker.py`, imported lazily). A subscriber gets its own bounded queue, so a slow
page can never slow a charger or another page: when its queue is full it loses messages
and is told so with `Signal.OVERFLOW` instead.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import time
from collections.abc import AsyncIterator, Callable, Sequence
from urllib.parse import quote

SUBSCRIBER_QUEUE_SIZE = 2000


class Signal(enum.Enum):
    """Out-of-band news a subscription yields between messages."""

    OVERFLOW = "overflow"  # this subscriber was too slow; messages were dropped
    INTERRUPTED = "interrupted"  # the broker connection is lost; messages may be missed
    RESUMED = "resumed"  # the broker connection is back


def _escape(identity: str) -> str:
    # Percent-encode everything but unreserved characters, so ":" or "*" in an identity
    # can never reach another identity's names.
    return quote(identity, safe="")


def events_channel(identity: str) -> str:
    """Gateway -> pages: frames, connection events, state."""
    return f"ocpplab:events:{_escape(identity)}"


def commands_channel(identity: str) -> str:
    """Pages, forms and the API -> the gateway holding the charger."""
    return f"ocpplab:commands:{_escape(identity)}"


def settings_key(identity: str) -> str:
    """The identity's responder settings (JSON, with a TTL)."""
    return f"ocpplab:settings:{_escape(identity)}"


def presence_key(identity: str) -> str:
    """Who holds the charger right now, since when, and its derived state."""
    return f"ocpplab:presence:{_escape(identity)}"


Callback = Callable[[str | Signal], None]


class Subscription:
    """Messages of one channel for one subscriber, in order; iterate with `async for`.

    With a `callback`, each message is handed to it at once instead of being queued: the
    gateway uses this so that an idle charger costs no task (and no queue) of its own.
    """

    __slots__ = ("_callback", "_overflowed", "_queue", "channel")

    def __init__(
        self, channel: str, callback: Callback | None = None, size: int = SUBSCRIBER_QUEUE_SIZE
    ) -> None:
        self.channel = channel
        self._callback = callback
        # An asyncio.Queue is four deques (some 3 KiB): only subscribers that read get one.
        self._queue: asyncio.Queue[str | Signal] | None = None if callback else asyncio.Queue(size)
        self._overflowed = False

    def deliver(self, item: str | Signal) -> bool:
        """Queue `item` without waiting; False when the subscriber is too slow to take it."""
        if self._callback is not None:
            self._callback(item)
            return True
        queue = self._reading_queue()
        if self._overflowed:
            # Tell of the loss once, as soon as there is room again.
            if queue.full():
                return False
            queue.put_nowait(Signal.OVERFLOW)
            self._overflowed = False
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self._overflowed = True
            return False
        return True

    def _reading_queue(self) -> asyncio.Queue[str | Signal]:
        if self._queue is None:
            raise RuntimeError(
                "this subscription hands its messages to a callback; there is nothing to get"
            )
        return self._queue

    async def get(self) -> str | Signal:
        return await self._reading_queue().get()

    def get_nowait(self) -> str | Signal | None:
        if self._queue is None:
            return None  # a callback took every message already
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def __aiter__(self) -> AsyncIterator[str | Signal]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | Signal]:
        queue = self._reading_queue()
        while True:
            yield await queue.get()


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
    async def ping(self) -> bool:
        """True when the broker answers now."""

    @property
    def connected(self) -> bool:
        """False while the broker is unreachable (only Redis can be)."""
        return True


class MemoryBroker(Broker):
    """Everything in this process: the default, and enough for one charger or a thousand."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        self._values: dict[str, tuple[str, float | None]] = {}

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

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def ping(self) -> bool:
        return True


def broker_from_url(url: str | None) -> Broker:
    """`None` or `memory://` -> MemoryBroker; `redis://…` -> RedisBroker."""
    if not url or url.startswith("memory://"):
        return MemoryBroker()
    from ocpplab.redis_broker import RedisBroker

    return RedisBroker(url)
