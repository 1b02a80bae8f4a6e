"""Which chargers the whole central system holds: this instance's, and every other's.

Each instance keeps one small record in the broker (`broker.keys.instance_key`, listed in
`broker.keys.INSTANCES`): how many chargers it holds and the first `LISTED` of them by identity.
It is written soon after a charger comes or goes (changes in a burst are gathered into one
write) and renewed every `REFRESH` seconds with a `TTL` of a few refreshes, so an instance
that died unannounced drops out of every count within `TTL`. Readers merge this instance's
own sessions (exact, read in memory) with the other instances' records: `/healthz` and the
landing page never scan the key space, and cost one or two round trips however large the
fleet is. The record is also how a reader tells whether the instance named by a presence
record is still alive (`alive`).

With the memory broker there are no other instances, and the same code counts this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import math
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from ocpplab.broker.base import Broker
from ocpplab.broker.keys import INSTANCES, instance_key
from ocpplab.core.errors import BrokerError
from ocpplab.logs import log_failure

logger = logging.getLogger("ocpplab.server.roster")

LISTED = 50  # the landing page lists at most this many chargers
REFRESH = 2.0
TTL = 4 * REFRESH  # an instance silent this long (8 s) counts as gone
GATHER = 0.25  # changes within this long go out as one write


class Held(Protocol):
    """What the roster needs of a charger session."""

    @property
    def identity(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def connected_since(self) -> str: ...
    @property
    def subprotocol(self) -> str | None: ...
    @property
    def replaced(self) -> bool: ...


def listing(session: Held) -> dict[str, Any]:
    """A charger as the landing page lists it: the presence record's first fields."""
    return {
        "identity": session.identity,
        "connected": True,
        "connected_since": session.connected_since,
        "subprotocol": session.subprotocol,
        "session": session.id,
    }


class Roster:
    """This instance's record in the broker, and the merged view of every instance's."""

    def __init__(self, broker: Broker, sessions: Mapping[str, Held]) -> None:
        self.instance = uuid.uuid4().hex
        self.key = instance_key(self.instance)
        self._broker = broker
        self._sessions = sessions
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf
        self._writing: asyncio.Task[None] | None = None
        self._listed = False  # a record of ours may be in the broker
        self._live = False  # the last write put our record there
        self._closed = False

    def local(self, limit: int = LISTED) -> tuple[int, list[dict[str, Any]]]:
        """This instance's chargers: how many, and the first `limit` by identity.

        A session replaced by a newer connection (maybe on another host) is not counted,
        though it lingers here until its socket has closed.
        """
        live = [session for session in self._sessions.values() if not session.replaced]
        first = heapq.nsmallest(limit, live, key=lambda session: session.identity)
        return len(live), [listing(session) for session in first]

    async def connected(self, limit: int = LISTED) -> tuple[int, list[dict[str, Any]]]:
        """Every instance's chargers: the count, and the first `limit` by identity.

        Raises `BrokerError` when the other instances' records cannot be read.
        """
        count, entries = self.local(limit)
        for key, text in (await self._broker.members(INSTANCES)).items():
            if key == self.key:
                continue
            others, listed = _record(text)
            count += others
            entries += listed
        unique = {entry["identity"]: entry for entry in reversed(entries)}
        return count, sorted(unique.values(), key=lambda entry: entry["identity"])[:limit]

    async def alive(self, instance: str) -> bool:
        """Whether `instance` (this one, or one whose record has not expired) is running."""
        if instance == self.instance:
            return True
        return await self._broker.get(instance_key(instance)) is not None

    async def joined(self) -> None:
        """A charger came: returns once this instance's record is in the broker.

        Only the first charger of an instance waits (a round trip): readers on other
        instances believe a presence record only while its instance's record is alive
        (`alive`), so the instance's must be there before the charger's presence is.
        """
        for _ in range(2):  # a write in flight may be the removal that the last charger left
            if self._live or self._closed:
                break
            if self._writing is None or self._writing.done():
                self._cancel_timer()
                self._writing = asyncio.ensure_future(self._write())
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writing)
        self.changed()

    def changed(self) -> None:
        """A charger came or went: write the record soon (at once for the last)."""
        if self._closed:
            return
        self._arm(0.0 if not self._sessions else GATHER)

    async def close(self) -> None:
        """Take this instance's record out at once (at shutdown), instead of within TTL."""
        self._closed = True
        self._cancel_timer()
        if self._writing is not None:
            with contextlib.suppress(BaseException):
                await self._writing
        with contextlib.suppress(BrokerError):
            await self._broker.delete_member(INSTANCES, self.key)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._due = None, math.inf

    def _arm(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if self._timer is not None:
            if self._due <= due:
                return
            self._timer.cancel()
        self._due = due
        self._timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer, self._due = None, math.inf
        if self._closed:
            return
        if self._writing is not None and not self._writing.done():
            self._arm(GATHER)  # one write at a time, so they cannot land out of order
            return
        self._writing = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        count, entries = self.local()
        try:
            if count:
                self._listed = True
                record = json.dumps({"count": count, "chargers": entries})
                await self._broker.put_member(INSTANCES, self.key, record, TTL)
                self._live = True
            elif self._listed:
                self._live = False
                await self._broker.delete_member(INSTANCES, self.key)
                self._listed = False
        except BrokerError:
            pass  # the next refresh tries again; meanwhile the record expires or stays stale
        except Exception:
            log_failure(logger, "this instance's record could not be written")
        if count and not self._closed:
            self._arm(REFRESH)


def _record(text: str) -> tuple[int, list[dict[str, Any]]]:
    """Another instance's record; one that cannot be read counts as empty."""
    try:
        record = json.loads(text)
        count = int(record["count"])
        entries = [
            entry
            for entry in record["chargers"]
            if isinstance(entry, dict) and isinstance(entry.get("identity"), str)
        ]
    except (ValueError, TypeError, KeyError):
        return 0, []
    return max(0, count), entries[:LISTED]
