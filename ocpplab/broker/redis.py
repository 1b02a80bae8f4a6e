"""The Redis broker: PubSub between processes and hosts, keys with expiry for settings.

Shaped like encode/broadcaster: one PubSub connection per process and one listener task
that fans every message out to the `Subscription`s of its channel. A channel is
SUBSCRIBEd when its first subscriber arrives and UNSUBSCRIBEd when its last one leaves.
Commands (PUBLISH, GET, SET, DEL) share a small blocking pool of connections; the
gateway's events go out in pipelines (`publish_many`), never one connection per call.

Redis is a broker here, never a log: only responder settings, presence snapshots, two
counters per identity and one small record per instance are written to keys (see the key
functions in `broker`); frames only pass through channels. The compound operations
(`incr`, the fenced writes, instance records) are each one atomic round trip: a MULTI
pipeline or a Lua script.

Faults are part of the contract. When the PubSub connection drops, every subscription
gets `Signal.INTERRUPTED` once; the listener reconnects on its own with capped
exponential backoff, subscribes every channel again and only then delivers
`Signal.RESUMED`. While Redis is away, `publish`/`get`/`set`/`delete` raise
`BrokerUnavailable` at once and `subscribe` still works (the channel is subscribed when
Redis is back), so a charger connection never sees a Redis exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ocpplab.broker.base import Broker, Callback, Fence, Signal, Subscription
from ocpplab.core.errors import BrokerError, BrokerUnavailable
from ocpplab.logs import log_failure

logger = logging.getLogger("ocpplab.redis")

T = TypeVar("T")
Names = set[str]  # channel names; spelled so because the class's own `set` shadows the builtin

SOCKET_TIMEOUT = 2.0  # no caller waits longer than this on a Redis that stopped answering
CONNECT_TIMEOUT = 1.0
POOL_SIZE = 32
BACKOFF_FIRST = 0.1
BACKOFF_CAP = 5.0
HEALTH_INTERVAL = 5.0  # an idle PubSub connection is PINGed this often, and must answer
SUBSCRIBE_WAIT = 2.0

# KEYS: counter[, key]; ARGV: generation, counter ttl (ms)[, value, ttl (ms)]. A counter
# lower than the writer's (lost with a restart) is raised to it, so it keeps fencing.
_FENCE = """
local current = tonumber(redis.call('GET', KEYS[1])) or 0
local generation = tonumber(ARGV[1])
if current > generation then return 0 end
if current < generation then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
"""
SET_FENCED = _FENCE + "redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])\nreturn 1\n"
DELETE_FENCED = """
if (tonumber(redis.call('GET', KEYS[1])) or 0) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[2])
return 1
"""
# KEYS[1] the list, KEYS[2] its size; ARGV[1] the TTL in ms, ARGV[2] the most it may hold,
# then each value's length and the value. The size counts characters, as the memory broker
# does: Lua's string length would count UTF-8 bytes, so the caller passes the lengths.
APPEND_BOUNDED = """
local size = tonumber(redis.call('GET', KEYS[2])) or 0
local max = tonumber(ARGV[2])
local taken = 0
for i = 3, #ARGV, 2 do
  local length = tonumber(ARGV[i])
  if size + length > max then break end
  redis.call('RPUSH', KEYS[1], ARGV[i + 1])
  size = size + length
  taken = taken + 1
end
redis.call('SET', KEYS[2], size, 'PX', ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return taken
"""


def _text(value: bytes | str) -> str:
    # The pool decodes replies; the stubs cannot know.
    return value if isinstance(value, str) else value.decode()


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def redact(url: str) -> str:
    """`url` with any password replaced by `***`, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@contextlib.contextmanager
def _translated(url: str) -> Iterator[None]:
    """Turn redis-py's (and the socket's) errors into ocpplab's, at the boundary."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(f"Redis at {url} is unreachable: {exc}") from None
    except RedisError as exc:
        raise BrokerError(f"Redis at {url} refused the command: {exc}") from None


class RedisBroker(Broker):
    """Redis PubSub and keys: any number of processes and hosts act as one central system."""

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        backoff_first: float = BACKOFF_FIRST,
        backoff_cap: float = BACKOFF_CAP,
        health_interval: float = HEALTH_INTERVAL,
    ) -> None:
        self.url = url
        self.safe_url = redact(url)
        self._socket_timeout = socket_timeout
        self._connect_timeout = connect_timeout
        self._backoff = (backoff_first, backoff_cap)
        self._health_interval = health_interval
        self._client: Redis | None = None
        self._conn: AbstractConnection | None = None
        self._listener: asyncio.Task[None] | None = None
        self._channels: dict[str, set[Subscription]] = {}
        self._confirmations: dict[str, deque[asyncio.Future[None]]] = {}
        self._connected = False
        self._pubsub_writes: set[asyncio.Task[None]] = set()
        self._scripts: dict[str, AsyncScript] = {}

    @property
    def connected(self) -> bool:
        return self._connected

    # Life cycle

    async def start(self) -> None:
        """Connect both ways, or raise `BrokerError` naming the URL (without its password)."""
        if self._client is not None:
            return
        try:
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=POOL_SIZE,
                timeout=self._socket_timeout,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._connect_timeout,
                retry=Retry(NoBackoff(), 0),  # this broker decides when to try again
                decode_responses=True,
                encoding_errors="replace",
            )
        except ValueError as exc:
            raise BrokerError(f"cannot use the Redis URL {self.safe_url}: {exc}") from None
        client = Redis.from_pool(pool)
        try:
            with _translated(self.safe_url):
                await client.ping()
                self._conn, _ = await self._open_pubsub(client)
        except BrokerError as exc:
            await client.aclose()
            raise BrokerError(f"cannot start: {exc}") from None
        self._client = client
        self._connected = True
        self._listener = asyncio.create_task(self._listen_forever(), name="ocpplab-redis")

    async def stop(self) -> None:
        self._connected = False
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._drop_connection()
        self._release_waiters()
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()
            self._client = None
        self._scripts.clear()

    # Publishing and keys

    async def publish(self, channel: str, message: str) -> int:
        return await self._command(self._live_client().publish(channel, message))

    async def publish_many(self, items: Sequence[tuple[str, str]]) -> list[int]:
        """Publish in one pipeline: one round trip for a whole batch of events."""
        client = self._live_client()
        with _translated(self.safe_url):
            async with client.pipeline(transaction=False) as pipe:
                for channel, message in items:
                    pipe.publish(channel, message)
                return [int(count) for count in await pipe.execute()]

    async def get(self, key: str) -> str | None:
        value = await self._command(self._live_client().get(key))
        return value if value is None or isinstance(value, str) else value.decode()

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        client = self._live_client()
        if ttl is not None and ttl <= 0:
            await self._command(client.delete(key))
        elif ttl is None:
            await self._command(client.set(key, value))
        else:
            await self._command(client.set(key, value, px=max(1, math.ceil(ttl * 1000))))

    async def delete(self, key: str) -> None:
        await self._command(self._live_client().delete(key))

    async def incr(self, key: str, ttl: float) -> int:
        client = self._live_client()
        with _translated(self.safe_url):
            async with client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, _ms(ttl))
                number, _ = await pipe.execute()
        return int(number)

    async def set_fenced(self, key: str, value: str, ttl: float, fence: Fence) -> bool:
        keys = [fence.counter, key]
        args: list[str | int] = [fence.generation, _ms(fence.ttl), value, _ms(ttl)]
        return bool(await self._script(SET_FENCED, keys, args))

    async def delete_fenced(self, key: str, fence: Fence) -> bool:
        return bool(await self._script(DELETE_FENCED, [fence.counter, key], [fence.generation]))

    async def _script(self, source: str, keys: list[str], args: list[str | int]) -> Any:
        """Run a Lua script by its SHA (EVALSHA), loading it first when Redis lacks it."""
        client = self._live_client()
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        with _translated(self.safe_url):
            return await script(keys=keys, args=args, client=client)

    async def append_bounded(
        self, key: str, values: Sequence[str], ttl: float, max_bytes: int
    ) -> int:
        args: list[str | int] = [_ms(ttl), max_bytes]
        for value in values:
            args += [len(value), value]
        return int(await self._script(APPEND_BOUNDED, [key, key + ":size"], args))

    async def read_list(self, key: str) -> list[str]:
        values = await self._command(self._live_client().lrange(key, 0, -1))
        return [_text(value) for value in values]

    async def delete_list(self, key: str) -> None:
        await self._command(self._live_client().delete(key, key + ":size"))

    async def put_member(self, group: str, key: str, value: str, ttl: float) -> None:
        client = self._live_client()
        with _translated(self.safe_url):
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(key, value, px=_ms(ttl))
                pipe.sadd(group, key)
                # The set goes too once every member stopped renewing itself.
                pipe.pexpire(group, _ms(ttl))
                await pipe.execute()

    async def members(self, group: str) -> dict[str, str]:
        client = self._live_client()
        keys = sorted(_text(key) for key in await self._command(client.smembers(group)))
        if not keys:
            return {}
        values = [
            None if value is None else _text(value)
            for value in await self._command(client.mget(keys))
        ]
        gone = [key for key, value in zip(keys, values, strict=True) if value is None]
        if gone:
            await self._command(client.srem(group, *gone))
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    async def delete_member(self, group: str, key: str) -> None:
        client = self._live_client()
        with _translated(self.safe_url):
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.srem(group, key)
                await pipe.execute()

    async def ping(self) -> bool:
        if not self._connected or self._client is None:
            return False
        try:
            return bool(await self._command(self._client.ping()))
        except BrokerError:
            return False

    def _live_client(self) -> Redis:
        if self._client is None:
            raise BrokerError("the Redis broker is not started")
        if not self._connected:
            raise BrokerUnavailable(f"Redis at {self.safe_url} is unreachable; reconnecting")
        return self._client

    async def _command(self, awaitable: Awaitable[T]) -> T:
        with _translated(self.safe_url):
            return await awaitable

    # Subscribing

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, callback: Callback | None = None
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(channel, callback)
        subscribers = self._channels.setdefault(channel, set())
        first = not subscribers
        subscribers.add(subscription)
        try:
            if not self._connected:
                subscription.deliver(Signal.INTERRUPTED)
            elif first:
                await self._send_subscribe(channel)
            else:
                await self._confirmed(channel)
            yield subscription
        finally:
            subscribers.discard(subscription)
            if not subscribers and self._channels.get(channel) is subscribers:
                del self._channels[channel]
                self._send("UNSUBSCRIBE", channel)

    async def _send_subscribe(self, channel: str) -> None:
        """SUBSCRIBE, and wait until Redis confirms so that nothing published after is lost."""
        waiter = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, deque()).append(waiter)
        if not self._send("SUBSCRIBE", channel):
            return  # the listener is reconnecting; it subscribes this channel when back
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), SUBSCRIBE_WAIT)

    async def _confirmed(self, channel: str) -> None:
        waiters = self._confirmations.get(channel)
        if waiters:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiters[-1]), SUBSCRIBE_WAIT)

    def _send(self, *command: str) -> bool:
        """Queue a command for the PubSub connection; False when that connection is down.

        Writes run in call order (tasks start first-in, first-out), so SUBSCRIBE and
        UNSUBSCRIBE of one channel reach Redis in the order subscribers came and went.
        They run as tasks of their own because redis-py drops a connection whose write
        is cancelled, and a page closing must not drop everybody's subscriptions. Redis
        answers on the same connection, which only the listener reads.
        """
        conn = self._conn
        if not self._connected or conn is None or not conn.is_connected:
            return False
        task = asyncio.create_task(self._write(conn, command))
        self._pubsub_writes.add(task)
        task.add_done_callback(self._written)
        return True

    async def _write(self, conn: AbstractConnection, command: tuple[str, ...]) -> None:
        # Checked with no await before the write: redis-py would otherwise reconnect a
        # dropped connection behind the listener's back.
        if conn is self._conn and conn.is_connected:
            await conn.send_packed_command(conn.pack_command(*command), check_health=False)

    def _written(self, task: asyncio.Task[None]) -> None:
        # A failed write means a lost connection, which the listener notices and reports.
        self._pubsub_writes.discard(task)
        if not task.cancelled():
            task.exception()

    # The listener

    async def _listen_forever(self) -> None:
        while (conn := self._conn) is not None:
            try:
                await self._read(conn)
            except (RedisError, OSError, TimeoutError) as exc:
                self._interrupt(exc)
            except Exception as exc:  # never let the listener die: it is the only one
                log_failure(logger, "the Redis listener failed")
                self._interrupt(exc)
            await self._drop_connection()
            await self._drop_pooled_connections()
            await self._reconnect()

    async def _read(self, conn: AbstractConnection) -> None:
        """Hand every message to its subscribers until the connection fails."""
        pinged = False
        while True:
            response = await conn.read_response(
                timeout=self._health_interval, disconnect_on_error=False, push_request=True
            )
            if response is None:
                if pinged:
                    raise RedisTimeoutError("no answer to PING on the PubSub connection")
                if not conn.is_connected:  # else redis-py would quietly open a new one
                    raise RedisConnectionError("the PubSub connection was closed")
                await conn.send_command("PING", check_health=False)
                pinged = True
                continue
            pinged = False
            self._handle(response)

    def _handle(self, response: Any) -> None:
        if not isinstance(response, list) or len(response) < 3:
            return  # a PONG
        kind, channel = response[0], response[1]
        if kind == "message":
            for subscription in tuple(self._channels.get(channel, ())):
                _deliver(subscription, response[2])
        elif kind == "subscribe":
            waiters = self._confirmations.get(channel)
            if waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                if not waiters:
                    del self._confirmations[channel]

    def _interrupt(self, error: BaseException) -> None:
        if not self._connected:
            return
        self._connected = False
        logger.warning(
            "Redis at %s is unreachable (%s): live updates are interrupted; reconnecting",
            self.safe_url,
            str(error) or type(error).__name__,
        )
        self._release_waiters()
        self._broadcast(Signal.INTERRUPTED)

    async def _reconnect(self) -> None:
        """Try again with capped exponential backoff until Redis answers, then resume."""
        delay, cap = self._backoff
        while True:
            await asyncio.sleep(delay)
            if self._client is None:
                return
            try:
                self._conn, subscribed = await self._open_pubsub(self._client)
            except (RedisError, OSError, TimeoutError) as exc:
                unreachable = isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)
                logger.log(
                    logging.DEBUG if unreachable else logging.WARNING,
                    "Redis at %s: no PubSub connection yet: %s",
                    self.safe_url,
                    exc,
                )
                delay = min(delay * 2, cap)
                continue
            self._connected = True
            leftover = subscribed - set(self._channels)
            if leftover:
                self._send("UNSUBSCRIBE", *leftover)
            logger.warning(
                "Redis at %s is reachable again: live updates resume; events published "
                "meanwhile were lost",
                self.safe_url,
            )
            self._broadcast(Signal.RESUMED)
            return

    async def _open_pubsub(self, client: Redis) -> tuple[AbstractConnection, Names]:
        """A new PubSub connection, subscribed to every channel somebody listens to.

        Subscribers may come while this runs; the loop subscribes them too, so that once
        it returns (and `connected` turns true, with no await between) none is missed.
        Returns the connection and the channels it is subscribed to.
        """
        pool = client.connection_pool
        # Reads on this connection wait for messages as long as they like; the listener
        # bounds each read itself and PINGs when idle.
        conn: AbstractConnection = pool.connection_class(
            **{**pool.connection_kwargs, "socket_timeout": None}
        )
        subscribed: Names = set()
        try:
            async with asyncio.timeout(self._connect_timeout + self._socket_timeout):
                await conn.connect()  # type: ignore[no-untyped-call]
            while missing := set(self._channels) - subscribed:
                await conn.send_command("SUBSCRIBE", *missing, check_health=False)
                await self._await_subscribed(conn, missing, subscribed)
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        return conn, subscribed

    async def _await_subscribed(
        self, conn: AbstractConnection, channels: Names, subscribed: Names
    ) -> None:
        pending: Names = set(channels)
        while pending:
            response = await conn.read_response(
                timeout=self._socket_timeout, disconnect_on_error=False, push_request=True
            )
            if response is None:
                raise RedisTimeoutError("Redis did not confirm SUBSCRIBE in time")
            if isinstance(response, list) and response and response[0] == "subscribe":
                pending.discard(response[1])
                subscribed.add(response[1])
            else:
                self._handle(response)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing the transport is enough; waiting on a dead peer could hang.
            with contextlib.suppress(RedisError, OSError):
                await conn.disconnect(nowait=True)

    async def _drop_pooled_connections(self) -> None:
        # They went with the server: reusing one after its return would fail once more.
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.connection_pool.disconnect()

    def _release_waiters(self) -> None:
        for waiters in self._confirmations.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._confirmations.clear()

    def _broadcast(self, signal: Signal) -> None:
        for subscribers in tuple(self._channels.values()):
            for subscription in tuple(subscribers):
                _deliver(subscription, signal)


def _deliver(subscription: Subscription, item: str | Signal) -> None:
    try:
        subscription.deliver(item)
    except Exception:
        log_failure(logger, "a subscriber's callback failed")
