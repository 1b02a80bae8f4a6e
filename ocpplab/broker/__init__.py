"""The broker layer: one interface (`base.Broker`), two implementations, chosen by URL."""

from __future__ import annotations

from ocpplab.broker.base import Broker
from ocpplab.broker.memory import MemoryBroker


def broker_from_url(url: str | None) -> Broker:
    """`None` or `memory://` -> MemoryBroker; `redis://…` -> RedisBroker."""
    if not url or url.startswith("memory://"):
        return MemoryBroker()
    from ocpplab.broker.redis import RedisBroker  # imported only when asked for

    return RedisBroker(url)
