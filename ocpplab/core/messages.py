"""What pages and the gateway say to each other through the broker: typed, one codec.

Commands go to the gateway that holds a charger (on the identity's command channel):
operations, raw frames, answers to held calls, new responder settings, page watches and
takeovers. Events come back (on the identity's events channel): frames, connection changes,
held calls and their release, outcomes of central-system calls, state. Each is a small
frozen class; `encode` and `decode_command` / `decode_event` are the only places that know
the JSON, which stays `{"op": …}` / `{"kind": …}` with the fields below, so that instances
of slightly different versions behind one Redis still understand each other.

Decoding is lenient (unknown fields are ignored, missing ones take their defaults, and
text that is not a known message gives None): what the broker carries was written by
another ocpplab instance, and one malformed message must not end a subscription.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar, dataclass_transform

from ocpplab.core.frames import dumps_compact, loads

Json = Any


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


class _Message:
    """Shared codec of commands and events."""

    __slots__ = ()
    tag: ClassVar[str]  # the value of "op" (commands) or "kind" (events)
    tag_key: ClassVar[str]
    _names: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Json]:
        data: dict[str, Json] = {self.tag_key: self.tag}
        for name in self._names:
            data[name] = getattr(self, name)
        return data

    def encode(self) -> str:
        return dumps_compact(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> Any:
        return cls(**{name: data[name] for name in cls._names if name in data})


_M = TypeVar("_M", bound=type[Any])


@dataclass_transform(kw_only_default=True, frozen_default=True)
def _command(cls: _M) -> _M:
    """A frozen, slotted, keyword-only dataclass that knows its field names."""
    made = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
    made._names = _fields(made)
    return made  # type: ignore[return-value]


@dataclass_transform(kw_only_default=True)
def _event(cls: _M) -> _M:
    """As `_command`, but not frozen: an event is stamped (time, connection, number) once,
    by the connection that emits it."""
    made = dataclasses.dataclass(slots=True, kw_only=True)(cls)
    made._names = _fields(made)
    return made  # type: ignore[return-value]


# Commands: pages, forms and the API -> the gateway that holds the charger


class Command(_Message):
    __slots__ = ()
    tag_key = "op"


@_command
class Watch(Command):
    """A page watches the charger (renewed every WATCH_TTL / 3 s); `page` asks for a replay."""

    tag = "watch"
    page: str | None = None


@_command
class SendCall(Command):
    """Send a central-system CALL; `concurrent` skips the one-at-a-time queue on purpose."""

    tag = "call"
    unique_id: str
    action: str
    payload: Json
    concurrent: bool = False


@_command
class CancelCall(Command):
    """Remove a queued call before it is sent."""

    tag = "cancel"
    unique_id: str


@_command
class SendRaw(Command):
    """Send this text to the charger exactly as typed, however invalid."""

    tag = "raw"
    text: str


@_command
class AnswerHeld(Command):
    """A person's answer to a held call: a payload, an error, or `ignore` (no answer)."""

    tag = "answer"
    unique_id: str
    payload: Json = None
    error: dict[str, Json] | None = None
    ignore: bool = False
    token: str | None = None  # the form that answered, so it can tell it was first


@_command
class NewSettings(Command):
    """The identity's responder settings changed (the JSON of `ResponderSettings`)."""

    tag = "settings"
    settings: dict[str, Json]


@_command
class Takeover(Command):
    """Connection `session` of the identity took number `generation`: older ones close."""

    tag = "takeover"
    session: str
    generation: int


@_command
class Record(Command):
    """Start (`on`) or stop recording this identity's frames and connection events."""

    tag = "record"
    on: bool


@_command
class CutConnection(Command):
    """Close the charger's connection (a check makes it go offline); the gateway refuses
    it while `refused_key` lasts."""

    tag = "cut"
    seconds: float


@_command
class CheckAnswer(Command):
    """The person's Done / Can't do this for a check run's question (`token`)."""

    tag = "check_answer"
    token: str
    done: bool


@_command
class CheckAbort(Command):
    """Stop a charger's check run."""

    tag = "check_abort"
    reason: str = "aborted by the person"


@_command
class RestartSequence(Command):
    """Answer sequences start over: `action`'s, or with None every action's."""

    tag = "restart_sequence"
    action: str | None = None


COMMANDS: dict[str, type[Command]] = {
    cls.tag: cls
    for cls in (
        Record,
        Watch,
        SendCall,
        CancelCall,
        SendRaw,
        AnswerHeld,
        NewSettings,
        Takeover,
        RestartSequence,
        CheckAnswer,
        CheckAbort,
        CutConnection,
    )
}


def decode_command(text: str | bytes) -> Command | None:
    data = _loads(text)
    cls = COMMANDS.get(str(data.get("op"))) if data is not None else None
    if cls is None or data is None:
        return None
    try:
        command: Command = cls.from_json(data)
    except TypeError:  # a required field is missing
        return None
    return command


# Events: the gateway -> every page watching the identity


@dataclasses.dataclass(slots=True, kw_only=True)
class Event(_Message):
    """Common to every event: when (UTC, ISO 8601 with Z), the connection it belongs to,
    and its number in that connection (set by the connection that emits it)."""

    tag_key = "kind"
    replayed: ClassVar[bool] = False  # kept in the replay for pages opened later
    at: str = ""
    session: str = ""
    seq: int = 0

    @property
    def kind(self) -> str:
        return self.tag


@_event
class FrameEvent(Event):
    """A frame, either way, exactly as sent or received (the beginning of it, if huge)."""

    tag = "frame"
    dir: str  # "in" (from the charger) or "out"
    type: str  # CALL, CALLRESULT, CALLERROR or invalid
    action: str | None = None
    unique_id: str | None = None
    raw: str = ""
    violations: list[dict[str, str]] = dataclasses.field(default_factory=list)
    note: str | None = None
    truncated: int = 0  # the frame's full length when `raw` holds only its beginning


@_event
class Connected(Event):
    tag = "connected"
    remote: str = "unknown"
    subprotocol: str | None = None
    dialect: str = ""  # the OCPP version spoken, for people: "OCPP 1.6"
    warnings: list[str] = dataclasses.field(default_factory=list)
    tls: dict[str, Json] | None = None


@_event
class Disconnected(Event):
    tag = "disconnected"
    code: int = 1006
    reason: str = ""


@_event
class Notice(Event):
    tag = "notice"
    replayed = True
    text: str


@_event
class Held(Event):
    """A charger call waits for a person's answer until `deadline`."""

    tag = "held"
    replayed = True
    unique_id: str
    action: str
    request: Json = None
    proposal: Json = None
    timeout: float = 0.0
    deadline: str = ""
    fallback: str = "default"


@_event
class Released(Event):
    """A held call stopped waiting: `how` is answered, ignored, timeout-…, or gone."""

    tag = "released"
    replayed = True
    unique_id: str
    how: str
    by: str | None = None


@_event
class AnswerRefused(Event):
    """A person's answer came after the held call was released (someone else was first)."""

    tag = "answer_refused"
    unique_id: str
    by: str | None = None


@_event
class Queued(Event):
    tag = "queued"
    replayed = True
    unique_id: str
    action: str
    payload: Json = None
    position: int = 1


@_event
class Sent(Event):
    tag = "sent"
    replayed = True
    unique_id: str
    action: str
    timeout: float = 0.0


@_event
class Outcome(Event):
    """How a central-system call ended: result, error, timeout, cancelled or offline."""

    tag = "outcome"
    replayed = True
    unique_id: str
    action: str
    outcome: str
    payload: Json = None
    error: dict[str, Json] | None = None
    violations: list[dict[str, str]] = dataclasses.field(default_factory=list)
    rtt_ms: float | None = None


@_event
class StateChanged(Event):
    tag = "state"
    state: dict[str, Json]


@_event
class CheckProgress(Event):
    """A check run's report changed (`ocpplab.core.checks.full_report`): pages redraw
    their Checks panel from it."""

    tag = "checks"
    report: dict[str, Json]


@_event
class SettingsChanged(Event):
    """The identity's responder settings changed (published by whoever saved them)."""

    tag = "settings"
    settings: dict[str, Json]


@_event
class Gap(Event):
    """Shown in a page's log where events may be missing (made by the page socket)."""

    tag = "gap"
    text: str


@_event
class ReplayEvent(Event):
    """For one page (`page`): the connection, its state, recent events and held calls."""

    tag = "replay"
    page: str
    connected: Connected
    state: dict[str, Json]
    events: list[Event] = dataclasses.field(default_factory=list)
    held: list[Held] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Json]:
        data = _Message.to_json(self)
        data["connected"] = self.connected.to_json()
        data["events"] = [event.to_json() for event in self.events]
        data["held"] = [event.to_json() for event in self.held]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> Any:
        connected = _event_from(data.get("connected"))
        events = [_event_from(item) for item in data.get("events") or []]
        held = [_event_from(item) for item in data.get("held") or []]
        if not isinstance(data.get("page"), str):
            raise TypeError("a replay is for one page")
        return cls(
            page=data["page"],
            at=str(data.get("at") or ""),
            seq=int(data.get("seq") or 0),
            session=str(data.get("session") or ""),
            connected=connected if isinstance(connected, Connected) else Connected(),
            state=data.get("state") or {},
            events=[event for event in events if event is not None],
            held=[event for event in held if isinstance(event, Held)],
        )


@_event
class RecordingState(Event):
    """The identity's recording started, stopped, or stopped at its limit (`truncated`)."""

    tag = "recording"
    on: bool
    truncated: bool = False
    started: str | None = None  # when the recording began (UTC)


@_event
class SequencePosition(Event):
    """Where `action`'s answer sequence is: `position` calls answered, so the next call is
    answered by step `step` (1-based) of `steps`; `steps` 0: no sequence is configured."""

    tag = "sequence"
    action: str
    position: int = 0
    step: int = 0
    steps: int = 0


EVENTS: dict[str, type[Event]] = {
    cls.tag: cls
    for cls in (
        FrameEvent,
        Connected,
        Disconnected,
        Notice,
        Held,
        Released,
        AnswerRefused,
        Queued,
        Sent,
        Outcome,
        StateChanged,
        SettingsChanged,
        Gap,
        ReplayEvent,
        RecordingState,
        SequencePosition,
        CheckProgress,
    )
}


def _event_from(data: Any) -> Event | None:
    if not isinstance(data, dict):
        return None
    cls = EVENTS.get(str(data.get("kind")))
    if cls is None:
        return None
    try:
        event: Event = cls.from_json(data)
    except (TypeError, ValueError):
        return None
    return event


def decode_event(text: str | bytes) -> Event | None:
    return _event_from(_loads(text))


def _loads(text: str | bytes) -> dict[str, Json] | None:
    try:
        data = loads(text)  # depth-limited: never a RecursionError
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
