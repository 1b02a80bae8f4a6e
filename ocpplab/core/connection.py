"""One charger connection, sans-I/O: text, commands and the time in; what to do out.

In the manner of python-websockets' `Protocol`, a `Connection` never touches a socket, a
task or the broker. The server feeds it what the charger sent (`receive_text`), what pages
asked for (`receive_command`) and the passing of time (`handle_timeouts`, at
`next_deadline()`), and then collects what it must do: frames to send to the charger
(`data_to_send`), events to publish to pages (`events_to_publish`), and the few writes to
the broker that outlive a frame (`take_presence`, `transactions_to_count`,
`sequences_to_save`, `close_requested`). Time comes from the clock it is given, so a test
drives it with literal frames and a literal clock.

It owns, for one connection: parsing (OCPP-J 1.6 section 4), the rate limit, duplicate
unique ids, schema checks (small payloads at once; a large one is handed back as a
`PendingCheck` for the server to run off the event loop), answering from the responder
rules (and where each answer sequence is), held calls waiting for a person, the outbox of
central-system calls (section 4.1.1: one at a time), the replay a newly opened page gets,
and the charger's derived state.
"""

from __future__ import annotations

import dataclasses
import datetime
import heapq
import math
import random
from collections.abc import Callable
from typing import Any

from ocpplab.core.clock import Clock
from ocpplab.core.dialect import AnswerContext, ChargerStateModel, Dialect
from ocpplab.core.frames import (
    CALL,
    Call,
    CallError,
    CallResult,
    Frame,
    InvalidFrame,
    Outbox,
    Outgoing,
    check_call,
    encodable,
    frame_start,
    message_type_name,
    parse,
)
from ocpplab.core.messages import (
    AnswerHeld,
    AnswerRefused,
    CancelCall,
    Command,
    Connected,
    CutConnection,
    Disconnected,
    Event,
    FrameEvent,
    Held,
    NewSettings,
    Notice,
    Outcome,
    Queued,
    Record,
    Released,
    ReplayEvent,
    RestartSequence,
    SendCall,
    SendRaw,
    Sent,
    SequencePosition,
    StateChanged,
    Watch,
)
from ocpplab.core.ratelimit import RateLimit
from ocpplab.core.recording import line_text
from ocpplab.core.replay import FrameRecord, Replay, ReplayBudget, frame_size, shrunk, truncated
from ocpplab.core.responder import (
    Hold,
    Reply,
    ResponderSettings,
    Sequence,
    Silence,
    answers_by_rule,
    fallback_answer,
    format_time,
    respond,
)
from ocpplab.core.schemas import Violation

MAX_RAW_CALLS = 32  # raw CALLs sent from pages whose answers are recognised
WATCH_TTL = 60.0  # a page re-announces itself every WATCH_TTL / 3 seconds
# A page already open hears of a new connection, then asks to watch it; the first frames
# (a BootNotification at once) must not slip through meanwhile, so they are published anyway.
CONNECT_GRACE = 10.0
STATE_FLUSH = 0.2  # a watching page sees the derived state this soon after it changes
# The presence record (which other processes read) carries the state some seconds late:
# changes are gathered, so that a busy charger costs a broker write every few seconds, not
# one per call. Each wait is drawn at random around PRESENCE_STATE_EVERY (± PRESENCE_SPREAD
# of it; the first after a quiet spell between STATE_FLUSH and PRESENCE_STATE_EVERY), so
# that chargers whose load starts together do not all write at once: a burst of a thousand
# Redis writes delays answers by a hundred milliseconds.
PRESENCE_STATE_EVERY = 5.0
PRESENCE_REFRESH = 30.0
PRESENCE_SPREAD = 0.5
SEEN_IDS = 64  # a charger's recent unique ids, to tell of duplicates
MAX_HELD = 20  # held (manual) calls per charger waiting for a person at once
MAX_ACTION_SHOWN = 64  # an action name is a short word; a charger may send a megabyte
INLINE_CHECK_BYTES = 8192  # a larger payload is checked off the event loop (PendingCheck)
RATE_LIMITED = "rate limit exceeded: this frame was not read"
NOT_CHECKED = (
    "not checked against the schema: the central system was busy checking other large frames"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """The settings a connection obeys; one instance shared by every connection."""

    call_timeout: float = 30.0
    manual_timeout: float = 120.0
    rate_limit: float = 100.0
    flood_disconnect: float = 0.0
    replay_size: int = 500
    replay_bytes: int = 2**20
    inline_check_bytes: int = INLINE_CHECK_BYTES


@dataclasses.dataclass(slots=True, eq=False)
class PendingCheck:
    """A payload too large to check at once: run `check()` off the event loop, then hand the
    result to `Connection.finish_check` before feeding the connection the next frame (so
    frames keep their order)."""

    dialect: Dialect
    action: str
    payload: Any
    response: bool
    size: int
    resume: Callable[[list[Violation] | None, str | None], None]

    def check(self) -> list[Violation]:
        return self.dialect.validate(self.action, self.payload, self.response)


class Connection:
    """One charger connection's protocol logic, without I/O (see the module's docstring)."""

    # Slots, and parts made only when first needed: a server holds thousands of idle ones.
    __slots__ = (
        "_closed",
        "_events",
        "_flush_at",
        "_held",
        "_limit",
        "_outbox",
        "_positions_unsaved",
        "_presence_at",
        "_presence_due",
        "_presence_stale",
        "_presence_wait",
        "_presence_write",
        "_raw_calls",
        "_recorded",
        "_refresh_wait",
        "_seen_ids",
        "_send",
        "_seq",
        "_state_due",
        "_state_unsent",
        "_state_written_at",
        "_timers",
        "_to_count",
        "clock",
        "close_requested",
        "connected",
        "dialect",
        "limits",
        "positions",
        "replay",
        "responder",
        "state",
        "transaction_id",
        "watched_until",
    )

    def __init__(
        self,
        *,
        dialect: Dialect,
        clock: Clock,
        limits: Limits,
        connected: Connected,
        replay_budget: ReplayBudget,
        responder: ResponderSettings | None = None,
        transaction_id: int = 1,
        positions: dict[str, int] | None = None,
    ) -> None:
        self.dialect = dialect
        self.clock = clock
        self.limits = limits
        self.connected = connected  # the connection's own event: session id, remote, TLS
        self.responder = responder or ResponderSettings()
        self.transaction_id = transaction_id  # the next one to hand out
        self.state: ChargerStateModel = dialect.new_state()
        self.replay = Replay(
            replay_budget, max_items=limits.replay_size, max_bytes=limits.replay_bytes
        )
        now = clock.monotonic()
        self.watched_until = now + CONNECT_GRACE
        self.close_requested: tuple[int, str] | None = None
        self._raw_calls: dict[str, str] | None = None  # unique id -> action, made on demand
        self._limit = RateLimit(limits.rate_limit, now)
        self._outbox: Outbox | None = None
        self._held: dict[str, tuple[Hold, int, Held]] | None = None
        # (deadline, number, callback, argument): delayed replies, held calls, call timeouts
        self._timers: list[tuple[float, int, Callable[[Any], None], Any]] | None = None
        self._seen_ids: list[str] = []
        self._send: list[str] = []
        self._events: list[Event] = []
        self._to_count: list[int] = []
        self._recorded: list[str] | None = None  # NDJSON lines, while recording
        # action -> calls its answer sequence answered (made when first needed)
        self.positions: dict[str, int] | None = positions or None
        self._positions_unsaved = False
        self._seq = 0
        self._closed = False
        self._state_unsent = False  # changed since the last state event
        self._state_due = 0.0  # when a watching page gets the changed state
        self._presence_stale = False  # changed since the last presence write
        self._presence_write: dict[str, Any] | None = None  # a presence write to make
        self._presence_at = now  # monotonic time of the last presence write
        self._state_written_at = -math.inf  # ... of the last one for a new state
        self._presence_wait = PRESENCE_STATE_EVERY  # this round's, spread (PRESENCE_SPREAD)
        self._presence_due = 0.0  # when the stale state goes to presence
        self._refresh_wait = PRESENCE_REFRESH
        self._flush_at = now + PRESENCE_REFRESH
        self.emit(connected, always=True)

    @property
    def session(self) -> str:
        return self.connected.session

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(self.limits.call_timeout)
        return self._outbox

    @property
    def held(self) -> dict[str, tuple[Hold, int, Held]]:
        if self._held is None:
            self._held = {}
        return self._held

    # Outputs

    def data_to_send(self) -> list[str]:
        """Frames to send to the charger, in order; each is also in the log already."""
        texts, self._send = self._send, []
        return texts

    def events_to_publish(self) -> list[Event]:
        """Events for the identity's pages (only those that watch, or must hear it)."""
        events, self._events = self._events, []
        return events

    @property
    def recording(self) -> bool:
        return self._recorded is not None

    def start_recording(self, headers: list[list[str]] | None = None) -> None:
        """Record from now on: every frame both ways and how the connection ends (the
        recording format, README "Recordings"), starting with how it began. `headers` are
        the handshake's, when recording was on before the charger connected."""
        if self._recorded is not None:
            return
        connected = self.connected
        self._recorded = [
            line_text(
                "connected",
                self.clock.now(),
                session=connected.session,
                remote=connected.remote,
                subprotocol=connected.subprotocol,
                headers=headers,
                tls=connected.tls,
            )
        ]

    def stop_recording(self) -> None:
        self._recorded = None

    def recorded_lines(self) -> list[str]:
        """Recording lines to append to the identity's recording, in order."""
        lines = self._recorded
        if not lines:
            return []
        self._recorded = []
        return lines

    def transactions_to_count(self) -> list[int]:
        """Transaction ids handed out, for the broker's counter (`transaction_counted`)."""
        used, self._to_count = self._to_count, []
        return used

    def sequences_to_save(self) -> dict[str, int] | None:
        """Every action's sequence position, when one changed since last taken: the session
        stores them for the identity (`broker.keys.sequences_key`), so that they survive a
        reconnect and are the same on every instance."""
        if not self._positions_unsaved:
            return None
        self._positions_unsaved = False
        return dict(self.positions or {})

    def take_presence(self) -> dict[str, Any] | None:
        """The presence record to write now, if one is due (the state, some seconds late)."""
        record, self._presence_write = self._presence_write, None
        return record

    def next_deadline(self) -> float | None:
        """When `handle_timeouts` must next be called (monotonic seconds); None: never."""
        if self._closed:
            return None
        if self._timers:
            return min(self._timers[0][0], self._flush_at)
        return self._flush_at

    def presence(self) -> dict[str, Any]:
        outbox = self._outbox
        return {
            "connected": True,
            "connected_since": self.connected.at,
            "subprotocol": self.connected.subprotocol,
            "dialect": self.connected.dialect,
            "session": self.session,
            "warnings": self.connected.warnings,
            "state": self.state.to_json(),
            "queued_calls": len(outbox.queued) if outbox else 0,
            "calls_in_flight": len(outbox.in_flight) if outbox else 0,
            "held_calls": len(self._held or ()),
            "sequences": dict(self.positions or {}),
        }

    # Inputs: frames from the charger

    def receive_bytes(self, data: bytes) -> PendingCheck | None:
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
        return self.receive_text(text)

    def receive_text(self, text: str) -> PendingCheck | None:
        """Take in one frame from the charger. A `PendingCheck` returned must be run and
        finished (`finish_check`) before the next frame is fed."""
        now = self.clock.monotonic()
        if not self._limit.take(now):
            self._refuse_over_limit(text, now)
            return None
        frame = parse(text)
        if isinstance(frame, InvalidFrame):
            self._frame("in", text, frame, note=frame.reason)
            if frame.reply is not None:
                self._queue(frame.reply.to_json(), frame.reply)
            return None
        if isinstance(frame, Call):
            return self._receive_call(frame, text)
        return self._receive_answer(frame, text)

    def finish_check(
        self, pending: PendingCheck, violations: list[Violation] | None, note: str | None = None
    ) -> None:
        """The result of a `PendingCheck`: its violations, or None when it was not run."""
        pending.resume(violations, note)

    def _refuse_over_limit(self, text: str, now: float) -> None:
        """A frame over the rate limit: cheap to refuse, and a long flood is cut off."""
        limit = self._limit
        start = frame_start(text)
        if start is not None and start[0] == CALL:
            # Sent without a log entry: a flood must not flood the pages too.
            self._send.append(CallError(start[1], "GenericError", RATE_LIMITED).to_json())
        count = limit.report_due(now)
        if count:
            self.notice(
                f"rate limit of {self.limits.rate_limit:g} frames/s exceeded: frames are "
                "refused (CALLs with a CALLERROR) and not shown"
                if count == 1 and limit.flooding_for(now) == 0
                else f"rate limit: {count} more frames refused"
            )
        flood = self.limits.flood_disconnect
        if flood and self.close_requested is None and limit.flooding_for(now) >= flood:
            self.close_requested = (1008, f"over the rate limit for {flood:g} s")

    def _receive_call(self, call: Call, text: str) -> PendingCheck | None:
        refusal = check_call(call, self.dialect)
        if refusal is not None:
            self._frame("in", text, call, note=refusal.description)
            self._queue(refusal.to_json(), refusal)
            return None
        if len(text) <= self.limits.inline_check_bytes:
            violations = self.dialect.validate(call.action, call.payload, False)
            self._answer_call(call, text, violations, None)
            return None
        return PendingCheck(
            self.dialect,
            call.action,
            call.payload,
            False,
            len(text),
            lambda violations, note: self._answer_call(call, text, violations, note),
        )

    def _answer_call(
        self, call: Call, text: str, checked: list[Violation] | None, note: str | None
    ) -> None:
        violations, notes = (checked, []) if checked is not None else ([], [note or NOT_CHECKED])
        if call.unique_id in self._seen_ids:
            notes.append(f"duplicate unique id {call.unique_id!r}: this charger already used it")
        _append_bounded(self._seen_ids, call.unique_id, SEEN_IDS)
        wall = self.clock.now()  # one reading for the call, its answer and the state
        at = format_time(wall)
        self._frame("in", text, call, violations=violations, note="; ".join(notes) or None, at=at)
        context = AnswerContext(wall, self.transaction_id)
        sequence = self.responder.sequence(call.action)
        position = (self.positions or {}).get(call.action, 0) if sequence else 0
        answer = respond(
            call,
            self.responder,
            context,
            violations,
            manual_timeout=self.limits.manual_timeout,
            dialect=self.dialect,
            position=position,
        )
        if sequence is not None and answers_by_rule(self.responder, violations):
            self._move_sequence(call.action, sequence, position + 1)
        if isinstance(answer, Silence):
            self.notice(f"{call.action} {call.unique_id} left unanswered: {answer.reason}")
            self._apply_state(call, None, at)
        elif isinstance(answer, Hold):
            self._hold(answer)
        elif answer.delay > 0:
            self._after(answer.delay, self._send_reply_later, (call, answer))
        else:
            self._send_reply(call, answer, at)

    def _send_reply_later(self, item: tuple[Call, Reply]) -> None:
        self._send_reply(*item)

    def _send_reply(self, call: Call, reply: Reply, at: str | None = None) -> None:
        if reply.uses_transaction_id:
            used = self.transaction_id
            self.transaction_id = used + 1
            self._to_count.append(used)
        at = at or format_time(self.clock.now())
        self._queue(reply.frame.to_json(), reply.frame, action=call.action, at=at)
        payload = reply.frame.payload if isinstance(reply.frame, CallResult) else None
        self._apply_state(call, payload, at)

    def _receive_answer(self, frame: CallResult | CallError, text: str) -> PendingCheck | None:
        outbox = self._outbox
        item = outbox.answer(frame) if outbox is not None else None
        if item is None:
            raw_action = self._raw_calls.pop(frame.unique_id, None) if self._raw_calls else None
            if raw_action is not None:
                violations = []
                if isinstance(frame, CallResult) and len(text) <= self.limits.inline_check_bytes:
                    violations = self.dialect.validate(raw_action, frame.payload, True)
                note = "answers a raw frame sent from a page"
                self._frame("in", text, frame, violations=violations, note=note, action=raw_action)
                return None
            note = f"answers no call in flight (unique id {frame.unique_id!r})"
            self._frame("in", text, frame, note=note)
            return None
        if isinstance(frame, CallError):
            self._answered(item, frame, text, [], None)
            return None
        action = item.call.action
        if len(text) <= self.limits.inline_check_bytes:
            violations = self.dialect.validate(action, frame.payload, True)
            self._answered(item, frame, text, violations, None)
            return None
        return PendingCheck(
            self.dialect,
            action,
            frame.payload,
            True,
            len(text),
            lambda violations, note: self._answered(item, frame, text, violations, note),
        )

    def _answered(
        self,
        item: Outgoing,
        frame: CallResult | CallError,
        text: str,
        violations: list[Violation] | None,
        note: str | None,
    ) -> None:
        if violations is None:
            violations, note = [], note or NOT_CHECKED
        action = item.call.action
        self._frame("in", text, frame, violations=violations, note=note, action=action)
        if isinstance(frame, CallResult):
            self._outcome(item, "result", payload=frame.payload, violations=violations)
        else:
            error = {"code": frame.code, "description": frame.description, "details": frame.details}
            self._outcome(item, "error", error=error)
        self._pump()

    # Held (manual) calls

    def _hold(self, hold: Hold) -> None:
        call, held = hold.call, self.held
        if len(held) >= MAX_HELD:
            # Each held call keeps its request and a card on every page: a charger that
            # sends faster than a person answers gets the fallback at once instead.
            self.notice(
                f"{call.action} {call.unique_id} not held: {MAX_HELD} calls wait for an "
                f"answer already; the fallback ({hold.fallback}) is used"
            )
            self._fall_back(hold)
            return
        deadline = self.clock.now() + datetime.timedelta(seconds=hold.timeout)
        event = Held(
            unique_id=call.unique_id,
            action=call.action,
            request=call.payload,
            proposal=hold.proposal,
            timeout=hold.timeout,
            deadline=format_time(deadline),
            fallback=hold.fallback,
        )
        number = self._after(hold.timeout, self._hold_expired, call.unique_id)
        held[call.unique_id] = (hold, number, event)
        self.emit(event, always=True)

    def _hold_expired(self, unique_id: str) -> None:
        entry = self.held.pop(unique_id, None)
        if entry is None:
            return
        how = "timeout-ignore" if self._fall_back(entry[0]) is None else "timeout-default"
        self.emit(Released(unique_id=unique_id, how=how), always=True)

    def _fall_back(self, hold: Hold) -> Reply | None:
        """Answer a held call as its rule's fallback says; the reply sent, or None (silence)."""
        context = AnswerContext(self.clock.now(), self.transaction_id)
        answer = fallback_answer(hold, context, dialect=self.dialect)
        if isinstance(answer, Silence):
            return None
        self._send_reply(hold.call, answer)
        return answer

    def _release(self, command: AnswerHeld) -> None:
        """Answer a held call as a person decided; the first answer wins."""
        unique_id, token = command.unique_id, command.token
        entry = self.held.pop(unique_id, None)
        if entry is None:
            self.emit(AnswerRefused(unique_id=unique_id, by=token), always=True)
            return
        hold = entry[0]
        self._cancel_timer(entry[1])
        if command.ignore:
            self.emit(Released(unique_id=unique_id, how="ignored", by=token), always=True)
            return
        frame: CallResult | CallError
        error = command.error
        if isinstance(error, dict):
            details = error.get("details")
            frame = CallError(
                unique_id,
                str(error.get("code") or "GenericError"),
                str(error.get("description") or ""),
                details if isinstance(details, dict) else {},
            )
        else:
            frame = CallResult(unique_id, {} if command.payload is None else command.payload)
        self.emit(Released(unique_id=unique_id, how="answered", by=token), always=True)
        uses_id = isinstance(frame, CallResult) and hold.call.action == (
            self.dialect.transaction_action
        )
        answer = Reply(frame, hold.delay, uses_transaction_id=uses_id)
        if hold.delay > 0:
            self._after(hold.delay, self._send_reply_later, (hold.call, answer))
        else:
            self._send_reply(hold.call, answer)

    # Central-system calls

    def _submit(self, command: SendCall) -> None:
        call = Call(command.unique_id, command.action, command.payload)
        outbox = self.outbox
        outbox.submit(call, concurrent=command.concurrent)
        self._pump()
        queued = [item.call.unique_id for item in outbox.queued]
        if call.unique_id in queued:
            self.emit(
                Queued(
                    unique_id=call.unique_id,
                    action=call.action,
                    payload=call.payload,
                    position=queued.index(call.unique_id) + 1,
                ),
                always=True,
            )

    def _pump(self) -> None:
        """Send every call that may go now, and arm its timeout."""
        outbox = self._outbox
        if outbox is None:
            return
        for item in outbox.due(self.clock.monotonic()):
            self._after(outbox.timeout, self._expire_calls, None)
            call = item.call
            self._queue(call.to_json(), call, action=call.action)
            self.emit(
                Sent(unique_id=call.unique_id, action=call.action, timeout=outbox.timeout),
                always=True,
            )

    def _expire_calls(self, _: Any) -> None:
        for item in self.outbox.expire(self.clock.monotonic()):
            self._outcome(item, "timeout")
        self._pump()

    def _outcome(
        self,
        item: Outgoing,
        outcome: str,
        *,
        payload: Any = None,
        error: dict[str, Any] | None = None,
        violations: list[Violation] | None = None,
    ) -> None:
        rtt = None
        if item.sent_at is not None and outcome in {"result", "error"}:
            rtt = round((self.clock.monotonic() - item.sent_at) * 1000, 1)
        self.emit(
            Outcome(
                unique_id=item.call.unique_id,
                action=item.call.action,
                outcome=outcome,
                payload=payload,
                error=error,
                violations=[violation.as_dict() for violation in violations or []],
                rtt_ms=rtt,
            ),
            always=True,
        )

    # Inputs: commands from pages, forms and the API

    def receive_command(self, command: Command) -> None:
        if isinstance(command, Watch):
            self.watched_until = self.clock.monotonic() + WATCH_TTL
            if command.page:
                self._events.append(self._replay_for(command.page))
            self._schedule_flush()  # a state change waiting for a watcher goes out now
        elif isinstance(command, SendCall):
            self._submit(command)
        elif isinstance(command, CancelCall):
            cancelled = self.outbox.cancel(command.unique_id)
            if cancelled is not None:
                self._outcome(cancelled, "cancelled")
        elif isinstance(command, SendRaw):
            self.send_raw(command.text)
        elif isinstance(command, AnswerHeld):
            self._release(command)
        elif isinstance(command, NewSettings):
            self._new_settings(ResponderSettings.from_json(command.settings))
        elif isinstance(command, RestartSequence):
            restarted = [command.action] if command.action else list(self.positions or ())
            for action in restarted:
                self._move_sequence(action, self.responder.sequence(action), 0)
        elif isinstance(command, CutConnection):
            if self.close_requested is None:
                self.close_requested = (1001, f"cut on purpose for {command.seconds:g} s")
        elif isinstance(command, Record):
            if command.on:
                self.start_recording()
            else:
                self.stop_recording()

    def _new_settings(self, settings: ResponderSettings) -> None:
        """New rules apply to the next call; an action whose rule changed starts its
        sequence over."""
        old, self.responder = self.responder, settings
        for action in list(self.positions or ()):
            if old.configured(action) != settings.configured(action):
                self._move_sequence(action, settings.sequence(action), 0)

    # Answer sequences

    def _move_sequence(self, action: str, sequence: Sequence | None, position: int) -> None:
        """Set where `action`'s sequence is, for the broker and every page."""
        positions = self.positions
        if positions is None:
            positions = self.positions = {}
        if position:
            positions[action] = position
        else:
            positions.pop(action, None)
        self._positions_unsaved = True
        self.emit(sequence_position(action, sequence, position), always=True)

    def send_raw(self, text: str) -> None:
        """Send any text the person typed, however invalid, and show it."""
        text = encodable(text)  # a lone surrogate cannot go out as UTF-8: its escape does
        frame = parse(text)
        if isinstance(frame, Call):
            # Its answer is not one the outbox waits for, but it answers this call.
            raw_calls = self._raw_calls
            if raw_calls is None:
                raw_calls = self._raw_calls = {}
            raw_calls.pop(frame.unique_id, None)
            raw_calls[frame.unique_id] = frame.action
            while len(raw_calls) > MAX_RAW_CALLS:
                del raw_calls[next(iter(raw_calls))]
        self._queue(text, frame if not isinstance(frame, InvalidFrame) else None)

    def _replay_for(self, page: str) -> ReplayEvent:
        session = self.session
        return ReplayEvent(
            page=page,
            session=session,
            events=[
                item if isinstance(item, Event) else frame_event(item, session)
                for item in self.replay.items
            ],
            connected=self.connected,
            state=self.state.to_json(),
            held=[event for _, _, event in (self._held or {}).values()],
        )

    # Inputs: time, and the broker's answers

    def handle_timeouts(self) -> None:
        """Do what is due by now: delayed replies, held calls' and calls' deadlines, state."""
        now = self.clock.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now and not self._closed:
            _, _, callback, argument = heapq.heappop(timers)
            callback(argument)
        if now >= self._flush_at and not self._closed:
            self._flush_state(now)
        self._schedule_flush()

    def transaction_counted(self, used: int, counted: int) -> None:
        """The broker's counter stood at `counted` after id `used` was counted: another
        connection of the identity may have handed out ids meanwhile."""
        self.transaction_id = max(self.transaction_id, counted + 1, used + 1)

    def send_failed(self) -> None:
        self.notice("could not send: the charger connection is closing")

    def connection_lost(self, code: int, reason: str) -> None:
        """The socket closed: release what waits, and say how it ended."""
        if self._closed:
            return
        self._emit_state()  # the last change before a close reaches the pages
        self._closed = True
        for hold, _, _ in (self._held or {}).values():
            self.emit(Released(unique_id=hold.call.unique_id, how="gone"), always=True)
        self._held = None
        self._timers = None
        if self._outbox is not None:
            for item in self._outbox.clear():
                gone = {"code": "", "description": "charger gone"}
                self._outcome(item, "offline", error=gone)
        self.emit(Disconnected(code=code, reason=reason), always=True)
        if self._recorded is not None:
            self._recorded.append(
                line_text(
                    "disconnected",
                    self.clock.now(),
                    session=self.session,
                    code=code,
                    reason=reason,
                )
            )
        self.replay.close()

    # Events

    def emit(self, event: Event, *, always: bool = False) -> None:
        """Stamp an event, keep it for the replay, publish it if a page watches (or `always`)."""
        if not event.at:
            event.at = format_time(self.clock.now())
        self._seq += 1
        event.seq, event.session = self._seq, self.connected.session
        if event.replayed:
            self.replay.append(*shrunk(event, self.replay.item_bytes))
        if always or self.watched():
            self._events.append(event)

    def watched(self) -> bool:
        """Whether a page watches (or may soon watch: CONNECT_GRACE) this charger."""
        return self.clock.monotonic() < self.watched_until

    def notice(self, text: str) -> None:
        self.emit(Notice(text=text))

    def _queue(
        self,
        text: str,
        frame: Frame | None,
        *,
        action: str | None = None,
        at: str | None = None,
    ) -> None:
        """Send `text` to the charger; the log shows exactly these characters."""
        self._send.append(text)
        self._frame("out", text, frame if frame is not None else parse(text), action=action, at=at)

    def _frame(
        self,
        direction: str,
        text: str,
        frame: Frame | InvalidFrame | None,
        *,
        violations: list[Violation] | None = None,
        note: str | None = None,
        action: str | None = None,
        at: str | None = None,
    ) -> None:
        kind = "invalid" if frame is None else message_type_name(frame)
        self._seq += 1
        raw, full_size = truncated(text, self.replay.item_bytes)
        record: FrameRecord = (
            self._seq,
            at or self.clock.now(),
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
            self._events.append(frame_event(record, self.session))
        if self._recorded is not None:  # the exact text, however long: the limit bounds it
            self._recorded.append(
                line_text(
                    "frame", at or self.clock.now(), session=self.session, dir=direction, text=text
                )
            )

    # State and presence

    def _apply_state(self, call: Call, answer: Any, at: str) -> None:
        note = self.state.apply(call.action, call.payload, answer, at)
        if note:
            self.notice(note)
        if not self._state_unsent:
            # Due once, from the first change: later changes must not push it back.
            self._state_unsent, self._state_due = True, self.clock.monotonic() + STATE_FLUSH
        if not self._presence_stale:
            self._presence_stale = True
            now = self.clock.monotonic()
            quiet = now + random.uniform(STATE_FLUSH, PRESENCE_STATE_EVERY)
            self._presence_due = max(quiet, self._state_written_at + self._presence_wait)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """When the state next goes out: to a watching page soon, to presence later.

        Presence is written (with the state) some seconds after a change, about every
        PRESENCE_STATE_EVERY while changes go on, and refreshed every PRESENCE_REFRESH.
        """
        due = self._presence_at + self._refresh_wait
        if self._presence_stale:
            due = min(due, self._presence_due)
        if self._state_unsent and self.watched():
            due = min(due, self._state_due)
        self._flush_at = due

    def _emit_state(self) -> dict[str, Any] | None:
        """Send watching pages the state if it changed since they last got it; the state sent.

        Only watching pages get state events (a replay carries the state itself).
        """
        if not (self._state_unsent and self.watched()):
            return None
        self._state_unsent = False
        state = self.state.to_json()
        self.emit(StateChanged(state=state))
        return state

    def _flush_state(self, now: float) -> None:
        state = self._emit_state()
        state_due = self._presence_stale and now >= self._presence_due
        if state_due or now >= self._presence_at + self._refresh_wait:
            if self._presence_stale:
                self._presence_stale, self._state_written_at = False, now
            self._presence_at = now
            self._presence_wait = _spread(PRESENCE_STATE_EVERY)
            self._refresh_wait = _spread(PRESENCE_REFRESH)
            record = self.presence()
            if state is not None:
                record["state"] = state
            self._presence_write = record

    # Timers

    def _after(self, delay: float, callback: Callable[[Any], None], argument: Any) -> int:
        """Call `callback(argument)` in `delay` seconds unless closed by then; its number."""
        if self._timers is None:
            self._timers = []
        self._seq += 1
        heapq.heappush(
            self._timers, (self.clock.monotonic() + delay, self._seq, callback, argument)
        )
        return self._seq

    def _cancel_timer(self, number: int) -> None:
        timers = self._timers or []
        for index, entry in enumerate(timers):
            if entry[1] == number:
                timers[index] = timers[-1]
                timers.pop()
                heapq.heapify(timers)
                return


def _spread(seconds: float) -> float:
    return seconds * random.uniform(1 - PRESENCE_SPREAD, 1 + PRESENCE_SPREAD)


def _append_bounded(items: list[Any], item: Any, limit: int) -> None:
    items.append(item)
    if len(items) > limit:
        del items[: len(items) - limit]


def sequence_position(action: str, sequence: Sequence | None, position: int) -> SequencePosition:
    """The pages' event for `action`'s sequence at `position` (or for no sequence)."""
    if sequence is None:
        return SequencePosition(action=action, position=position)
    return SequencePosition(
        action=action,
        position=position,
        step=sequence.step_index(position) + 1,
        steps=len(sequence.steps),
    )


def frame_event(record: FrameRecord, session: str) -> FrameEvent:
    """The page's event for a frame the replay keeps as a record."""
    seq, at, direction, kind, action, unique_id, raw, violations, note, full_size = record
    return FrameEvent(
        dir=direction,
        type=kind,
        action=action,
        unique_id=unique_id,
        raw=raw,
        violations=[dict(violation) for violation in violations or ()],
        note=note,
        truncated=full_size,
        at=at if isinstance(at, str) else format_time(at),
        seq=seq,
        session=session,
    )
