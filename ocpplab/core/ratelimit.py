"""The per-charger rate limit, sans-I/O: a token bucket, and a flood that lasts too long.

A refused frame must cost little, or a flooder still wins: it is not parsed (the gateway
reads only a CALL's unique id from the start of the text, `core.frames.frame_start`, so that
the CALL can be answered with a CALLERROR as OCPP-J 1.6 section 4.2.3 asks), it is not
shown frame by frame (one notice when refusing starts, then one a second with the count),
and a charger that stays over the limit for `flood_disconnect` seconds is disconnected.
"""

from __future__ import annotations

# A flood ends after this many seconds without a refused frame.
QUIET = 1.0
# How often the page hears how many frames were refused.
REPORT_EVERY = 1.0


class RateLimit:
    """A token bucket of `rate` frames a second (burst: twice that), and the flood's length."""

    __slots__ = (
        "_at",
        "_first_due",
        "_tokens",
        "flood_since",
        "last_refused",
        "rate",
        "refused",
        "reported_at",
    )

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._tokens = 2.0 * rate
        self._at = now
        self.flood_since = 0.0  # when this flood began (valid while flooding)
        self.last_refused = -QUIET  # monotonic time of the last refused frame
        self.refused = 0  # frames refused since the last report
        self.reported_at = 0.0
        self._first_due = False  # a new flood's first refusal is not reported yet

    def take(self, now: float) -> bool:
        """True when a frame received at `now` is within the limit."""
        self._tokens = min(2.0 * self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        if now - self.last_refused > QUIET:
            self.flood_since, self.refused, self.reported_at = now, 0, now
            self._first_due = True
        self.last_refused = now
        self.refused += 1
        return False

    def flooding_for(self, now: float) -> float:
        """Seconds the current flood has lasted; 0 when there is none."""
        if now - self.last_refused > QUIET:
            return 0.0
        return now - self.flood_since

    def report_due(self, now: float) -> int:
        """How many refusals to report now (0: not yet): the first at once, then each second."""
        if self._first_due:
            self._first_due, self.refused = False, 0
            return 1
        if now - self.reported_at >= REPORT_EVERY and self.refused:
            count, self.refused, self.reported_at = self.refused, 0, now
            return count
        return 0
