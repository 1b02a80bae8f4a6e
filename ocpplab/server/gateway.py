"""The gateway: holds charger websockets and answers them, page or no page.

A thin I/O layer around the sans-I/O core (`protocol`, `responder`, `state`). Each
connection is a `ChargerSession`. It answers from responder settings cached in this
process, so answering never waits on the broker; it hears commands (operations, raw
frames, manual answers, new settings, takeovers) through a callback subscription, and
publishes what happened through one gateway-wide publisher task, so an idle charger costs
no task of its own besides the one the server gives its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import math
import random
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from ocpplab.broker.base import Broker, Fence, Signal
from ocpplab.broker.keys import (
    commands_channel,
    events_channel,
    generation_key,
    presence_key,
    settings_key,
    transactions_key,
)
from ocpplab.config import Settings
from ocpplab.core import schemas
from ocpplab.core.clock import Clock
from ocpplab.core.errors import BrokerError
from ocpplab.core.frames import (
    CALL,
    Call,
    CallError,
    CallResult,
    InvalidFrame,
    Outbox,
    Outgoing,
    check_call,
    dumps_compact,
    encodable,
    frame_start,
    message_type_name,
    parse,
)
from ocpplab.core.identity import identity_problem
from ocpplab.core.ratelimit import RateLimit
from ocpplab.core.replay import (
    FrameRecord,
    Replay,
    ReplayBudget,
    frame_size,
    shrunk_event,
    truncated,
)
from ocpplab.core.responder import (
    AnswerContext,
    Hold,
    Reply,
    ResponderSettings,
    Silence,
    fallback_answer,
    format_time,
    respond,
)
from ocpplab.dialects.ocpp16.state import ChargerState
from ocpplab.logs import log_failure
from ocpplab.server import checking as validation
from ocpplab.server import tls
from ocpplab.server.credentials import ChargerCredentials
from ocpplab.server.roster import Roster

logger = logging.getLogger("ocpplab.server.gateway")

SUBPROTOCOL = "ocpp1.6"
WATCH_TTL = 60.0  # a page re-announces itself every WATCH_TTL / 3 seconds
# A page already open hears of a new connection, then asks to watch it; the first frames
# (a BootNotification at once) must not slip through meanwhile, so they are published anyway.
CONNECT_GRACE = 10.0
PRESENCE_TTL = 90.0
PRESENCE_REFRESH = 30.0
STATE_FLUSH = 0.2  # a watching page sees the derived state this soon after it changes
# The presence record (which other processes read) carries the state some seconds late:
# changes are gathered, so that a busy charger costs a broker write every few seconds, not
# one per call. Each wait is drawn at random around PRESENCE_STATE_EVERY (± PRESENCE_SPREAD
# of it; the first after a quiet spell between STATE_FLUSH and PRESENCE_STATE_EVERY), so
# that chargers whose load starts together do not all write at once: a burst of a thousand
# Redis writes delays answers by a hundred milliseconds.
PRESENCE_STATE_EVERY = 5.0
PRESENCE_SPREAD = 0.5
SEEN_IDS = 64  # a charger's recent unique ids, to tell of duplicates
PUBLISH_QUEUE_SIZE = 50_000
PUBLISH_BATCH = 500
PUBLISH_QUEUE_BYTES = 64 * 2**20
CLOSE_REPLACED = "replaced by a new connection with the same identity"
# An identity's connection counter outlives its last connection by this long (each presence
# write renews it), so that a connection cut off from Redis meanwhile still finds it fenced.
GENERATION_TTL = 3600.0
RATE_LIMITED = "rate limit exceeded: this frame was not read"
MAX_HELD = 20  # held (manual) calls per charger waiting for a person at once
MAX_ACTION_SHOWN = 64  # an action name is a short word; a charger may send a megabyte


class Gateway:
    """This process's charger connections, and the one task that publishes their events."""

    def __init__(self, settings: Settings, broker: Broker, clock: Clock) -> None:
        self.settings = settings
        self.broker = broker
        self.clock = clock
        self.sessions: dict[str, ChargerSession] = {}
        self.roster = Roster(broker, self.sessions)
        self._writes: set[asyncio.Task[Any]] = set()
        # identity -> (highest transaction id handed out, its writes to the broker pending)
        self.transactions_unwritten: dict[str, tuple[int, int]] = {}
        self.replay_budget = ReplayBudget(settings.replay_total_bytes)
        self.connections = 0  # charger websockets being served, handshakes included
        self.credentials = ChargerCredentials.from_settings(settings)
        self._outbound: asyncio.Queue[tuple[str, str]] = asyncio.Queue(PUBLISH_QUEUE_SIZE)
        self._outbound_bytes = 0
        self._publisher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._publisher = asyncio.create_task(self._publish_forever(), name="ocpplab-publisher")

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            await session.close(1001, "the central system is shutting down")
        await self.roster.close()
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher

    def publish_soon(self, channel: str, message: dict[str, Any]) -> None:
        """Queue an event for the broker; never waits, so a charger is never slowed.

        Bounded in count and in bytes: a broker slower than the chargers loses events (the
        pages are told by their subscription), never memory.
        """
        text = dumps_compact(message)
        if self._outbound_bytes + len(text) > PUBLISH_QUEUE_BYTES:
            logger.warning("event queue full: an event for a charger's pages was dropped")
            return
        try:
            self._outbound.put_nowait((channel, text))
        except asyncio.QueueFull:
            logger.warning("event queue full: an event for a charger's pages was dropped")
            return
        self._outbound_bytes += len(text)

    async def _publish_forever(self) -> None:
        # Whatever queued up meanwhile goes out as one batch (one Redis round trip).
        while True:
            batch = [await self._outbound.get()]
            while len(batch) < PUBLISH_BATCH and not self._outbound.empty():
                batch.append(self._outbound.get_nowait())
            self._outbound_bytes -= sum(len(text) for _, text in batch)
            try:
                await self.broker.publish_many(batch)
            except BrokerError:
                pass  # the broker reports the outage to pages itself; answering goes on
            except Exception:
                log_failure(logger, "publishing events failed")

    def write_soon(self, write: Coroutine[Any, Any, None]) -> None:
        """Run a broker write that must not be cancelled when its session ends first."""
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def serve(self, websocket: WebSocket) -> None:
        """The charger endpoint, `WS /ocpp/{identity}`, within `max_chargers` connections.

        A charger whose identity is connected already may still come in over the limit: it
        is most likely the same charger reconnecting, and it replaces its old connection.
        """
        limit = self.settings.max_chargers
        if self.connections >= limit and websocket.path_params.get("identity") not in self.sessions:
            await refuse(
                websocket,
                503,
                f"this central system holds {limit} charger connections, the most it allows "
                "(OCPPLAB_MAX_CHARGERS); try again later",
            )
            return
        self.connections += 1
        try:
            await self._serve(websocket)
        finally:
            self.connections -= 1

    async def _serve(self, websocket: WebSocket) -> None:
        identity = websocket.path_params.get("identity", "")
        problem = identity_problem(identity, self.settings.max_identity_length)
        if problem:
            await refuse(websocket, 400, problem)
            return
        refusal = await self.credentials.check(websocket.scope, identity)
        if refusal is not None:
            await refuse(websocket, refusal.status, refusal.reason, refusal.headers)
            return
        offered = [item.strip() for item in websocket.scope.get("subprotocols", [])]
        warnings: list[str] = []
        subprotocol: str | None = SUBPROTOCOL
        if SUBPROTOCOL not in offered:
            subprotocol = None
            if not [item for item in offered if item]:
                warnings.append(
                    "the charger sent no Sec-WebSocket-Protocol header; treated as OCPP 1.6"
                )
            else:
                warnings.append(
                    f"the charger offered {', '.join(map(repr, offered))} but not ocpp1.6; "
                    "treated as OCPP 1.6"
                )
            if self.settings.require_subprotocol:
                await refuse(
                    websocket, 400, "this central system speaks only ocpp1.6; " + warnings[0]
                )
                return
        await websocket.accept(subprotocol=subprotocol)
        session = ChargerSession(self, websocket, identity, subprotocol, warnings)
        await session.run()

    async def not_upgraded(self, request: Request) -> Response:
        """`GET /ocpp/{identity}` without a websocket upgrade: say what is missing.

        A proxy that strips hop-by-hop headers turns a charger's handshake into a plain
        GET (QUIRKS.md); so does a person opening the charger URL in a browser.
        """
        identity = request.path_params.get("identity", "")
        problem = identity_problem(identity, self.settings.max_identity_length)
        if problem:
            return PlainTextResponse(problem + "\n", status_code=400)
        return PlainTextResponse(
            "this is the OCPP-J endpoint for chargers and needs a websocket upgrade, but the "
            "request had no 'Upgrade: websocket' and 'Connection: Upgrade' headers; a proxy "
            "in front must forward both\n",
            status_code=426,
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )


async def refuse(
    websocket: WebSocket, status: int, reason: str, headers: dict[str, str] | None = None
) -> None:
    """Refuse a websocket before the upgrade, with an HTTP error that says why."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = PlainTextResponse(reason + "\n", status_code=status, headers=headers)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(1008, reason[:120])


class ChargerSession:
    """One charger connection: read frames, answer them, run central-system calls."""

    # Slots: thousands of idle sessions, each without an attribute dict.
    __slots__ = (
        "_closed",
        "_events",
        "_flush_at",
        "_flush_timer",
        "_heard",
        "_limit",
        "_presence_at",
        "_presence_due",
        "_presence_stale",
        "_presence_wait",
        "_refresh_wait",
        "_seen_ids",
        "_seq",
        "_state_unsent",
        "_state_written_at",
        "_tasks",
        "_timers",
        "_transaction_id",
        "closing",
        "connected_since",
        "gateway",
        "generation",
        "held",
        "id",
        "identity",
        "outbox",
        "replaced",
        "replay",
        "responder",
        "state",
        "subprotocol",
        "warnings",
        "watched_until",
        "websocket",
    )

    def __init__(
        self,
        gateway: Gateway,
        websocket: WebSocket,
        identity: str,
        subprotocol: str | None,
        warnings: list[str],
    ) -> None:
        self.gateway = gateway
        self.websocket = websocket
        self.identity = identity
        self.subprotocol = subprotocol
        self.warnings = warnings
        self.id = uuid.uuid4().hex
        self.connected_since = format_time(gateway.clock.now())
        self.responder = ResponderSettings()
        self.state = ChargerState()
        self.outbox = Outbox(gateway.settings.call_timeout)
        self.held: dict[str, tuple[Hold, asyncio.TimerHandle, dict[str, Any]]] = {}
        # Lists, trimmed by hand: an idle charger's deques cost 760 bytes each.
        self.replay = Replay(
            gateway.replay_budget,
            max_items=gateway.settings.replay_size,
            max_bytes=gateway.settings.replay_bytes,
        )
        self.watched_until = gateway.clock.monotonic() + CONNECT_GRACE
        self.replaced = False
        self.generation: int | None = None  # this connection's number; see _take_over
        self._heard = 0  # the highest number another connection of the identity announced
        self._transaction_id = 1  # the next one to hand out
        self._events = events_channel(identity)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._seen_ids: list[str] = []
        self._limit = RateLimit(gateway.settings.rate_limit, gateway.clock.monotonic())
        self.closing: tuple[int, str] | None = None  # why this side closes, when it does
        self._state_unsent = False  # changed since the last state event
        self._presence_stale = False  # changed since the last presence write
        self._presence_at = 0.0  # monotonic time of the last presence write
        self._state_written_at = -math.inf  # ... of the last one for a new state
        self._presence_wait = PRESENCE_STATE_EVERY  # this round's, spread (PRESENCE_SPREAD)
        self._presence_due = 0.0  # when the stale state goes to presence
        self._refresh_wait = PRESENCE_REFRESH
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_at = 0.0
        self._closed = False
        self._seq = 0

    # Life cycle

    async def run(self) -> None:
        broker, identity = self.gateway.broker, self.identity
        self.responder = await self._load_responder_settings()
        self._transaction_id = await self._load_transaction_id()
        async with broker.subscribe(commands_channel(identity), self._on_command):
            await self._take_over()
            self.emit(self._connected_event(), always=True)
            await self._write_presence()
            self._schedule_flush()
            code, reason = 1006, ""
            try:
                code, reason = await self._read_forever()
            finally:
                await self._finish(code, reason)

    async def _read_forever(self) -> tuple[int, str]:
        """Receive frames until the charger goes; returns the close code and reason."""
        receive = self.websocket._receive  # see _send_asgi
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return int(message.get("code", 1006)), str(message.get("reason") or "")
            text = message.get("text")
            if text is None:
                text = self._binary_text(message.get("bytes") or b"")
            # Drop the frame before waiting for the next: an idle charger must not keep
            # its last megabyte alive for as long as it stays quiet.
            del message
            await self.receive_frame(text)
            del text

    def _binary_text(self, data: bytes) -> str:
        """A binary frame's bytes read as the text frame OCPP-J asks for, as far as they go.

        Bytes that are not UTF-8 become U+FFFD, so the rest of the frame can still be
        answered; the notice shows the first of them escaped.
        """
        notice = "the charger sent a binary websocket frame; OCPP-J uses text frames"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = data.decode("utf-8", errors="replace")
            first = data[exc.start : exc.end]
            notice += f"; nor UTF-8 (from byte {exc.start}: {first!r}), shown as U+FFFD"
        self.notice(notice)
        return text

    async def _finish(self, code: int, reason: str) -> None:
        self._emit_state()  # the last change before a close reaches the pages: its timer dies
        self._closed = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        for timer in self._timers:
            timer.cancel()
        for hold, timer, _ in self.held.values():
            timer.cancel()
            self.emit({"kind": "released", "unique_id": hold.call.unique_id, "how": "gone"})
        self.held.clear()
        for item in self.outbox.clear():
            self._outcome(item, "offline", error={"code": "", "description": "charger gone"})
        for task in list(self._tasks):
            task.cancel()
        if self.closing is not None:
            code, reason = self.closing
        if self.replaced:
            reason = CLOSE_REPLACED
        self.emit(
            {"kind": "disconnected", "session": self.id, "code": code, "reason": reason},
            always=True,
        )
        self.replay.close()
        if self.gateway.sessions.get(self.identity) is self:
            del self.gateway.sessions[self.identity]
            self.gateway.roster.changed()
            if not self.replaced:  # else the new connection, maybe on another host, owns it
                await self._broker_call(
                    self.gateway.broker.delete_fenced(presence_key(self.identity), self._fence())
                )

    async def close(self, code: int, reason: str) -> None:
        self.closing = self.closing or (code, reason)
        if not self._closed:
            with contextlib.suppress(Exception):
                await self.websocket.close(code, reason)

    # Frames from the charger

    async def receive_frame(self, text: str) -> None:
        now = self.gateway.clock.monotonic()
        if not self._limit.take(now):
            await self._refuse_over_limit(text, now)
            return
        frame = parse(text)
        if isinstance(frame, InvalidFrame):
            self._frame_event("in", text, frame, note=frame.reason)
            if frame.reply is not None:
                await self.send(frame.reply.to_json(), frame.reply)
            return
        if isinstance(frame, Call):
            await self._answer_call(frame, text)
        else:
            await self._receive_answer(frame, text)

    async def _refuse_over_limit(self, text: str, now: float) -> None:
        """A frame over the rate limit: cheap to refuse, and a long flood is cut off."""
        limit, settings = self._limit, self.gateway.settings
        start = frame_start(text)
        unique_id = start[1] if start is not None and start[0] == CALL else None
        if unique_id is not None:
            refusal = CallError(unique_id, "GenericError", RATE_LIMITED)
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self._send_asgi({"type": "websocket.send", "text": refusal.to_json()})
        count = limit.report_due(now)
        if count:
            self.notice(
                f"rate limit of {settings.rate_limit} frames/s exceeded: frames are refused "
                "(CALLs with a CALLERROR) and not shown"
                if count == 1 and limit.flooding_for(now) == 0
                else f"rate limit: {count} more frames refused"
            )
        flood = settings.flood_disconnect
        if flood and self.closing is None and limit.flooding_for(now) >= flood:
            self._spawn(self.close(1008, f"over the rate limit for {flood:g} s"))

    async def _answer_call(self, call: Call, text: str) -> None:
        refusal = check_call(call)
        if refusal is not None:
            self._frame_event("in", text, call, note=refusal.description)
            await self.send(refusal.to_json(), refusal)
            return
        checked = await validation.SHARED.check(
            call.action, call.payload, response=False, size=len(text)
        )
        violations, notes = (checked, []) if checked is not None else ([], [validation.NOT_CHECKED])
        if call.unique_id in self._seen_ids:
            notes.append(f"duplicate unique id {call.unique_id!r}: this charger already used it")
        note = "; ".join(notes) or None
        _append_bounded(self._seen_ids, call.unique_id, SEEN_IDS)
        now = self.gateway.clock.now()  # one reading for the call, its answer and the state
        self._frame_event("in", text, call, violations=violations, note=note, at=now)
        context = AnswerContext(now, self._next_transaction_id())
        answer = respond(
            call,
            self.responder,
            context,
            violations,
            manual_timeout=self.gateway.settings.manual_timeout,
        )
        if isinstance(answer, Silence):
            self.notice(f"{call.action} {call.unique_id} left unanswered: {answer.reason}")
            self._apply_state(call, None)
        elif isinstance(answer, Hold):
            self._hold(answer)
        elif answer.delay > 0:
            self._later(answer.delay, self._send_reply, call, answer)
        else:
            await self._send_reply(call, answer, now)

    async def _send_reply(
        self, call: Call, reply: Reply, at: datetime.datetime | None = None
    ) -> None:
        if reply.uses_transaction_id:
            self._use_transaction_id()
        await self.send(reply.frame.to_json(), reply.frame, action=call.action, at=at)
        payload = reply.frame.payload if isinstance(reply.frame, CallResult) else None
        self._apply_state(call, payload, at)

    async def _receive_answer(self, frame: CallResult | CallError, text: str) -> None:
        item = self.outbox.answer(frame)
        if item is None:
            self._frame_event(
                "in", text, frame, note=f"answers no call in flight (unique id {frame.unique_id!r})"
            )
            return
        if isinstance(frame, CallError):
            self._answered(item, frame, text, [])
            return
        # Awaited here, so the frames after it are shown after it (large ones are checked
        # off the event loop).
        try:
            checked = await validation.SHARED.check(
                item.call.action, frame.payload, response=True, size=len(text)
            )
        except asyncio.CancelledError:
            self._answered(item, frame, text, [], "not checked: the connection closed first")
            raise
        self._answered(item, frame, text, checked)

    def _answered(
        self,
        item: Outgoing,
        frame: CallResult | CallError,
        text: str,
        violations: list[schemas.Violation] | None,
        note: str | None = None,
    ) -> None:
        if violations is None:
            violations, note = [], validation.NOT_CHECKED
        action = item.call.action
        self._frame_event("in", text, frame, violations=violations, note=note, action=action)
        if isinstance(frame, CallResult):
            self._outcome(item, "result", payload=frame.payload, violations=violations)
        else:
            error = {"code": frame.code, "description": frame.description, "details": frame.details}
            self._outcome(item, "error", error=error)
        self._pump()

    # Held (manual) calls

    def _hold(self, hold: Hold) -> None:
        call = hold.call
        if len(self.held) >= MAX_HELD:
            # Each held call keeps its request and a card on every page: a charger that
            # sends faster than a person answers gets the fallback at once instead.
            self.notice(
                f"{call.action} {call.unique_id} not held: {MAX_HELD} calls wait for an "
                f"answer already; the fallback ({hold.fallback}) is used"
            )
            self._fall_back(hold)
            return
        loop = asyncio.get_running_loop()
        timer = loop.call_later(hold.timeout, self._hold_expired, call.unique_id)
        deadline = self.gateway.clock.now() + datetime.timedelta(seconds=hold.timeout)
        event = {
            "kind": "held",
            "unique_id": call.unique_id,
            "action": call.action,
            "request": call.payload,
            "proposal": hold.proposal,
            "timeout": hold.timeout,
            "deadline": format_time(deadline),
            "fallback": hold.fallback,
        }
        self.held[call.unique_id] = (hold, timer, event)
        self.emit(event, always=True)

    def _hold_expired(self, unique_id: str) -> None:
        entry = self.held.pop(unique_id, None)
        if entry is None:
            return
        how = "timeout-ignore" if self._fall_back(entry[0]) is None else "timeout-default"
        self.emit({"kind": "released", "unique_id": unique_id, "how": how}, always=True)

    def _fall_back(self, hold: Hold) -> Reply | None:
        """Answer a held call as its rule's fallback says; the reply sent, or None (silence)."""
        answer = fallback_answer(
            hold, AnswerContext(self.gateway.clock.now(), self._next_transaction_id())
        )
        if isinstance(answer, Silence):
            return None
        self._spawn(self._send_reply(hold.call, answer))
        return answer

    def release(self, unique_id: str, reply: dict[str, Any], token: str | None = None) -> bool:
        """Answer a held call as a person decided; the first answer wins."""
        entry = self.held.pop(unique_id, None)
        if entry is None:
            self.emit({"kind": "answer_refused", "unique_id": unique_id, "by": token}, always=True)
            return False
        hold, timer, _ = entry
        timer.cancel()
        call = hold.call
        if reply.get("ignore"):
            self.emit(
                {"kind": "released", "unique_id": unique_id, "how": "ignored", "by": token},
                always=True,
            )
            return True
        frame: CallResult | CallError
        error = reply.get("error")
        if isinstance(error, dict):
            frame = CallError(
                unique_id,
                str(error.get("code") or "GenericError"),
                str(error.get("description") or ""),
                error.get("details") if isinstance(error.get("details"), dict) else {},
            )
        else:
            frame = CallResult(unique_id, reply.get("payload", {}))
        self.emit(
            {"kind": "released", "unique_id": unique_id, "how": "answered", "by": token},
            always=True,
        )
        uses_id = isinstance(frame, CallResult) and call.action == "StartTransaction"
        answer = Reply(frame, hold.delay, uses_transaction_id=uses_id)
        if hold.delay > 0:
            self._later(hold.delay, self._send_reply, call, answer)
        else:
            self._spawn(self._send_reply(call, answer))
        return True

    # Central-system calls

    def submit(self, call: Call, *, concurrent: bool = False) -> None:
        self.outbox.submit(call, concurrent=concurrent)
        self._pump()
        queued = [item.call.unique_id for item in self.outbox.queued]
        if call.unique_id in queued:
            position = queued.index(call.unique_id) + 1
            self.emit(
                {
                    "kind": "queued",
                    "unique_id": call.unique_id,
                    "action": call.action,
                    "payload": call.payload,
                    "position": position,
                },
                always=True,
            )

    def _pump(self) -> None:
        """Send every call that may go now, and arm its timeout."""
        for item in self.outbox.due(self.gateway.clock.monotonic()):
            self._call_later(self.outbox.timeout, self._expire_calls)
            text = item.call.to_json()
            self._spawn(self.send(text, item.call, action=item.call.action))
            self.emit(
                {
                    "kind": "sent",
                    "unique_id": item.call.unique_id,
                    "action": item.call.action,
                    "timeout": self.outbox.timeout,
                },
                always=True,
            )

    def _expire_calls(self) -> None:
        for item in self.outbox.expire(self.gateway.clock.monotonic()):
            self._outcome(item, "timeout")
        self._pump()

    def _outcome(
        self,
        item: Outgoing,
        outcome: str,
        *,
        payload: Any = None,
        error: dict[str, Any] | None = None,
        violations: list[schemas.Violation] | None = None,
    ) -> None:
        sent_at = item.sent_at
        rtt = None
        if sent_at is not None and outcome in {"result", "error"}:
            rtt = round((self.gateway.clock.monotonic() - sent_at) * 1000, 1)
        self.emit(
            {
                "kind": "outcome",
                "unique_id": item.call.unique_id,
                "action": item.call.action,
                "outcome": outcome,
                "payload": payload,
                "error": error,
                "violations": [violation.as_dict() for violation in violations or []],
                "rtt_ms": rtt,
            },
            always=True,
        )

    # Commands from pages, forms and the API (through the broker)

    def _on_command(self, item: str | Signal) -> None:
        if isinstance(item, Signal):
            if item is Signal.RESUMED:
                self._spawn(self._reload_responder_settings())
                self._spawn(self._reassert())
            return
        try:
            command = json.loads(item)
            self._dispatch(command)
        except Exception:
            log_failure(logger, "a command for a charger could not be carried out")

    def _dispatch(self, command: dict[str, Any]) -> None:
        op = command.get("op")
        if op == "takeover":
            generation = command.get("generation")
            if command.get("session") != self.id and isinstance(generation, int):
                self._heard = max(self._heard, generation)
                if self.generation is not None and generation > self.generation:
                    self._replace()
        elif op == "watch":
            self.watched_until = self.gateway.clock.monotonic() + WATCH_TTL
            if command.get("page"):
                self._send_replay(str(command["page"]))
        elif op == "call":
            call = Call(str(command["unique_id"]), str(command["action"]), command["payload"])
            self.submit(call, concurrent=bool(command.get("concurrent")))
        elif op == "cancel":
            cancelled = self.outbox.cancel(str(command.get("unique_id")))
            if cancelled is not None:
                self._outcome(cancelled, "cancelled")
        elif op == "raw":
            self._spawn(self.send_raw(str(command["text"])))
        elif op == "answer":
            token = command.get("token")
            self.release(str(command.get("unique_id")), command.get("reply") or {}, token)
        elif op == "settings":
            self.responder = ResponderSettings.from_json(command.get("settings"))

    def _send_replay(self, page: str) -> None:
        self.gateway.publish_soon(
            self._events,
            {
                "kind": "replay",
                "page": page,
                "events": [
                    item if isinstance(item, dict) else frame_event(item, self.id)
                    for item in self.replay.items
                ],
                "connected": self._connected_event(),
                "state": self.state.to_json(),
                "held": [event for _, _, event in self.held.values()],
            },
        )

    def _connected_event(self) -> dict[str, Any]:
        remote = self.websocket.client
        return {
            "kind": "connected",
            "session": self.id,
            "at": self.connected_since,
            "remote": f"{remote.host}:{remote.port}" if remote else "unknown",
            "subprotocol": self.subprotocol,
            "warnings": self.warnings,
            "tls": tls.summary((self.websocket.scope.get("extensions") or {}).get("tls")),
        }

    # Sending and publishing

    async def send(
        self,
        text: str,
        frame: CallResult | CallError | Call | None = None,
        *,
        action: str | None = None,
        at: datetime.datetime | None = None,
    ) -> None:
        """Send `text` to the charger; the log shows exactly these characters."""
        message = {"type": "websocket.send", "text": text}
        try:
            try:
                await self._send_asgi(message)
            except UnicodeEncodeError:  # a lone surrogate: refused before anything was sent
                text = message["text"] = encodable(text)
                await self._send_asgi(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.notice("could not send: the charger connection is closing")
            return
        shown = frame if frame is not None else parse(text)
        self._frame_event("out", text, shown, action=action, at=at)

    async def send_raw(self, text: str) -> None:
        """Send any text the person typed, however invalid, and show it."""
        frame = parse(text)
        await self.send(text, frame if not isinstance(frame, InvalidFrame) else None)

    def emit(self, event: dict[str, Any], *, always: bool = False) -> None:
        """Record an event for replay and publish it if any page watches (or `always`)."""
        if "at" not in event:
            event["at"] = format_time(self.gateway.clock.now())
        self._seq += 1
        event["seq"], event["session"] = self._seq, self.id
        if event["kind"] in _REPLAYED:
            self.replay.append(*shrunk_event(event, self.replay.item_bytes))
        if always or self.watched():
            self.gateway.publish_soon(self._events, event)

    @property
    def _send_asgi(self) -> Any:
        """The ASGI `send` callable under Starlette's WebSocket.

        Frames go to and come from the ASGI callables directly: Starlette's wrapper only
        checks the message types this session always gets right, and its dict churn per
        message was a measurable share of the server's time under load.
        """
        return self.websocket._send

    def watched(self) -> bool:
        """Whether a page watches (or may soon watch: CONNECT_GRACE) this charger."""
        return self.gateway.clock.monotonic() < self.watched_until

    def notice(self, text: str) -> None:
        self.emit({"kind": "notice", "text": text})

    def _frame_event(
        self,
        direction: str,
        text: str,
        frame: Call | CallResult | CallError | InvalidFrame | None,
        *,
        violations: list[schemas.Violation] | None = None,
        note: str | None = None,
        action: str | None = None,
        at: datetime.datetime | None = None,
    ) -> None:
        kind = "invalid" if frame is None else message_type_name(frame)
        self._seq += 1
        raw, full_size = truncated(text, self.replay.item_bytes)
        record: FrameRecord = (
            self._seq,
            at or self.gateway.clock.now(),
            direction,
            kind,
            (frame.action if isinstance(frame, Call) else action or "")[:MAX_ACTION_SHOWN] or None,
            getattr(frame, "unique_id", None),
            raw,
            tuple(violation.as_dict() for violation in violations) if violations else None,
            note,
            full_size,
        )
        self.replay.append(record, frame_size(record))
        if self.watched():
            self.gateway.publish_soon(self._events, frame_event(record, self.id))

    # State and presence

    def _apply_state(self, call: Call, answer: Any, at: datetime.datetime | None = None) -> None:
        at = at or self.gateway.clock.now()
        note = self.state.apply(call.action, call.payload, answer, format_time(at))
        if note:
            self.notice(note)
        self._state_unsent = True
        if not self._presence_stale:
            self._presence_stale = True
            now = self.gateway.clock.monotonic()
            quiet = now + random.uniform(STATE_FLUSH, PRESENCE_STATE_EVERY)
            self._presence_due = max(quiet, self._state_written_at + self._presence_wait)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Arm the session's one timer: a state event for a watching page, presence writes.

        Presence is written (with the state) some seconds after a change, about every
        PRESENCE_STATE_EVERY while changes go on, and refreshed every PRESENCE_REFRESH.
        """
        if self._closed:
            return
        now = self.gateway.clock.monotonic()
        due = self._presence_at + self._refresh_wait
        if self._presence_stale:
            due = min(due, self._presence_due)
        if self._state_unsent and self.watched():
            due = min(due, now + STATE_FLUSH)
        if self._flush_timer is not None:
            if self._flush_at <= due:
                return
            self._flush_timer.cancel()
        self._flush_at = due
        loop = asyncio.get_running_loop()
        self._flush_timer = loop.call_later(max(0.0, due - now), self._flush_state)

    def _emit_state(self) -> dict[str, Any] | None:
        """Send watching pages the state if it changed since they last got it; the state sent.

        Only watching pages get state events (a replay carries the state itself).
        """
        if not (self._state_unsent and self.watched()):
            return None
        self._state_unsent = False
        state = self.state.to_json()
        self.emit({"kind": "state", "state": state})
        return state

    def _flush_state(self) -> None:
        self._flush_timer = None
        if self._closed:
            return
        state = self._emit_state()
        now = self.gateway.clock.monotonic()
        state_due = self._presence_stale and now >= self._presence_due
        if state_due or now >= self._presence_at + self._refresh_wait:
            if self._presence_stale:
                self._presence_stale, self._state_written_at = False, now
            self._presence_at = now
            self._presence_wait = _spread(PRESENCE_STATE_EVERY)
            self._refresh_wait = _spread(PRESENCE_REFRESH)
            self._spawn(self._write_presence(state))
        self._schedule_flush()

    def presence(self, state: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "connected": True,
            "connected_since": self.connected_since,
            "subprotocol": self.subprotocol,
            "session": self.id,
            "generation": self.generation,
            "instance": self.gateway.roster.instance,
            "warnings": self.warnings,
            "state": self.state.to_json() if state is None else state,
            "queued_calls": len(self.outbox.queued),
            "calls_in_flight": len(self.outbox.in_flight),
            "held_calls": len(self.held),
        }

    async def _write_presence(self, state: dict[str, Any] | None = None) -> None:
        """Write the presence record, fenced: once replaced, this connection writes nothing."""
        self._presence_at = self.gateway.clock.monotonic()
        if self.replaced or self.gateway.sessions.get(self.identity) is not self:
            return
        written = await self._broker_call(
            self.gateway.broker.set_fenced(
                presence_key(self.identity),
                dumps_compact(self.presence(state)),
                PRESENCE_TTL,
                self._fence(),
            )
        )
        if written is False and self.generation:
            # A newer connection took a number, and its takeover was missed (an outage).
            self._replace()

    def _fence(self) -> Fence:
        return Fence(generation_key(self.identity), self.generation or 0, GENERATION_TTL)

    async def _take_over(self) -> None:
        """Become the identity's newest connection: of simultaneous ones, exactly one stays.

        The command channel is subscribed (and confirmed) before this connection takes its
        number from the identity's counter, and the number is announced after that. So
        every older connection, on whichever instance, was subscribed before this
        announcement and hears it; and each closes only for a number higher than its own,
        so an older connection's announcement, however late it arrives, closes nobody
        newer. Numbers heard before this one's own was known wait in `_heard`. Number 0
        means none could be taken (no broker): then only this instance's older connection
        is replaced, and a number is taken once the broker is back (`_reassert`).
        """
        gateway, identity = self.gateway, self.identity
        try:
            self.generation = await gateway.broker.incr(generation_key(identity), GENERATION_TTL)
        except BrokerError as exc:
            self.notice(f"broker unavailable: {exc}")
            self.generation = 0
        if self._heard > self.generation:
            self._replace()
            return
        held = gateway.sessions.get(identity)
        if held is not None and held is not self:
            if self.generation and (held.generation or 0) > self.generation:
                self._replace()  # its announcement is on the way
                return
            held._replace()
        gateway.sessions[identity] = self
        await gateway.roster.joined()
        if self.generation:
            announcement = {"op": "takeover", "session": self.id, "generation": self.generation}
            await self._broker_call(
                gateway.broker.publish(commands_channel(identity), json.dumps(announcement))
            )

    def _replace(self) -> None:
        """A newer connection of this identity exists: close, saying so."""
        if not self.replaced:
            self.replaced = True
            self._spawn(self.close(1000, CLOSE_REPLACED))

    async def _reassert(self) -> None:
        """After a broker outage: take a number if none could be taken; restore presence.

        A Redis restarted without persistence has lost the counter and the presence
        record; the fenced write puts both back.
        """
        if self.replaced or self._closed:
            return
        if self.generation == 0:
            await self._take_over()
        await self._write_presence()

    async def _load_responder_settings(self) -> ResponderSettings:
        try:
            text = await asyncio.wait_for(
                self.gateway.broker.get(settings_key(self.identity)), timeout=2.0
            )
        except (BrokerError, TimeoutError):
            self.notice("responder settings could not be read from the broker; using defaults")
            return ResponderSettings()
        try:
            return ResponderSettings.from_json(json.loads(text)) if text else ResponderSettings()
        except Exception:
            self.notice("stored responder settings were unreadable; using defaults")
            return ResponderSettings()

    async def _reload_responder_settings(self) -> None:
        """After a broker outage: another host may have saved settings we did not hear of.

        A missing key (a Redis restarted without persistence) keeps the cached settings.
        """
        try:
            text = await self.gateway.broker.get(settings_key(self.identity))
            if text:
                self.responder = ResponderSettings.from_json(json.loads(text))
        except Exception:
            logger.warning("responder settings could not be reloaded after a broker outage")

    # Small helpers for tasks and timers

    def _next_transaction_id(self) -> int:
        return self._transaction_id

    def _use_transaction_id(self) -> None:
        """The id went out: count on, and tell the broker without making the answer wait.

        The broker's counter is what the identity's next connection starts from, on any
        instance; its answer also brings this one up to date when another connection of
        the identity handed out ids meanwhile.
        """
        used = self._transaction_id
        self._transaction_id = used + 1
        unwritten = self.gateway.transactions_unwritten
        highest, pending = unwritten.get(self.identity, (0, 0))
        unwritten[self.identity] = (max(highest, used), pending + 1)
        self.gateway.write_soon(self._count_transaction(used))

    async def _count_transaction(self, used: int) -> None:
        key = transactions_key(self.identity)
        try:
            counted = await self.gateway.broker.incr(key, self.gateway.settings.settings_ttl)
            self._transaction_id = max(self._transaction_id, counted + 1, used + 1)
        except BrokerError:
            pass  # the next connection may repeat an id; answering goes on
        finally:
            unwritten = self.gateway.transactions_unwritten
            highest, pending = unwritten.pop(self.identity, (0, 1))
            if pending > 1:
                unwritten[self.identity] = (highest, pending - 1)

    async def _load_transaction_id(self) -> int:
        """The identity's next transaction id: one past the last one handed out anywhere.

        Ids this instance handed out whose count has not reached the broker yet (a
        charger reconnecting within milliseconds of its answer) count too.
        """
        highest = self.gateway.transactions_unwritten.get(self.identity, (0, 0))[0]
        try:
            text = await asyncio.wait_for(
                self.gateway.broker.get(transactions_key(self.identity)), timeout=2.0
            )
            return max(highest, int(text or 0)) + 1
        except (BrokerError, TimeoutError, ValueError):
            self.notice("the transaction counter could not be read from the broker")
            return highest + 1

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, delay: float, function: Any, *args: Any) -> None:
        """Run the coroutine function `function(*args)` in `delay` seconds."""
        self._call_later(delay, lambda: self._spawn(function(*args)))

    def _call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Call `callback` in `delay` seconds unless the charger has gone by then."""
        timer: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(timer)
            if not self._closed:
                callback()

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(timer)

    async def _broker_call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except BrokerError as exc:
            self.notice(f"broker unavailable: {exc}")
            return None


def _spread(seconds: float) -> float:
    return seconds * random.uniform(1 - PRESENCE_SPREAD, 1 + PRESENCE_SPREAD)


def _append_bounded(items: list[Any], item: Any, limit: int) -> None:
    items.append(item)
    if len(items) > limit:
        del items[: len(items) - limit]


_REPLAYED = frozenset({"frame", "notice", "held", "released", "outcome", "queued", "sent"})


def frame_event(record: FrameRecord, session: str) -> dict[str, Any]:
    seq, at, direction, kind, action, unique_id, raw, violations, note, full_size = record
    return {
        "kind": "frame",
        "dir": direction,
        "type": kind,
        "action": action,
        "unique_id": unique_id,
        "raw": raw,
        "violations": [dict(violation) for violation in violations or ()],
        "note": note,
        "truncated": full_size,
        "at": format_time(at),
        "seq": seq,
        "session": session,
    }
