"""The OCPP-J 1.6 core, sans-I/O: frames in and out, and bookkeeping of calls in flight.

Nothing here touches a socket or sleeps. Time is passed in as `now` (seconds, monotonic),
so every rule of the protocol can be tested with literal frames and literal clocks.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    from ocpplab.core.dialect import Dialect

# OCPP-J 1.6 section 4.1.3 "The message type": the first element of every frame.
CALL = 2
CALLRESULT = 3
CALLERROR = 4

MESSAGE_TYPE_NAMES = {CALL: "CALL", CALLRESULT: "CALLRESULT", CALLERROR: "CALLERROR"}

# OCPP-J 1.6 section 4.1.4 "The message ID": a string of at most 36 characters.
MAX_UNIQUE_ID_LENGTH = 36
# Arrays and objects a frame may nest, its own array included. The deepest OCPP 1.6 frame
# nests six (StopTransaction, SetChargingProfile), OCPP 2.0.1's fourteen. Deeper text is not
# read: the standard library's parser (and every walk over the value) would recurse towards
# Python's limit and raise RecursionError, and checking the depth costs a pass over the
# text per level.
MAX_DEPTH = 20


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """[2, uniqueId, action, payload] — OCPP-J 1.6 section 4.2.1."""

    unique_id: str
    action: str
    payload: Any

    def to_json(self) -> str:
        return dumps_compact([CALL, self.unique_id, self.action, self.payload])


@dataclasses.dataclass(frozen=True, slots=True)
class CallResult:
    """[3, uniqueId, payload] — OCPP-J 1.6 section 4.2.2."""

    unique_id: str
    payload: Any

    def to_json(self) -> str:
        return dumps_compact([CALLRESULT, self.unique_id, self.payload])


@dataclasses.dataclass(frozen=True, slots=True)
class CallError:
    """[4, uniqueId, errorCode, errorDescription, errorDetails] — OCPP-J 1.6 section 4.2.3."""

    unique_id: str
    code: str
    description: str = ""
    details: Any = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return dumps_compact([CALLERROR, self.unique_id, self.code, self.description, self.details])


Frame = Call | CallResult | CallError


@dataclasses.dataclass(frozen=True, slots=True)
class InvalidFrame:
    """A frame that breaks OCPP-J. `reply` is the CALLERROR owed, when one can be addressed."""

    reason: str
    unique_id: str | None = None
    reply: CallError | None = None


# The standard library's encoder and decoder decide what a frame's text is: orjson is
# only a faster way to the same result, and hands back whatever it would read or write
# differently (NaN, integers beyond 64 bits, non-string keys, lone surrogates, invalid
# JSON and the wording of its error). The one difference left is a float's spelling in
# an answer: 1e-7 where json writes 1e-07, the same number.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# Integer literals of 19 digits or more may not fit in 64 bits; orjson reads them as floats.
_DIGITS = bytes(0 if ord("0") <= byte <= ord("9") else 1 for byte in range(256))
_LONG_NUMBER = bytes(19)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What the nesting check keeps of a frame's bytes: brackets, braces and string quotes.
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
_QUOTED = re.compile(rb'"[^"]*"')
# `[2, "uniqueId"` at the start of a frame: a unique id of 36 characters may take 216 when
# each is written as a \uXXXX escape.
_FRAME_START = re.compile(r'\s*\[\s*([234])\s*,\s*("(?:[^"\\]|\\.){0,216}")')


class TooDeep(ValueError):
    """JSON text that nests arrays and objects deeper than `MAX_DEPTH`."""

    def __init__(self) -> None:
        super().__init__(f"arrays and objects nested deeper than {MAX_DEPTH} levels")


def encodable(text: str) -> str:
    """`text` with each lone surrogate written as its `\\uXXXX` escape, so UTF-8 can encode it.

    JSON may spell a lone surrogate (`"\\ud800"`), and Python reads it into a string that
    no UTF-8 encoder takes: sending or publishing such text would fail. In JSON text the
    escape is the same value again; on a page it shows what the charger sent.
    """
    if text.isascii():
        return text
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def dumps_compact(value: Any) -> str:
    """`value` as compact JSON text, non-ASCII characters kept as they are.

    Lone surrogates are the exception: they are written as `\\uXXXX` escapes, so that the
    text can always be sent, published and shown (`encodable`).
    """
    try:
        text = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return encodable(_ENCODER.encode(value))
    if b"null" in text:  # perhaps a NaN or an infinity, which orjson writes as null
        return _ENCODER.encode(value)  # orjson took it: no lone surrogate in it
    return text.decode()


def nests_too_deep(data: bytes) -> bool:
    """Whether JSON text nests arrays and objects deeper than `MAX_DEPTH`, read without parsing.

    Only bytes operations, each a pass in C: strings are dropped (their brackets do not
    count), then each pass removes the innermost `[]` pairs; text still left after
    `MAX_DEPTH` passes nests deeper. Text that is not JSON is left to the parser.
    """
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    if b"\\" in data:  # escaped backslashes first, then escaped quotes, are string content
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = data.translate(None, _NOT_STRUCTURE)
    if b'"' in structure:
        # Adjacent quotes open and close a string, or close one and open the next with
        # no bracket between: either way, dropping them keeps every string delimited.
        structure = structure.replace(b'""', b"")
        if b'"' in structure:
            structure = _QUOTED.sub(b"", structure)
    structure = structure.translate(_BRACES_AS_BRACKETS)
    for _ in range(MAX_DEPTH):
        inner_removed = structure.replace(b"[]", b"")
        if not inner_removed or len(inner_removed) == len(structure):
            return False
        structure = inner_removed
    return True


def loads(text: str | bytes) -> Any:
    """JSON text to a value, exactly as `json.loads` reads it (and fails on it).

    Text nested deeper than `MAX_DEPTH` raises `TooDeep` (a ValueError) before it is read.
    """
    data = text.encode(errors="surrogatepass") if isinstance(text, str) else text
    if nests_too_deep(data):
        raise TooDeep
    try:
        if _LONG_NUMBER in data.translate(_DIGITS):
            return json.loads(text)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return json.loads(text)
    except RecursionError:  # text the nesting check left to the parser: not JSON at all
        raise TooDeep from None


def frame_start(text: str | bytes) -> tuple[int, str] | None:
    """The message type and unique id a frame starts with, read without parsing the rest.

    For a frame that cannot be parsed (too deep): its CALL can still be answered with the
    CALLERROR that OCPP-J 1.6 section 4.2.3 asks for.
    """
    head = text[:512] if isinstance(text, str) else text[:512].decode(errors="replace")
    match = _FRAME_START.match(head)
    if match is None:
        return None
    try:
        unique_id = json.loads(match.group(2))
    except ValueError:
        return None
    return int(match.group(1)), unique_id


def message_type_name(frame: Frame | InvalidFrame) -> str:
    if isinstance(frame, Call):
        return "CALL"
    if isinstance(frame, CallResult):
        return "CALLRESULT"
    if isinstance(frame, CallError):
        return "CALLERROR"
    return "invalid"


def parse(text: str | bytes) -> Frame | InvalidFrame:
    """Read one websocket message as an OCPP-J frame, or say exactly why it is not one."""
    try:
        value = loads(text)
    except TooDeep as exc:
        return _too_deep(text, exc)
    except (ValueError, UnicodeDecodeError) as exc:
        return InvalidFrame(f"not JSON: {exc}")
    if not isinstance(value, list):
        return InvalidFrame(f"not a JSON array but {type(value).__name__}")
    if not value or type(value[0]) is not int or value[0] not in MESSAGE_TYPE_NAMES:
        first = value[0] if value else "nothing"
        return InvalidFrame(f"unknown message type {first!r}: expected 2, 3 or 4")
    if len(value) < 2 or not isinstance(value[1], str):
        return InvalidFrame("the unique id (second element) is missing or not a string")
    message_type, unique_id = value[0], value[1]
    if message_type == CALL:
        return _parse_call(value, unique_id)
    if message_type == CALLRESULT:
        if len(value) != 3 or not isinstance(value[2], dict):
            return InvalidFrame("a CALLRESULT is [3, uniqueId, {payload}]", unique_id)
        return CallResult(unique_id, value[2])
    return _parse_call_error(value, unique_id)


def _too_deep(text: str | bytes, exc: TooDeep) -> InvalidFrame:
    """A frame too deep to read. A CALL among them is answered with FormationViolation.

    OCPP-J 1.6 section 4.2.3: FormationViolation is "payload for Action is syntactically
    incorrect or not conform the PDU structure for Action". No OCPP 1.6 PDU nests this
    deep, so such a payload cannot conform to its action's structure, whatever the action;
    ProtocolError ("payload for Action is incomplete") says something else.
    """
    reason = f"not read: {exc}"
    start = frame_start(text)
    if start is None:
        return InvalidFrame(reason)
    message_type, unique_id = start
    if message_type != CALL or not 0 < len(unique_id) <= MAX_UNIQUE_ID_LENGTH:
        return InvalidFrame(reason, unique_id)
    reply = CallError(unique_id, "FormationViolation", f"the frame was {reason}")
    return InvalidFrame(reason, unique_id, reply)


def _parse_call(value: list[Any], unique_id: str) -> Call | InvalidFrame:
    def refuse(code: str, reason: str) -> InvalidFrame:
        return InvalidFrame(reason, unique_id, CallError(unique_id, code, reason))

    if len(unique_id) > MAX_UNIQUE_ID_LENGTH or not unique_id:
        return refuse(
            "ProtocolError", f"the unique id must be 1 to {MAX_UNIQUE_ID_LENGTH} characters"
        )
    if len(value) < 4:
        return refuse("ProtocolError", "a CALL is [2, uniqueId, action, {payload}]: incomplete")
    if len(value) > 4 or not isinstance(value[2], str) or not isinstance(value[3], dict):
        return refuse("FormationViolation", "a CALL is [2, uniqueId, action, {payload}]: malformed")
    return Call(unique_id, value[2], value[3])


def _parse_call_error(value: list[Any], unique_id: str) -> CallError | InvalidFrame:
    if len(value) not in (4, 5) or not isinstance(value[2], str) or not isinstance(value[3], str):
        return InvalidFrame(
            "a CALLERROR is [4, uniqueId, errorCode, errorDescription, {errorDetails}]", unique_id
        )
    details = value[4] if len(value) == 5 else {}
    return CallError(unique_id, value[2], value[3], details)


def check_call(call: Call, dialect: Dialect) -> CallError | None:
    """The CALLERROR owed for a CALL whose action a central system cannot take, if any.

    OCPP-J 1.6 section 4.2.3: NotImplemented for an action `dialect` (the charger's OCPP
    version) does not know, NotSupported for one it knows but only a central system sends.
    """
    if dialect.is_charger_action(call.action):
        return None
    if dialect.is_central_action(call.action):
        return CallError(
            call.unique_id,
            "NotSupported",
            f"{call.action} is sent by a central system, not by a charge point",
        )
    return CallError(
        call.unique_id, "NotImplemented", f"{call.action!r} is not an {dialect.name} action"
    )


# Calls the central system sends: queued, in flight, answered or timed out.


@dataclasses.dataclass(slots=True)
class Outgoing:
    """A central-system call and its fate."""

    call: Call
    concurrent: bool = False
    sent_at: float | None = None
    deadline: float | None = None


Outcome = Literal["answered", "timeout"]


class Outbox:
    """Central-system calls in order, one in flight at a time unless asked otherwise.

    OCPP-J 1.6 section 4.1.1 "Synchronicity": a central system should not send a CALL
    before the previous one is answered or has timed out. A call submitted with
    `concurrent=True` skips the queue on purpose, to see how a charger copes.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.queued: list[Outgoing] = []  # a list: an empty deque costs 760 bytes
        self.in_flight: dict[str, Outgoing] = {}

    def submit(self, call: Call, *, concurrent: bool = False) -> None:
        self.queued.append(Outgoing(call, concurrent))

    def due(self, now: float) -> list[Outgoing]:
        """Calls to send now; they count as in flight from `now`."""
        ready: list[Outgoing] = []
        serial_busy = any(not item.concurrent for item in self.in_flight.values())
        for item in list(self.queued):
            if item.concurrent or not serial_busy:
                self.queued.remove(item)
                item.sent_at, item.deadline = now, now + self.timeout
                self.in_flight[item.call.unique_id] = item
                ready.append(item)
                serial_busy = serial_busy or not item.concurrent
        return ready

    def answer(self, frame: CallResult | CallError) -> Outgoing | None:
        """The call this CALLRESULT or CALLERROR answers; None when its id is unknown."""
        return self.in_flight.pop(frame.unique_id, None)

    def expire(self, now: float) -> list[Outgoing]:
        """Calls in flight whose deadline has passed; they are forgotten."""
        late = [
            item
            for item in self.in_flight.values()
            if item.deadline is not None and item.deadline <= now
        ]
        for item in late:
            del self.in_flight[item.call.unique_id]
        return late

    def cancel(self, unique_id: str) -> Outgoing | None:
        """Remove a queued call before it is sent."""
        for item in self.queued:
            if item.call.unique_id == unique_id:
                self.queued.remove(item)
                return item
        return None

    def clear(self) -> list[Outgoing]:
        """Forget everything (the charger went away); returns what was pending."""
        pending = list(self.in_flight.values()) + list(self.queued)
        self.in_flight.clear()
        self.queued.clear()
        return pending
