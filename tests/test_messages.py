"""The typed commands and events pages and gateways exchange: one codec, lenient decoding.

What the broker carries was written by another ocpplab instance (perhaps of another
version): every message must come back equal, and text that is not a known message must
decode to None without raising, so that one bad message cannot end a subscription.
"""

from __future__ import annotations

from typing import Any

import pytest

from ocpplab.core.messages import (
    COMMANDS,
    EVENTS,
    AnswerHeld,
    AnswerRefused,
    CancelCall,
    CheckAbort,
    CheckAnswer,
    CheckProgress,
    Command,
    Connected,
    CutConnection,
    Disconnected,
    Event,
    FrameEvent,
    Gap,
    Held,
    NewSettings,
    Notice,
    Outcome,
    Queued,
    Record,
    RecordingState,
    Released,
    ReplayEvent,
    RestartSequence,
    SendCall,
    SendRaw,
    Sent,
    SequencePosition,
    SettingsChanged,
    StateChanged,
    Takeover,
    Watch,
    decode_command,
    decode_event,
)

AT = "2026-12-01T00:01:40.000Z"
STAMP: dict[str, Any] = {"at": AT, "session": "s1", "seq": 7}
CONNECTED = Connected(
    remote="203.0.113.9:51234",
    subprotocol="ocpp1.6",
    dialect="OCPP 1.6",
    warnings=["no subprotocol offered"],
    tls={"version": "TLSv1.3"},
    **STAMP,
)
HELD = Held(
    unique_id="a1",
    action="Authorize",
    request={"idTag": "T"},
    proposal={"idTagInfo": {"status": "Accepted"}},
    timeout=10.0,
    deadline="2026-12-01T00:01:50.000Z",
    fallback="ignore",
    **STAMP,
)
FRAME = FrameEvent(
    dir="in",
    type="CALL",
    action="Heartbeat",
    unique_id="1",
    raw='[2,"1","Heartbeat",{"x":1}]',
    violations=[{"path": "$", "message": "x was unexpected", "code": "FormationViolation"}],
    note="duplicate unique id '1': this charger already used it",
    truncated=0,
    **STAMP,
)

ALL_COMMANDS: list[Command] = [
    Watch(page="page-1"),
    Watch(),
    SendCall(unique_id="c1", action="Reset", payload={"type": "Soft"}, concurrent=True),
    CancelCall(unique_id="c2"),
    SendRaw(text='[2,"1","Reset",{"type":"Hard"}] not json \u00e9'),
    AnswerHeld(unique_id="a1", payload={"idTagInfo": {"status": "Blocked"}}, token="f1"),
    AnswerHeld(unique_id="a1", error={"code": "SecurityError", "description": "no"}),
    AnswerHeld(unique_id="a1", ignore=True),
    NewSettings(settings={"rules": {"Heartbeat": {"mode": "ignore"}}, "validation": "strict"}),
    Takeover(session="s2", generation=3),
    Record(on=True),
    Record(on=False),
    RestartSequence(action="BootNotification"),
    RestartSequence(),
    CutConnection(seconds=2.5),
    CheckAnswer(token="q-1", done=True),
    CheckAnswer(token="q-2", done=False),
    CheckAbort(reason="stopped from the page"),
    CheckAbort(),
]

ALL_EVENTS: list[Event] = [
    FRAME,
    FrameEvent(dir="out", type="invalid", raw="x" * 10, truncated=5000, **STAMP),
    CONNECTED,
    Disconnected(code=1008, reason="over the rate limit for 3 s", **STAMP),
    Notice(text="rate limit: 3 more frames refused", **STAMP),
    HELD,
    Released(unique_id="a1", how="answered", by="f1", **STAMP),
    AnswerRefused(unique_id="a1", by="f2", **STAMP),
    Queued(unique_id="c2", action="Reset", payload={"type": "Soft"}, position=2, **STAMP),
    Sent(unique_id="c1", action="Reset", timeout=30.0, **STAMP),
    Outcome(
        unique_id="c1",
        action="Reset",
        outcome="result",
        payload={"status": "Accepted"},
        violations=[{"path": "$", "message": "m", "code": "FormationViolation"}],
        rtt_ms=250.0,
        **STAMP,
    ),
    Outcome(
        unique_id="c1",
        action="Reset",
        outcome="error",
        error={"code": "NotSupported", "description": "", "details": {}},
        **STAMP,
    ),
    StateChanged(state={"boot_status": "Accepted", "connectors": {"1": {"status": "Available"}}}),
    SettingsChanged(settings={"rules": {}, "validation": "lenient"}, **STAMP),
    Gap(text="events may be missing here", **STAMP),
    RecordingState(on=False, truncated=True, started=AT, **STAMP),
    CheckProgress(report={"profile": "core", "steps": [{"name": "boot", "ok": True}]}, **STAMP),
    SequencePosition(action="BootNotification", position=2, step=2, steps=2, **STAMP),
    SequencePosition(action="Authorize", **STAMP),
    # As a connection makes it: not stamped with a number (see test below).
    ReplayEvent(
        page="page-1",
        session="s1",
        at=AT,
        connected=CONNECTED,
        state={"boot_status": None},
        events=[FRAME, Notice(text="n", **STAMP), HELD],
        held=[HELD],
    ),
]


def test_every_command_and_event_class_is_covered() -> None:
    assert {type(command) for command in ALL_COMMANDS} == set(COMMANDS.values())
    assert {type(event) for event in ALL_EVENTS} == set(EVENTS.values())


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda command: type(command).__name__)
def test_a_command_round_trips(command: Command) -> None:
    text = command.encode()

    assert decode_command(text) == command
    assert decode_command(text.encode()) == command  # the broker may hand back bytes
    assert decode_event(text) is None  # a command is not an event


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda event: type(event).__name__)
def test_an_event_round_trips(event: Event) -> None:
    text = event.encode()

    decoded = decode_event(text)

    assert decoded == event
    assert type(decoded) is type(event)
    assert decode_command(text) is None  # an event is not a command


def test_a_stamped_replay_event_round_trips() -> None:
    event = ReplayEvent(page="p", connected=CONNECTED, state={}, **STAMP)

    assert decode_event(event.encode()) == event


def test_a_call_command_has_the_documented_wire_shape() -> None:
    command = SendCall(unique_id="c1", action="Reset", payload={"type": "Soft"})

    assert command.encode() == (
        '{"op":"call","unique_id":"c1","action":"Reset","payload":{"type":"Soft"},'
        '"concurrent":false}'
    )


def test_a_frame_event_has_the_documented_wire_shape() -> None:
    event = FrameEvent(
        dir="in",
        type="CALL",
        action="Heartbeat",
        unique_id="1",
        raw='[2,"1","Heartbeat",{}]',
        at=AT,
        session="s1",
        seq=2,
    )

    assert event.encode() == (
        '{"kind":"frame","at":"2026-12-01T00:01:40.000Z","session":"s1","seq":2,'
        '"dir":"in","type":"CALL","action":"Heartbeat","unique_id":"1",'
        '"raw":"[2,\\"1\\",\\"Heartbeat\\",{}]","violations":[],"note":null,"truncated":0}'
    )


def test_other_wire_shapes_are_pinned() -> None:
    assert Watch().encode() == '{"op":"watch","page":null}'
    assert AnswerHeld(unique_id="1", ignore=True).encode() == (
        '{"op":"answer","unique_id":"1","payload":null,"error":null,"ignore":true,"token":null}'
    )
    assert Notice(text="hi", at=AT, session="s1", seq=3).encode() == (
        '{"kind":"notice","at":"2026-12-01T00:01:40.000Z","session":"s1","seq":3,"text":"hi"}'
    )


def test_a_message_written_by_hand_decodes_with_defaults_and_ignores_unknown_fields() -> None:
    text = '{"op":"call","unique_id":"c1","action":"Reset","payload":{},"from_the_future":1}'

    assert decode_command(text) == SendCall(unique_id="c1", action="Reset", payload={})
    assert decode_event('{"kind":"disconnected"}') == Disconnected()


GARBAGE = [
    "",
    "not json",
    b"\xff\xfe\x00",
    "null",
    "5",
    '"op"',
    "[1,2,3]",
    '{"op":"call"',
    "{}",
    '{"op":null}',
    '{"op":["call"]}',
    '{"kind":"frame"}',
]


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_decodes_to_none(text: str | bytes) -> None:
    assert decode_command(text) is None
    assert decode_event(text) is None


@pytest.mark.parametrize("text", ['{"op":"launch","unique_id":"1"}', '{"op":"frame"}'])
def test_an_unknown_op_decodes_to_none(text: str) -> None:
    assert decode_command(text) is None


@pytest.mark.parametrize("text", ['{"kind":"launch","text":"x"}', '{"kind":"call"}'])
def test_an_unknown_kind_decodes_to_none(text: str) -> None:
    assert decode_event(text) is None


@pytest.mark.parametrize(
    "text",
    [
        '{"op":"call","action":"Reset","payload":{}}',  # no unique_id
        '{"op":"call","unique_id":"c1","payload":{}}',  # no action
        '{"op":"cancel"}',
        '{"op":"raw"}',
        '{"op":"answer","payload":{}}',
        '{"op":"settings"}',
        '{"op":"takeover","session":"s2"}',
    ],
)
def test_a_command_missing_a_required_field_decodes_to_none(text: str) -> None:
    assert decode_command(text) is None


@pytest.mark.parametrize(
    "text",
    [
        '{"kind":"frame","type":"CALL"}',  # no dir
        '{"kind":"notice"}',
        '{"kind":"held","unique_id":"1"}',  # no action
        '{"kind":"released","unique_id":"1"}',
        '{"kind":"outcome","unique_id":"1","action":"Reset"}',
        '{"kind":"state"}',
        '{"kind":"gap"}',
        '{"kind":"replay","page":"p","events":5}',  # events not a list
    ],
)
def test_an_event_missing_a_required_field_decodes_to_none(text: str) -> None:
    assert decode_event(text) is None


def test_a_replay_event_without_its_page_decodes_to_none() -> None:
    assert decode_event('{"kind":"replay","state":{}}') is None


@pytest.mark.parametrize("text", ["[" * 100_000, '{"op":' * 100_000])
def test_deeply_nested_text_decodes_to_none(text: str) -> None:
    assert decode_command(text) is None
    assert decode_event(text) is None


def test_sequence_wire_shapes_are_pinned() -> None:
    assert RestartSequence().encode() == '{"op":"restart_sequence","action":null}'
    assert SequencePosition(action="Authorize", position=3, step=2, steps=2).encode() == (
        '{"kind":"sequence","at":"","session":"","seq":0,'
        '"action":"Authorize","position":3,"step":2,"steps":2}'
    )
