"""Redis PubSub broker (see issue: Redis PubSub). Placeholder until that work lands."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ocpplab.broker import Broker, Callback, Subscription
from ocpplab.exceptions import BrokerError


class RedisBroker(Broker):
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        raise BrokerError("the Redis broker is not built yet")

    async def publish(self, channel: str, message: str) -> int:
        raise BrokerError("not built")

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, callback: Callback | None = None
    ) -> AsyncIterator[Subscription]:
        raise BrokerError("not built")
        yield Subscription(channel)

    async def get(self, key: str) -> str | None:
        raise BrokerError("not built")

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        raise BrokerError("not built")

    async def delete(self, key: str) -> None:
        raise BrokerError("not built")

    async def ping(self) -> bool:
        return False
