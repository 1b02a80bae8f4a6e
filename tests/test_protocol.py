"""The sans-I/O OCPP-J core, fed literal frames and literal clocks (OCPP-J 1.6 section 4)."""

from __future__ import annotations

import pytest

from ocpplab.core.frames import (
    Call,
    CallError,
    CallResult,
    InvalidFrame,
    Outbox,
    check_call,
    message_type_name,
    parse,
)
from ocpplab.dialects.ocpp16 import OCPP16

# Well-formed frames (OCPP-J 1.6 sections 4.2.1-4.2.3)


def test_a_call_is_read_with_its_unique_id_action_and_payload() -> None:
    frame = parse('[2,"19223201","BootNotification",{"chargePointVendor":"VendorX"}]')

    assert frame == Call("19223201", "BootNotification", {"chargePointVendor": "VendorX"})
    assert message_type_name(frame) == "CALL"


def test_a_callresult_is_read() -> None:
    frame = parse('[3,"19223201",{"currentTime":"2013-02-01T20:53:32.486Z","interval":300}]')

    assert frame == CallResult(
        "19223201", {"currentTime": "2013-02-01T20:53:32.486Z", "interval": 300}
    )
    assert message_type_name(frame) == "CALLRESULT"


def test_a_callerror_is_read_with_details() -> None:
    frame = parse('[4,"162376037","NotSupported","SetDisplayMessageRequest not implemented",{}]')

    assert frame == CallError(
        "162376037", "NotSupported", "SetDisplayMessageRequest not implemented", {}
    )
    assert message_type_name(frame) == "CALLERROR"


def test_a_callerror_without_details_gets_empty_details() -> None:
    assert parse('[4,"1","GenericError","boom"]') == CallError("1", "GenericError", "boom", {})


def test_bytes_are_read_as_utf8() -> None:
    frame = '[2,"1","DataTransfer",{"vendorId":"é"}]'.encode()

    assert parse(frame) == Call("1", "DataTransfer", {"vendorId": "é"})


@pytest.mark.parametrize(
    "frame",
    [
        Call("1", "Heartbeat", {}),
        CallResult("2", {"currentTime": "2026-01-01T00:00:00.000Z"}),
        CallError("3", "GenericError", "nö", {"why": "because"}),
    ],
)
def test_frames_survive_a_round_trip(frame: Call | CallResult | CallError) -> None:
    assert parse(frame.to_json()) == frame


def test_frames_are_written_compactly_and_keep_non_ascii() -> None:
    assert Call("1", "DataTransfer", {"vendorId": "é"}).to_json() == (
        '[2,"1","DataTransfer",{"vendorId":"é"}]'
    )
    assert CallError("1", "NotImplemented", "x").to_json() == '[4,"1","NotImplemented","x",{}]'


# Frames nobody can answer: shown as invalid, no reply owed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[2,"1","Heartbeat",{}', "not JSON"),  # truncated before its closing bracket
        ('[,2,"1","Heartbeat",{}]', "not JSON"),  # a leading comma in an array
        ("", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ('{"messageTypeId":2}', "not a JSON array but dict"),
        ('"hello"', "not a JSON array but str"),
        ("42", "not a JSON array but int"),
        ("[]", "unknown message type 'nothing'"),
        ('[5,"1","Heartbeat",{}]', "unknown message type 5"),
        ('[1,"1",{}]', "unknown message type 1"),
        ('["2","1","Heartbeat",{}]', "unknown message type '2'"),
        ('[true,"1","Heartbeat",{}]', "unknown message type True"),
        ('[2.0,"1","Heartbeat",{}]', "unknown message type 2.0"),
        ("[2]", "unique id"),
        ('[2,1,"Heartbeat",{}]', "unique id"),
    ],
)
def test_frames_that_cannot_be_answered_are_invalid_without_reply(
    text: str | bytes, reason: str
) -> None:
    frame = parse(text)

    assert isinstance(frame, InvalidFrame)
    assert reason in frame.reason
    assert frame.reply is None
    assert message_type_name(frame) == "invalid"


@pytest.mark.parametrize(
    ("text", "unique_id"),
    [
        ('[3,"7"]', "7"),
        ('[3,"7",{},{}]', "7"),
        ('[3,"7",[]]', "7"),
        ('[4,"8","GenericError"]', "8"),
        ('[4,"8",42,"x",{}]', "8"),
        ('[4,"8","GenericError",null,{}]', "8"),
    ],
)
def test_malformed_answers_are_invalid_and_keep_their_unique_id(text: str, unique_id: str) -> None:
    # No CALLERROR may answer a CALLRESULT or CALLERROR (OCPP-J 1.6 section 4.2.3).
    frame = parse(text)

    assert isinstance(frame, InvalidFrame)
    assert frame.unique_id == unique_id
    assert frame.reply is None


# Malformed CALLs: a CALLERROR is owed, addressed to the CALL's unique id


@pytest.mark.parametrize(
    "text",
    ['[2,"42","Heartbeat"]', '[2,"42"]'],
)
def test_a_call_missing_its_payload_gets_protocol_error(text: str) -> None:
    frame = parse(text)

    assert isinstance(frame, InvalidFrame)
    assert frame.reply is not None
    assert frame.reply.unique_id == "42"
    assert frame.reply.code == "ProtocolError"
    assert frame.reply.to_json().startswith('[4,"42","ProtocolError",')


@pytest.mark.parametrize(
    "text",
    [
        '[2,"42","Heartbeat",[]]',
        '[2,"42","Heartbeat","{}"]',
        '[2,"42","Heartbeat",null]',
        '[2,"42","Heartbeat",{},{}]',
        '[2,"42",7,{}]',
    ],
)
def test_a_call_whose_payload_is_not_an_object_gets_formation_violation(text: str) -> None:
    frame = parse(text)

    assert isinstance(frame, InvalidFrame)
    assert frame.reply == CallError("42", "FormationViolation", frame.reason)


@pytest.mark.parametrize("unique_id", ["", "x" * 37])
def test_a_call_with_an_unusable_unique_id_gets_protocol_error(unique_id: str) -> None:
    # OCPP-J 1.6 section 4.1.4: a unique id is a string of at most 36 characters.
    frame = parse(f'[2,"{unique_id}","Heartbeat",{{}}]')

    assert isinstance(frame, InvalidFrame)
    assert frame.reply is not None
    assert frame.reply.code == "ProtocolError"
    assert frame.reply.unique_id == unique_id


def test_a_unique_id_of_36_characters_is_fine() -> None:
    assert parse(f'[2,"{"x" * 36}","Heartbeat",{{}}]') == Call("x" * 36, "Heartbeat", {})


# Actions: which a charger may send


def test_a_charger_action_is_accepted() -> None:
    assert check_call(Call("1", "StartTransaction", {}), OCPP16) is None
    assert check_call(Call("1", "SecurityEventNotification", {}), OCPP16) is None


@pytest.mark.parametrize("action", ["FooBar", "heartbeat", "", "TransactionEvent"])
def test_an_action_ocpp16_does_not_know_gets_not_implemented(action: str) -> None:
    error = check_call(Call("9", action, {}), OCPP16)

    assert error is not None
    assert (error.unique_id, error.code) == ("9", "NotImplemented")
    assert error.description == f"{action!r} is not an OCPP 1.6 action"


@pytest.mark.parametrize("action", ["Reset", "RemoteStartTransaction", "GetLog"])
def test_a_central_system_action_from_a_charger_gets_not_supported(action: str) -> None:
    error = check_call(Call("9", action, {}), OCPP16)

    assert error is not None
    assert (error.unique_id, error.code) == ("9", "NotSupported")
    assert error.description == f"{action} is sent by a central system, not by a charge point"


def test_data_transfer_goes_both_ways_so_a_charger_may_send_it() -> None:
    assert check_call(Call("1", "DataTransfer", {"vendorId": "x"}), OCPP16) is None


# The outbox: central-system calls, one in flight at a time (OCPP-J 1.6 section 4.1.1)


def _call(unique_id: str, action: str = "Reset") -> Call:
    return Call(unique_id, action, {"type": "Soft"})


def test_calls_go_one_at_a_time_in_order() -> None:
    outbox = Outbox(timeout=30)
    for unique_id in ("a", "b", "c"):
        outbox.submit(_call(unique_id))

    assert [item.call.unique_id for item in outbox.due(100.0)] == ["a"]
    assert outbox.due(101.0) == []
    assert [item.call.unique_id for item in outbox.queued] == ["b", "c"]

    assert outbox.answer(CallResult("a", {"status": "Accepted"})) is not None
    assert [item.call.unique_id for item in outbox.due(102.0)] == ["b"]
    assert outbox.answer(CallError("b", "GenericError", "no")) is not None
    assert [item.call.unique_id for item in outbox.due(103.0)] == ["c"]


def test_a_call_in_flight_knows_when_it_was_sent_and_its_deadline() -> None:
    outbox = Outbox(timeout=30)
    outbox.submit(_call("a"))

    (item,) = outbox.due(100.0)

    assert (item.sent_at, item.deadline) == (100.0, 130.0)
    assert outbox.in_flight == {"a": item}


def test_a_call_times_out_at_its_deadline_and_the_next_one_goes() -> None:
    outbox = Outbox(timeout=30)
    outbox.submit(_call("a"))
    outbox.submit(_call("b"))
    outbox.due(100.0)

    assert outbox.expire(129.999) == []
    assert [item.call.unique_id for item in outbox.expire(130.0)] == ["a"]
    assert outbox.in_flight == {}
    (second,) = outbox.due(130.0)
    assert second.call.unique_id == "b"
    assert second.deadline == 160.0
    assert outbox.expire(159.999) == []
    assert outbox.expire(160.0) == [second]


def test_a_late_answer_after_the_timeout_answers_nothing() -> None:
    outbox = Outbox(timeout=30)
    outbox.submit(_call("a"))
    outbox.due(0.0)
    outbox.expire(30.0)

    assert outbox.answer(CallResult("a", {})) is None


def test_an_answer_with_an_unknown_unique_id_answers_nothing() -> None:
    outbox = Outbox(timeout=30)
    outbox.submit(_call("a"))
    outbox.due(0.0)

    assert outbox.answer(CallResult("zzz", {})) is None
    assert outbox.answer(CallError("zzz", "GenericError", "")) is None
    assert list(outbox.in_flight) == ["a"]


def test_a_concurrent_call_skips_the_queue() -> None:
    outbox = Outbox(timeout=10)
    outbox.submit(_call("a"))
    outbox.submit(_call("b"))
    outbox.submit(_call("c"), concurrent=True)

    assert [item.call.unique_id for item in outbox.due(0.0)] == ["a", "c"]
    assert [item.call.unique_id for item in outbox.queued] == ["b"]


def test_a_concurrent_call_in_flight_does_not_hold_back_the_queue() -> None:
    outbox = Outbox(timeout=10)
    outbox.submit(_call("c"), concurrent=True)
    outbox.due(0.0)
    outbox.submit(_call("a"))

    assert [item.call.unique_id for item in outbox.due(1.0)] == ["a"]


def test_a_queued_call_can_be_cancelled_but_not_one_in_flight() -> None:
    outbox = Outbox(timeout=10)
    outbox.submit(_call("a"))
    outbox.submit(_call("b"))
    outbox.due(0.0)

    assert outbox.cancel("a") is None
    cancelled = outbox.cancel("b")
    assert cancelled is not None
    assert cancelled.call.unique_id == "b"
    assert not outbox.queued


def test_clear_returns_everything_pending() -> None:
    outbox = Outbox(timeout=10)
    outbox.submit(_call("a"))
    outbox.submit(_call("b"))
    outbox.due(0.0)

    assert [item.call.unique_id for item in outbox.clear()] == ["a", "b"]
    assert outbox.in_flight == {}
    assert outbox.expire(float("inf")) == []
    assert outbox.due(1.0) == []
