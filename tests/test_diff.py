"""`ocpplab diff A B`: two recordings compared through the real command line, and the pure parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocpplab.core.comparison import (
    MISSING,
    FieldDifference,
    diff_recordings,
    field_differences,
)
from ocpplab.core.recording import read_recording
from ocpplab.tools.cli import main
from tests.test_recording_format import SESSION

AUTHORIZE_ANSWER = r'"text": "[3,\"3\",{\"idTagInfo\":{\"status\":\"Accepted\"}}]"'
HEARTBEAT = (
    '{"type": "frame", "t": "2026-12-01T10:00:01.100Z", "session": "s1", "dir": "in", '
    r'"text": "[2,\"hb\",\"Heartbeat\",{}]"}'
    "\n"
    '{"type": "frame", "t": "2026-12-01T10:00:01.105Z", "session": "s1", "dir": "out", '
    r'"text": "[3,\"hb\",{\"currentTime\":\"2026-12-01T10:00:01.105Z\"}]"}'
    "\n"
)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return str(path)


def diff(
    tmp_path: Path, a: str, b: str, *flags: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    status = main(["diff", write(tmp_path, "a.ndjson", a), write(tmp_path, "b.ndjson", b), *flags])
    out, err = capsys.readouterr()
    return status, out, err


def replaced(old: str, new: str, text: str = SESSION) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_a_recording_diffed_with_itself_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = diff(tmp_path, SESSION, SESSION, capsys=capsys)
    assert status == 0
    assert out.rstrip().endswith("no differences")
    status, out, _ = diff(tmp_path, SESSION, SESSION, "--strict", "--json", capsys=capsys)
    assert status == 0
    assert json.loads(out)["differences"] == []


def test_a_changed_payload_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    invalid = AUTHORIZE_ANSWER.replace("Accepted", "Invalid")
    status, out, _ = diff(tmp_path, SESSION, replaced(AUTHORIZE_ANSWER, invalid), capsys=capsys)
    assert status == 1
    assert "A#6    B#6    out CALLRESULT Authorize: payload differs" in out
    assert '    idTagInfo.status: "Accepted" in A, "Invalid" in B' in out
    assert out.rstrip().endswith("1 difference")
    status, out, _ = diff(
        tmp_path, SESSION, replaced(AUTHORIZE_ANSWER, invalid), "--json", capsys=capsys
    )
    assert json.loads(out)["differences"] == [
        {
            "kind": "payload",
            "a": 6,
            "b": 6,
            "dir": "out",
            "message_type": "CALLRESULT",
            "action": "Authorize",
            "fields": [{"path": "idTagInfo.status", "a": "Accepted", "b": "Invalid"}],
        }
    ]


def test_times_ids_and_meter_readings_differ_only_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = SESSION.replace("2026-12-01T10:00:0", "2027-03-05T18:30:1")  # every time moved
    other = other.replace(r"\"transactionId\":17", r"\"transactionId\":4242")
    other = replaced(r"\"meterStart\":1000", r"\"meterStart\":1", other)
    other = replaced(r"[2,\"6\"", r"[2,\"six\"", other)
    other = replaced(r"[3,\"6\"", r"[3,\"six\"", other)
    status, out, _ = diff(tmp_path, SESSION, other, capsys=capsys)
    assert (status, out.rstrip().splitlines()[-1]) == (0, "no differences")
    status, out, _ = diff(tmp_path, SESSION, other, "--strict", "--json", capsys=capsys)
    assert status == 1
    paths = {
        (d["action"], d["message_type"], f["path"])
        for d in json.loads(out)["differences"]
        for f in d.get("fields", [])
    }
    assert {
        ("BootNotification", "CALLRESULT", "currentTime"),
        ("StartTransaction", "CALL", "meterStart"),
        ("StartTransaction", "CALLRESULT", "transactionId"),
        ("MeterValues", "CALL", "meterValue[0].timestamp"),
        ("StopTransaction", "CALL", "(unique id)"),
    } <= paths


def test_a_call_only_one_side_made_is_reported_and_the_rest_still_aligns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meter = '{"type": "frame", "t": "2026-12-01T10:00:01.200Z"'
    with_heartbeat = replaced(meter, HEARTBEAT + meter)
    status, out, _ = diff(tmp_path, SESSION, with_heartbeat, capsys=capsys)
    assert status == 1
    assert "       B#11   in CALL Heartbeat: only in B" in out
    assert "       B#12   out CALLRESULT Heartbeat: only in B" in out
    assert out.rstrip().endswith("2 differences")
    status, out, _ = diff(tmp_path, with_heartbeat, SESSION, capsys=capsys)
    assert "A#11          in CALL Heartbeat: only in A" in out
    assert "payload differs" not in out


def test_a_gap_that_differs_by_more_than_the_threshold_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the StopTransaction comes 3 s after the MeterValues answer in A, 0.8 s in B
    later = replaced(
        '"t": "2026-12-01T10:00:04.200Z", "session": "s1", "dir": "in"',
        '"t": "2026-12-01T10:00:02.000Z", "session": "s1", "dir": "in"',
    )
    later = replaced('"t": "2026-12-01T10:00:04.205Z"', '"t": "2026-12-01T10:00:02.005Z"', later)
    status, out, _ = diff(tmp_path, SESSION, later, capsys=capsys)
    assert status == 1
    assert (
        "A#13   B#13   in CALL StopTransaction: 2.995 s after the previous frame in A, 0.795 s in B"
    ) in out
    assert out.rstrip().endswith("1 difference")
    status, _, _ = diff(tmp_path, SESSION, later, "--threshold", "2.5", capsys=capsys)
    assert status == 0


def test_an_unreadable_file_exits_2_naming_the_file_and_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = SESSION.split("\n")
    rows[2] = "{not json"
    status, out, err = diff(tmp_path, SESSION, "\n".join(rows), capsys=capsys)
    assert (status, out) == (2, "")
    assert err.startswith(f"ocpplab diff: {tmp_path / 'b.ndjson'}: line 3: not JSON")
    status = main(["diff", str(tmp_path / "a.ndjson"), str(tmp_path / "missing.ndjson")])
    assert status == 2
    assert "missing.ndjson: No such file or directory" in capsys.readouterr().err


def test_field_differences_walk_objects_and_arrays_by_path() -> None:
    a = {"x": {"y": [1, {"z": "a"}]}, "only_a": True, "when": "2026-12-01T10:00:00Z"}
    b = {"x": {"y": [1, {"z": "b"}, 3]}, "when": "2026-12-02T11:00:00+01:00", "only_b": None}
    assert field_differences(a, b) == [
        FieldDifference("x.y[1].z", "a", "b"),
        FieldDifference("x.y[2]", MISSING, 3),
        FieldDifference("only_a", True, MISSING),
        FieldDifference("only_b", MISSING, None),
    ]
    assert FieldDifference("when", a["when"], b["when"]) in field_differences(a, b, strict=True)
    # 1 and 1.0 and True are not the same JSON value
    assert field_differences({"n": 1}, {"n": 1.0}) == [FieldDifference("n", 1, 1.0)]
    assert field_differences({"n": 1}, {"n": True}) == [FieldDifference("n", 1, True)]
    # a time against something that is no time is a difference
    assert field_differences({"t": "2026-12-01T10:00:00Z"}, {"t": "soon"}) != []


def test_a_callerror_is_compared_by_code_and_details() -> None:
    def with_answer(text: str) -> str:
        return replaced(AUTHORIZE_ANSWER, f'"text": "{text}"')

    a = read_recording(with_answer(r"[4,\"3\",\"InternalError\",\"boom\",{}]"))
    same = read_recording(with_answer(r"[4,\"3\",\"InternalError\",\"other words\",{}]"))
    other = read_recording(with_answer(r"[4,\"3\",\"NotSupported\",\"boom\",{}]"))
    assert diff_recordings(a, same) == []
    assert [f.path for f in diff_recordings(a, same, strict=True)[0].fields] == ["errorDescription"]
    (found,) = diff_recordings(a, other)
    assert (found.message_type, found.action) == ("CALLERROR", "Authorize")
    assert found.fields == (FieldDifference("errorCode", "InternalError", "NotSupported"),)
    # an answer of another message type does not align: each side has its own
    result = read_recording(SESSION)
    kinds = [(d.kind, d.message_type) for d in diff_recordings(result, a)]
    assert kinds == [("only_a", "CALLRESULT"), ("only_b", "CALLERROR")]
