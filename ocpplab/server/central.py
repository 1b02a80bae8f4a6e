"""What a person (through a form) or a script (through the API) can ask of the central system.

The dashboard's forms and the JSON API are two faces of these same methods. Everything
goes through the broker, so it works the same whether the charger is held by this process
or by another host.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from typing import Any

from ocpplab.broker.base import Broker, Signal
from ocpplab.broker.keys import (
    commands_channel,
    disconnect_key,
    events_channel,
    history_key,
    presence_key,
    refused_key,
    sequences_key,
    settings_key,
)
from ocpplab.config import Settings
from ocpplab.core import messages
from ocpplab.core.connection import sequence_position
from ocpplab.core.errors import (
    BrokerError,
    CallTimeout,
    ChargerOffline,
    InvalidBody,
    NotFound,
    UnknownAction,
)
from ocpplab.core.messages import (
    AnswerHeld,
    AnswerRefused,
    CancelCall,
    Command,
    CutConnection,
    NewSettings,
    Released,
    ReplayEvent,
    RestartSequence,
    SendCall,
    SendRaw,
    Sent,
    SettingsChanged,
    decode_event,
)
from ocpplab.core.responder import VALIDATIONS, AnyRule, ResponderSettings
from ocpplab.server.gateway import Gateway
from ocpplab.server.roster import LISTED

ANSWER_WAIT = 3.0


def offline(identity: str) -> dict[str, Any]:
    """The status of an identity that no instance holds."""
    return {
        "identity": identity,
        "connected": False,
        "connected_since": None,
        "subprotocol": None,
        "state": None,
    }


def _as_new(session: str, generation: int | None, record: dict[str, Any]) -> bool:
    """Whether a session of this instance is the one `record` names, or a newer one whose
    record is being written."""
    if session == record.get("session"):
        return True
    named = record.get("generation")
    return isinstance(named, int) and generation is not None and generation > named


def _presence(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("connected") else None


def _closed(text: str | None) -> dict[str, Any]:
    """The "offline since" facts of a status from the identity's stored close (if any)."""
    if not text:
        return {}
    try:
        close = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(close, dict) or not isinstance(close.get("code"), int):
        return {}
    return {
        "disconnected_at": str(close.get("at") or "") or None,
        "close_code": close["code"],
        "close_reason": str(close.get("reason") or ""),
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How a central-system call ended: "result", "error", "timeout" or "offline"."""

    unique_id: str
    action: str
    outcome: str
    payload: Any = None
    error: dict[str, Any] | None = None
    rtt_ms: float | None = None
    violations: list[dict[str, str]] = dataclasses.field(default_factory=list)


MAX_CUT = 600.0  # seconds a check may keep a charger offline


class CentralSystem:
    """The operations behind every form and API endpoint."""

    def __init__(self, settings: Settings, broker: Broker, gateway: Gateway) -> None:
        self.settings = settings
        self.broker = broker
        self.gateway = gateway
        self.dialect = gateway.dialects[0]  # what the forms and the API speak

    # Charger status

    async def status(self, identity: str) -> dict[str, Any]:
        """`connected`, since when, subprotocol and derived state, wherever the charger is.

        One source of truth for every view: the presence record, which only the newest
        connection of the identity may write (`broker.base.Fence`). It names the session and
        the instance that holds it; that instance answers from the live session (whose
        state the record carries some seconds late), any other from the record, as long
        as the holder's instance record is alive. So no two instances disagree on who
        holds a charger, also right after a takeover across hosts, and a record left by
        a connection that is gone, or by an instance that died, says "not connected".

        Not connected, and its last connection's history kept (`history`): when and how
        that connection ended, as `disconnected_at`, `close_code` and `close_reason`.
        Raises `BrokerError` when the broker cannot be read.
        """
        text = await self.broker.get(presence_key(identity))
        record = _presence(text)
        if record is None:
            return await self._offline(identity)
        roster = self.gateway.roster
        if record.get("instance") == roster.instance:
            session = self.gateway.sessions.get(identity)
            if session is None or not _as_new(session.id, session.generation, record):
                return await self._offline(identity)
            return session.presence()
        if not await roster.alive(str(record.get("instance"))):
            return await self._offline(identity)
        return record

    async def _offline(self, identity: str) -> dict[str, Any]:
        status = offline(identity)
        status.update(_closed(await self.broker.get(disconnect_key(identity))))
        return status

    async def history(self, identity: str, *, page: str = "") -> ReplayEvent | None:
        """What the identity's last connection showed when it ended, for `page`: its
        recent events (its close last), its connection and its last state, kept for
        `history_ttl` seconds (`gateway.Histories`); None when there is none (never
        connected, expired, turned off, unreadable). A page that finds no process
        holding the charger shows this instead of waiting for a replay.

        Raises `BrokerError` when the broker cannot be read.
        """
        text = await self.broker.get(history_key(identity))
        event = decode_event(text) if text else None
        if not isinstance(event, ReplayEvent):
            return None
        event.page = page
        return event

    async def connected(self, limit: int = LISTED) -> tuple[int, list[dict[str, Any]]]:
        """How many chargers the whole central system holds, and the first `limit` of them
        by identity (presence-like records: identity, connected_since, subprotocol, session).

        Every instance's chargers with Redis (see `roster`); this process's with the memory
        broker. Raises `BrokerError` when the other instances' records cannot be read.
        """
        return await self.gateway.roster.connected(limit)

    # Responder settings

    async def responder_settings(self, identity: str) -> ResponderSettings:
        text = await self.broker.get(settings_key(identity))
        return ResponderSettings.from_json(json.loads(text)) if text else ResponderSettings()

    async def save_responder_settings(self, identity: str, settings: ResponderSettings) -> None:
        """Store settings (TTL refreshed) and tell the gateway and every page at once."""
        data = settings.to_json()
        await self.broker.set(settings_key(identity), json.dumps(data), self.settings.settings_ttl)
        await self.broker.publish(commands_channel(identity), NewSettings(settings=data).encode())
        await self.broker.publish(events_channel(identity), SettingsChanged(settings=data).encode())
        await self.gateway.recorder.rules_changed(identity, data)

    # Recordings (server/recorder.py)

    async def start_recording(self, identity: str) -> dict[str, Any]:
        """Record the identity from now on (a previous recording is discarded)."""
        settings = await self.responder_settings(identity)
        return await self.gateway.recorder.start(identity, settings.to_json())

    async def stop_recording(self, identity: str) -> dict[str, Any]:
        return await self.gateway.recorder.stop(identity)

    async def recording_state(self, identity: str) -> dict[str, Any]:
        return await self.gateway.recorder.state(identity)

    async def recording(self, identity: str) -> str:
        """The identity's recording as NDJSON; raises `NotFound` when there is none."""
        text = await self.gateway.recorder.text(identity)
        if not text:
            raise NotFound(f"there is no recording of {identity!r} (or it expired)")
        return text

    async def discard_recording(self, identity: str) -> None:
        await self.gateway.recorder.discard(identity)

    async def set_rule(self, identity: str, action: str, rule: AnyRule | None) -> ResponderSettings:
        """Set (or, with None, reset to default) the rule or sequence for one
        charger-initiated action; its sequence starts over."""
        if not self.dialect.is_charger_action(action):
            raise UnknownAction(
                f"{action!r} is not an action a charger sends in {self.dialect.name}"
            )
        # The restart reaches the charger's gateway before the new rule does: a call
        # answered in between is one of the old rule's (its own restart comes with the
        # new rule, `Connection._new_settings`), never a step of the new one skipped.
        await self._restart_positions(identity, action)
        settings = (await self.responder_settings(identity)).with_rule(action, rule)
        await self.save_responder_settings(identity, settings)
        await self._publish_position(identity, action, settings, 0)
        return settings

    # Answer sequences

    async def sequence_positions(self, identity: str) -> dict[str, int]:
        """Every action's sequence position: the calls its sequence answered so far."""
        text = await self.broker.get(sequences_key(identity))
        try:
            stored = json.loads(text) if text else {}
        except ValueError:
            return {}
        if not isinstance(stored, dict):
            return {}
        return {
            action: position
            for action, position in stored.items()
            if isinstance(position, int) and not isinstance(position, bool) and position > 0
        }

    async def restart_sequence(self, identity: str, action: str | None) -> None:
        """Start `action`'s answer sequence over (None: every action's), also offline."""
        if action is not None and not self.dialect.is_charger_action(action):
            raise UnknownAction(
                f"{action!r} is not an action a charger sends in {self.dialect.name}"
            )
        restarted = await self._restart_positions(identity, action)
        settings = await self.responder_settings(identity)
        for name in [action] if action is not None else restarted:
            await self._publish_position(identity, name, settings, 0)

    async def _restart_positions(self, identity: str, action: str | None) -> list[str]:
        """Store the restart (for a charger that is offline now), then tell the gateway
        holding the charger, whose positions are the live ones; the actions restarted."""
        positions = await self.sequence_positions(identity)
        restarted = [action] if action is not None else list(positions)
        if any(name in positions for name in restarted):
            for name in restarted:
                positions.pop(name, None)
            await self._store_positions(identity, positions)
        await self.broker.publish(
            commands_channel(identity), RestartSequence(action=action).encode()
        )
        return restarted

    async def _store_positions(self, identity: str, positions: dict[str, int]) -> None:
        key = sequences_key(identity)
        if positions:
            await self.broker.set(key, json.dumps(positions), self.settings.settings_ttl)
        else:
            await self.broker.delete(key)

    async def _publish_position(
        self, identity: str, action: str, settings: ResponderSettings, position: int
    ) -> None:
        """Tell every page where `action`'s sequence is (pages of an offline charger too)."""
        event = sequence_position(action, settings.sequence(action), position)
        await self.broker.publish(events_channel(identity), event.encode())

    async def set_validation(self, identity: str, policy: str) -> ResponderSettings:
        """Answer calls that break their request schema leniently or strictly."""
        if policy not in VALIDATIONS:
            raise InvalidBody(f"validation must be one of {', '.join(VALIDATIONS)}")
        settings = await self.responder_settings(identity)
        settings = dataclasses.replace(settings, validation=policy)  # type: ignore[arg-type]
        await self.save_responder_settings(identity, settings)
        return settings

    # Central-system calls and raw frames

    async def call(
        self,
        identity: str,
        action: str,
        payload: Any,
        *,
        concurrent: bool = False,
        unique_id: str | None = None,
        wait: bool = True,
    ) -> Outcome:
        """Send a CALL to the charger and wait for its CALLRESULT, CALLERROR or timeout.

        Raises `ChargerOffline` at once when no process holds the charger.
        """
        if not self.dialect.is_central_action(action):
            raise UnknownAction(
                f"{action!r} is not an action a central system sends in {self.dialect.name}"
            )
        unique_id = unique_id or str(uuid.uuid4())
        command = SendCall(
            unique_id=unique_id, action=action, payload=payload, concurrent=concurrent
        )
        async with self.broker.subscribe(events_channel(identity)) as events:
            await self._command(identity, command)
            if not wait:
                return Outcome(unique_id, action, "sent")
            return await self._await_outcome(events, unique_id, action)

    async def _await_outcome(self, events: Any, unique_id: str, action: str) -> Outcome:
        # A queued call may wait for earlier ones; once sent, the gateway's own timeout
        # ends it, so this deadline is only a safety net.
        deadline = time.monotonic() + 10 * self.settings.call_timeout + 5
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = await asyncio.wait_for(events.get(), remaining)
            except TimeoutError:
                break
            if isinstance(item, Signal):
                continue
            event = decode_event(item)
            if isinstance(event, Sent) and event.unique_id == unique_id:
                deadline = time.monotonic() + self.settings.call_timeout + 5
            elif isinstance(event, messages.Outcome) and event.unique_id == unique_id:
                return Outcome(
                    unique_id,
                    action,
                    event.outcome,
                    event.payload,
                    event.error,
                    event.rtt_ms,
                    event.violations,
                )
        raise CallTimeout(f"{action} {unique_id}: no outcome from the charger's gateway")

    async def _command(self, identity: str, command: Command) -> None:
        """Hand a command to whichever process holds the charger; raises `ChargerOffline`."""
        if await self.broker.publish(commands_channel(identity), command.encode()) == 0:
            raise ChargerOffline(f"no charger {identity!r} is connected")

    async def cut(self, identity: str, seconds: float) -> None:
        """Close the charger's connection and refuse it for `seconds` (at most
        `MAX_CUT`), wherever it is connected; raises `ChargerOffline`."""
        seconds = max(1.0, min(float(seconds), MAX_CUT))
        await self.broker.set(refused_key(identity), "1", seconds)
        await self._command(identity, CutConnection(seconds=seconds))

    async def send_frame(self, identity: str, text: str) -> None:
        """Send `text` to the charger exactly as given; raises `ChargerOffline`."""
        await self._command(identity, SendRaw(text=text))

    async def cancel(self, identity: str, unique_id: str) -> None:
        """Take a queued call out of the queue before it is sent (an outcome follows)."""
        await self._command(identity, CancelCall(unique_id=unique_id))

    async def answer_held(self, identity: str, unique_id: str, reply: dict[str, Any]) -> bool:
        """Answer a held (manual) call. True when this answer won, False when it was too late.

        `reply` is `{"payload": {...}}`, `{"error": {"code", "description", "details"}}` or
        `{"ignore": true}`.
        """
        token = uuid.uuid4().hex
        error = reply.get("error")
        command = AnswerHeld(
            unique_id=unique_id,
            payload=reply.get("payload"),
            error=error if isinstance(error, dict) else None,
            ignore=bool(reply.get("ignore")),
            token=token,
        )
        async with self.broker.subscribe(events_channel(identity)) as events:
            await self._command(identity, command)
            try:
                async with asyncio.timeout(ANSWER_WAIT):
                    async for item in events:
                        if isinstance(item, Signal):
                            continue
                        event = decode_event(item)
                        if isinstance(event, Released | AnswerRefused) and event.by == token:
                            return isinstance(event, Released)
            except TimeoutError:
                raise BrokerError("the charger's gateway did not confirm the answer") from None
        return False
