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
import base64
import binascii
import contextlib
import datetime
import hmac
import json
import logging
import math
import random
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from ocpplab import schemas
from ocpplab.broker import (
    Broker,
    Signal,
    commands_channel,
    events_channel,
    presence_key,
    settings_key,
)
from ocpplab.clock import Clock
from ocpplab.config import Settings
from ocpplab.exceptions import BrokerError
from ocpplab.identity import identity_problem
from ocpplab.protocol import (
    Call,
    CallError,
    CallResult,
    InvalidFrame,
    Outbox,
    Outgoing,
    check_call,
    dumps_compact,
    message_type_name,
    parse,
)
from ocpplab.responder import (
    AnswerContext,
    Hold,
    Reply,
    ResponderSettings,
    Silence,
    fallback_answer,
    format_time,
    respond,
)
from ocpplab.state import ChargerState

logger = logging.getLogger("ocpplab.gateway")

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
CLOSE_REPLACED = "replaced by a new connection with the same identity"


class Gateway:
    """This process's charger connections, and the one task that publishes their events."""

    def __init__(self, settings: Settings, broker: Broker, clock: Clock) -> None:
        self.settings = settings
        self.broker = broker
        self.clock = clock
        self.sessions: dict[str, ChargerSession] = {}
        self.transaction_ids: dict[str, int] = {}
        self._outbound: asyncio.Queue[tuple[str, str]] = asyncio.Queue(PUBLISH_QUEUE_SIZE)
        self._publisher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._publisher = asyncio.create_task(self._publish_forever(), name="ocpplab-publisher")

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            await session.close(1001, "the central system is shutting down")
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher

    def publish_soon(self, channel: str, message: dict[str, Any]) -> None:
        """Queue an event for the broker; never waits, so a charger is never slowed."""
        try:
            self._outbound.put_nowait((channel, dumps_compact(message)))
        except asyncio.QueueFull:
            logger.warning("event queue full: an event for %s was dropped", channel)

    async def _publish_forever(self) -> None:
        # Whatever queued up meanwhile goes out as one batch (one Redis round trip).
        while True:
            batch = [await self._outbound.get()]
            while len(batch) < PUBLISH_BATCH and not self._outbound.empty():
                batch.append(self._outbound.get_nowait())
            try:
                await self.broker.publish_many(batch)
            except BrokerError:
                pass  # the broker reports the outage to pages itself; answering goes on
            except Exception:
                logger.exception("publishing events failed")

    def next_transaction_id(self, identity: str) -> int:
        return self.transaction_ids.get(identity, 1)

    def use_transaction_id(self, identity: str) -> None:
        self.transaction_ids[identity] = self.next_transaction_id(identity) + 1

    async def serve(self, websocket: WebSocket) -> None:
        """The charger endpoint, `WS /ocpp/{identity}`."""
        identity = websocket.path_params.get("identity", "")
        problem = identity_problem(identity, self.settings.max_identity_length)
        if problem:
            await refuse(websocket, 400, problem)
            return
        if self.settings.charger_password and not self._authorized(websocket, identity):
            await refuse(
                websocket,
                401,
                "this central system needs HTTP Basic auth (OCPP security profile 1): "
                "username = charger identity, password = AuthorizationKey",
                {"WWW-Authenticate": 'Basic realm="ocpplab"'},
            )
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

    def _authorized(self, websocket: WebSocket, identity: str) -> bool:
        # OCPP 1.6 security whitepaper, section 2.4 (profile 1): the password is the
        # AuthorizationKey exactly as the charger sends it, even when it looks like hex.
        scheme, _, encoded = websocket.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, _, password = decoded.partition(":")
        expected = (self.settings.charger_password or "").encode()
        return username == identity and hmac.compare_digest(password.encode(), expected)


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
        "_tokens",
        "_tokens_at",
        "connected_since",
        "gateway",
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
        self.replay: list[dict[str, Any] | FrameRecord] = []
        self.watched_until = gateway.clock.monotonic() + CONNECT_GRACE
        self.replaced = False
        self._events = events_channel(identity)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._seen_ids: list[str] = []
        self._tokens = float(2 * gateway.settings.rate_limit)
        self._tokens_at = gateway.clock.monotonic()
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
        async with broker.subscribe(commands_channel(identity), self._on_command):
            await self._broker_call(
                broker.publish(
                    commands_channel(identity), json.dumps({"op": "takeover", "session": self.id})
                )
            )
            self.gateway.sessions[identity] = self
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
                data = message.get("bytes") or b""
                text = data.decode("utf-8", errors="replace")
                self.notice("the charger sent a binary websocket frame; OCPP-J uses text frames")
            await self.receive_frame(text)

    async def _finish(self, code: int, reason: str) -> None:
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
        if self.replaced:
            reason = CLOSE_REPLACED
        self.emit(
            {"kind": "disconnected", "session": self.id, "code": code, "reason": reason},
            always=True,
        )
        if self.gateway.sessions.get(self.identity) is self:
            del self.gateway.sessions[self.identity]
            if not self.replaced:  # else the new connection, maybe on another host, owns it
                await self._broker_call(self.gateway.broker.delete(presence_key(self.identity)))

    async def close(self, code: int, reason: str) -> None:
        if not self._closed:
            with contextlib.suppress(Exception):
                await self.websocket.close(code, reason)

    # Frames from the charger

    async def receive_frame(self, text: str) -> None:
        frame = parse(text)
        if not self._take_token(self.gateway.clock.monotonic()):
            if isinstance(frame, Call):
                await self.send(
                    CallError(frame.unique_id, "GenericError", "rate limit exceeded").to_json()
                )
            self.notice(f"rate limit of {self.gateway.settings.rate_limit} frames/s exceeded")
            return
        if isinstance(frame, InvalidFrame):
            self._frame_event("in", text, frame, note=frame.reason)
            if frame.reply is not None:
                await self.send(frame.reply.to_json(), frame.reply)
            return
        if isinstance(frame, Call):
            await self._answer_call(frame, text)
        else:
            self._receive_answer(frame, text)

    async def _answer_call(self, call: Call, text: str) -> None:
        refusal = check_call(call)
        if refusal is not None:
            self._frame_event("in", text, call, note=refusal.description)
            await self.send(refusal.to_json(), refusal)
            return
        violations = schemas.validate(call.action, call.payload, response=False)
        note = None
        if call.unique_id in self._seen_ids:
            note = f"duplicate unique id {call.unique_id!r}: this charger already used it"
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
            self.gateway.use_transaction_id(self.identity)
        await self.send(reply.frame.to_json(), reply.frame, action=call.action, at=at)
        payload = reply.frame.payload if isinstance(reply.frame, CallResult) else None
        self._apply_state(call, payload, at)

    def _receive_answer(self, frame: CallResult | CallError, text: str) -> None:
        item = self.outbox.answer(frame)
        if item is None:
            self._frame_event(
                "in", text, frame, note=f"answers no call in flight (unique id {frame.unique_id!r})"
            )
            return
        violations: list[schemas.Violation] = []
        if isinstance(frame, CallResult):
            violations = schemas.validate(item.call.action, frame.payload, response=True)
        self._frame_event("in", text, frame, violations=violations, action=item.call.action)
        if isinstance(frame, CallResult):
            self._outcome(item, "result", payload=frame.payload, violations=violations)
        else:
            error = {"code": frame.code, "description": frame.description, "details": frame.details}
            self._outcome(item, "error", error=error)
        self._pump()

    # Held (manual) calls

    def _hold(self, hold: Hold) -> None:
        call = hold.call
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
        hold = entry[0]
        answer = fallback_answer(
            hold, AnswerContext(self.gateway.clock.now(), self._next_transaction_id())
        )
        how = "timeout-ignore" if isinstance(answer, Silence) else "timeout-default"
        self.emit({"kind": "released", "unique_id": unique_id, "how": how}, always=True)
        if isinstance(answer, Reply):
            self._spawn(self._send_reply(hold.call, answer))

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
            return
        try:
            command = json.loads(item)
            self._dispatch(command)
        except Exception:
            logger.exception("a command for a charger could not be carried out")

    def _dispatch(self, command: dict[str, Any]) -> None:
        op = command.get("op")
        if op == "takeover":
            if command.get("session") != self.id and not self.replaced:
                self.replaced = True
                self._spawn(self.close(1000, CLOSE_REPLACED))
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
                    for item in self.replay
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
        try:
            await self._send_asgi({"type": "websocket.send", "text": text})
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
            _append_bounded(self.replay, event, self.gateway.settings.replay_size)
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
        record: FrameRecord = (
            self._seq,
            at or self.gateway.clock.now(),
            direction,
            kind,
            frame.action if isinstance(frame, Call) else action,
            getattr(frame, "unique_id", None),
            text,
            tuple(violation.as_dict() for violation in violations) if violations else None,
            note,
        )
        _append_bounded(self.replay, record, self.gateway.settings.replay_size)
        if self.watched():
            self.gateway.publish_soon(self._events, frame_event(record, self.id))

    # State and presence

    def _apply_state(self, call: Call, answer: Any, at: datetime.datetime | None = None) -> None:
        at = at or self.gateway.clock.now()
        self.state.apply(call.action, call.payload, answer, format_time(at))
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

    def _flush_state(self) -> None:
        self._flush_timer = None
        if self._closed:
            return
        state = None
        if self._state_unsent and self.watched():
            # Only watching pages get state events (a replay carries the state itself).
            self._state_unsent = False
            state = self.state.to_json()
            self.emit({"kind": "state", "state": state})
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
            "warnings": self.warnings,
            "state": self.state.to_json() if state is None else state,
            "queued_calls": len(self.outbox.queued),
            "calls_in_flight": len(self.outbox.in_flight),
            "held_calls": len(self.held),
        }

    async def _write_presence(self, state: dict[str, Any] | None = None) -> None:
        self._presence_at = self.gateway.clock.monotonic()
        if self.gateway.sessions.get(self.identity) is not self:
            return
        await self._broker_call(
            self.gateway.broker.set(
                presence_key(self.identity), dumps_compact(self.presence(state)), PRESENCE_TTL
            )
        )

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
        return self.gateway.next_transaction_id(self.identity)

    def _take_token(self, now: float) -> bool:
        rate = self.gateway.settings.rate_limit
        self._tokens = min(2.0 * rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

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


# A frame as the replay keeps it: seq, at, dir, type, action, unique_id, raw, violations,
# note. Its event is built only when a page asks: most frames of most chargers are never
# watched. A plain tuple of atoms, because the garbage collector stops tracking those;
# tens of thousands of tracked records made each full collection a pause of 100 ms or more.
FrameRecord = tuple[
    int,
    datetime.datetime,
    str,
    str,
    str | None,
    str | None,
    str,
    tuple[dict[str, str], ...] | None,
    str | None,
]


def frame_event(record: FrameRecord, session: str) -> dict[str, Any]:
    seq, at, direction, kind, action, unique_id, raw, violations, note = record
    return {
        "kind": "frame",
        "dir": direction,
        "type": kind,
        "action": action,
        "unique_id": unique_id,
        "raw": raw,
        "violations": [dict(violation) for violation in violations or ()],
        "note": note,
        "at": format_time(at),
        "seq": seq,
        "session": session,
    }
