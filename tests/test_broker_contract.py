"""The broker contract, once, for both brokers: in-memory and Redis (a real one).

Whatever the gateway, the pages and the API rely on is asserted here against both
implementations, so that switching `OCPPLAB_REDIS_URL` on changes nothing but reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from ocpplab.broker import broker_from_url
from ocpplab.broker.base import (
    SUBSCRIBER_QUEUE_BYTES,
    SUBSCRIBER_QUEUE_SIZE,
    Broker,
    Fence,
    Signal,
    Subscription,
)
from ocpplab.broker.keys import (
    commands_channel,
    events_channel,
    generation_key,
    instance_key,
    presence_key,
    settings_key,
    transactions_key,
)
from ocpplab.broker.memory import SWEEP_MIN, MemoryBroker
from ocpplab.broker.redis import RedisBroker, redact
from ocpplab.core.errors import BrokerError
from tests.support import REDIS_URL, missing

WAIT = 2.0
TRICKY_IDENTITIES = ("a:b", "a*", "a%3Ab", "a?b", "a[b]", "a b", "RDAM|123", "Zoë")


async def redis_or_missing() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisConnectionError, OSError):
        missing(f"Redis at {REDIS_URL} (apt-get install -y redis-server)")
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    if request.param == "memory":
        instance: Broker = MemoryBroker()
    else:
        await redis_or_missing()
        instance = RedisBroker(REDIS_URL)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
def channel() -> str:
    """A channel no other test (nor another engineer's run on the same Redis) uses."""
    return f"ocpplab:test:{uuid.uuid4().hex}"


async def next_item(subscription: Subscription) -> str | Signal:
    async with asyncio.timeout(WAIT):
        return await subscription.get()


async def eventually_nobody(broker: Broker, channel: str) -> int:
    """Redis handles UNSUBSCRIBE and PUBLISH on different connections: allow it a moment."""
    for _ in range(100):
        if (count := await broker.publish(channel, "late")) == 0:
            return count
        await asyncio.sleep(0.02)
    return count


# Publish and subscribe


async def test_publish_without_subscribers_reaches_nobody(broker: Broker, channel: str) -> None:
    assert await broker.publish(channel, "nobody listens") == 0


async def test_messages_arrive_in_order(broker: Broker, channel: str) -> None:
    async with broker.subscribe(channel) as subscription:
        for number in range(20):
            assert await broker.publish(channel, f"message {number}") >= 1
        assert [await next_item(subscription) for _ in range(20)] == [
            f"message {number}" for number in range(20)
        ]


async def test_every_subscriber_gets_its_own_copy(broker: Broker, channel: str) -> None:
    async with broker.subscribe(channel) as first, broker.subscribe(channel) as second:
        assert await broker.publish(channel, "both") >= 1
        assert await next_item(first) == "both"
        assert await next_item(second) == "both"
        assert first.get_nowait() is None
        assert second.get_nowait() is None


async def test_nothing_arrives_after_the_context_closes(broker: Broker, channel: str) -> None:
    async with broker.subscribe(channel) as staying:
        async with broker.subscribe(channel) as leaving:
            pass
        assert await broker.publish(channel, "after") >= 1
        assert await next_item(staying) == "after"
        assert leaving.get_nowait() is None
    assert await eventually_nobody(broker, channel) == 0


async def test_channels_are_separate(broker: Broker, channel: str) -> None:
    async with broker.subscribe(channel + ":x") as x, broker.subscribe(channel + ":y") as y:
        await broker.publish(channel + ":x", "for x")
        await broker.publish(channel + ":y", "for y")
        assert await next_item(x) == "for x"
        assert await next_item(y) == "for y"
        assert x.get_nowait() is None


async def test_callback_subscribers_get_messages_without_a_queue(
    broker: Broker, channel: str
) -> None:
    received: list[str | Signal] = []
    arrived = asyncio.Event()

    def on_message(item: str | Signal) -> None:
        received.append(item)
        arrived.set()

    async with broker.subscribe(channel, on_message) as subscription:
        await broker.publish(channel, "to the callback")
        async with asyncio.timeout(WAIT):
            await arrived.wait()
        assert received == ["to the callback"]
        assert subscription.get_nowait() is None


async def test_publish_many_keeps_order_and_counts(broker: Broker, channel: str) -> None:
    async with broker.subscribe(channel) as subscription:
        counts = await broker.publish_many(
            [(channel, "one"), (channel + ":nobody", "lost"), (channel, "two")]
        )
        assert counts[1] == 0
        assert counts[0] >= 1
        assert counts[2] >= 1
        assert [await next_item(subscription), await next_item(subscription)] == ["one", "two"]


async def test_text_survives_unchanged(broker: Broker, channel: str) -> None:
    text = '[2,"ü-1","DataTransfer",{"vendorId":"Zoë ⚡","data":"\\u0000 \\"quoted\\""}]'
    async with broker.subscribe(channel) as subscription:
        await broker.publish(channel, text)
        assert await next_item(subscription) == text


async def test_a_slow_subscriber_is_told_it_lost_messages(broker: Broker, channel: str) -> None:
    async with broker.subscribe(channel) as slow:
        extra = 10
        await broker.publish_many(
            [(channel, str(number)) for number in range(SUBSCRIBER_QUEUE_SIZE + extra)]
        )
        # Wait until the last message has been handed over (Redis: read by the listener).
        async with broker.subscribe(channel) as marker:
            await broker.publish(channel, "marker")
            while await next_item(marker) != "marker":
                pass
        items = [slow.get_nowait() for _ in range(SUBSCRIBER_QUEUE_SIZE)]
        assert items[-1] == str(SUBSCRIBER_QUEUE_SIZE - 1)
        assert slow.get_nowait() is None
        await broker.publish(channel, "after the loss")
        assert await next_item(slow) is Signal.OVERFLOW
        assert await next_item(slow) == "after the loss"


async def test_a_slow_subscriber_holds_a_bounded_number_of_bytes(
    broker: Broker, channel: str
) -> None:
    big = "x" * (SUBSCRIBER_QUEUE_BYTES // 4 + 1)
    async with broker.subscribe(channel) as slow:
        await broker.publish_many([(channel, big) for _ in range(10)])
        async with broker.subscribe(channel) as marker:
            await broker.publish(channel, "marker")
            while await next_item(marker) != "marker":
                pass
        kept = []
        while (item := slow.get_nowait()) is not None:
            kept.append(item)

    # A fourth big one would pass SUBSCRIBER_QUEUE_BYTES; the small marker still fits, after
    # the news of the loss.
    assert kept == [big, big, big, Signal.OVERFLOW, "marker"]


# Identities never reach each other's names


def test_tricky_identities_get_distinct_names() -> None:
    for name in (
        events_channel,
        commands_channel,
        settings_key,
        presence_key,
        generation_key,
        transactions_key,
        instance_key,
    ):
        names = {name(identity) for identity in TRICKY_IDENTITIES}
        assert len(names) == len(TRICKY_IDENTITIES)
        for escaped in names:
            assert escaped.count(":") == 2
            assert "*" not in escaped
            assert "?" not in escaped
            assert "[" not in escaped


async def test_tricky_identities_never_see_each_others_events(broker: Broker) -> None:
    prefix = uuid.uuid4().hex[:8]
    identities = [prefix + identity for identity in TRICKY_IDENTITIES]
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(broker.subscribe(events_channel(identity)))
            for identity in identities
        ]
        for identity in identities:
            assert await broker.publish(events_channel(identity), f"for {identity}") >= 1
        for identity, subscription in zip(identities, subscriptions, strict=True):
            assert await next_item(subscription) == f"for {identity}"
        for subscription in subscriptions:
            assert subscription.get_nowait() is None


# Keys


async def test_keys_set_get_delete(broker: Broker, channel: str) -> None:
    key = channel + ":key"
    assert await broker.get(key) is None
    await broker.set(key, "one")
    assert await broker.get(key) == "one"
    await broker.set(key, "two ⚡")
    assert await broker.get(key) == "two ⚡"
    await broker.delete(key)
    assert await broker.get(key) is None
    await broker.delete(key)  # deleting what is gone is fine


async def test_keys_expire_after_their_ttl(broker: Broker, channel: str) -> None:
    key = channel + ":ttl"
    await broker.set(key, "short", ttl=0.2)
    await broker.set(key + ":long", "long", ttl=60)
    assert await broker.get(key) == "short"
    await asyncio.sleep(0.4)
    assert await broker.get(key) is None
    assert await broker.get(key + ":long") == "long"
    await broker.delete(key + ":long")


async def test_a_new_ttl_replaces_the_old_one(broker: Broker, channel: str) -> None:
    key = channel + ":refresh"
    await broker.set(key, "kept", ttl=0.3)
    await broker.set(key, "kept", ttl=60)
    await asyncio.sleep(0.5)
    assert await broker.get(key) == "kept"
    await broker.delete(key)


# Counters, fenced writes and instance records: what exact takeover and many workers use


async def test_incr_counts_from_one_and_keeps_counting(broker: Broker, channel: str) -> None:
    assert [await broker.incr(channel, 60) for _ in range(3)] == [1, 2, 3]
    assert await broker.get(channel) == "3"
    await broker.delete(channel)


async def test_incr_renews_the_expiry(broker: Broker, channel: str) -> None:
    await broker.incr(channel, 0.3)
    await asyncio.sleep(0.2)
    await broker.incr(channel, 0.3)
    await asyncio.sleep(0.2)
    assert await broker.get(channel) == "2"
    await asyncio.sleep(0.3)
    assert await broker.get(channel) is None
    assert await broker.incr(channel, 60) == 1
    await broker.delete(channel)


async def test_simultaneous_incr_hands_out_each_number_once(broker: Broker, channel: str) -> None:
    numbers = await asyncio.gather(*(broker.incr(channel, 60) for _ in range(50)))
    assert sorted(numbers) == list(range(1, 51))
    await broker.delete(channel)


async def test_only_the_newest_generation_writes_or_deletes(broker: Broker, channel: str) -> None:
    counter, key = channel + ":generation", channel + ":presence"
    older = Fence(counter, await broker.incr(counter, 60), 60)
    newer = Fence(counter, await broker.incr(counter, 60), 60)
    assert await broker.set_fenced(key, "newer", 60, newer) is True
    assert await broker.set_fenced(key, "older", 60, older) is False
    assert await broker.get(key) == "newer"
    assert await broker.delete_fenced(key, older) is False
    assert await broker.get(key) == "newer"
    assert await broker.delete_fenced(key, newer) is True
    assert await broker.get(key) is None
    assert await broker.get(counter) == "2"  # left to expire: numbers are never handed out twice
    await broker.delete(counter)


async def test_a_fenced_write_restores_a_lost_counter(broker: Broker, channel: str) -> None:
    """A Redis restarted without persistence forgets the counter; the holder puts it back."""
    counter, key = channel + ":generation", channel + ":presence"
    assert await broker.set_fenced(key, "held by 3", 60, Fence(counter, 3, 60)) is True
    assert await broker.get(counter) == "3"
    assert await broker.set_fenced(key, "by 2", 60, Fence(counter, 2, 60)) is False
    assert await broker.incr(counter, 60) == 4
    assert await broker.get(key) == "held by 3"
    await broker.delete(key)
    await broker.delete(counter)


async def test_a_fenced_write_renews_the_counter_and_sets_the_key_ttl(
    broker: Broker, channel: str
) -> None:
    counter, key = channel + ":generation", channel + ":presence"
    fence = Fence(counter, await broker.incr(counter, 0.3), 0.3)
    await asyncio.sleep(0.2)
    assert await broker.set_fenced(key, "short", 0.3, fence) is True
    await asyncio.sleep(0.2)
    assert await broker.get(counter) == "1"
    assert await broker.get(key) == "short"
    await asyncio.sleep(0.3)
    assert await broker.get(counter) is None
    assert await broker.get(key) is None


async def test_members_are_the_live_keys_of_a_group(broker: Broker, channel: str) -> None:
    group = channel + ":group"
    assert await broker.members(group) == {}
    await broker.put_member(group, channel + ":a", "short", 0.3)
    await broker.put_member(group, channel + ":b", "long", 60)
    assert await broker.members(group) == {channel + ":a": "short", channel + ":b": "long"}
    await asyncio.sleep(0.5)
    assert await broker.members(group) == {channel + ":b": "long"}
    await broker.put_member(group, channel + ":b", "renewed", 60)
    assert await broker.members(group) == {channel + ":b": "renewed"}
    await broker.delete_member(group, channel + ":b")
    assert await broker.members(group) == {}
    assert await broker.get(channel + ":b") is None


async def test_ping_and_connected(broker: Broker) -> None:
    assert await broker.ping() is True
    assert broker.connected is True


async def test_the_memory_broker_forgets_keys_that_expire_unread() -> None:
    """One counter per identity that ever connected must not pile up in memory for good."""
    broker = MemoryBroker()
    expiring = 4 * SWEEP_MIN
    for number in range(expiring):
        await broker.incr(f"ocpplab:generation:CP-{number}", 0.01)
    await asyncio.sleep(0.05)
    # The next sweep comes at most when the store has doubled since the last one.
    for number in range(2 * expiring):
        await broker.set(f"ocpplab:presence:CP-{number}", "{}", 60)
    assert not [key for key in broker._values if key.startswith("ocpplab:generation:")]
    assert len(broker._values) == 2 * expiring


# Redis only: what the in-memory broker cannot get wrong


@pytest.mark.redis
async def test_redis_writes_expiry_with_the_key(channel: str) -> None:
    await redis_or_missing()
    broker = RedisBroker(REDIS_URL)
    await broker.start()
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await broker.set(channel, "{}", ttl=604800)
        assert 604000 * 1000 < await client.pttl(channel) <= 604800 * 1000
        await broker.set(channel, "{}", ttl=1.5)
        assert 0 < await client.pttl(channel) <= 1500
        await broker.set(channel, "{}")
        assert await client.pttl(channel) == -1
    finally:
        await client.delete(channel)
        await client.aclose()
        await broker.stop()


@pytest.mark.redis
async def test_redis_publish_counts_processes_not_subscribers(channel: str) -> None:
    await redis_or_missing()
    first, second = RedisBroker(REDIS_URL), RedisBroker(REDIS_URL)
    await first.start()
    await second.start()
    try:
        async with (
            first.subscribe(channel) as a,
            first.subscribe(channel) as b,
            second.subscribe(channel) as c,
        ):
            assert await first.publish(channel, "all") == 2
            assert [await next_item(s) for s in (a, b, c)] == ["all", "all", "all"]
    finally:
        await first.stop()
        await second.stop()


@pytest.mark.redis
async def test_redis_subscription_is_live_when_the_context_opens(channel: str) -> None:
    """Another process publishing right after `subscribe` returns must not be missed."""
    await redis_or_missing()
    listener, publisher = RedisBroker(REDIS_URL), RedisBroker(REDIS_URL)
    await listener.start()
    await publisher.start()
    try:
        for number in range(20):
            async with listener.subscribe(f"{channel}:{number}") as subscription:
                assert await publisher.publish(f"{channel}:{number}", "now") == 1
                assert await next_item(subscription) == "now"
    finally:
        await listener.stop()
        await publisher.stop()


@pytest.mark.redis
async def test_redis_counters_and_fences_hold_across_processes(channel: str) -> None:
    """Two brokers (as two instances would) share one counter; each sees the other's fence."""
    await redis_or_missing()
    first, second = RedisBroker(REDIS_URL), RedisBroker(REDIS_URL)
    await first.start()
    await second.start()
    counter, key = channel + ":generation", channel + ":presence"
    try:
        numbers = await asyncio.gather(
            *(broker.incr(counter, 60) for broker in (first, second) * 20)
        )
        assert sorted(numbers) == list(range(1, 41))
        assert await first.set_fenced(key, "39", 60, Fence(counter, 39, 60)) is False
        assert await second.set_fenced(key, "40", 60, Fence(counter, 40, 60)) is True
        assert await first.delete_fenced(key, Fence(counter, 39, 60)) is False
        assert await first.get(key) == "40"
    finally:
        await first.delete(counter)
        await first.delete(key)
        await first.stop()
        await second.stop()


@pytest.mark.redis
async def test_redis_fenced_writes_survive_a_script_cache_flush(channel: str) -> None:
    """A Redis restart empties the script cache; EVALSHA then falls back to loading it."""
    await redis_or_missing()
    broker = RedisBroker(REDIS_URL)
    await broker.start()
    client = aioredis.Redis.from_url(REDIS_URL)
    counter, key = channel + ":generation", channel + ":presence"
    try:
        fence = Fence(counter, 1, 60)
        assert await broker.set_fenced(key, "before", 60, fence) is True
        await client.script_flush()
        assert await broker.set_fenced(key, "after", 60, fence) is True
        assert await broker.get(key) == "after"
        assert 59_000 < await client.pttl(counter) <= 60_000
    finally:
        await client.delete(counter, key)
        await client.aclose()
        await broker.stop()


@pytest.mark.redis
async def test_redis_unreachable_at_start_is_a_clear_error() -> None:
    broker = RedisBroker("redis://someone:s3cret@127.0.0.1:1/0", connect_timeout=0.5)
    with pytest.raises(BrokerError) as caught:
        await broker.start()
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "unreachable" in message
    assert "s3cret" not in message
    assert broker.connected is False
    assert await broker.ping() is False


async def test_redis_broker_used_before_start_says_so() -> None:
    broker = RedisBroker(REDIS_URL)
    with pytest.raises(BrokerError, match="not started"):
        await broker.publish("ocpplab:test:unstarted", "x")
    with pytest.raises(BrokerError, match="not started"):
        await broker.get("ocpplab:test:unstarted")


def test_redis_url_chooses_the_redis_broker() -> None:
    assert isinstance(broker_from_url(None), MemoryBroker)
    assert isinstance(broker_from_url("memory://"), MemoryBroker)
    assert isinstance(broker_from_url(REDIS_URL), RedisBroker)


def test_redact_hides_only_the_password() -> None:
    assert redact("redis://:pw@example.com:6380/1") == "redis://:***@example.com:6380/1"
    assert redact("rediss://user:pw@h/0") == "rediss://user:***@h/0"
    assert redact("redis://example.com:6379/0") == "redis://example.com:6379/0"


# Bounded lists (recordings)


async def test_a_bounded_list_keeps_order_and_stops_at_its_bound(broker: Broker) -> None:
    key = f"ocpplab:test-list:{uuid.uuid4().hex}"
    first = await broker.append_bounded(key, ["a" * 4, "é" * 3, "c"], 60, max_bytes=10)
    second = await broker.append_bounded(key, ["dd", "e"], 60, max_bytes=10)
    kept = await broker.read_list(key)
    await broker.delete_list(key)
    gone = await broker.read_list(key)
    fresh = await broker.append_bounded(key, ["x" * 10], 60, max_bytes=10)
    await broker.delete_list(key)

    assert (first, second) == (3, 1)  # 8 characters, then 2 more fit and "e" would not
    assert kept == ["aaaa", "ééé", "c", "dd"]
    assert gone == []
    assert fresh == 1  # deleting forgets the size too


async def test_a_bounded_list_expires(broker: Broker) -> None:
    key = f"ocpplab:test-list:{uuid.uuid4().hex}"
    await broker.append_bounded(key, ["a"], 0.05, max_bytes=100)
    await asyncio.sleep(0.2)

    assert await broker.read_list(key) == []
    assert await broker.append_bounded(key, ["b" * 100], 60, max_bytes=100) == 1
    await broker.delete_list(key)
