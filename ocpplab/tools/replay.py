"""`ocpplab simulate URL --replay FILE`: a recorded charger played again, to any central system.

`ReplayEngine` is sans-I/O: it is fed the frames the central system sends and the time, and
returns the frames to send and when it next wants to be woken (`next_deadline`). It plays
the charger's side of one recorded session:

- the charger's CALLs, with their recorded payloads and unique ids, each as long after the
  previous one as recorded (divided by `speed`) and never before the previous one is
  answered or has timed out (OCPP-J 1.6 section 4.1.1). A frame that was no OCPP-J message
  is sent again as it was, and not waited on;
- every ISO 8601 date and time in them shifted to now: by as much as the moment it is sent
  is later than the recorded frame's time (at speed 1, all of them by about now minus the
  first frame's time), written in the recorded form (`Z` or offset, digits of the seconds);
- a `transactionId` the recorded StartTransaction answer gave (Y) becomes the one this
  central system gave (X) in every later frame;
- the central system's CALLs answered with what the charger answered to the same action,
  in the order they occurred (the last one again once they are used up; nothing when the
  charger did not answer); an action the recording never saw gets CALLERROR
  `NotImplemented`.

A frame is sent as its recorded text, byte for byte, unless a time or transaction id in it
had to change. The replay ends when every call has been answered or has timed out and the
recorded session's length (divided by `speed`) has passed. Its report lists where the
central system's answers differ from the recorded ones, compared as `ocpplab diff` compares
(`ocpplab.core.comparison`: times, ids and meter readings ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import re
import ssl
import sys
from collections import Counter, deque
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from ocpplab.core.comparison import FieldDifference, frame_differences, shown
from ocpplab.core.frames import Call, CallError, CallResult, Frame, InvalidFrame, parse
from ocpplab.core.recording import Message, Recording, RecordingError, messages, parse_time
from ocpplab.tools.diff import read_recording_file

DEFAULT_CALL_TIMEOUT = 10.0
MAX_SPEED = 1000.0
_FRACTION = re.compile(r"T\d\d:\d\d(:\d\d(\.\d+)?)?")


@dataclasses.dataclass(frozen=True, slots=True)
class AnswerDifference:
    """Where the central system's answer to one replayed call differs from the recorded one."""

    action: str
    unique_id: str
    problem: str
    fields: tuple[FieldDifference, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "unique_id": self.unique_id,
            "problem": self.problem,
            "fields": [field.to_json() for field in self.fields],
        }

    def describe(self) -> list[str]:
        head = f"{self.action} (unique id {self.unique_id!r}): {self.problem}"
        return [head] + [
            f"    {f.path or '(payload)'}: recorded {shown(f.a)}, now {shown(f.b)}"
            for f in self.fields
        ]


@dataclasses.dataclass
class ReplayReport:
    """What a replay did, and what the central system answered differently."""

    identity: str
    session: str
    calls_sent: int = 0
    calls_answered: int = 0
    central_calls: Counter[str] = dataclasses.field(default_factory=Counter)
    not_implemented: Counter[str] = dataclasses.field(default_factory=Counter)
    differences: list[AnswerDifference] = dataclasses.field(default_factory=list)
    ended: str = "the recording was played to its end"

    @property
    def exit_status(self) -> int:
        return 1 if self.differences else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "session": self.session,
            "calls_sent": self.calls_sent,
            "calls_answered": self.calls_answered,
            "central_calls_answered_from_recording": dict(self.central_calls),
            "central_calls_not_in_recording": dict(self.not_implemented),
            "ended": self.ended,
            "differences": [difference.to_json() for difference in self.differences],
        }

    def describe(self) -> list[str]:
        lines = [
            f"replayed session {self.session!r} as {self.identity!r}: {self.ended}",
            f"charger calls sent / answered   {self.calls_sent} / {self.calls_answered}",
        ]
        if self.central_calls:
            lines.append(f"central-system calls answered  {_counts(self.central_calls)}")
        if self.not_implemented:
            lines.append(f"answered NotImplemented        {_counts(self.not_implemented)}")
        count = len(self.differences)
        lines.append(
            f"{count or 'no'} answer{'' if count == 1 else 's'} differ{'s' if count == 1 else ''} "
            "from the recorded ones" + (":" if count else "")
        )
        for difference in self.differences:
            lines += ["  " + line for line in difference.describe()]
        return lines


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{action} x{n}" for action, n in counter.items())


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    """A frame the charger sent on its own, and what the central system answered then."""

    message: Message
    gap: float  # recorded seconds since the previous step (the first: since the session began)
    answer: Frame | None


# What the charger answered to a central-system call, and when; None: it did not answer.
_RecordedAnswer = tuple[CallResult | CallError | None, datetime.datetime]


@dataclasses.dataclass(slots=True)
class _InFlight:
    step: _Step
    unique_id: str
    deadline: float


class ReplayEngine:
    """The charger's side of one recorded session, replayed. Sans-I/O: see the module."""

    def __init__(
        self,
        recording: Recording,
        *,
        session: str | None = None,
        speed: float = 1.0,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        identity: str | None = None,
    ) -> None:
        if not 0 < speed <= MAX_SPEED:
            raise ValueError(f"the speed must be above 0 and at most {MAX_SPEED:g}")
        self.session = _session(recording, session)
        self.speed = speed
        self.call_timeout = call_timeout
        connected = recording.connection(self.session)
        self.subprotocol = connected.subprotocol if connected else "ocpp1.6"
        self.report = ReplayReport(identity or recording.identity, self.session)
        recorded = messages(recording.frames(self.session))
        self._first_t = recorded[0].t
        self._length = (recorded[-1].t - self._first_t).total_seconds()
        self._steps = deque(_steps(recorded, self._first_t))
        self._answers = _answers(recorded)
        self._transaction_ids: dict[int, int] = {}
        self._in_flight: _InFlight | None = None
        self._started: tuple[float, datetime.datetime] | None = None
        self._last_sent = 0.0
        self._end_at = 0.0
        self.done = False

    # Time

    def start(self, now: float, wall: datetime.datetime) -> list[str]:
        """Begin at `now` (monotonic seconds), which is `wall` (UTC); the frames due at once."""
        self._started = (now, wall)
        self._last_sent = now
        self._end_at = now + self._length / self.speed
        return self.tick(now)

    @property
    def next_deadline(self) -> float | None:
        """When `tick` next has something to do (monotonic seconds); None when done."""
        if self.done or self._started is None:
            return None
        if self._in_flight is not None:
            return self._in_flight.deadline
        if self._steps:
            return self._due(self._steps[0])
        return self._end_at

    def tick(self, now: float) -> list[str]:
        """The frames due by `now`; notes calls that timed out and whether the replay is over."""
        if self.done or self._started is None:
            return []
        out: list[str] = []
        if self._in_flight is not None and now >= self._in_flight.deadline:
            step = self._in_flight.step
            self._differs(step, f"no answer within {self.call_timeout:g} s")
            self._in_flight = None
        while self._in_flight is None and self._steps and now >= self._due(self._steps[0]):
            out.append(self._send(self._steps.popleft(), now))
        if self._in_flight is None and not self._steps and now >= self._end_at:
            self.done = True
        return out

    def _due(self, step: _Step) -> float:
        return self._last_sent + step.gap / self.speed

    def _wall(self, now: float) -> datetime.datetime:
        assert self._started is not None
        started, wall = self._started
        return wall + datetime.timedelta(seconds=now - started)

    # Frames

    def _send(self, step: _Step, now: float) -> str:
        self._last_sent = now
        self._end_at = max(self._end_at, now)
        frame = step.message.frame
        if not isinstance(frame, Call):
            return step.message.line.text
        self.report.calls_sent += 1
        self._in_flight = _InFlight(step, frame.unique_id, now + self.call_timeout)
        shift = self._wall(now) - step.message.t
        payload, changed = self._adjust(frame.payload, shift)
        if not changed:
            return step.message.line.text
        return Call(frame.unique_id, frame.action, payload).to_json()

    def receive(self, text: str, now: float) -> list[str]:
        """A frame from the central system: the answer owed to it, and frames now due."""
        frame = parse(text)
        out: list[str] = []
        if isinstance(frame, Call):
            answer = self._answer(frame, now)
            if answer is not None:
                out.append(answer)
        elif isinstance(frame, CallResult | CallError):
            flight = self._in_flight
            if flight is not None and flight.unique_id == frame.unique_id:
                self._in_flight = None
                self._end_at = max(self._end_at, now)
                self.report.calls_answered += 1
                self._compare(flight.step, frame)
        return out + self.tick(now)

    def closed(self, code: int | None, reason: str) -> None:
        """The central system closed the connection (or it dropped)."""
        if self.done:
            return
        self.done = True
        self.report.ended = f"the connection closed before the end (code {code}, {reason!r})"
        if self._in_flight is not None:
            self._differs(self._in_flight.step, "the connection closed before the answer")
            self._in_flight = None

    def _answer(self, call: Call, now: float) -> str | None:
        recorded = self._answers.get(call.action)
        if not recorded:
            self.report.not_implemented[call.action] += 1
            reason = f"the recording holds no answer to {call.action}"
            return CallError(call.unique_id, "NotImplemented", reason).to_json()
        self.report.central_calls[call.action] += 1
        answer, answered_at = recorded.popleft() if len(recorded) > 1 else recorded[0]
        if isinstance(answer, CallResult):
            payload, _ = self._adjust(answer.payload, self._wall(now) - answered_at)
            return CallResult(call.unique_id, payload).to_json()
        if isinstance(answer, CallError):
            return CallError(
                call.unique_id, answer.code, answer.description, answer.details
            ).to_json()
        return None  # the charger did not answer it then either

    # Comparing answers

    def _compare(self, step: _Step, actual: CallResult | CallError) -> None:
        call = step.message.frame
        assert isinstance(call, Call)
        recorded = step.answer
        if call.action == "StartTransaction":
            self._learn_transaction(recorded, actual)
        if recorded is None:
            self._differs(step, f"answered with a {_kind(actual)}; the recording has no answer")
        elif type(recorded) is not type(actual):
            detail = f"{actual.code}" if isinstance(actual, CallError) else "a payload"
            self._differs(step, f"a {_kind(actual)} ({detail}), recorded a {_kind(recorded)}")
        else:
            fields = frame_differences(recorded, actual)
            if fields:
                self._differs(step, "the answer differs", tuple(fields))

    def _learn_transaction(self, recorded: Frame | None, actual: Frame) -> None:
        """OCPP 1.6 section 6.46: the StartTransaction answer's transactionId is the one to use."""
        if isinstance(recorded, CallResult) and isinstance(actual, CallResult):
            old = recorded.payload.get("transactionId")
            new = actual.payload.get("transactionId")
            if type(old) is int and type(new) is int:
                self._transaction_ids[old] = new

    def _differs(self, step: _Step, problem: str, fields: tuple[FieldDifference, ...] = ()) -> None:
        call = step.message.frame
        assert isinstance(call, Call)
        self.report.differences.append(
            AnswerDifference(call.action, call.unique_id, problem, fields)
        )

    # Times shifted, transaction ids mapped

    def _adjust(self, value: Any, shift: datetime.timedelta) -> tuple[Any, bool]:
        changed = False

        def walk(item: Any, key: str | None) -> Any:
            nonlocal changed
            if isinstance(item, dict):
                return {name: walk(inner, name) for name, inner in item.items()}
            if isinstance(item, list):
                return [walk(inner, key) for inner in item]
            if key == "transactionId" and type(item) is int and item in self._transaction_ids:
                changed = True
                return self._transaction_ids[item]
            if isinstance(item, str) and shift:
                moved = shift_time(item, shift)
                if moved is not None:
                    changed = True
                    return moved
            return item

        return walk(value, None), changed


def shift_time(text: str, shift: datetime.timedelta) -> str | None:
    """An ISO 8601 date and time moved by `shift`, in the form it was written; else None."""
    moment = parse_time(text)
    if moment is None:
        return None
    match = _FRACTION.search(text)
    seconds = match.group(1) if match else None
    fraction = match.group(2) if match else None
    if seconds is None:
        spec = "minutes"
    elif fraction is None:
        spec = "seconds"
    else:
        spec = "milliseconds" if len(fraction) <= 4 else "microseconds"
    try:
        written = (moment + shift).isoformat(timespec=spec)
    except OverflowError:
        return None
    if text.endswith(("Z", "z")):
        written = written.removesuffix("+00:00") + "Z"
    return written


def _kind(frame: Frame) -> str:
    return "CALLERROR" if isinstance(frame, CallError) else "CALLRESULT"


def _session(recording: Recording, wanted: str | None) -> str:
    with_frames = [session for session in recording.sessions() if recording.frames(session)]
    if wanted is None:
        if not with_frames:
            raise RecordingError(0, "the recording holds no frames to replay")
        return with_frames[0]
    if wanted not in with_frames:
        known = ", ".join(repr(session) for session in with_frames) or "none"
        raise RecordingError(0, f"no session {wanted!r} with frames (sessions: {known})")
    return wanted


def _steps(recorded: list[Message], first: datetime.datetime) -> list[_Step]:
    """The frames the charger sent on its own (not answers), with the gaps between them."""
    steps: list[_Step] = []
    previous = first
    for message in recorded:
        if message.dir != "in" or message.call is not None:
            continue
        answer = recorded[message.answer].frame if message.answer is not None else None
        gap = max(0.0, (message.t - previous).total_seconds())
        steps.append(_Step(message, gap, answer if not isinstance(answer, InvalidFrame) else None))
        previous = message.t
    return steps


def _answers(recorded: list[Message]) -> dict[str, deque[_RecordedAnswer]]:
    """The charger's answers to each central-system action, in the order they occurred."""
    answers: dict[str, deque[_RecordedAnswer]] = {}
    for message in recorded:
        if message.dir == "out" and isinstance(message.frame, Call):
            answer = recorded[message.answer] if message.answer is not None else message
            frame = answer.frame if isinstance(answer.frame, CallResult | CallError) else None
            answers.setdefault(message.frame.action, deque()).append((frame, answer.t))
    return answers


# The socket around it


async def replay(
    url: str,
    engine: ReplayEngine,
    *,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    open_timeout: float = DEFAULT_CALL_TIMEOUT,
) -> ReplayReport:
    """Connect to `url` + identity with the recorded subprotocol and run `engine` to its end."""
    from ocpplab.tools.fleet import _basic_auth

    identity = engine.report.identity
    target = url.rstrip("/") + "/" + quote(identity, safe="")
    subprotocols = [Subprotocol(engine.subprotocol)] if engine.subprotocol else None
    loop = asyncio.get_running_loop()
    async with connect(
        target,
        subprotocols=subprotocols,
        additional_headers=_basic_auth(identity, password),
        compression=None,
        ping_interval=None,
        proxy=None,
        open_timeout=open_timeout,
        close_timeout=2,
        ssl=ssl_context,
    ) as connection:
        try:
            for text in engine.start(loop.time(), datetime.datetime.now(datetime.UTC)):
                await connection.send(text)
            while not engine.done:
                deadline = engine.next_deadline
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await connection.recv()
                except TimeoutError:
                    out = engine.tick(loop.time())
                else:
                    text = message if isinstance(message, str) else message.decode(errors="replace")
                    out = engine.receive(text, loop.time())
                for text in out:
                    await connection.send(text)
        except ConnectionClosed as exc:
            close = exc.rcvd
            engine.closed(close.code if close else None, close.reason if close else "")
    return engine.report


def run(args: argparse.Namespace) -> int:
    """`ocpplab simulate URL --replay FILE [--speed S] [--identity X] [--session ID]`."""
    from ocpplab.tools.fleet import _client_ssl, run_async

    try:
        recording = read_recording_file(args.replay)
        engine = ReplayEngine(
            recording,
            session=args.session,
            speed=args.speed,
            call_timeout=args.call_timeout,
            identity=args.identity,
        )
    except (RecordingError, ValueError) as exc:
        print(f"ocpplab simulate: {exc}", file=sys.stderr)
        return 2
    try:
        return run_async(_replay_and_report(args, engine, _client_ssl(args.url)))
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        print(f"ocpplab simulate: could not connect: {exc or type(exc).__name__}", file=sys.stderr)
        return 2


async def _replay_and_report(
    args: argparse.Namespace, engine: ReplayEngine, ssl_context: ssl.SSLContext | None
) -> int:
    report = await replay(args.url, engine, password=args.password, ssl_context=ssl_context)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(report.describe()))
    return report.exit_status
