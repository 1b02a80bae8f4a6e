"""The recording format (README "Recordings"), pure: lines written, read back, refused by line."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from ocpplab.core.frames import Call, CallResult, InvalidFrame
from ocpplab.core.recording import (
    Connected,
    Disconnected,
    FrameLine,
    Header,
    RecordingError,
    RulesChanged,
    Truncated,
    encode_line,
    encode_recording,
    messages,
    read_recording,
)

# A charger's session as ocpplab records it: boot, status, authorize, start, a Reset from the
# central system (the charger refused it), meter values, stop. Its answers are ocpplab's
# defaults, so that replaying it against ocpplab finds no difference
# (tests/test_replay_recording.py).
SESSION = r"""{"type": "recording", "t": "2026-12-01T10:00:00.000Z", "format": "ocpplab-recording", "version": 1, "identity": "CP-REC", "ocpplab": "0.1.0"}
{"type": "rules", "t": "2026-12-01T10:00:00.050Z", "settings": {"rules": {}, "validation": "lenient"}}
{"type": "connected", "t": "2026-12-01T10:00:00.100Z", "session": "s1", "remote": "192.0.2.7:50412", "subprotocol": "ocpp1.6", "headers": [["host", "lab.example:8000"], ["sec-websocket-protocol", "ocpp1.6"]], "tls": null}
{"type": "frame", "t": "2026-12-01T10:00:00.200Z", "session": "s1", "dir": "in", "text": "[2,\"1\",\"BootNotification\",{\"chargePointVendor\":\"Acme\",\"chargePointModel\":\"Lab-1\"}]"}
{"type": "frame", "t": "2026-12-01T10:00:00.210Z", "session": "s1", "dir": "out", "text": "[3,\"1\",{\"status\":\"Accepted\",\"currentTime\":\"2026-12-01T10:00:00.210Z\",\"interval\":60}]"}
{"type": "frame", "t": "2026-12-01T10:00:00.400Z", "session": "s1", "dir": "in", "text": "[2,\"2\",\"StatusNotification\",{\"connectorId\":1,\"errorCode\":\"NoError\",\"status\":\"Available\",\"timestamp\":\"2026-12-01T10:00:00.400Z\"}]"}
{"type": "frame", "t": "2026-12-01T10:00:00.405Z", "session": "s1", "dir": "out", "text": "[3,\"2\",{}]"}
{"type": "frame", "t": "2026-12-01T10:00:00.600Z", "session": "s1", "dir": "in", "text": "[2, \"3\", \"Authorize\", {\"idTag\": \"TAG-1\"}]"}
{"type": "frame", "t": "2026-12-01T10:00:00.605Z", "session": "s1", "dir": "out", "text": "[3,\"3\",{\"idTagInfo\":{\"status\":\"Accepted\"}}]"}
{"type": "frame", "t": "2026-12-01T10:00:00.800Z", "session": "s1", "dir": "in", "text": "[2,\"4\",\"StartTransaction\",{\"connectorId\":1,\"idTag\":\"TAG-1\",\"meterStart\":1000,\"timestamp\":\"2026-12-01T10:00:00.800Z\"}]"}
{"type": "frame", "t": "2026-12-01T10:00:00.805Z", "session": "s1", "dir": "out", "text": "[3,\"4\",{\"idTagInfo\":{\"status\":\"Accepted\"},\"transactionId\":17}]"}
{"type": "frame", "t": "2026-12-01T10:00:01.000Z", "session": "s1", "dir": "out", "text": "[2,\"cs-1\",\"Reset\",{\"type\":\"Soft\"}]"}
{"type": "frame", "t": "2026-12-01T10:00:01.010Z", "session": "s1", "dir": "in", "text": "[3,\"cs-1\",{\"status\":\"Rejected\"}]"}
{"type": "frame", "t": "2026-12-01T10:00:01.200Z", "session": "s1", "dir": "in", "text": "[2,\"5\",\"MeterValues\",{\"connectorId\":1,\"transactionId\":17,\"meterValue\":[{\"timestamp\":\"2026-12-01T10:00:01.200Z\",\"sampledValue\":[{\"value\":\"1500\"}]}]}]"}
{"type": "frame", "t": "2026-12-01T10:00:01.205Z", "session": "s1", "dir": "out", "text": "[3,\"5\",{}]"}
{"type": "frame", "t": "2026-12-01T10:00:04.200Z", "session": "s1", "dir": "in", "text": "[2,\"6\",\"StopTransaction\",{\"transactionId\":17,\"idTag\":\"TAG-1\",\"meterStop\":2000,\"timestamp\":\"2026-12-01T10:00:04.200Z\",\"reason\":\"Local\"}]"}
{"type": "frame", "t": "2026-12-01T10:00:04.205Z", "session": "s1", "dir": "out", "text": "[3,\"6\",{\"idTagInfo\":{\"status\":\"Accepted\"}}]"}
{"type": "disconnected", "t": "2026-12-01T10:00:04.500Z", "session": "s1", "code": 1000, "reason": ""}
"""  # noqa: E501

AT = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.UTC)
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# Frame texts a charger may send, each to come back exactly: odd spacing, unicode, every
# JSON escape, a lone surrogate written as an escape, a lone surrogate itself (text that
# UTF-8 cannot carry), control characters, and text that is no JSON at all.
ODD_FRAMES = [
    ' [2 ,"a1" ,\t"Heartbeat" , { }\n] ',
    '[2,"a2","DataTransfer",{"vendorId":"Ünïcödé ⚡","data":"日本語 😀"}]',
    r'[2,"a3","DataTransfer",{"vendorId":"x","data":"\" \\ \/ \b \f \n \r \t \u00e9 \u2028"}]',
    r'[2,"a4\ud800","DataTransfer",{"vendorId":"\udfff lone"}]',
    '[2,"a5","DataTransfer",{"vendorId":"\ud800 raw"}]',
    "\x00\x1f control \u2028 \u2029 \ufeff",
    "not json at all {",
]


def at(seconds: float) -> datetime.datetime:
    return AT + datetime.timedelta(seconds=seconds)


def every_kind() -> list[Header | Connected | FrameLine | Disconnected | RulesChanged | Truncated]:
    header = Header(at(0), "CP-Ü|1", "0.1.0")
    connected = Connected(
        at(0.1),
        "s1",
        "[2001:db8::1]:443",
        None,
        (("Host", "x"), ("User-Agent", "Ünï\u2028")),
        {"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256", "subject": "CN=CP-1"},
    )
    frames = [
        FrameLine(at(0.2 + n / 1000), "s1", "in" if n % 2 == 0 else "out", text)
        for n, text in enumerate(ODD_FRAMES)
    ]
    rules = RulesChanged(at(1), {"rules": {"Authorize": {"mode": "ignore"}}, "validation": "x"})
    closed = Disconnected(at(2), "s1", 1006, "going away ⚡")
    return [header, connected, *frames, rules, closed, Truncated(at(3), "limit of 10 bytes")]


def test_round_trip_keeps_every_line_and_every_frame_text_exactly() -> None:
    lines = every_kind()
    text = encode_recording(lines)
    text.encode("utf-8")  # a recording is UTF-8 text, lone surrogates included
    recording = read_recording(text)
    assert (recording.header, *recording.lines) == tuple(lines)
    assert [frame.text for frame in recording.frames()] == ODD_FRAMES
    assert recording.truncated == lines[-1]
    assert recording.to_text() == text


def test_each_line_is_one_json_object_with_type_and_a_utc_millisecond_time() -> None:
    text = encode_recording(every_kind())
    assert text.endswith("\n")
    assert "\r" not in text
    rows = text.split("\n")[:-1]
    assert len(rows) == len(every_kind())
    for row in rows:
        value = json.loads(row)
        assert isinstance(value, dict)
        assert list(value)[:2] == ["type", "t"]
        assert TIME.match(value["t"]), value["t"]
    first = json.loads(rows[0])
    assert first == {
        "type": "recording",
        "t": "2026-12-01T10:00:00.000Z",
        "format": "ocpplab-recording",
        "version": 1,
        "identity": "CP-Ü|1",
        "ocpplab": "0.1.0",
    }
    frame = json.loads(rows[2])
    assert frame == {
        "type": "frame",
        "t": "2026-12-01T10:00:00.200Z",
        "session": "s1",
        "dir": "in",
        "text": ODD_FRAMES[0],
    }


def test_a_file_read_as_bytes_lines_or_text_is_the_same_recording() -> None:
    text = encode_recording(every_kind())
    data = text.encode()
    from_text = read_recording(text)
    assert read_recording(data) == from_text
    assert read_recording(data.splitlines(keepends=True)) == from_text
    # chunks that split lines, and even a UTF-8 character, anywhere
    assert read_recording([data[i : i + 7] for i in range(0, len(data), 7)]) == from_text


def test_the_literal_session_reads_and_its_calls_pair_with_their_answers() -> None:
    recording = read_recording(SESSION)
    assert recording.identity == "CP-REC"
    assert recording.sessions() == ["s1"]
    connected = recording.connection("s1")
    assert connected is not None
    assert connected.subprotocol == "ocpp1.6"
    assert connected.headers[0] == ("host", "lab.example:8000")
    found = messages(recording.frames("s1"))
    assert [(m.dir, m.message_type, m.action) for m in found[:4]] == [
        ("in", "CALL", "BootNotification"),
        ("out", "CALLRESULT", "BootNotification"),
        ("in", "CALL", "StatusNotification"),
        ("out", "CALLRESULT", "StatusNotification"),
    ]
    reset = found[8]
    assert (reset.dir, reset.action, reset.answer) == ("out", "Reset", 9)
    assert found[9].call == 8
    assert found[9].frame == CallResult("cs-1", {"status": "Rejected"})


def test_pairing_needs_the_other_direction_and_the_same_session() -> None:
    lines = [
        FrameLine(at(0), "s1", "in", '[2,"7","Heartbeat",{}]'),
        FrameLine(at(1), "s1", "in", '[3,"7",{}]'),  # same direction: answers nothing
        FrameLine(at(2), "s2", "out", '[3,"7",{}]'),  # another session: answers nothing
        FrameLine(at(3), "s1", "in", '[2,"7","Heartbeat",{}]'),  # the id again
        FrameLine(at(4), "s1", "out", '[3,"7",{"currentTime":"x"}]'),
        FrameLine(at(5), "s1", "out", "[3,"),
    ]
    found = messages(lines)
    assert [m.action for m in found] == ["Heartbeat", None, None, "Heartbeat", "Heartbeat", None]
    assert found[0].answer is None  # left unanswered: the later answer is the latest call's
    assert (found[3].answer, found[4].call) == (4, 3)
    assert isinstance(found[3].frame, Call)
    assert isinstance(found[5].frame, InvalidFrame)


def broken(line3: str) -> str:
    rows = SESSION.split("\n")
    rows[2] = line3
    return "\n".join(rows)


@pytest.mark.parametrize(
    ("line3", "problem"),
    [
        ('{"type": "frame", "t": "2026-12-01T10:00:00.100Z", "session": "s1",', "not JSON"),
        ("[1, 2]", "not a JSON object but list"),
        ('{"type": "frame", "session": "s1", "dir": "in", "text": "x"}', 'needs the field "t"'),
        (
            '{"type": "frame", "t": "2026-12-01T10:00:00.100Z", "session": "s1", "dir": "in"}',
            "a 'frame' line needs the field \"text\"",
        ),
        (
            '{"type": "frame", "t": "2026-12-01T10:00:00.100Z", "session": "s1", "dir": "up", '
            '"text": "x"}',
            '"dir" must be "in" or "out"',
        ),
        (
            '{"type": "frame", "t": "2026-12-01T10:00:00.100", "session": "s1", "dir": "in", '
            '"text": "x"}',
            '"t" must be a UTC time',
        ),
        (
            '{"type": "frame", "t": "2026-12-01T10:00:00.100Z", "session": 1, "dir": "in", '
            '"text": "x"}',
            '"session" must be a string, not a number',
        ),
        ('{"type": "comment", "t": "2026-12-01T10:00:00.100Z"}', "unknown type 'comment'"),
        (
            '{"type": "disconnected", "t": "2026-12-01T10:00:00.100Z", "session": "s1", '
            '"code": "1000", "reason": ""}',
            '"code" must be an integer',
        ),
        (
            '{"type": "connected", "t": "2026-12-01T10:00:00.100Z", "session": "s1", '
            '"remote": null, "subprotocol": null, "headers": [["a"]], "tls": null}',
            '"headers" must be a list of [name, value] pairs',
        ),
        ("\xff", "not JSON"),
    ],
)
def test_a_broken_line_is_refused_naming_its_number_and_what_is_wrong(
    line3: str, problem: str
) -> None:
    with pytest.raises(RecordingError) as caught:
        read_recording(broken(line3))
    assert caught.value.line == 3
    assert str(caught.value).startswith("line 3: ")
    assert problem in str(caught.value)


def test_bytes_that_are_not_utf8_are_refused_naming_the_line() -> None:
    rows = SESSION.encode().split(b"\n")
    rows[3] = rows[3].replace(b"Acme", b"Ac\xffme")
    with pytest.raises(RecordingError, match=r"^line 4: not UTF-8"):
        read_recording(b"\n".join(rows))


def test_a_version_this_reader_does_not_know_is_refused_naming_it() -> None:
    text = SESSION.replace('"version": 1', '"version": 2', 1)
    with pytest.raises(RecordingError, match=r"^line 1: version 2 of the recording format"):
        read_recording(text)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", 0, "the file is empty"),
        ("\n\n", 0, "the file is empty"),
        (SESSION.split("\n", 1)[1], 1, "the first line must be"),
        (SESSION.replace('"ocpplab-recording"', '"other"'), 1, '"format" must be'),
        (SESSION + SESSION.split("\n", 1)[0], 19, "a second recording line"),
        (
            SESSION + '{"type": "truncated", "t": "2026-12-01T10:00:05.000Z", "reason": "full"}\n'
            '{"type": "truncated", "t": "2026-12-01T10:00:05.000Z", "reason": "full"}\n',
            20,
            "nothing may follow a truncated line",
        ),
    ],
)
def test_files_that_are_no_recording_are_refused(text: str, line: int, problem: str) -> None:
    with pytest.raises(RecordingError, match=re.escape(problem)) as caught:
        read_recording(text)
    assert caught.value.line == line


def test_reading_is_bounded_in_bytes_per_file_and_per_line() -> None:
    size = len(SESSION.encode())
    assert read_recording(SESSION, max_bytes=size).identity == "CP-REC"
    with pytest.raises(RecordingError, match="larger than 1000 bytes"):
        read_recording(SESSION, max_bytes=1000)
    with pytest.raises(RecordingError, match="larger than 1000 bytes") as caught:
        read_recording(SESSION.splitlines(keepends=True), max_bytes=1000)
    assert caught.value.line > 1
    # a line over six times the largest frame, plus 4096 bytes for its other fields
    limit = 6 * 100 + 4096
    long_line = encode_line(FrameLine(at(1), "s1", "in", "x" * (limit - 60)))
    assert len(long_line) > limit + 1
    with pytest.raises(RecordingError, match=f"longer than {limit} bytes") as caught:
        read_recording(SESSION + long_line, max_frame_size=100)
    assert caught.value.line == 19
    # a line that never ends is refused once it is too long, not read to its end
    endless = (b"x" * 100 for _ in range(10**9))
    with pytest.raises(RecordingError, match=f"longer than {limit} bytes"):
        read_recording(endless, max_frame_size=100)


def test_a_frame_of_the_largest_size_always_fits_on_its_line() -> None:
    """The worst a frame's text grows by escaping: a control character becomes \\u00XX."""
    header = Header(at(0), "CP-1", "0.1.0")
    for worst in ("\x01", '"', "\\", "\ud800", "é"):
        frame = FrameLine(
            at(0), "s" * 36, "out", worst * (10_000 // len(worst.encode("utf-8", "surrogatepass")))
        )
        text = encode_recording([header, frame])
        assert read_recording(text, max_frame_size=10_000).frames() == [frame]


def test_blank_lines_are_skipped_and_numbers_still_count_them() -> None:
    rows = SESSION.split("\n")
    text = "\n".join([rows[0], "", rows[1], "   ", "{oops"])
    with pytest.raises(RecordingError, match=r"^line 5: not JSON"):
        read_recording(text)


def test_encode_line_ends_each_line_and_fields_it_does_not_know_are_ignored() -> None:
    line = FrameLine(at(0), "s1", "out", '[3,"1",{}]')
    encoded = encode_line(line)
    assert encoded.endswith("}\n")
    assert encoded.count("\n") == 1
    value = json.loads(encoded)
    value["later"] = {"field": True}
    header = encode_line(Header(at(0), "CP-1", "9.9"))
    assert read_recording(header + json.dumps(value)).lines == (line,)
