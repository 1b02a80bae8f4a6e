"""Recordings: an identity's frames and connection events, kept in the broker's memory.

A recording is a bounded list of NDJSON lines (README "Recordings") under the identity's
`recording_key`, so any instance can download it, and nothing goes to disk (Redis is run
without persistence; the memory broker is memory). Whether the identity is being recorded
is a small record under `recording_state_key`, read by the gateway when a charger connects
and changed through commands while it is connected.

Lines of one identity are appended in the order they were made, by one flush at a time per
identity. The list is bounded by `OCPPLAB_RECORDING_LIMIT` characters: at the limit the
recording ends with a `truncated` line and stops, and the pages are told; it is kept for
`OCPPLAB_RECORDING_TTL` seconds after its last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from ocpplab.broker.base import Broker
from ocpplab.broker.keys import (
    commands_channel,
    events_channel,
    recording_key,
    recording_state_key,
)
from ocpplab.config import Settings
from ocpplab.core.clock import Clock
from ocpplab.core.errors import BrokerError
from ocpplab.core.frames import dumps_compact
from ocpplab.core.messages import Record, RecordingState
from ocpplab.core.recording import FORMAT, VERSION, line_text
from ocpplab.core.responder import format_time
from ocpplab.logs import log_failure

logger = logging.getLogger("ocpplab.server.recorder")

TRUNCATED_ROOM = 1024  # the closing `truncated` line may pass the limit by this much


class Recorder:
    """Appends recording lines for every identity of this process, in order, within bounds."""

    def __init__(self, settings: Settings, broker: Broker, clock: Clock) -> None:
        self.settings = settings
        self.broker = broker
        self.clock = clock
        self._pending: dict[str, list[str]] = {}
        self._flushing: dict[str, asyncio.Task[None]] = {}

    # The state of an identity's recording

    async def state(self, identity: str) -> dict[str, Any]:
        """`{"on": bool, "started": time | None, "truncated": bool}`; off when never started."""
        text = await self.broker.get(recording_state_key(identity))
        try:
            state = json.loads(text) if text else None
        except ValueError:
            state = None
        if not isinstance(state, dict):
            return {"on": False, "started": None, "truncated": False}
        return {
            "on": bool(state.get("on")),
            "started": state.get("started"),
            "truncated": bool(state.get("truncated")),
        }

    async def is_on(self, identity: str) -> bool:
        """For a charger connecting: is it being recorded? (False when the broker is away.)"""
        try:
            return bool((await asyncio.wait_for(self.state(identity), 2.0))["on"])
        except (BrokerError, TimeoutError):
            return False

    async def start(self, identity: str, settings_json: dict[str, Any]) -> dict[str, Any]:
        """Begin a new recording (the previous one is discarded); the connected charger, on
        whichever instance, begins recording its frames when it hears the command."""
        now = format_time(self.clock.now())
        await self.broker.delete_list(recording_key(identity))
        state = {"on": True, "started": now, "truncated": False}
        await self._set_state(identity, state)
        from ocpplab import __version__

        header = line_text(
            "recording",
            now,
            format=FORMAT,
            version=VERSION,
            identity=identity,
            ocpplab=__version__,
        )
        await self._append_now(identity, [header, line_text("rules", now, settings=settings_json)])
        await self._announce(identity, on=True, started=now)
        return state

    async def stop(self, identity: str) -> dict[str, Any]:
        state = await self.state(identity)
        state["on"] = False
        await self._set_state(identity, state)
        await self._announce(
            identity, on=False, truncated=state["truncated"], started=state["started"]
        )
        return state

    async def discard(self, identity: str) -> None:
        await self.stop(identity)
        await self.broker.delete_list(recording_key(identity))
        await self.broker.delete(recording_state_key(identity))

    async def text(self, identity: str) -> str:
        """The recording as NDJSON (empty when there is none)."""
        lines = await self.broker.read_list(recording_key(identity))
        return "".join(item + "\n" for item in lines)

    async def rules_changed(self, identity: str, settings_json: dict[str, Any]) -> None:
        """A rule changed: recorded when the identity is being recorded."""
        if (await self.state(identity))["on"]:
            self.append(
                identity,
                [line_text("rules", self.clock.now(), settings=settings_json)],
            )

    # Appending

    def append(self, identity: str, lines: list[str]) -> None:
        """Queue lines for the identity's recording; they are written in order, soon."""
        if not lines:
            return
        self._pending.setdefault(identity, []).extend(lines)
        if identity not in self._flushing:
            task = asyncio.ensure_future(self._flush(identity))
            self._flushing[identity] = task

    async def close(self) -> None:
        """Write what is pending (at shutdown)."""
        for task in list(self._flushing.values()):
            with contextlib.suppress(Exception):
                await task

    async def _flush(self, identity: str) -> None:
        try:
            while lines := self._pending.pop(identity, None):
                await self._append_now(identity, lines)
        except BrokerError:
            self._pending.pop(identity, None)  # lost with the broker; the pages are told
        except Exception:
            log_failure(logger, "writing a recording failed")
        finally:
            self._flushing.pop(identity, None)

    async def _append_now(self, identity: str, lines: list[str]) -> None:
        key, limit = recording_key(identity), self.settings.recording_limit
        ttl = self.settings.recording_ttl
        taken = await self.broker.append_bounded(key, lines, ttl, limit)
        if taken == len(lines):
            return
        reason = (
            f"the recording reached its limit of {limit:,} characters (OCPPLAB_RECORDING_LIMIT)"
        )
        closing = line_text("truncated", self.clock.now(), reason=reason)
        await self.broker.append_bounded(key, [closing], ttl, limit + TRUNCATED_ROOM)
        self._pending.pop(identity, None)
        state = await self.state(identity)
        await self._set_state(identity, {**state, "on": False, "truncated": True})
        await self._announce(identity, on=False, truncated=True, started=state["started"])

    async def _set_state(self, identity: str, state: dict[str, Any]) -> None:
        key = recording_state_key(identity)
        await self.broker.set(key, dumps_compact(state), self.settings.recording_ttl)

    async def _announce(
        self, identity: str, *, on: bool, truncated: bool = False, started: str | None = None
    ) -> None:
        await self.broker.publish(commands_channel(identity), Record(on=on).encode())
        at = format_time(self.clock.now())
        event = RecordingState(on=on, truncated=truncated, started=started or at, at=at)
        await self.broker.publish(events_channel(identity), event.encode())
