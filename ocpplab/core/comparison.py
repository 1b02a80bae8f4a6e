"""Comparing two recordings of a charger: what they did differently (pure; used by
`ocpplab diff`, the Compare page and the replay's report).

The two sequences of messages are aligned by what each one is — direction, message type and
action (an answer takes its call's action) — with `difflib`, as `diff` aligns lines. Of
each aligned pair it reports the payload fields that differ, by JSON path, and a gap before
the message that differs by more than the threshold; of the rest, the messages only one
side has. Values that differ from one run to the next by nature are not compared unless
`strict`: times (`currentTime`, `timestamp`, any string that reads as an ISO 8601 date and
time), `transactionId`, `meterStart` and `meterStop`, unique ids, and a CALLERROR's free
text (its code and details are compared).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Sequence
from typing import Any, Literal

from ocpplab.core.frames import Call, CallError, CallResult, Frame, InvalidFrame
from ocpplab.core.recording import (
    Message,
    Recording,
    messages,
    parse_time,
)

VOLATILE_FIELDS = frozenset(
    {"currentTime", "timestamp", "transactionId", "meterStart", "meterStop"}
)
DEFAULT_THRESHOLD = 2.0
MAX_FIELDS = 50  # differences listed per message; a whole different payload is one finding
MAX_SHOWN = 80  # characters of a value shown


class Missing:
    """The value a payload does not have at a path."""

    def __repr__(self) -> str:
        return "(missing)"


MISSING = Missing()


@dataclasses.dataclass(frozen=True, slots=True)
class FieldDifference:
    """One place where two payloads differ: its JSON path (`idTagInfo.status`) and both values."""

    path: str
    a: Any
    b: Any

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "a": _jsonable(self.a), "b": _jsonable(self.b)}


def _jsonable(value: Any) -> Any:
    return None if value is MISSING else value


def is_volatile(key: str | None, a: Any, b: Any) -> bool:
    """Whether a difference here is expected between two runs (see the module's docstring)."""
    if key in VOLATILE_FIELDS:
        return True
    return isinstance(a, str) and isinstance(b, str) and _is_time(a) and _is_time(b)


def _is_time(text: str) -> bool:
    return parse_time(text) is not None


def field_differences(a: Any, b: Any, *, strict: bool = False) -> list[FieldDifference]:
    """Where two JSON values differ, by path; volatile places are skipped unless `strict`."""
    found: list[FieldDifference] = []
    _walk(a, b, "", None, strict, found)
    return found


def _walk(a: Any, b: Any, path: str, key: str | None, strict: bool, found: list[Any]) -> None:
    if len(found) >= MAX_FIELDS:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for name in [*a, *(name for name in b if name not in a)]:
            inner = f"{path}.{name}" if path else str(name)
            _walk(a.get(name, MISSING), b.get(name, MISSING), inner, name, strict, found)
        return
    if isinstance(a, list) and isinstance(b, list):
        for index in range(max(len(a), len(b))):
            left = a[index] if index < len(a) else MISSING
            right = b[index] if index < len(b) else MISSING
            _walk(left, right, f"{path}[{index}]", key, strict, found)
        return
    if type(a) is type(b) and a == b:
        return
    if not strict and is_volatile(key, a, b):
        return
    found.append(FieldDifference(path, a, b))


def comparable(frame: Frame | InvalidFrame, *, strict: bool = False) -> Any:
    """What of a frame two runs are compared on: a payload, or a CALLERROR's code and details."""
    if isinstance(frame, Call | CallResult):
        return frame.payload
    if isinstance(frame, CallError):
        value = {"errorCode": frame.code, "errorDetails": frame.details}
        if strict:
            value["errorDescription"] = frame.description
        return value
    return {"invalid": frame.reason}


def frame_differences(
    a: Frame | InvalidFrame, b: Frame | InvalidFrame, *, strict: bool = False
) -> list[FieldDifference]:
    found = field_differences(
        comparable(a, strict=strict), comparable(b, strict=strict), strict=strict
    )
    if strict and a.unique_id != b.unique_id:
        found.insert(0, FieldDifference("(unique id)", a.unique_id, b.unique_id))
    return found


# Two recordings


Kind = Literal["payload", "timing", "only_a", "only_b"]


@dataclasses.dataclass(frozen=True, slots=True)
class Difference:
    """One finding. `a` and `b` are 1-based message numbers (None for the side that lacks it)."""

    kind: Kind
    a: int | None
    b: int | None
    dir: str
    message_type: str
    action: str | None
    fields: tuple[FieldDifference, ...] = ()
    gaps: tuple[float, float] | None = None

    @property
    def what(self) -> str:
        return " ".join(part for part in (self.dir, self.message_type, self.action) if part)

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "kind": self.kind,
            "a": self.a,
            "b": self.b,
            "dir": self.dir,
            "message_type": self.message_type,
            "action": self.action,
        }
        if self.fields:
            value["fields"] = [field.to_json() for field in self.fields]
        if self.gaps is not None:
            value["gap_a_s"], value["gap_b_s"] = (round(gap, 3) for gap in self.gaps)
        return value


def _key(message: Message) -> tuple[str, str, str | None]:
    return (message.dir, message.message_type, message.action)


def _gaps(sequence: Sequence[Message]) -> list[float]:
    """Seconds from the previous frame to each one (0 for the first)."""
    return [
        0.0 if index == 0 else (message.t - sequence[index - 1].t).total_seconds()
        for index, message in enumerate(sequence)
    ]


def diff_recordings(
    a: Recording, b: Recording, *, threshold: float = DEFAULT_THRESHOLD, strict: bool = False
) -> list[Difference]:
    """Every difference between two recordings' messages, in the order of `a`."""
    left, right = messages(a.frames()), messages(b.frames())
    left_gaps, right_gaps = _gaps(left), _gaps(right)
    matcher = difflib.SequenceMatcher(
        None, [_key(m) for m in left], [_key(m) for m in right], autojunk=False
    )
    found: list[Difference] = []
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag != "equal":
            found += [_only("only_a", m) for m in left[a_start:a_end]]
            found += [_only("only_b", m) for m in right[b_start:b_end]]
            continue
        for i, j in zip(range(a_start, a_end), range(b_start, b_end), strict=True):
            one, other = left[i], right[j]
            fields = frame_differences(one.frame, other.frame, strict=strict)
            if fields:
                found.append(_pair("payload", one, other, fields=tuple(fields)))
            gaps = (left_gaps[i], right_gaps[j])
            if abs(gaps[0] - gaps[1]) > threshold:
                found.append(_pair("timing", one, other, gaps=gaps))
    return found


def _only(kind: Kind, message: Message) -> Difference:
    number = message.index + 1
    a, b = (number, None) if kind == "only_a" else (None, number)
    return Difference(kind, a, b, message.dir, message.message_type, message.action)


def _pair(kind: Kind, one: Message, other: Message, **details: Any) -> Difference:
    return Difference(
        kind,
        one.index + 1,
        other.index + 1,
        one.dir,
        one.message_type,
        one.action,
        **details,
    )


# Showing them


def shown(value: Any) -> str:
    if value is MISSING:
        return "(missing)"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def describe(difference: Difference) -> list[str]:
    """A finding as lines of text for a person."""
    where = f"{_number('A', difference.a):6} {_number('B', difference.b):6} {difference.what}"
    if difference.kind == "only_a":
        return [f"{where}: only in A"]
    if difference.kind == "only_b":
        return [f"{where}: only in B"]
    if difference.kind == "timing" and difference.gaps is not None:
        gap_a, gap_b = difference.gaps
        return [f"{where}: {gap_a:.3f} s after the previous frame in A, {gap_b:.3f} s in B"]
    lines = [f"{where}: payload differs"]
    lines += [
        f"    {f.path or '(payload)'}: {shown(f.a)} in A, {shown(f.b)} in B"
        for f in difference.fields
    ]
    return lines


def _number(side: str, number: int | None) -> str:
    return f"{side}#{number}" if number is not None else ""


# The `ocpplab diff A B` subcommand
