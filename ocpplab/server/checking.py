"""Schema checks for the gateway: small payloads at once, large ones on a thread of their own.

Checking a payload costs time in proportion to its size: a valid 1 MiB MeterValues of
75,000 sampled values takes the compiled validator ~50 ms, and listing what is wrong with a
worst-case one up to ~150 ms. On the event loop that would stall every other charger and
page. So a payload of more than `inline_bytes` (of frame text) is checked on one worker
thread, while the charger's session awaits the result (and so reads its next frame only
after: its frames keep their order). A small one, nearly every frame, is checked at once:
a hop to a thread would cost more than the check.

One thread for the whole process, not one per charger nor asyncio's default executor: the
checks hold the GIL, and several threads holding it in turn would leave the event loop a
smaller share of the interpreter with each. While that thread checks, each time the loop
wakes it may wait for the GIL as long as the interpreter's switch interval, 5 ms by default:
a heartbeat's answer took up to 90 ms then, and 30 ms at 1 ms, which the first large payload
sets (`SWITCH_INTERVAL`). And the queue is bounded, because a payload waiting to be checked
is held parsed in memory (up to some 25 times its text): past `max_pending`, a large
payload is answered unchecked, and its frame says so.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ocpplab.core import schemas

INLINE_BYTES = 8192
MAX_PENDING = 4
SWITCH_INTERVAL = 0.001
NOT_CHECKED = (
    "not checked against the schema: the central system was busy checking other large frames"
)


class Validation:
    """Checks payloads against their OCPP 1.6 schemas (`schemas.validate`) without stalling."""

    def __init__(self, *, inline_bytes: int = INLINE_BYTES, max_pending: int = MAX_PENDING) -> None:
        self.inline_bytes = inline_bytes
        self.max_pending = max_pending
        self._slots = threading.BoundedSemaphore(max_pending)
        # Its thread starts with the first large payload.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocpplab-schemas")

    def inline(self, size: int) -> bool:
        """Whether a payload of `size` (the length of its frame's text) is checked at once."""
        return size <= self.inline_bytes

    async def check(
        self, action: str, payload: Any, *, response: bool, size: int
    ) -> list[schemas.Violation] | None:
        """The payload's violations; None when it is large and `max_pending` are waiting."""
        if self.inline(size):
            return schemas.validate(action, payload, response=response)
        if not self._slots.acquire(blocking=False):
            return None
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            future = self._executor.submit(schemas.validate, action, payload, response=response)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _: Future[list[schemas.Violation]]) -> None:
        # Called when the check ends, or when it is cancelled before it began.
        self._slots.release()


# One per process: the thread and the bound are shared by every gateway of the process,
# as the GIL and the memory they guard are.
SHARED = Validation()
