"""The recording format: what a charger did, one event a line (NDJSON), and reading it back. Pure.

A recording is UTF-8 text, one JSON object a line, each line ended by `\\n`. Every line has
a `"type"` and a time `"t"` (UTC, ISO 8601 with milliseconds and `Z`). The first line says
what the file is; the others follow in the order they happened:

    {"type": "recording", "t", "format": "ocpplab-recording", "version": 1,
     "identity": "CP-1", "ocpplab": "0.1.0"}
    {"type": "connected", "t", "session", "remote": "ip:port", "subprotocol": "ocpp1.6" | null,
     "headers": [[name, value], ...], "tls": {...} | null}
    {"type": "frame", "t", "session", "dir": "in" | "out", "text": "<the exact frame text>"}
    {"type": "disconnected", "t", "session", "code": 1000, "reason": "..."}
    {"type": "rules", "t", "settings": {...the responder settings' JSON...}}
    {"type": "truncated", "t", "reason": "..."}

"in" is a frame from the charger, "out" one from the central system. `truncated` says the
recording's limit was reached: nothing follows it. A reader of version 1 refuses any other
version, and any type version 1 does not define, naming it; fields it does not know are
ignored. Reading is bounded: a file of at most `MAX_RECORDING_BYTES`, a line of at most
`MAX_LINE_FACTOR` times the largest frame plus `LINE_OVERHEAD`. JSON escaping makes a frame's
text at most six times longer (a control character is written `\\u00XX`; a quote or a
backslash doubles), so a frame of the largest size always fits on its line.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import orjson

from ocpplab.core.errors import OcpplabError
from ocpplab.core.frames import (
    Call,
    CallError,
    CallResult,
    Frame,
    InvalidFrame,
    dumps_compact,
    encodable,
    message_type_name,
    parse,
)
from ocpplab.core.responder import format_time

FORMAT = "ocpplab-recording"
VERSION = 1
MAX_RECORDING_BYTES = 64 * 1024 * 1024
MAX_FRAME_SIZE = 1024 * 1024  # the server's default OCPPLAB_MAX_FRAME_SIZE
MAX_LINE_FACTOR = 6
LINE_OVERHEAD = 4096  # the rest of a frame line: type, time, session, direction

Direction = Literal["in", "out"]
DIRECTIONS: tuple[str, ...] = ("in", "out")


class RecordingError(OcpplabError):
    """A recording cannot be read; `line` (1-based, 0 for the file as a whole) says where.

    `source` (a file's name, when the reader knows it) comes first in the message.
    """

    def __init__(self, line: int, problem: str, *, source: str | None = None) -> None:
        where = [part for part in (source, f"line {line}" if line else None) if part]
        super().__init__(": ".join([*where, problem]))
        self.line = line
        self.problem = problem
        self.source = source


# The lines


@dataclasses.dataclass(frozen=True, slots=True)
class Header:
    """Line 1: what the file is, for which identity, written by which ocpplab."""

    t: datetime.datetime
    identity: str
    ocpplab: str
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "recording",
            "t": format_time(self.t),
            "format": FORMAT,
            "version": self.version,
            "identity": self.identity,
            "ocpplab": self.ocpplab,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Connected:
    """A charger connection opened: its handshake as the server saw it."""

    t: datetime.datetime
    session: str
    remote: str | None
    subprotocol: str | None
    headers: tuple[tuple[str, str], ...] = ()
    tls: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "connected",
            "t": format_time(self.t),
            "session": self.session,
            "remote": self.remote,
            "subprotocol": self.subprotocol,
            "headers": [[name, value] for name, value in self.headers],
            "tls": self.tls,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class FrameLine:
    """One websocket message, its text exactly as sent: "in" from the charger, "out" to it."""

    t: datetime.datetime
    session: str
    dir: Direction
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "frame",
            "t": format_time(self.t),
            "session": self.session,
            "dir": self.dir,
            "text": self.text,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Disconnected:
    """A charger connection closed, with the close code and reason (RFC 6455 section 7.1.5)."""

    t: datetime.datetime
    session: str
    code: int | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "disconnected",
            "t": format_time(self.t),
            "session": self.session,
            "code": self.code,
            "reason": self.reason,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class RulesChanged:
    """The answer rules changed; `settings` is the whole `ResponderSettings` JSON after it."""

    t: datetime.datetime
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"type": "rules", "t": format_time(self.t), "settings": self.settings}


@dataclasses.dataclass(frozen=True, slots=True)
class Truncated:
    """The recording's limit was reached here; nothing was kept after it."""

    t: datetime.datetime
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "truncated", "t": format_time(self.t), "reason": self.reason}


Line = Header | Connected | FrameLine | Disconnected | RulesChanged | Truncated


def line_text(kind: str, at: datetime.datetime | str, **fields: Any) -> str:
    """A line as the server writes it while recording (no `\n`): its type, time, fields.

    The same JSON as `encode_line` gives for the line it reads back as; `dumps_compact`,
    like it, writes a lone surrogate as its escape.
    """
    when = at if isinstance(at, str) else format_time(at)
    return dumps_compact({"type": kind, "t": when, **fields})


def encode_line(line: Line) -> str:
    """One line of a recording, `\\n` included.

    Non-ASCII characters are written as they are (UTF-8); a lone surrogate, which UTF-8
    cannot carry, as its `\\uXXXX` escape, which reads back as the same string.
    """
    value = line.to_json()
    try:
        return orjson.dumps(value).decode() + "\n"
    except TypeError:  # orjson refuses lone surrogates
        return encodable(json.dumps(value, ensure_ascii=False, separators=(",", ":"))) + "\n"


def encode_recording(lines: Iterable[Line]) -> str:
    return "".join(encode_line(line) for line in lines)


# Reading


@dataclasses.dataclass(frozen=True, slots=True)
class Recording:
    """A recording read back: its header and every later line, in file order."""

    header: Header
    lines: tuple[Line, ...]

    @property
    def identity(self) -> str:
        return self.header.identity

    def frames(self, session: str | None = None) -> list[FrameLine]:
        """The frames of one session (of all, with None), in the order they happened."""
        return [
            line
            for line in self.lines
            if isinstance(line, FrameLine) and (session is None or line.session == session)
        ]

    def sessions(self) -> list[str]:
        """Session ids in the order they first appear."""
        seen: dict[str, None] = {}
        for line in self.lines:
            if isinstance(line, Connected | FrameLine | Disconnected):
                seen.setdefault(line.session, None)
        return list(seen)

    def connection(self, session: str) -> Connected | None:
        for line in self.lines:
            if isinstance(line, Connected) and line.session == session:
                return line
        return None

    @property
    def truncated(self) -> Truncated | None:
        last = self.lines[-1] if self.lines else None
        return last if isinstance(last, Truncated) else None

    def to_text(self) -> str:
        return encode_recording((self.header, *self.lines))


def read_recording(
    source: str | bytes | Iterable[str | bytes],
    *,
    max_bytes: int = MAX_RECORDING_BYTES,
    max_frame_size: int = MAX_FRAME_SIZE,
) -> Recording:
    """Read a recording, or raise `RecordingError` naming the first line that is wrong."""
    if isinstance(source, str | bytes) and len(source) > max_bytes:
        raise RecordingError(0, f"the file is larger than {max_bytes} bytes")
    max_line = max_frame_size * MAX_LINE_FACTOR + LINE_OVERHEAD
    header: Header | None = None
    lines: list[Line] = []
    size = 0
    for number, raw in _raw_lines(source, max_line):
        size += len(raw) + 1
        if size > max_bytes:
            raise RecordingError(number, f"the file is larger than {max_bytes} bytes")
        if len(raw) > max_line:
            raise RecordingError(number, f"the line is longer than {max_line} bytes")
        if not raw.strip():
            continue
        if lines and isinstance(lines[-1], Truncated):
            raise RecordingError(number, "nothing may follow a truncated line")
        line = _read_line(number, raw)
        if header is None:
            if not isinstance(line, Header):
                raise RecordingError(number, 'the first line must be {"type": "recording", …}')
            header = line
        elif isinstance(line, Header):
            raise RecordingError(number, "a second recording line: only the first line is one")
        else:
            lines.append(line)
    if header is None:
        raise RecordingError(0, "the file is empty: it holds no recording line")
    return Recording(header, tuple(lines))


def _raw_lines(
    source: str | bytes | Iterable[str | bytes], max_line: int
) -> Iterator[tuple[int, bytes]]:
    """(1-based number, UTF-8 bytes) of each line, without its `\\n`.

    A line still open past `max_line` bytes is handed over as it is, to be refused.
    """
    if isinstance(source, str | bytes):
        source = [source]
    number = 0
    pending = b""
    for chunk in source:
        data = chunk.encode("utf-8", "surrogatepass") if isinstance(chunk, str) else chunk
        parts = (pending + data).split(b"\n")
        pending = parts.pop()
        for part in parts:
            number += 1
            yield number, part
        if len(pending) > max_line:
            yield number + 1, pending
            return
    if pending:
        yield number + 1, pending


def _read_line(number: int, raw: bytes) -> Line:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError(number, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise RecordingError(number, f"not JSON: {exc}") from None
    except RecursionError:
        raise RecordingError(number, "not JSON: nested too deep") from None
    if not isinstance(value, dict):
        raise RecordingError(number, f"not a JSON object but {type(value).__name__}")
    fields = _Fields(number, value)
    kind = fields.text("type")
    reader = _READERS.get(kind)
    if reader is None:
        raise RecordingError(number, f"unknown type {kind!r} in a version {VERSION} recording")
    return reader(fields)


class _Fields:
    """The fields of one line, each taken with its type checked (errors name the line)."""

    def __init__(self, number: int, value: dict[str, Any]) -> None:
        self.number = number
        self.value = value

    def fail(self, problem: str) -> RecordingError:
        return RecordingError(self.number, problem)

    def get(self, name: str) -> Any:
        if name not in self.value:
            kind = self.value.get("type")
            where = f"a {kind!r} line" if isinstance(kind, str) else "the line"
            raise self.fail(f'{where} needs the field "{name}"')
        return self.value[name]

    def text(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str):
            raise self.fail(f'"{name}" must be a string, not {_json_name(value)}')
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.get(name)
        return None if value is None else self.text(name)

    def integer(self, name: str) -> int:
        value = self.get(name)
        if type(value) is not int:
            raise self.fail(f'"{name}" must be an integer, not {_json_name(value)}')
        return value

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.get(name)
        if not isinstance(value, dict):
            raise self.fail(f'"{name}" must be an object, not {_json_name(value)}')
        return value

    def time(self) -> datetime.datetime:
        value = self.text("t")
        moment = parse_time(value)
        if moment is None or moment.tzinfo is None:
            raise self.fail(f'"t" must be a UTC time such as 2026-12-01T10:00:00.123Z: {value!r}')
        return moment.astimezone(datetime.UTC)


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {str: "a string", int: "a number", float: "a number", list: "an array"}
    return names.get(type(value), "an object")


def parse_time(text: str) -> datetime.datetime | None:
    """An ISO 8601 date and time (`2026-12-01T10:00:00.123Z`, with or without offset), or None."""
    if len(text) < 16 or len(text) > 40 or text[10:11] not in ("T", "t"):
        return None
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def _header(fields: _Fields) -> Header:
    if fields.get("format") != FORMAT:
        raise fields.fail(f'"format" must be "{FORMAT}", not {fields.value.get("format")!r}')
    version = fields.integer("version")
    if version != VERSION:
        raise fields.fail(
            f"version {version} of the recording format is not known "
            f"(this ocpplab reads version {VERSION})"
        )
    return Header(fields.time(), fields.text("identity"), fields.text("ocpplab"), version)


def _connected(fields: _Fields) -> Connected:
    headers = fields.get("headers")
    if not isinstance(headers, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        for pair in headers
    ):
        raise fields.fail('"headers" must be a list of [name, value] pairs of strings')
    tls = fields.get("tls")
    if tls is not None and not isinstance(tls, dict):
        raise fields.fail(f'"tls" must be an object or null, not {_json_name(tls)}')
    return Connected(
        fields.time(),
        fields.text("session"),
        fields.optional_text("remote"),
        fields.optional_text("subprotocol"),
        tuple((name, value) for name, value in headers),
        tls,
    )


def _frame(fields: _Fields) -> FrameLine:
    direction = fields.text("dir")
    if direction not in DIRECTIONS:
        raise fields.fail(f'"dir" must be "in" or "out", not {direction!r}')
    return FrameLine(fields.time(), fields.text("session"), direction, fields.text("text"))  # type: ignore[arg-type]


def _disconnected(fields: _Fields) -> Disconnected:
    code = None if fields.get("code") is None else fields.integer("code")
    return Disconnected(fields.time(), fields.text("session"), code, fields.text("reason"))


def _rules(fields: _Fields) -> RulesChanged:
    return RulesChanged(fields.time(), fields.mapping("settings"))


def _truncated(fields: _Fields) -> Truncated:
    return Truncated(fields.time(), fields.text("reason"))


_READERS: dict[str, Callable[[_Fields], Line]] = {
    "recording": _header,
    "connected": _connected,
    "frame": _frame,
    "disconnected": _disconnected,
    "rules": _rules,
    "truncated": _truncated,
}


# Frames as OCPP-J messages, calls paired with their answers


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One recorded frame read as OCPP-J (OCPP-J 1.6 section 4.2).

    `action` is a CALL's action and, for a CALLRESULT or CALLERROR, the action of the call
    it answers (None when it answers none). `call` is that call's index in the list.
    """

    index: int
    line: FrameLine
    frame: Frame | InvalidFrame
    action: str | None = None
    call: int | None = None
    answer: int | None = None

    @property
    def dir(self) -> Direction:
        return self.line.dir

    @property
    def t(self) -> datetime.datetime:
        return self.line.t

    @property
    def message_type(self) -> str:
        return message_type_name(self.frame)

    @property
    def unique_id(self) -> str | None:
        return self.frame.unique_id


def messages(frames: Iterable[FrameLine]) -> list[Message]:
    """Frames in order, each CALL paired with its CALLRESULT or CALLERROR.

    An answer goes the other way from its call, in the same session, and has its unique id
    (OCPP-J 1.6 section 4.1.4); with a unique id used twice, it answers the latest call
    still unanswered.
    """
    result: list[Message] = []
    open_calls: dict[tuple[str, str, str], int] = {}
    for index, line in enumerate(frames):
        frame = parse(line.text)
        if isinstance(frame, Call):
            open_calls[(line.session, line.dir, frame.unique_id)] = index
            result.append(Message(index, line, frame, frame.action))
            continue
        if isinstance(frame, CallResult | CallError):
            caller = "out" if line.dir == "in" else "in"
            call_index = open_calls.pop((line.session, caller, frame.unique_id), None)
            if call_index is not None:
                call = result[call_index]
                result[call_index] = dataclasses.replace(call, answer=index)
                result.append(Message(index, line, frame, call.action, call_index))
                continue
        result.append(Message(index, line, frame))
    return result
