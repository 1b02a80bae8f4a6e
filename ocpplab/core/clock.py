"""Time, passed in rather than read from globals, so tests can control it."""

from __future__ import annotations

import datetime
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime.datetime:
        """Wall-clock time, timezone-aware UTC: what `currentTime` answers carry."""
        ...

    def monotonic(self) -> float:
        """Seconds that only go forward: what deadlines are measured in."""
        ...


class SystemClock:
    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    def monotonic(self) -> float:
        return time.monotonic()
