"""The sans-I/O charger connection, fed literal frames and a literal clock (issue 10).

No socket, no task, no sleeping: text, commands and the time go in; the frames to send,
the events to publish and the broker writes due come out, and are compared with literal
texts. OCPP-J 1.6 section numbers are cited where a test pins what the standard asks.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from ocpplab.core.connection import (
    CONNECT_GRACE,
    MAX_HELD,
    NOT_CHECKED,
    PRESENCE_REFRESH,
    PRESENCE_SPREAD,
    PRESENCE_STATE_EVERY,
    RATE_LIMITED,
    SEEN_IDS,
    STATE_FLUSH,
    WATCH_TTL,
    Connection,
    Limits,
    PendingCheck,
)
from ocpplab.core.frames import MAX_DEPTH
from ocpplab.core.messages import (
    AnswerHeld,
    AnswerRefused,
    CancelCall,
    Connected,
    Disconnected,
    Event,
    FrameEvent,
    Held,
    NewSettings,
    Notice,
    Outcome,
    Queued,
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
from ocpplab.core.replay import ReplayBudget
from ocpplab.core.responder import ResponderSettings
from ocpplab.dialects.ocpp16 import OCPP16

EPOCH = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
START = 100.0  # monotonic seconds when each test's connection opens; wall: 00:01:40
T0 = "2026-12-01T00:01:40.000Z"
HEARTBEAT_ANSWER = '[3,"1",{"currentTime":"2026-12-01T00:01:40.000Z"}]'
BOOT = '[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
START_TX = (
    '[2,"{id}","StartTransaction",'
    '{{"connectorId":1,"idTag":"T","meterStart":0,"timestamp":"2026-12-01T00:00:00Z"}}]'
)


class ManualClock:
    """Wall time and monotonic time, each set by the test (`advance` moves both)."""

    def __init__(self, monotonic: float = START, wall: datetime.datetime | None = None) -> None:
        self.mono = monotonic
        self.wall = wall or EPOCH + datetime.timedelta(seconds=monotonic)

    def now(self) -> datetime.datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += datetime.timedelta(seconds=seconds)

    def set(self, monotonic: float) -> None:
        self.advance(monotonic - self.mono)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def connect(
    clock: ManualClock,
    limits: Limits | None = None,
    *,
    rules: dict[str, Any] | None = None,
    validation: str = "lenient",
    budget: ReplayBudget | None = None,
    transaction_id: int = 1,
    session: str = "s1",
    positions: dict[str, int] | None = None,
) -> Connection:
    """A new connection, its Connected event already collected."""
    responder = ResponderSettings.from_json({"rules": rules or {}, "validation": validation})
    conn = Connection(
        dialect=OCPP16,
        clock=clock,
        limits=limits or Limits(),
        connected=Connected(session=session),
        replay_budget=budget or ReplayBudget(10**7),
        responder=responder,
        transaction_id=transaction_id,
        positions=positions,
    )
    assert [event.kind for event in conn.events_to_publish()] == ["connected"]
    return conn


def answer(conn: Connection, text: str) -> list[str]:
    """Feed one frame that is checked at once; what goes back to the charger."""
    assert conn.receive_text(text) is None
    return conn.data_to_send()


def frames(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.dir, e.type, e.raw) for e in events if isinstance(e, FrameEvent)]


def notices(events: list[Event]) -> list[str]:
    return [event.text for event in events if isinstance(event, Notice)]


def of_kind(events: list[Event], kind: type[Any]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def run_until(conn: Connection, clock: ManualClock, moment: float) -> list[Event]:
    """Move time to `moment` deadline by deadline, as the server's timer would."""
    events: list[Event] = []
    while (deadline := conn.next_deadline()) is not None and deadline <= moment:
        clock.set(max(deadline, clock.mono))
        conn.handle_timeouts()
        events += conn.events_to_publish()
    clock.set(moment)
    conn.handle_timeouts()
    return events + conn.events_to_publish()


def unwatch(conn: Connection, clock: ManualClock) -> None:
    """Let CONNECT_GRACE pass with no page watching; drop what was published meanwhile."""
    clock.advance(CONNECT_GRACE + 1)
    conn.handle_timeouts()
    conn.events_to_publish()
    assert not conn.watched()


# Answers: each mode of a rule (OCPP-J 1.6 section 4.2.2 CALLRESULT, 4.2.3 CALLERROR)


def test_default_answer_to_a_heartbeat(clock: ManualClock) -> None:
    conn = connect(clock)

    assert answer(conn, '[2,"1","Heartbeat",{}]') == [HEARTBEAT_ANSWER]
    assert frames(conn.events_to_publish()) == [
        ("in", "CALL", '[2,"1","Heartbeat",{}]'),
        ("out", "CALLRESULT", HEARTBEAT_ANSWER),
    ]


def test_default_answer_to_a_boot_notification(clock: ManualClock) -> None:
    conn = connect(clock)

    assert answer(conn, BOOT) == [
        '[3,"b1",{"status":"Accepted","currentTime":"2026-12-01T00:01:40.000Z","interval":60}]'
    ]
    assert conn.state.to_json()["boot_status"] == "Accepted"


def test_the_answer_carries_the_wall_clock_not_the_monotonic_one(clock: ManualClock) -> None:
    conn = connect(clock)
    clock.wall = datetime.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)

    assert answer(conn, '[2,"1","Heartbeat",{}]') == [
        '[3,"1",{"currentTime":"2031-05-06T07:08:09.123Z"}]'
    ]


def test_custom_answer_fills_its_placeholders(clock: ManualClock) -> None:
    rules = {
        "Heartbeat": {"mode": "custom", "payload": {"currentTime": "{now}"}},
        "DataTransfer": {
            "mode": "custom",
            "payload": {"status": "Rejected", "data": ["{transactionId}", {"t": "{now}"}]},
        },
    }
    conn = connect(clock, rules=rules, transaction_id=41)

    assert answer(conn, '[2,"1","Heartbeat",{}]') == [HEARTBEAT_ANSWER]
    assert answer(conn, '[2,"2","DataTransfer",{"vendorId":"v"}]') == [
        '[3,"2",{"status":"Rejected","data":[41,{"t":"2026-12-01T00:01:40.000Z"}]}]'
    ]
    assert conn.transactions_to_count() == [41]  # the placeholder used an id


def test_error_rule_answers_its_callerror(clock: ManualClock) -> None:
    rules = {
        "Heartbeat": {
            "mode": "error",
            "error": {"code": "SecurityError", "description": "no", "details": {"why": "test"}},
        }
    }
    conn = connect(clock, rules=rules)

    assert answer(conn, '[2,"1","Heartbeat",{}]') == ['[4,"1","SecurityError","no",{"why":"test"}]']


def test_ignore_rule_answers_nothing_and_says_so(clock: ManualClock) -> None:
    conn = connect(clock, rules={"Heartbeat": {"mode": "ignore"}})

    assert answer(conn, '[2,"1","Heartbeat",{}]') == []
    events = conn.events_to_publish()
    assert frames(events) == [("in", "CALL", '[2,"1","Heartbeat",{}]')]
    assert notices(events) == ["Heartbeat 1 left unanswered: the rule for this action is ignore"]


def test_manual_rule_holds_the_call_for_a_person(clock: ManualClock) -> None:
    conn = connect(clock, rules={"Authorize": {"mode": "manual"}})

    assert answer(conn, '[2,"a1","Authorize",{"idTag":"T"}]') == []
    held = of_kind(conn.events_to_publish(), Held)
    assert len(held) == 1
    assert held[0].to_json() == {
        "kind": "held",
        "at": T0,
        "session": "s1",
        "seq": held[0].seq,
        "unique_id": "a1",
        "action": "Authorize",
        "request": {"idTag": "T"},
        "proposal": {"idTagInfo": {"status": "Accepted"}},
        "timeout": 120.0,  # Limits.manual_timeout
        "deadline": "2026-12-01T00:03:40.000Z",
        "fallback": "default",
    }


def test_delayed_answer_goes_only_at_its_deadline(clock: ManualClock) -> None:
    conn = connect(clock, rules={"Heartbeat": {"mode": "default", "delay": 2.5}})

    assert answer(conn, '[2,"1","Heartbeat",{}]') == []
    conn.events_to_publish()
    assert conn.next_deadline() == START + 2.5
    clock.set(START + 2.4)
    conn.handle_timeouts()
    assert conn.data_to_send() == []
    clock.set(START + 2.5)
    conn.handle_timeouts()
    # The payload was decided when the call came in; the frame is logged when it goes.
    assert conn.data_to_send() == [HEARTBEAT_ANSWER]
    out = [event for event in conn.events_to_publish() if isinstance(event, FrameEvent)]
    assert [(event.dir, event.raw, event.at) for event in out] == [
        ("out", HEARTBEAT_ANSWER, "2026-12-01T00:01:42.500Z")
    ]


def test_a_delayed_error_is_delayed_too(clock: ManualClock) -> None:
    rules = {"Heartbeat": {"mode": "error", "error": {"code": "InternalError"}, "delay": 1}}
    conn = connect(clock, rules=rules)

    assert answer(conn, '[2,"1","Heartbeat",{}]') == []
    clock.set(START + 1)
    conn.handle_timeouts()
    assert conn.data_to_send() == ['[4,"1","InternalError","",{}]']


def test_settings_from_a_command_apply_to_the_next_call(clock: ManualClock) -> None:
    conn = connect(clock)
    assert answer(conn, '[2,"1","Heartbeat",{}]') == [HEARTBEAT_ANSWER]

    conn.receive_command(NewSettings(settings={"rules": {"Heartbeat": {"mode": "ignore"}}}))

    assert answer(conn, '[2,"2","Heartbeat",{}]') == []


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('[2,"1","Heartbeat",{"x":1}]', "FormationViolation"),
        ('[2,"1","BootNotification",{}]', "OccurenceConstraintViolation"),
        (
            '[2,"1","BootNotification",{"chargePointVendor":1,"chargePointModel":"M"}]',
            "TypeConstraintViolation",
        ),
        (
            '[2,"1","BootNotification",{"chargePointVendor":"' + "V" * 21 + '",'
            '"chargePointModel":"M"}]',
            "PropertyConstraintViolation",
        ),
    ],
)
def test_strict_validation_answers_the_callerror_of_the_violation(
    clock: ManualClock, text: str, code: str
) -> None:
    conn = connect(clock, validation="strict")

    [sent] = answer(conn, text)

    reply = json.loads(sent)
    assert reply[:3] == [4, "1", code]
    assert reply[4]["violations"]
    call_event = frames(conn.events_to_publish())[0]
    assert call_event == ("in", "CALL", text)


def test_strict_validation_callerror_text(clock: ManualClock) -> None:
    conn = connect(clock, validation="strict")

    assert answer(conn, '[2,"1","Heartbeat",{"x":1}]') == [
        '[4,"1","FormationViolation","1 schema violation(s); $: Additional properties are '
        'not allowed (\'x\' was unexpected)",{"violations":[{"path":"$","message":'
        "\"Additional properties are not allowed ('x' was unexpected)\","
        '"code":"FormationViolation"}]}]'
    ]


def test_lenient_validation_answers_and_shows_the_violations(clock: ManualClock) -> None:
    conn = connect(clock)

    assert answer(conn, '[2,"1","Heartbeat",{"x":1}]') == [HEARTBEAT_ANSWER]
    incoming = of_kind(conn.events_to_publish(), FrameEvent)[0]
    assert incoming.violations == [
        {
            "path": "$",
            "message": "Additional properties are not allowed ('x' was unexpected)",
            "code": "FormationViolation",
        }
    ]


# Invalid frames (OCPP-J 1.6 section 4.1.3 and 4.2.3)

INVALID = [
    ("nope", None, "not JSON: Expecting value: line 1 column 1 (char 0)"),
    ('{"a":1}', None, "not a JSON array but dict"),
    ('[5,"1"]', None, "unknown message type 5: expected 2, 3 or 4"),
    ('["2","1","Heartbeat",{}]', None, "unknown message type '2': expected 2, 3 or 4"),
    ("[2,1]", None, "the unique id (second element) is missing or not a string"),
    (
        '[2,"9","Heartbeat"]',
        '[4,"9","ProtocolError","a CALL is [2, uniqueId, action, {payload}]: incomplete",{}]',
        "a CALL is [2, uniqueId, action, {payload}]: incomplete",
    ),
    (
        '[2,"9","Heartbeat",[]]',
        '[4,"9","FormationViolation","a CALL is [2, uniqueId, action, {payload}]: malformed",{}]',
        "a CALL is [2, uniqueId, action, {payload}]: malformed",
    ),
    (
        '[2,"' + "x" * 37 + '","Heartbeat",{}]',
        '[4,"' + "x" * 37 + '","ProtocolError","the unique id must be 1 to 36 characters",{}]',
        "the unique id must be 1 to 36 characters",
    ),
    (
        '[2,"9","DataTransfer",' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "]",
        '[4,"9","FormationViolation","the frame was not read: arrays and objects nested '
        'deeper than 20 levels",{}]',
        "not read: arrays and objects nested deeper than 20 levels",
    ),
    (
        '[3,"9",' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "]",
        None,  # a CALLRESULT is never answered
        "not read: arrays and objects nested deeper than 20 levels",
    ),
    ('[3,"9",[]]', None, "a CALLRESULT is [3, uniqueId, {payload}]"),
    (
        '[4,"9","X"]',
        None,
        "a CALLERROR is [4, uniqueId, errorCode, errorDescription, {errorDetails}]",
    ),
]


@pytest.mark.parametrize(("text", "reply", "note"), INVALID)
def test_an_invalid_frame_is_shown_answered_if_addressable_and_the_next_one_works(
    clock: ManualClock, text: str, reply: str | None, note: str
) -> None:
    conn = connect(clock)

    sent = answer(conn, text)

    assert sent == ([reply] if reply else [])
    events = of_kind(conn.events_to_publish(), FrameEvent)
    assert (events[0].dir, events[0].type, events[0].raw, events[0].note) == (
        "in",
        "invalid",
        text,
        note,
    )
    assert frames(events[1:]) == ([("out", "CALLERROR", reply)] if reply else [])
    assert answer(conn, '[2,"1","Heartbeat",{}]') == [HEARTBEAT_ANSWER]


def test_a_frame_just_within_max_depth_is_read(clock: ManualClock) -> None:
    nested = "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3)
    conn = connect(clock)

    sent = answer(conn, '[2,"1","DataTransfer",{"vendorId":"v","data":' + nested + "}]")

    assert sent == ['[3,"1",{"status":"Accepted"}]']


def test_an_unknown_action_is_not_implemented(clock: ManualClock) -> None:
    conn = connect(clock)

    assert answer(conn, '[2,"1","Teleport",{}]') == [
        '[4,"1","NotImplemented","\'Teleport\' is not an OCPP 1.6 action",{}]'
    ]
    assert of_kind(conn.events_to_publish(), FrameEvent)[0].note == (
        "'Teleport' is not an OCPP 1.6 action"
    )


def test_a_central_system_action_from_a_charger_is_not_supported(clock: ManualClock) -> None:
    conn = connect(clock)

    assert answer(conn, '[2,"1","Reset",{"type":"Soft"}]') == [
        '[4,"1","NotSupported","Reset is sent by a central system, not by a charge point",{}]'
    ]


def test_a_huge_action_name_is_shown_cut_short(clock: ManualClock) -> None:
    conn = connect(clock)

    answer(conn, '[2,"1","' + "A" * 5000 + '",{}]')

    incoming = of_kind(conn.events_to_publish(), FrameEvent)[0]
    assert incoming.action == "A" * 64


# Binary frames


def test_a_binary_frame_in_utf8_is_answered_with_a_notice(clock: ManualClock) -> None:
    conn = connect(clock)

    assert conn.receive_bytes(b'[2,"1","Heartbeat",{}]') is None

    assert conn.data_to_send() == [HEARTBEAT_ANSWER]
    events = conn.events_to_publish()
    assert notices(events) == ["the charger sent a binary websocket frame; OCPP-J uses text frames"]
    assert frames(events)[0] == ("in", "CALL", '[2,"1","Heartbeat",{}]')


def test_a_binary_frame_not_in_utf8_is_read_with_replacement_characters(
    clock: ManualClock,
) -> None:
    conn = connect(clock)
    data = b'[2,"1","DataTransfer",{"vendorId":"\xff"}]'

    assert conn.receive_bytes(data) is None

    assert conn.data_to_send() == ['[3,"1",{"status":"Accepted"}]']
    events = conn.events_to_publish()
    assert notices(events) == [
        "the charger sent a binary websocket frame; OCPP-J uses text frames; nor UTF-8 "
        "(from byte 35: b'\\xff'), shown as U+FFFD"
    ]
    assert frames(events)[0] == ("in", "CALL", '[2,"1","DataTransfer",{"vendorId":"\ufffd"}]')


# Duplicate unique ids (OCPP-J 1.6 section 4.1.4: unique per sender)


def test_a_duplicate_unique_id_is_noted(clock: ManualClock) -> None:
    conn = connect(clock)
    answer(conn, '[2,"1","Heartbeat",{}]')
    first = of_kind(conn.events_to_publish(), FrameEvent)[0]

    assert answer(conn, '[2,"1","Heartbeat",{}]') == [HEARTBEAT_ANSWER]  # still answered

    again = of_kind(conn.events_to_publish(), FrameEvent)[0]
    assert first.note is None
    assert again.note == "duplicate unique id '1': this charger already used it"


def test_only_the_last_seen_ids_are_remembered(clock: ManualClock) -> None:
    conn = connect(clock)
    for number in range(SEEN_IDS + 1):  # id 0 is now one too many to remember
        answer(conn, f'[2,"{number}","Heartbeat",{{}}]')
    conn.events_to_publish()

    answer(conn, '[2,"0","Heartbeat",{}]')
    answer(conn, f'[2,"{SEEN_IDS}","Heartbeat",{{}}]')

    notes = [event.note for event in of_kind(conn.events_to_publish(), FrameEvent)]
    assert notes == [
        None,
        None,
        f"duplicate unique id '{SEEN_IDS}': this charger already used it",
        None,
    ]


# Rate limit (DESIGN.md: 100 frames/s, burst x2; refusing must be cheap)


def refused(unique_id: str) -> str:
    return f'[4,"{unique_id}","GenericError","rate limit exceeded: this frame was not read",{{}}]'


FIRST_NOTICE = (
    "rate limit of 2 frames/s exceeded: frames are refused (CALLs with a CALLERROR) and not shown"
)


def test_the_burst_passes_then_calls_are_refused_unshown(clock: ManualClock) -> None:
    conn = connect(clock, Limits(rate_limit=2))
    sent: list[str] = []
    for number in range(6):
        conn.receive_text(f'[2,"{number}","Heartbeat",{{}}]')
        sent += conn.data_to_send()
        clock.advance(0.001)  # less than the one token that 0.5 s would give back

    assert [text[:22] for text in sent[:4]] == [f'[3,"{n}",{{"currentTime":' for n in range(4)]
    assert sent[4:] == [refused("4"), refused("5")]
    events = conn.events_to_publish()
    assert [raw for _, _, raw in frames(events) if '"4"' in raw or '"5"' in raw] == []
    assert notices(events) == [FIRST_NOTICE]
    assert RATE_LIMITED in sent[4]
    replayed = [item for item in conn.replay.items if isinstance(item, tuple)]
    assert len(replayed) == 8  # the four calls and their answers; nothing refused


def test_a_refused_answer_gets_no_reply(clock: ManualClock) -> None:
    conn = connect(clock, Limits(rate_limit=1))
    for _ in range(2):
        answer(conn, '[3,"x",{}]')

    assert answer(conn, '[3,"x",{}]') == []
    assert answer(conn, "not json") == []


def test_refusals_are_counted_once_a_second(clock: ManualClock) -> None:
    conn = connect(clock, Limits(rate_limit=2))
    for _ in range(5):  # four pass, the fifth is refused (and told of)
        answer(conn, '[3,"x",{}]')
    clock.advance(0.001)
    answer(conn, '[3,"x",{}]')  # refused
    assert notices(conn.events_to_publish()) == [FIRST_NOTICE]

    clock.set(START + 0.75)  # 1.5 tokens back: one passes, one refused
    answer(conn, '[3,"x",{}]')
    answer(conn, '[3,"x",{}]')
    assert notices(conn.events_to_publish()) == []

    clock.set(START + 1.1)  # over a second after the first refusal: one passes, one refused
    answer(conn, '[3,"x",{}]')
    answer(conn, '[3,"x",{}]')
    assert notices(conn.events_to_publish()) == ["rate limit: 3 more frames refused"]


def test_refusals_at_one_instant_give_one_notice(clock: ManualClock) -> None:
    conn = connect(clock, Limits(rate_limit=2))
    for _ in range(7):  # four pass, three refused, all at one reading of the clock
        answer(conn, '[3,"x",{}]')
    clock.set(START + 1.0)
    answer(conn, '[3,"x",{}]')
    answer(conn, '[3,"x",{}]')
    answer(conn, '[3,"x",{}]')

    assert notices(conn.events_to_publish()) == [
        FIRST_NOTICE,
        "rate limit: 3 more frames refused",  # two at the first instant, one a second later
    ]


def test_a_long_flood_asks_to_close_after_flood_disconnect_seconds(clock: ManualClock) -> None:
    conn = connect(clock, Limits(rate_limit=2, flood_disconnect=3))
    for _ in range(4):
        answer(conn, '[3,"x",{}]')
    assert conn.close_requested is None

    step = 0
    while clock.mono < START + 3.0:  # over the limit the whole time
        for _ in range(3):
            answer(conn, '[2,"1","Heartbeat",{}]')
        assert conn.close_requested is None, clock.mono
        step += 1
        clock.set(START + 0.25 * step)
    assert clock.mono == START + 3.0
    answer(conn, '[2,"1","Heartbeat",{}]')
    answer(conn, '[2,"1","Heartbeat",{}]')

    assert conn.close_requested == (1008, "over the rate limit for 3 s")


def test_a_flood_that_stopped_starts_over(clock: ManualClock) -> None:
    conn = connect(clock, Limits(rate_limit=2, flood_disconnect=3))
    for _ in range(5):
        answer(conn, '[3,"x",{}]')  # the fifth is refused: a flood begins at 100
    clock.set(START + 2.5)  # quiet for more than a second: that flood is over
    for _ in range(6):
        answer(conn, '[3,"x",{}]')
    clock.set(START + 3.5)
    for _ in range(4):
        answer(conn, '[3,"x",{}]')

    assert conn.close_requested is None  # refused for 1 s only, not since 100


def test_without_flood_disconnect_a_flood_never_closes(clock: ManualClock) -> None:
    conn = connect(clock, Limits(rate_limit=2))
    for step in range(100):
        clock.set(START + step * 0.5)
        for _ in range(5):
            answer(conn, '[3,"x",{}]')

    assert conn.close_requested is None


# Large payloads: checked off the event loop (PendingCheck)

SMALL_INLINE = Limits(inline_check_bytes=64)
BIG_DATA = '[2,"d1","DataTransfer",{"vendorId":"v","data":"' + "x" * 100 + '"}]'
BIG_BAD = '[2,"d1","DataTransfer",{"vendorId":"' + "v" * 300 + '"}]'  # vendorId: max 255


def test_a_large_call_waits_for_its_check(clock: ManualClock) -> None:
    conn = connect(clock, SMALL_INLINE)

    pending = conn.receive_text(BIG_DATA)

    assert isinstance(pending, PendingCheck)
    assert (pending.action, pending.size, pending.response) == (
        "DataTransfer",
        len(BIG_DATA),
        False,
    )
    assert conn.data_to_send() == []
    assert conn.events_to_publish() == []
    conn.finish_check(pending, pending.check())
    assert conn.data_to_send() == ['[3,"d1",{"status":"Accepted"}]']
    incoming = of_kind(conn.events_to_publish(), FrameEvent)[0]
    assert (incoming.raw, incoming.note, incoming.violations) == (BIG_DATA, None, [])


def test_a_small_call_is_checked_at_once(clock: ManualClock) -> None:
    conn = connect(clock, SMALL_INLINE)

    assert conn.receive_text('[2,"1","Heartbeat",{}]') is None


def test_a_large_call_checked_strictly_gets_its_callerror(clock: ManualClock) -> None:
    conn = connect(clock, SMALL_INLINE, validation="strict")

    pending = conn.receive_text(BIG_BAD)
    assert isinstance(pending, PendingCheck)
    conn.finish_check(pending, pending.check())

    [sent] = conn.data_to_send()
    assert json.loads(sent)[:3] == [4, "d1", "PropertyConstraintViolation"]


def test_a_large_call_not_checked_is_answered_with_a_note(clock: ManualClock) -> None:
    conn = connect(clock, SMALL_INLINE, validation="strict")

    pending = conn.receive_text(BIG_BAD)
    assert isinstance(pending, PendingCheck)
    conn.finish_check(pending, None)

    assert conn.data_to_send() == ['[3,"d1",{"status":"Accepted"}]']
    incoming = of_kind(conn.events_to_publish(), FrameEvent)[0]
    assert (incoming.note, incoming.violations) == (NOT_CHECKED, [])


def test_a_large_call_not_checked_may_say_why(clock: ManualClock) -> None:
    conn = connect(clock, SMALL_INLINE)

    pending = conn.receive_text(BIG_DATA)
    assert isinstance(pending, PendingCheck)
    conn.finish_check(pending, None, "the check took too long")

    assert of_kind(conn.events_to_publish(), FrameEvent)[0].note == "the check took too long"


def test_a_large_answer_to_our_call_waits_for_its_check(clock: ManualClock) -> None:
    conn = connect(clock, SMALL_INLINE)
    conn.receive_command(SendCall(unique_id="c1", action="DataTransfer", payload={"vendorId": "v"}))
    conn.data_to_send()
    conn.events_to_publish()
    text = '[3,"c1",{"status":"Accepted","data":"' + "y" * 100 + '"}]'

    pending = conn.receive_text(text)

    assert isinstance(pending, PendingCheck)
    assert pending.response is True
    assert of_kind(conn.events_to_publish(), Outcome) == []
    conn.finish_check(pending, pending.check())
    [outcome] = of_kind(conn.events_to_publish(), Outcome)
    assert (outcome.outcome, outcome.payload["status"]) == ("result", "Accepted")


# Held calls (manual mode)

MANUAL = {"Authorize": {"mode": "manual", "timeout": 10}}
AUTHORIZE = '[2,"{id}","Authorize",{{"idTag":"T"}}]'
ACCEPTED = '[3,"{id}",{{"idTagInfo":{{"status":"Accepted"}}}}]'


def test_a_held_call_is_published_even_when_nobody_watches(clock: ManualClock) -> None:
    conn = connect(clock, rules=MANUAL)
    unwatch(conn, clock)

    answer(conn, AUTHORIZE.format(id="a1"))

    events = conn.events_to_publish()
    assert [type(event) for event in events] == [Held]  # the frame itself is not published
    assert [event.unique_id for event in of_kind(events, Held)] == ["a1"]


def test_at_most_max_held_calls_wait(clock: ManualClock) -> None:
    conn = connect(clock, rules=MANUAL)
    for number in range(MAX_HELD):
        assert answer(conn, AUTHORIZE.format(id=f"a{number}")) == []
    conn.events_to_publish()

    assert answer(conn, AUTHORIZE.format(id="late")) == [ACCEPTED.format(id="late")]

    events = conn.events_to_publish()
    assert of_kind(events, Held) == []
    assert notices(events) == [
        "Authorize late not held: 20 calls wait for an answer already; "
        "the fallback (default) is used"
    ]
    assert len(conn.held) == MAX_HELD


def test_over_max_held_with_fallback_ignore_answers_nothing(clock: ManualClock) -> None:
    conn = connect(clock, rules={"Authorize": {"mode": "manual", "fallback": "ignore"}})
    for number in range(MAX_HELD):
        answer(conn, AUTHORIZE.format(id=f"a{number}"))

    assert answer(conn, AUTHORIZE.format(id="late")) == []


@pytest.mark.parametrize(
    ("fallback", "sent", "how"),
    [
        ("default", [ACCEPTED.format(id="a1")], "timeout-default"),
        ("ignore", [], "timeout-ignore"),
    ],
)
def test_a_held_call_falls_back_at_its_deadline(
    clock: ManualClock, fallback: str, sent: list[str], how: str
) -> None:
    rules = {"Authorize": {"mode": "manual", "timeout": 10, "fallback": fallback}}
    conn = connect(clock, rules=rules)
    answer(conn, AUTHORIZE.format(id="a1"))
    conn.events_to_publish()
    assert conn.next_deadline() == START + 10

    clock.set(START + 9.999)
    conn.handle_timeouts()
    assert conn.data_to_send() == []
    assert of_kind(conn.events_to_publish(), Released) == []

    clock.set(START + 10)
    conn.handle_timeouts()
    assert conn.data_to_send() == sent
    [released] = of_kind(conn.events_to_publish(), Released)
    assert (released.unique_id, released.how, released.by) == ("a1", how, None)
    assert conn.held == {}


def test_a_held_call_expires_unwatched_and_is_published(clock: ManualClock) -> None:
    conn = connect(clock, rules=MANUAL)
    unwatch(conn, clock)
    answer(conn, AUTHORIZE.format(id="a1"))
    conn.events_to_publish()

    clock.advance(10)
    conn.handle_timeouts()

    assert [(type(e), getattr(e, "how", None)) for e in conn.events_to_publish()] == [
        (Released, "timeout-default")
    ]


@pytest.mark.parametrize(
    ("command", "sent", "how"),
    [
        (
            AnswerHeld(unique_id="a1", payload={"idTagInfo": {"status": "Blocked"}}, token="f1"),
            ['[3,"a1",{"idTagInfo":{"status":"Blocked"}}]'],
            "answered",
        ),
        (
            AnswerHeld(
                unique_id="a1",
                error={"code": "SecurityError", "description": "no", "details": {"k": 1}},
                token="f1",
            ),
            ['[4,"a1","SecurityError","no",{"k":1}]'],
            "answered",
        ),
        (
            AnswerHeld(unique_id="a1", error={}, token="f1"),
            ['[4,"a1","GenericError","",{}]'],
            "answered",
        ),
        (AnswerHeld(unique_id="a1", ignore=True, token="f1"), [], "ignored"),
    ],
)
def test_a_persons_answer_wins_once(
    clock: ManualClock, command: AnswerHeld, sent: list[str], how: str
) -> None:
    conn = connect(clock, rules=MANUAL)
    answer(conn, AUTHORIZE.format(id="a1"))
    conn.events_to_publish()
    clock.advance(3)

    conn.receive_command(command)

    assert conn.data_to_send() == sent
    [released] = of_kind(conn.events_to_publish(), Released)
    assert (released.unique_id, released.how, released.by) == ("a1", how, "f1")

    conn.receive_command(AnswerHeld(unique_id="a1", payload={}, token="f2"))
    assert conn.data_to_send() == []
    [refusal] = conn.events_to_publish()
    assert isinstance(refusal, AnswerRefused)
    assert refusal.by == "f2"

    clock.set(START + 10)  # the deadline has no held call to expire any more
    conn.handle_timeouts()
    assert conn.data_to_send() == []
    assert of_kind(conn.events_to_publish(), Released) == []


def test_answering_after_expiry_is_refused(clock: ManualClock) -> None:
    conn = connect(clock, rules=MANUAL)
    answer(conn, AUTHORIZE.format(id="a1"))
    clock.set(START + 10)
    conn.handle_timeouts()
    conn.data_to_send()
    conn.events_to_publish()

    conn.receive_command(AnswerHeld(unique_id="a1", payload={}, token="late"))

    assert conn.data_to_send() == []
    [refusal] = conn.events_to_publish()
    assert isinstance(refusal, AnswerRefused)
    assert (refusal.unique_id, refusal.by) == ("a1", "late")


def test_a_held_rules_delay_applies_after_the_persons_answer(clock: ManualClock) -> None:
    conn = connect(clock, rules={"Authorize": {"mode": "manual", "timeout": 10, "delay": 2}})
    answer(conn, AUTHORIZE.format(id="a1"))
    clock.set(START + 5)

    conn.receive_command(AnswerHeld(unique_id="a1", payload={"idTagInfo": {"status": "Accepted"}}))

    assert conn.data_to_send() == []
    assert conn.next_deadline() == START + 7
    clock.set(START + 6.9)
    conn.handle_timeouts()
    assert conn.data_to_send() == []
    clock.set(START + 7)
    conn.handle_timeouts()
    assert conn.data_to_send() == [ACCEPTED.format(id="a1")]


def test_a_held_start_transaction_answered_by_a_person_counts_the_id(clock: ManualClock) -> None:
    conn = connect(clock, rules={"StartTransaction": {"mode": "manual"}}, transaction_id=5)
    answer(conn, START_TX.format(id="t1"))
    [held] = of_kind(conn.events_to_publish(), Held)
    assert held.proposal == {"idTagInfo": {"status": "Accepted"}, "transactionId": 5}

    conn.receive_command(AnswerHeld(unique_id="t1", payload=held.proposal))

    assert conn.data_to_send() == ['[3,"t1",{"idTagInfo":{"status":"Accepted"},"transactionId":5}]']
    assert conn.transactions_to_count() == [5]
    assert conn.transaction_id == 6


def test_connection_lost_releases_every_held_call(clock: ManualClock) -> None:
    conn = connect(clock, rules=MANUAL)
    answer(conn, AUTHORIZE.format(id="a1"))
    answer(conn, AUTHORIZE.format(id="a2"))
    conn.events_to_publish()

    conn.connection_lost(1001, "going away")

    events = conn.events_to_publish()
    assert [(e.unique_id, e.how) for e in of_kind(events, Released)] == [
        ("a1", "gone"),
        ("a2", "gone"),
    ]
    assert conn.data_to_send() == []
    assert conn.next_deadline() is None


def test_connection_lost_releases_held_calls_to_pages_even_unwatched(clock: ManualClock) -> None:
    conn = connect(clock, rules=MANUAL)
    unwatch(conn, clock)
    answer(conn, AUTHORIZE.format(id="a1"))
    conn.events_to_publish()

    conn.connection_lost(1001, "going away")

    assert [type(event) for event in conn.events_to_publish()] == [Released, Disconnected]


# Outbox: central-system calls (OCPP-J 1.6 section 4.1.1, one at a time)

RESET = SendCall(unique_id="c1", action="Reset", payload={"type": "Soft"})
UNLOCK = SendCall(unique_id="c2", action="UnlockConnector", payload={"connectorId": 1})


def test_a_call_is_sent_at_once(clock: ManualClock) -> None:
    conn = connect(clock)

    conn.receive_command(RESET)

    assert conn.data_to_send() == ['[2,"c1","Reset",{"type":"Soft"}]']
    events = conn.events_to_publish()
    assert frames(events) == [("out", "CALL", '[2,"c1","Reset",{"type":"Soft"}]')]
    [sent] = of_kind(events, Sent)
    assert (sent.unique_id, sent.action, sent.timeout) == ("c1", "Reset", 30.0)


def test_a_second_call_waits_for_the_first_answer(clock: ManualClock) -> None:
    conn = connect(clock)
    conn.receive_command(RESET)
    conn.data_to_send()
    conn.events_to_publish()

    conn.receive_command(UNLOCK)

    assert conn.data_to_send() == []
    [queued] = conn.events_to_publish()
    assert isinstance(queued, Queued)
    assert (queued.unique_id, queued.action, queued.payload, queued.position) == (
        "c2",
        "UnlockConnector",
        {"connectorId": 1},
        1,
    )
    conn.receive_command(SendCall(unique_id="c3", action="ClearCache", payload={}))
    assert [e.position for e in of_kind(conn.events_to_publish(), Queued)] == [2]

    clock.advance(0.25)
    assert answer(conn, '[3,"c1",{"status":"Accepted"}]') == [
        '[2,"c2","UnlockConnector",{"connectorId":1}]'
    ]
    events = conn.events_to_publish()
    [outcome] = of_kind(events, Outcome)
    assert (outcome.unique_id, outcome.outcome, outcome.payload, outcome.rtt_ms) == (
        "c1",
        "result",
        {"status": "Accepted"},
        250.0,
    )
    assert [e.unique_id for e in of_kind(events, Sent)] == ["c2"]


def test_a_concurrent_call_skips_the_queue(clock: ManualClock) -> None:
    conn = connect(clock)
    conn.receive_command(RESET)
    conn.data_to_send()

    conn.receive_command(SendCall(unique_id="c2", action="ClearCache", payload={}, concurrent=True))

    assert conn.data_to_send() == ['[2,"c2","ClearCache",{}]']
    assert of_kind(conn.events_to_publish(), Queued) == []


def test_a_call_times_out_and_the_next_goes(clock: ManualClock) -> None:
    conn = connect(clock, Limits(call_timeout=10))
    conn.receive_command(Watch())  # past CONNECT_GRACE, so that a page still sees frames
    conn.receive_command(RESET)
    conn.receive_command(UNLOCK)
    conn.data_to_send()
    conn.events_to_publish()
    assert conn.next_deadline() == START + 10

    clock.set(START + 9.999)
    conn.handle_timeouts()
    assert conn.data_to_send() == []
    assert of_kind(conn.events_to_publish(), Outcome) == []

    clock.set(START + 10)
    conn.handle_timeouts()
    assert conn.data_to_send() == ['[2,"c2","UnlockConnector",{"connectorId":1}]']
    events = conn.events_to_publish()
    [outcome] = of_kind(events, Outcome)
    assert (outcome.unique_id, outcome.outcome, outcome.rtt_ms) == ("c1", "timeout", None)
    assert conn.next_deadline() == START + 20

    # A late answer answers nothing any more.
    answer(conn, '[3,"c1",{"status":"Accepted"}]')
    assert of_kind(conn.events_to_publish(), FrameEvent)[0].note == (
        "answers no call in flight (unique id 'c1')"
    )


def test_a_queued_call_can_be_cancelled(clock: ManualClock) -> None:
    conn = connect(clock)
    conn.receive_command(RESET)
    conn.receive_command(UNLOCK)
    conn.data_to_send()
    conn.events_to_publish()

    conn.receive_command(CancelCall(unique_id="c2"))

    [outcome] = conn.events_to_publish()
    assert isinstance(outcome, Outcome)
    assert (outcome.unique_id, outcome.action, outcome.outcome, outcome.rtt_ms) == (
        "c2",
        "UnlockConnector",
        "cancelled",
        None,
    )
    answer(conn, '[3,"c1",{"status":"Accepted"}]')
    assert conn.data_to_send() == []  # c2 does not go


def test_cancelling_a_call_in_flight_or_unknown_does_nothing(clock: ManualClock) -> None:
    conn = connect(clock)
    conn.receive_command(RESET)
    conn.events_to_publish()

    conn.receive_command(CancelCall(unique_id="c1"))
    conn.receive_command(CancelCall(unique_id="nobody"))

    assert conn.events_to_publish() == []
    answer(conn, '[3,"c1",{"status":"Accepted"}]')
    assert of_kind(conn.events_to_publish(), Outcome)[0].outcome == "result"


def test_an_answer_to_no_call_in_flight_is_noted(clock: ManualClock) -> None:
    conn = connect(clock)

    assert answer(conn, '[3,"zz",{}]') == []
    assert answer(conn, '[4,"zz","GenericError","",{}]') == []

    assert [(e.type, e.note) for e in of_kind(conn.events_to_publish(), FrameEvent)] == [
        ("CALLRESULT", "answers no call in flight (unique id 'zz')"),
        ("CALLERROR", "answers no call in flight (unique id 'zz')"),
    ]


def test_a_callerror_answer_gives_an_error_outcome(clock: ManualClock) -> None:
    conn = connect(clock)
    conn.receive_command(RESET)
    conn.events_to_publish()
    clock.advance(1.5)

    answer(conn, '[4,"c1","NotSupported","no reset here",{"a":1}]')

    events = conn.events_to_publish()
    assert frames(events) == [
        ("in", "CALLERROR", '[4,"c1","NotSupported","no reset here",{"a":1}]')
    ]
    [outcome] = of_kind(events, Outcome)
    assert (outcome.outcome, outcome.error, outcome.rtt_ms) == (
        "error",
        {"code": "NotSupported", "description": "no reset here", "details": {"a": 1}},
        1500.0,
    )


def test_an_answer_breaking_the_schema_shows_its_violations(clock: ManualClock) -> None:
    conn = connect(clock)
    conn.receive_command(RESET)
    conn.events_to_publish()

    answer(conn, '[3,"c1",{"status":"Maybe"}]')

    events = conn.events_to_publish()
    [outcome] = of_kind(events, Outcome)
    assert outcome.outcome == "result"
    assert [violation["path"] for violation in outcome.violations] == ["$.status"]
    assert of_kind(events, FrameEvent)[0].violations == outcome.violations


# Transactions


def test_start_transaction_hands_out_ids_in_order(clock: ManualClock) -> None:
    conn = connect(clock)

    assert answer(conn, START_TX.format(id="t1")) == [
        '[3,"t1",{"idTagInfo":{"status":"Accepted"},"transactionId":1}]'
    ]
    assert answer(conn, START_TX.format(id="t2")) == [
        '[3,"t2",{"idTagInfo":{"status":"Accepted"},"transactionId":2}]'
    ]
    assert conn.transactions_to_count() == [1, 2]
    assert conn.transactions_to_count() == []


def test_the_broker_counter_moves_the_next_id_on(clock: ManualClock) -> None:
    conn = connect(clock)
    answer(conn, START_TX.format(id="t1"))

    conn.transaction_counted(1, 41)  # other connections of the identity used up to 41

    assert answer(conn, START_TX.format(id="t2")) == [
        '[3,"t2",{"idTagInfo":{"status":"Accepted"},"transactionId":42}]'
    ]
    conn.transaction_counted(42, 3)  # an older count never moves it back
    assert conn.transaction_id == 43


def test_a_custom_start_transaction_without_the_placeholder_uses_no_id(
    clock: ManualClock,
) -> None:
    rules = {
        "StartTransaction": {
            "mode": "custom",
            "payload": {"idTagInfo": {"status": "Invalid"}, "transactionId": 0},
        }
    }
    conn = connect(clock, rules=rules)

    assert answer(conn, START_TX.format(id="t1")) == [
        '[3,"t1",{"idTagInfo":{"status":"Invalid"},"transactionId":0}]'
    ]
    assert conn.transactions_to_count() == []


def test_a_rejected_start_transaction_uses_no_id(clock: ManualClock) -> None:
    rules = {"StartTransaction": {"mode": "error", "error": {"code": "InternalError"}}}
    conn = connect(clock, rules=rules)

    answer(conn, START_TX.format(id="t1"))

    assert conn.transactions_to_count() == []
    assert conn.transaction_id == 1


# Watching: who is published to


def test_unwatched_frames_are_kept_but_not_published(clock: ManualClock) -> None:
    conn = connect(clock)
    unwatch(conn, clock)

    assert answer(conn, '[2,"1","Heartbeat",{}]') != []

    assert conn.events_to_publish() == []
    kept = [item for item in conn.replay.items if isinstance(item, tuple)]
    assert [item[6] for item in kept][-2:] == [
        '[2,"1","Heartbeat",{}]',
        '[3,"1",{"currentTime":"2026-12-01T00:01:51.000Z"}]',
    ]


def test_frames_are_published_during_the_connect_grace(clock: ManualClock) -> None:
    conn = connect(clock)
    clock.advance(CONNECT_GRACE - 0.001)

    answer(conn, '[2,"1","Heartbeat",{}]')

    assert len(frames(conn.events_to_publish())) == 2


def test_a_watch_with_a_page_gets_the_replay(clock: ManualClock) -> None:
    conn = connect(clock, rules={"Authorize": {"mode": "manual"}})
    answer(conn, BOOT)
    answer(conn, AUTHORIZE.format(id="a1"))
    unwatch(conn, clock)
    answer(conn, '[2,"1","Heartbeat",{}]')

    conn.receive_command(Watch(page="page-1"))

    [replay] = conn.events_to_publish()
    assert isinstance(replay, ReplayEvent)
    assert (replay.page, replay.session) == ("page-1", "s1")
    assert replay.connected is conn.connected
    assert [(e.kind, getattr(e, "raw", None)) for e in replay.events] == [
        ("frame", BOOT),
        (
            "frame",
            '[3,"b1",{"status":"Accepted","currentTime":"2026-12-01T00:01:40.000Z","interval":60}]',
        ),
        ("frame", AUTHORIZE.format(id="a1")),
        ("held", None),
        ("frame", '[2,"1","Heartbeat",{}]'),
        ("frame", '[3,"1",{"currentTime":"2026-12-01T00:01:51.000Z"}]'),
    ]
    assert [e.session for e in replay.events] == ["s1"] * 6
    assert replay.state["boot_status"] == "Accepted"
    assert replay.state["last_heartbeat"] == "2026-12-01T00:01:51.000Z"
    assert [held.unique_id for held in replay.held] == ["a1"]


def test_a_watch_publishes_again_until_its_ttl(clock: ManualClock) -> None:
    conn = connect(clock)
    unwatch(conn, clock)

    conn.receive_command(Watch())
    assert conn.events_to_publish() == []  # no page asked for a replay
    clock.advance(WATCH_TTL - 0.001)
    answer(conn, '[2,"1","Heartbeat",{}]')
    assert len(frames(conn.events_to_publish())) == 2

    clock.advance(0.001)
    answer(conn, '[2,"2","Heartbeat",{}]')
    assert frames(conn.events_to_publish()) == []


def test_the_state_reaches_a_watching_page_state_flush_after_a_change(
    clock: ManualClock,
) -> None:
    conn = connect(clock)
    answer(conn, '[2,"1","Heartbeat",{}]')
    conn.events_to_publish()
    assert conn.next_deadline() == START + STATE_FLUSH

    clock.set(START + STATE_FLUSH)
    conn.handle_timeouts()
    [state] = of_kind(conn.events_to_publish(), StateChanged)
    assert state.state["last_heartbeat"] == T0

    clock.advance(1)
    conn.handle_timeouts()
    assert of_kind(conn.events_to_publish(), StateChanged) == []  # nothing changed since


def test_an_unwatched_state_change_waits_for_a_watcher(clock: ManualClock) -> None:
    conn = connect(clock)
    unwatch(conn, clock)
    answer(conn, '[2,"1","Heartbeat",{}]')

    events = run_until(conn, clock, clock.mono + 60)
    assert of_kind(events, StateChanged) == []

    conn.receive_command(Watch())
    moment = clock.mono
    deadline = conn.next_deadline()
    assert deadline is not None
    assert deadline <= moment + STATE_FLUSH  # the change is old: it goes at once
    events = run_until(conn, clock, moment + STATE_FLUSH)
    [state] = of_kind(events, StateChanged)
    assert state.state["last_heartbeat"] == "2026-12-01T00:01:51.000Z"


def test_the_state_reaches_a_watching_page_while_frames_keep_coming(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The presence write (which carries the state too) as late as its spread allows.
    monkeypatch.setattr("ocpplab.core.connection.random.uniform", lambda low, high: high)
    conn = connect(clock)
    states: list[float] = []
    for number in range(30):  # a frame every 0.1 s, each a change of state
        clock.set(START + number / 10)
        deadline = conn.next_deadline()
        if deadline is not None and deadline <= clock.mono:
            conn.handle_timeouts()
        answer(conn, f'[2,"{number}","Heartbeat",{{}}]')
        if of_kind(conn.events_to_publish(), StateChanged):
            states.append(clock.mono)

    assert states
    assert states[0] <= START + STATE_FLUSH + 0.1


# Presence: the record other processes read, some seconds late


def presence_times(conn: Connection, clock: ManualClock, until: float) -> list[float]:
    """The monotonic times at which presence records were due, up to `until`."""
    times: list[float] = []
    while (deadline := conn.next_deadline()) is not None and deadline <= until:
        clock.set(deadline)
        conn.handle_timeouts()
        if conn.take_presence() is not None:
            times.append(clock.mono)
    return times


def test_presence_follows_a_change_within_its_bounds(clock: ManualClock) -> None:
    for _ in range(20):  # the wait is random: try it many times
        clock = ManualClock()
        conn = connect(clock)
        answer(conn, '[2,"1","Heartbeat",{}]')

        [first] = presence_times(conn, clock, START + PRESENCE_STATE_EVERY + 0.001)
        assert START + STATE_FLUSH <= first <= START + PRESENCE_STATE_EVERY

        answer(conn, '[2,"2","Heartbeat",{}]')  # a change at once: gathered, not written
        changed = clock.mono
        [second] = presence_times(conn, clock, first + 10)
        shortest = PRESENCE_STATE_EVERY * (1 - PRESENCE_SPREAD)
        longest = PRESENCE_STATE_EVERY * (1 + PRESENCE_SPREAD)
        assert second >= first + shortest
        assert second >= changed + STATE_FLUSH
        assert second <= max(changed + PRESENCE_STATE_EVERY, first + longest)


def test_presence_record_and_refresh(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "ocpplab.core.connection.random.uniform", lambda low, high: (low + high) / 2
    )
    conn = connect(clock)
    answer(conn, BOOT)

    clock.set(START + 2.59)
    conn.handle_timeouts()
    assert conn.take_presence() is None
    clock.set(START + 2.6)  # (STATE_FLUSH + PRESENCE_STATE_EVERY) / 2 after the change
    conn.handle_timeouts()
    record = conn.take_presence()
    assert record is not None
    assert conn.take_presence() is None  # taken once
    assert record == {
        "connected": True,
        "connected_since": T0,
        "subprotocol": None,
        "dialect": "",
        "session": "s1",
        "warnings": [],
        "state": conn.state.to_json(),
        "queued_calls": 0,
        "calls_in_flight": 0,
        "held_calls": 0,
        "sequences": {},
    }
    assert record["state"]["boot_status"] == "Accepted"

    # Nothing changes: a refresh every PRESENCE_REFRESH (spread; its middle here).
    assert presence_times(conn, clock, START + 2.6 + 3 * PRESENCE_REFRESH + 1) == [
        START + 2.6 + PRESENCE_REFRESH,
        START + 2.6 + 2 * PRESENCE_REFRESH,
        START + 2.6 + 3 * PRESENCE_REFRESH,
    ]


def test_presence_counts_calls_and_held_calls(clock: ManualClock) -> None:
    conn = connect(clock, rules=MANUAL)
    conn.receive_command(RESET)
    conn.receive_command(UNLOCK)
    answer(conn, AUTHORIZE.format(id="a1"))

    record = conn.presence()

    assert (record["calls_in_flight"], record["queued_calls"], record["held_calls"]) == (1, 1, 1)


def test_presence_is_refreshed_first_after_presence_refresh(clock: ManualClock) -> None:
    conn = connect(clock)
    assert conn.next_deadline() == START + PRESENCE_REFRESH

    assert presence_times(conn, clock, START + PRESENCE_REFRESH) == [START + PRESENCE_REFRESH]
    later = presence_times(conn, clock, START + 3 * PRESENCE_REFRESH)
    low = PRESENCE_REFRESH * (1 - PRESENCE_SPREAD)
    high = PRESENCE_REFRESH * (1 + PRESENCE_SPREAD)
    assert low <= later[0] - (START + PRESENCE_REFRESH) <= high


# Replay bounds


def test_the_replay_keeps_at_most_replay_size_items(clock: ManualClock) -> None:
    conn = connect(clock, Limits(replay_size=3))
    for number in range(5):
        answer(conn, f'[2,"{number}","Heartbeat",{{}}]')
    conn.events_to_publish()

    conn.receive_command(Watch(page="p"))

    [replay] = conn.events_to_publish()
    assert isinstance(replay, ReplayEvent)
    assert [e.raw for e in replay.events if isinstance(e, FrameEvent)] == [
        '[3,"3",{"currentTime":"2026-12-01T00:01:40.000Z"}]',
        '[2,"4","Heartbeat",{}]',
        '[3,"4",{"currentTime":"2026-12-01T00:01:40.000Z"}]',
    ]


def test_the_replay_keeps_at_most_replay_bytes(clock: ManualClock) -> None:
    conn = connect(clock, Limits(replay_bytes=4096))
    for number in range(20):
        answer(conn, f'[2,"{number}","Heartbeat",{{}}]')

    assert 0 < conn.replay.bytes <= 4096
    assert len(conn.replay.items) < 40
    last = conn.replay.items[-1]
    assert isinstance(last, tuple)
    assert last[6] == '[3,"19",{"currentTime":"2026-12-01T00:01:40.000Z"}]'


def test_a_frame_bigger_than_an_item_is_kept_truncated(clock: ManualClock) -> None:
    conn = connect(clock, Limits(replay_bytes=4096))  # one item: at most 1024
    text = '[2,"1","DataTransfer",{"vendorId":"v","data":"' + "x" * 2000 + '"}]'

    assert answer(conn, text) == ['[3,"1",{"status":"Accepted"}]']

    live = of_kind(conn.events_to_publish(), FrameEvent)[0]
    assert (live.raw, live.truncated) == (text[:1024], len(text))
    conn.receive_command(Watch(page="p"))
    [replay] = conn.events_to_publish()
    assert isinstance(replay, ReplayEvent)
    first = replay.events[0]
    assert isinstance(first, FrameEvent)
    assert (first.raw, first.truncated) == (text[:1024], len(text))
    assert [e.truncated for e in of_kind(replay.events, FrameEvent)] == [len(text), 0]


def test_the_replay_budget_is_shared_by_connections(clock: ManualClock) -> None:
    budget = ReplayBudget(3000)
    first = connect(clock, budget=budget, session="s1")
    for number in range(20):
        answer(first, f'[2,"{number}","Heartbeat",{{}}]')
    assert budget.used <= 3000
    held_alone = first.replay.bytes

    second = connect(clock, budget=budget, session="s2")
    for number in range(20):
        answer(second, f'[2,"{number}","Heartbeat",{{}}]')

    assert budget.used == first.replay.bytes + second.replay.bytes <= 3000
    assert first.replay.bytes < held_alone  # it gave way to the newcomer
    assert second.replay.bytes > 0

    second.connection_lost(1000, "")
    assert budget.used == first.replay.bytes


# send_raw


def test_send_raw_sends_the_exact_text_even_invalid(clock: ManualClock) -> None:
    conn = connect(clock)

    conn.receive_command(SendRaw(text="  not json at all {"))

    assert conn.data_to_send() == ["  not json at all {"]
    assert frames(conn.events_to_publish()) == [("out", "invalid", "  not json at all {")]


def test_send_raw_of_a_valid_frame_is_shown_as_that_frame(clock: ManualClock) -> None:
    conn = connect(clock)

    conn.receive_command(SendRaw(text='[2, "r1", "Reset", {"type": "Hard"}]'))

    assert conn.data_to_send() == ['[2, "r1", "Reset", {"type": "Hard"}]']
    [event] = of_kind(conn.events_to_publish(), FrameEvent)
    assert (event.type, event.action, event.unique_id) == ("CALL", "Reset", "r1")


def test_send_raw_escapes_a_lone_surrogate(clock: ManualClock) -> None:
    conn = connect(clock)

    conn.receive_command(SendRaw(text='[2,"r1","DataTransfer",{"vendorId":"\ud800é"}]'))

    [sent] = conn.data_to_send()
    assert sent == '[2,"r1","DataTransfer",{"vendorId":"\\ud800é"}]'
    assert sent.encode("utf-8")  # would raise on the lone surrogate itself


# connection_lost


def test_connection_lost_ends_calls_and_says_how(clock: ManualClock) -> None:
    conn = connect(clock, rules={"Heartbeat": {"mode": "default", "delay": 5}})
    conn.receive_command(RESET)
    conn.receive_command(UNLOCK)
    answer(conn, '[2,"1","Heartbeat",{}]')  # a delayed answer that will never go
    conn.events_to_publish()

    conn.connection_lost(1006, "abnormal closure")

    events = conn.events_to_publish()
    outcomes = of_kind(events, Outcome)
    assert [(e.unique_id, e.outcome, e.error) for e in outcomes] == [
        ("c1", "offline", {"code": "", "description": "charger gone"}),
        ("c2", "offline", {"code": "", "description": "charger gone"}),
    ]
    [disconnected] = of_kind(events, Disconnected)
    assert (disconnected.code, disconnected.reason, disconnected.session) == (
        1006,
        "abnormal closure",
        "s1",
    )
    assert events[-1] is disconnected
    assert conn.next_deadline() is None
    clock.advance(10)
    conn.handle_timeouts()
    assert conn.data_to_send() == []


def test_connection_lost_sends_the_last_state_change_and_happens_once(
    clock: ManualClock,
) -> None:
    conn = connect(clock)
    answer(conn, '[2,"1","Heartbeat",{}]')
    conn.events_to_publish()

    conn.connection_lost(1000, "")
    conn.connection_lost(1000, "again")

    assert [type(event) for event in conn.events_to_publish()] == [StateChanged, Disconnected]


def test_connection_lost_unwatched_still_says_disconnected(clock: ManualClock) -> None:
    conn = connect(clock)
    unwatch(conn, clock)

    conn.connection_lost(4000, "replaced")

    [event] = conn.events_to_publish()
    assert isinstance(event, Disconnected)
    assert conn.replay.items == []


# Answer sequences (issue 13, item 5)

REJECTED_TWICE = {
    "BootNotification": {
        "sequence": [
            {
                "mode": "custom",
                "payload": {"status": "Rejected", "currentTime": "{now}", "interval": 10},
                "count": 2,
            },
            {"mode": "default"},
        ]
    }
}
BOOT_N = '[2,"b{n}","BootNotification",{{"chargePointVendor":"V","chargePointModel":"M"}}]'
REJECTED_N = (
    '[3,"b{n}",{{"status":"Rejected","currentTime":"2026-12-01T00:01:40.000Z","interval":10}}]'
)
ACCEPTED_N = (
    '[3,"b{n}",{{"status":"Accepted","currentTime":"2026-12-01T00:01:40.000Z","interval":60}}]'
)


def positions(events: list[Event]) -> list[tuple[str, int, int, int]]:
    return [(e.action, e.position, e.step, e.steps) for e in of_kind(events, SequencePosition)]


def test_a_sequence_answers_rejected_twice_then_accepted(clock: ManualClock) -> None:
    conn = connect(clock, rules=REJECTED_TWICE)

    sent = [answer(conn, BOOT_N.format(n=n)) for n in range(1, 5)]

    assert sent == [
        [REJECTED_N.format(n=1)],
        [REJECTED_N.format(n=2)],
        [ACCEPTED_N.format(n=3)],
        [ACCEPTED_N.format(n=4)],  # without repeat, the last step holds
    ]
    assert positions(conn.events_to_publish()) == [
        ("BootNotification", 1, 1, 2),
        ("BootNotification", 2, 2, 2),
        ("BootNotification", 3, 2, 2),
        ("BootNotification", 4, 2, 2),
    ]
    assert conn.sequences_to_save() == {"BootNotification": 4}
    assert conn.sequences_to_save() is None  # taken once
    assert conn.presence()["sequences"] == {"BootNotification": 4}


def test_a_sequence_position_is_published_even_unwatched(clock: ManualClock) -> None:
    conn = connect(clock, rules=REJECTED_TWICE)
    unwatch(conn, clock)

    answer(conn, BOOT_N.format(n=1))

    assert positions(conn.events_to_publish()) == [("BootNotification", 1, 1, 2)]


def test_a_sequence_goes_on_from_the_position_it_was_given(clock: ManualClock) -> None:
    """A reconnecting charger: the session hands over the stored positions."""
    conn = connect(clock, rules=REJECTED_TWICE, positions={"BootNotification": 2})

    assert answer(conn, BOOT_N.format(n=3)) == [ACCEPTED_N.format(n=3)]
    assert conn.sequences_to_save() == {"BootNotification": 3}


def test_ignoring_the_first_call_moves_the_sequence_on(clock: ManualClock) -> None:
    rules = {"BootNotification": {"sequence": [{"mode": "ignore"}, {"mode": "default"}]}}
    conn = connect(clock, rules=rules)

    assert answer(conn, BOOT_N.format(n=1)) == []
    assert answer(conn, BOOT_N.format(n=2)) == [ACCEPTED_N.format(n=2)]
    events = conn.events_to_publish()
    assert any("left unanswered" in text for text in notices(events))
    assert conn.sequences_to_save() == {"BootNotification": 2}


def test_a_repeating_sequence_starts_over(clock: ManualClock) -> None:
    rules = {
        "Heartbeat": {
            "sequence": [
                {"mode": "default", "count": 2},
                {"mode": "error", "error": {"code": "InternalError"}},
            ],
            "repeat": True,
        }
    }
    conn = connect(clock, rules=rules)

    kinds = [json.loads(answer(conn, f'[2,"{n}","Heartbeat",{{}}]')[0])[0] for n in range(7)]

    assert kinds == [3, 3, 4, 3, 3, 4, 3]
    # The step the next call gets: the error after two answers, then the first again.
    assert [step for _, _, step, _ in positions(conn.events_to_publish())] == [1, 2, 1, 1, 2, 1, 1]


def test_a_delayed_step_counts_when_the_call_comes_not_when_answered(clock: ManualClock) -> None:
    rules = {"Heartbeat": {"sequence": [{"mode": "default", "delay": 5}, {"mode": "ignore"}]}}
    conn = connect(clock, rules=rules)

    assert answer(conn, '[2,"1","Heartbeat",{}]') == []
    assert answer(conn, '[2,"2","Heartbeat",{}]') == []  # the second step: ignore
    run_until(conn, clock, START + 5)
    assert conn.data_to_send() == ['[3,"1",{"currentTime":"2026-12-01T00:01:40.000Z"}]']


def test_a_held_step_counts_when_held(clock: ManualClock) -> None:
    rules = {"Authorize": {"sequence": [{"mode": "manual", "timeout": 10}, {"mode": "default"}]}}
    conn = connect(clock, rules=rules)

    assert answer(conn, AUTHORIZE.format(id="a1")) == []
    assert answer(conn, AUTHORIZE.format(id="a2")) == [ACCEPTED.format(id="a2")]
    assert len(of_kind(conn.events_to_publish(), Held)) == 1


def test_a_strict_refusal_is_no_step_of_the_sequence(clock: ManualClock) -> None:
    conn = connect(clock, rules=REJECTED_TWICE, validation="strict")

    refused = answer(conn, '[2,"x","BootNotification",{"chargePointVendor":"V"}]')

    assert json.loads(refused[0])[0] == 4  # the strict policy's CALLERROR
    assert positions(conn.events_to_publish()) == []
    assert conn.sequences_to_save() is None
    assert answer(conn, BOOT_N.format(n=1)) == [REJECTED_N.format(n=1)]


def test_other_actions_keep_no_position(clock: ManualClock) -> None:
    conn = connect(clock, rules=REJECTED_TWICE)

    answer(conn, '[2,"1","Heartbeat",{}]')

    assert conn.positions is None  # made only when a sequence first answers
    assert conn.sequences_to_save() is None


def test_restart_sequence_starts_one_action_over(clock: ManualClock) -> None:
    rules = {**REJECTED_TWICE, "Authorize": {"sequence": [{"mode": "ignore"}, {"mode": "default"}]}}
    conn = connect(clock, rules=rules, positions={"BootNotification": 3, "Authorize": 1})

    conn.receive_command(RestartSequence(action="BootNotification"))

    assert positions(conn.events_to_publish()) == [("BootNotification", 0, 1, 2)]
    assert conn.sequences_to_save() == {"Authorize": 1}
    assert answer(conn, BOOT_N.format(n=1)) == [REJECTED_N.format(n=1)]


def test_restart_sequence_without_an_action_starts_every_one_over(clock: ManualClock) -> None:
    rules = {**REJECTED_TWICE, "Authorize": {"sequence": [{"mode": "ignore"}, {"mode": "default"}]}}
    conn = connect(clock, rules=rules, positions={"BootNotification": 3, "Authorize": 1})

    conn.receive_command(RestartSequence())

    assert positions(conn.events_to_publish()) == [
        ("BootNotification", 0, 1, 2),
        ("Authorize", 0, 1, 2),
    ]
    assert conn.sequences_to_save() == {}
    assert answer(conn, AUTHORIZE.format(id="a1")) == []


def test_a_changed_rule_starts_its_sequence_over_and_no_other(clock: ManualClock) -> None:
    rules = {**REJECTED_TWICE, "Authorize": {"sequence": [{"mode": "ignore"}, {"mode": "default"}]}}
    conn = connect(clock, rules=rules, positions={"BootNotification": 3, "Authorize": 1})
    changed = {**rules, "BootNotification": {"sequence": [{"mode": "ignore", "count": 3}]}}

    conn.receive_command(NewSettings(settings={"rules": changed, "validation": "lenient"}))

    assert positions(conn.events_to_publish()) == [("BootNotification", 0, 1, 1)]
    assert conn.sequences_to_save() == {"Authorize": 1}


def test_new_settings_with_the_same_rules_keep_the_positions(clock: ManualClock) -> None:
    conn = connect(clock, rules=REJECTED_TWICE, positions={"BootNotification": 1})

    conn.receive_command(NewSettings(settings={"rules": REJECTED_TWICE, "validation": "strict"}))

    assert positions(conn.events_to_publish()) == []
    assert answer(conn, BOOT_N.format(n=2)) == [REJECTED_N.format(n=2)]


def test_a_cut_command_asks_to_close_the_connection(clock: ManualClock) -> None:
    from ocpplab.core.messages import CutConnection

    connection = connect(clock)
    assert connection.close_requested is None
    connection.receive_command(CutConnection(seconds=30))
    assert connection.close_requested == (1001, "cut on purpose for 30 s")


def test_the_answer_to_a_raw_call_from_a_page_is_paired_with_it(clock: ManualClock) -> None:
    from ocpplab.core.messages import SendRaw

    conn = connect(clock)
    conn.receive_command(SendRaw(text='[2,"raw-1","Reset",{"type":"Soft"}]'))
    conn.data_to_send()
    conn.events_to_publish()
    conn.receive_text('[3,"raw-1",{"status":"Accepted"}]')
    (frame,) = [e for e in conn.events_to_publish() if isinstance(e, FrameEvent)]
    assert frame.action == "Reset"
    assert frame.note == "answers a raw frame sent from a page"
    assert frame.violations == []
    conn.receive_text('[3,"raw-1",{"status":"Accepted"}]')  # a second answer: in flight no more
    (again,) = [e for e in conn.events_to_publish() if isinstance(e, FrameEvent)]
    assert again.note == "answers no call in flight (unique id 'raw-1')"
    conn.receive_command(SendRaw(text='[2,"raw-2","Reset",{"type":"Soft"}]'))
    conn.receive_text('[3,"raw-2",{"status":"Maybe"}]')
    (bad,) = [e for e in conn.events_to_publish() if isinstance(e, FrameEvent) and e.dir == "in"]
    assert bad.violations, "the answer is checked against Reset's response schema"
