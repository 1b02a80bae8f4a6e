"""The charger page's log as one page socket sees it: one line per exchange, payloads kept aside.

A CALL and its CALLRESULT or CALLERROR are one line, paired by unique id in both directions
(the charger's calls answered by the server, the central system's calls answered by the
charger; OCPP-J 1.6 section 4.1: an answer carries its call's unique id). The page socket
sends a line without its payloads, and each later change of the line (its answer, its
outcome, a held call) as a swap of the line's outcome alone, so that a line never moves.
The frames themselves stay here, bounded in lines and bytes, for when the person expands a
line (`PageLog.line`) or searches them (`PageLog.search`): the page socket sends payloads
only when asked.

Nothing here is shared between pages: each open page has its own `PageLog`, and a page
that reloads starts a new one from the gateway's replay.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime

from ocpplab.core.frames import dumps_compact, loads
from ocpplab.core.messages import (
    Connected,
    Event,
    FrameEvent,
    Held,
    Outcome,
    Released,
    Sent,
)

MAX_LINES = 2000  # lines whose frames a page socket keeps (the page shows as many)
MAX_BYTES = 1 << 20  # characters of frames kept per page socket, at most
MAX_OPEN = 500  # calls waiting for their answer that a page pairs, at most
MAX_QUERY = 200  # characters of a search
ANSWERS = {"CALLRESULT", "CALLERROR"}


@dataclasses.dataclass(slots=True, eq=False)
class Line:
    """One line of the log: an exchange (a call, its answer, its outcome) or an event."""

    n: int  # its number on this page: the DOM ids `l{n}`, `o{n}`, `b{n}`
    event: Event  # the call frame, an answer nobody asked for, or a one-line event
    answer: FrameEvent | None = None
    outcome: str = ""  # "" (waiting), result, error, timeout, cancelled, offline
    rtt_ms: float | None = None
    error_code: str | None = None
    held: str = ""  # "held" while a person is to answer; how it was released after
    expects_outcome: bool = False  # a central-system call: its Outcome event says how it ended
    size: int = 0

    @property
    def frame(self) -> FrameEvent | None:
        return self.event if isinstance(self.event, FrameEvent) else None

    @property
    def is_exchange(self) -> bool:
        return self.frame is not None

    @property
    def frames(self) -> list[FrameEvent]:
        return [frame for frame in (self.frame, self.answer) if frame is not None]

    @property
    def violations(self) -> int:
        return sum(len(frame.violations) for frame in self.frames)

    @property
    def answer_type(self) -> str:
        if self.answer is not None:
            return self.answer.type
        return "CALLERROR" if self.outcome == "error" else ""

    @property
    def problem(self) -> bool:
        """What "problems only" shows: CALLERROR, invalid, violations, timeouts."""
        frame = self.frame
        if frame is None:
            return False
        return bool(
            self.violations
            or frame.type in {"invalid", "CALLERROR"}
            or self.answer_type == "CALLERROR"
            or self.outcome in {"timeout", "error"}
        )

    @property
    def action(self) -> str:
        frame = self.frame
        action = (frame.action if frame else getattr(self.event, "action", None)) or ""
        return str(action)

    def text(self) -> str:
        """What a search looks in: the exact frames, the action and the unique id."""
        parts = [frame.raw for frame in self.frames]
        parts += [self.action, str(getattr(self.event, "unique_id", None) or "")]
        return "\n".join(parts)


def rtt_between(start: str, end: str) -> float | None:
    """Milliseconds between two event times (ISO 8601 with Z); None when either is unreadable."""
    try:
        first = datetime.datetime.fromisoformat(start)
        second = datetime.datetime.fromisoformat(end)
    except ValueError:
        return None
    return max(0.0, round((second - first).total_seconds() * 1000, 1))


class PageLog:
    """The lines one page has been sent, their frames, and the calls still to be answered."""

    def __init__(self, *, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.lines: collections.OrderedDict[int, Line] = collections.OrderedDict()
        self.bytes = 0
        self.next_n = 1
        # ("in" | "out", unique id) of a call -> its line, until the call is answered
        self._open: collections.OrderedDict[tuple[str, str], Line] = collections.OrderedDict()
        self._by_uid: dict[str, Line] = {}  # central-system calls waiting for their Outcome
        self.query = ""

    # What arrives

    def add(self, event: Event) -> tuple[list[Line], list[Line]]:
        """Take one event: the lines it adds and the lines whose outcome it changes."""
        if isinstance(event, Connected):
            self._open.clear()
            self._by_uid.clear()
        if isinstance(event, FrameEvent):
            return self._frame(event)
        if isinstance(event, Sent):
            line = self._open.get(("out", event.unique_id))
            if line is not None:
                line.expects_outcome = True
                self._by_uid[event.unique_id] = line
            return [], []
        if isinstance(event, Outcome):
            return self._outcome(event)
        changed = []
        if isinstance(event, Held | Released):
            call = self._open.get(("in", event.unique_id))
            if call is not None:
                call.held = "held" if isinstance(event, Held) else event.how
                changed.append(call)
        return [self._new(event)], changed

    def _frame(self, frame: FrameEvent) -> tuple[list[Line], list[Line]]:
        uid = frame.unique_id
        if frame.type in ANSWERS and uid is not None:
            call_dir = "out" if frame.dir == "in" else "in"
            line = self._open.pop((call_dir, uid), None)
            if line is not None and line.answer is None:
                line.answer = frame
                self._grow(line, len(frame.raw))
                if frame.type == "CALLERROR":
                    line.error_code = _error_code(frame.raw)
                if not line.expects_outcome or line.outcome:
                    # The server's answer to a charger (or the charger's to a raw CALL):
                    # no Outcome follows, the frames' times tell the round trip.
                    line.rtt_ms = rtt_between(line.event.at, frame.at)
                    line.outcome = line.outcome or (
                        "error" if frame.type == "CALLERROR" else "result"
                    )
                return [], [line]
        line = self._new(frame)
        if frame.type == "CALL" and uid is not None:
            self._open[(frame.dir, uid)] = line
            while len(self._open) > MAX_OPEN:
                self._open.popitem(last=False)
        return [line], []

    def _outcome(self, outcome: Outcome) -> tuple[list[Line], list[Line]]:
        line = self._by_uid.get(outcome.unique_id)
        if line is None:  # never sent (cancelled, or offline while queued): an event line
            return [self._new(outcome)], []
        del self._by_uid[outcome.unique_id]
        line.outcome = outcome.outcome
        if outcome.rtt_ms is not None:
            line.rtt_ms = outcome.rtt_ms
        if outcome.error:
            line.error_code = str(outcome.error.get("code") or "")[:64] or line.error_code
        return [], [line]

    def _new(self, event: Event) -> Line:
        line = Line(n=self.next_n, event=event)
        self.next_n += 1
        self.lines[line.n] = line
        self._grow(line, len(getattr(event, "raw", "")) + 64)
        return line

    def _grow(self, line: Line, size: int) -> None:
        line.size += size
        self.bytes += size
        while self.lines and (len(self.lines) > self.max_lines or self.bytes > self.max_bytes):
            _, oldest = self.lines.popitem(last=False)
            self._drop(oldest)

    def _drop(self, line: Line) -> None:
        self.bytes -= line.size
        frame = line.frame
        if frame is not None and frame.unique_id is not None:
            if self._open.get((frame.dir, frame.unique_id)) is line:
                del self._open[(frame.dir, frame.unique_id)]
            if self._by_uid.get(frame.unique_id) is line:
                del self._by_uid[frame.unique_id]

    # What the page asks

    def line(self, n: int) -> Line | None:
        return self.lines.get(n)

    def forget(self, upto: int) -> None:
        """The page removed its lines up to number `upto`: they are never updated again."""
        while self.lines and next(iter(self.lines)) <= upto:
            _, line = self.lines.popitem(last=False)
            self._drop(line)

    def search(self, query: str) -> list[int]:
        """The lines whose frames, action or unique id contain `query` (case-insensitive)."""
        self.query = query[:MAX_QUERY].casefold()
        if not self.query:
            return []
        return [line.n for line in self.lines.values() if self.matches(line)]

    def matches(self, line: Line) -> bool:
        return bool(self.query) and self.query in line.text().casefold()


def _error_code(raw: str) -> str | None:
    """The errorCode of a CALLERROR's exact text, for the line (shown escaped)."""
    try:
        value = loads(raw)
    except ValueError:
        return None
    if isinstance(value, list) and len(value) > 2 and isinstance(value[2], str):
        return value[2][:64]
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class ApiRequest:
    """The API request that does what a frame the server sent did (`Copy as curl`)."""

    method: str
    route: str  # the route's name: api_call, api_response or api_frames
    action: str | None
    body: str  # exactly what to send, JSON as the API takes it


def api_request(line: Line, frame: FrameEvent) -> ApiRequest | None:
    """Which API request sends `frame` again, or None: a charger's frames are the charger's.

    A central-system CALL is `POST …/calls/{Action}` with its payload (one sent as a raw
    frame is `POST …/frames`, exact); the server's answer to a charger's call is the
    responder rule that gives it, `PUT …/responses/{Action}`.
    """
    if frame.dir != "out" or frame.truncated:
        return None
    value = _parsed(frame.raw)
    if frame.type == "CALL" and line.expects_outcome and value is not None and len(value) == 4:
        return ApiRequest("POST", "api_call", str(value[2]), dumps_compact(value[3]))
    call = line.frame
    if frame is line.answer and call is not None and call.action and value is not None:
        if frame.type == "CALLRESULT" and len(value) == 3:
            rule = {"mode": "custom", "payload": value[2]}
            return ApiRequest("PUT", "api_response", call.action, dumps_compact(rule))
        if frame.type == "CALLERROR" and len(value) >= 5:
            error = {"code": value[2], "description": value[3], "details": value[4]}
            body = dumps_compact({"mode": "error", "error": error})
            return ApiRequest("PUT", "api_response", call.action, body)
    return ApiRequest("POST", "api_frames", None, frame.raw)


def call_payload(line: Line) -> str | None:
    """A central-system call's payload as compact JSON, for Send again / Edit and send."""
    frame = line.frame
    if frame is None or frame.dir != "out" or frame.type != "CALL" or frame.truncated:
        return None
    value = _parsed(frame.raw)
    return dumps_compact(value[3]) if value is not None and len(value) == 4 else None


def _parsed(raw: str) -> list[object] | None:
    try:
        value = loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, list) else None
