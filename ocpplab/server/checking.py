"""Schema checks off the event loop: one worker thread, a bounded number waiting.

Checking a payload costs time in proportion to its size: a valid 1 MiB MeterValues of
75,000 sampled values takes the compiled validator ~50 ms, and listing what is wrong with a
worst-case one up to ~150 ms. On the event loop that would stall every other charger and
page. So the sans-I/O connection (`ocpplab.core.connection.Connection`) checks a small
payload at once and hands a large one (more than `Limits.inline_check_bytes` of frame text)
over as a `PendingCheck`; the charger's session awaits `CheckRunner.run(pending.check)` and
reads its next frame only after, so that its frames keep their order. What to check, and
against which OCPP version's schemas, is the check's business: this runner knows neither.

One thread, not one per charger nor asyncio's default executor: the checks hold the GIL,
and several threads holding it in turn would leave the event loop a smaller share of the
interpreter with each. While that thread checks, each time the loop wakes it may wait for
the GIL as long as the interpreter's switch interval, 5 ms by default: a heartbeat's answer
took up to 90 ms then, and 30 ms at 1 ms, which the first check sets (`SWITCH_INTERVAL`).

Bounded, because a payload waiting to be checked is held parsed in memory (up to some 25
times its text): past `max_pending` checks waiting or running, `run` answers None at once,
and the connection answers the frame unchecked and says so.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


MAX_PENDING = 4
SWITCH_INTERVAL = 0.001


class CheckRunner:
    """Runs schema checks on one worker thread of its own, at most `max_pending` at a time."""

    def __init__(self, *, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._slots = threading.BoundedSemaphore(max_pending)
        # Its thread starts with the first check.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocpplab-schemas")

    async def run(self, check: Callable[[], T]) -> T | None:
        """`check()`'s result (a payload's violations, a recording read), computed on the
        worker thread; None, without running it, when `max_pending` are already waiting
        or running."""
        if not self._slots.acquire(blocking=False):
            return None
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            future = self._executor.submit(check)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _: Future[Any]) -> None:
        # Called when the check ends, or when it is cancelled before it began.
        self._slots.release()
