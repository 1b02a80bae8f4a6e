"""Failed logins, slowed per source: guessing a password costs the guesser time, not us.

Each failure from a source doubles the wait before that source's next refusal is sent
(from `FIRST_DELAY` up to `MAX_DELAY`); a success, or `FORGET_AFTER` seconds without a
failure, forgets the source. The table is bounded (`max_sources`): when it is full, the
source that failed longest ago is forgotten first, so a spray of addresses costs bounded
memory. Waiting is the caller's `asyncio.sleep`, which holds no thread and no socket
buffer beyond the connection the attacker already opened.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FIRST_DELAY = 0.25
MAX_DELAY = 5.0
FORGET_AFTER = 600.0
MAX_SOURCES = 10_000


class FailedLogins:
    """Per-source count of recent failed logins, and how long to wait before refusing."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        forget_after: float = FORGET_AFTER,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        self._clock = clock
        self._first = first_delay
        self._max = max_delay
        self._forget_after = forget_after
        self._max_sources = max_sources
        # source -> (failures, time of the last one); dicts keep insertion order, and each
        # failure re-inserts its source, so the first key is the one that failed longest ago.
        self._failures: dict[str, tuple[int, float]] = {}

    def failed(self, source: str) -> float:
        """Note a failed login from `source`; returns the seconds to wait before refusing it."""
        now = self._clock()
        count, last = self._failures.pop(source, (0, now))
        if now - last > self._forget_after:
            count = 0
        count = min(count + 1, 64)  # enough to reach MAX_DELAY; a float never overflows
        self._failures[source] = (count, now)
        while len(self._failures) > self._max_sources:
            del self._failures[next(iter(self._failures))]
        delay: float = min(self._max, self._first * 2.0 ** (count - 1))
        return delay

    def succeeded(self, source: str) -> None:
        """A correct password from `source`: forget its failures."""
        self._failures.pop(source, None)

    def __len__(self) -> int:
        return len(self._failures)
