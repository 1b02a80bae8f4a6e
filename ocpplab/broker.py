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
import dataclasses
import enum
import time
from collections.abc import AsyncIterator, Callable, Sequence
from urllib.parse import quote

SUBSCRIBER_QUEUE_SIZE = 2000
SUBSCRIBER_QUEUE_BYTES = 8 * 2**20  # one message larger than this is still taken alone
INSTANCES = "ocpplab:instances"  # the set of live instances' records (`instance_key`)
SWEEP_MIN = 1024  # the memory broker drops expired keys once it holds twice as many as after


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


def generation_key(identity: str) -> str:
    """How many connections the identity has had: the newest one's number (see `Fence`)."""
    return f"ocpplab:generation:{_escape(identity)}"


def transactions_key(identity: str) -> str:
    """The last transaction id handed to the identity, wherever it was connected."""
    return f"ocpplab:transactions:{_escape(identity)}"


def instance_key(instance: str) -> str:
    """One instance's record: how many chargers it holds, and the first few of them."""
    return f"ocpplab:instance:{_escape(instance)}"


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


class MemoryBroker(Broker):
    """Everything in this process: the default, and enough for one charger or a thousand."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        self._values: dict[str, tuple[str, float | None]] = {}
        self._groups: dict[str, set[str]] = {}
        self._sweep_at = SWEEP_MIN

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


def broker_from_url(url: str | None) -> Broker:
    """`None` or `memory://` -> MemoryBroker; `redis://…` -> RedisBroker."""
    if not url or url.startswith("memory://"):
        return MemoryBroker()
    from ocpplab.redis_broker import RedisBroker

    return RedisBroker(url)
