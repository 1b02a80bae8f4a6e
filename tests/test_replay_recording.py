"""`ocpplab simulate URL --replay FILE`: the sans-I/O engine with literal frames and clocks,
then a literal recording replayed against ocpplab over real sockets.

(tests/test_replay.py is the page's replay of recent frames, `ocpplab.core.replay`.)
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import sys
from pathlib import Path

import httpx
import pytest

from ocpplab.config import Settings
from ocpplab.core.recording import RecordingError, read_recording
from ocpplab.tools.replay import ReplayEngine, replay, shift_time
from tests.page_support import exact_frames, expand, lines
from tests.support import RunningServer, page_socket, serve
from tests.test_recording_format import SESSION

WALL = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
T0 = 100.0


def engine(**options: object) -> ReplayEngine:
    return ReplayEngine(read_recording(SESSION), **options)  # type: ignore[arg-type]


def sent(frames: list[str]) -> list[list[object]]:
    return [json.loads(frame) for frame in frames]


# The engine, pure


def test_calls_go_out_in_order_with_the_recorded_spacing_divided_by_speed() -> None:
    replayer = engine(speed=2.0)
    boot = replayer.start(T0, WALL)
    # nothing in it to change: the recorded text, byte for byte
    assert boot == [
        r'[2,"1","BootNotification",{"chargePointVendor":"Acme","chargePointModel":"Lab-1"}]'
    ]
    assert replayer.next_deadline == T0 + 10.0  # the call timeout: waiting for the answer
    assert (
        replayer.receive('[3,"1",{"status":"Accepted","currentTime":"x","interval":60}]', T0) == []
    )
    # StatusNotification was 0.2 s after the boot: 0.1 s at speed 2
    assert replayer.next_deadline == pytest.approx(T0 + 0.1)
    assert replayer.tick(T0 + 0.09) == []
    (status,) = sent(replayer.tick(T0 + 0.1001))
    assert status[:3] == [2, "2", "StatusNotification"]
    # its timestamp stands to the moment it is sent as it stood to the recorded frame
    assert status[3]["timestamp"] == "2030-01-01T00:00:00.100Z"  # type: ignore[index]
    replayer.receive('[3,"2",{}]', T0 + 0.11)
    # never before the previous call is answered (OCPP-J 1.6 section 4.1.1)
    assert replayer.tick(T0 + 0.21) == ['[2, "3", "Authorize", {"idTag": "TAG-1"}]']
    assert replayer.tick(T0 + 5.0) == []


def play_to_the_end(
    replayer: ReplayEngine, authorize: str = "Accepted"
) -> tuple[list[list[object]], float]:
    """Answer every call as ocpplab would, with transactionId 99: what was sent, and when
    the replay was over."""
    out = sent(replayer.start(T0, WALL))
    answers = {
        "BootNotification": {
            "status": "Accepted",
            "currentTime": "2030-01-01T00:00:00Z",
            "interval": 60,
        },
        "Authorize": {"idTagInfo": {"status": authorize}},
        "StartTransaction": {"idTagInfo": {"status": "Accepted"}, "transactionId": 99},
        "StopTransaction": {"idTagInfo": {"status": "Accepted"}},
    }
    now, answered = T0, 0
    while not replayer.done:
        if answered < len(out):
            call = out[answered]
            answered += 1
            answer = json.dumps([3, call[1], answers.get(str(call[2]), {})])
            now += 0.01
            out += sent(replayer.receive(answer, now))
            continue
        deadline = replayer.next_deadline
        assert deadline is not None
        now = max(now, deadline)
        out += sent(replayer.tick(now))
    return out, now


def test_transaction_ids_are_mapped_to_what_the_central_system_gave() -> None:
    replayer = engine(speed=4.0)
    calls, _ = play_to_the_end(replayer)
    by_action = {call[2]: call[3] for call in calls}
    assert [call[2] for call in calls] == [
        "BootNotification",
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
    ]
    assert by_action["MeterValues"]["transactionId"] == 99  # type: ignore[index]
    assert by_action["StopTransaction"]["transactionId"] == 99  # type: ignore[index]
    assert by_action["StartTransaction"]["meterStart"] == 1000  # type: ignore[index]
    report = replayer.report
    assert (report.calls_sent, report.calls_answered, report.differences) == (6, 6, [])
    assert report.exit_status == 0


def test_the_replay_ends_after_the_recorded_length_divided_by_speed() -> None:
    # the central system sent one more Reset 1.8 s after the last answer: the session
    # lasted 5.81 s from its first frame to its last, 2.905 s at speed 2
    tail = (
        '{"type": "frame", "t": "2026-12-01T10:00:06.000Z", "session": "s1", "dir": "out", '
        r'"text": "[2,\"cs-2\",\"Reset\",{\"type\":\"Hard\"}]"}'
        "\n"
        '{"type": "frame", "t": "2026-12-01T10:00:06.010Z", "session": "s1", "dir": "in", '
        r'"text": "[3,\"cs-2\",{\"status\":\"Accepted\"}]"}'
        "\n"
    )
    replayer = ReplayEngine(read_recording(SESSION + tail), speed=2.0)
    calls, ended = play_to_the_end(replayer)
    assert calls[-1][2] == "StopTransaction"
    assert replayer.done
    assert ended == pytest.approx(T0 + 2.905)
    assert replayer.next_deadline is None
    # in the tail, the central system's calls are still answered, from the recording
    waiting = ReplayEngine(read_recording(SESSION + tail), speed=2.0)
    waiting.start(T0, WALL)
    assert waiting.receive('[2,"r","Reset",{"type":"Hard"}]', T0) == [
        '[3,"r",{"status":"Rejected"}]'
    ]
    assert waiting.receive('[2,"r","Reset",{"type":"Hard"}]', T0) == [
        '[3,"r",{"status":"Accepted"}]'
    ]


def test_answers_that_differ_are_reported_by_action_unique_id_and_field() -> None:
    replayer = engine(speed=4.0)
    play_to_the_end(replayer, authorize="Invalid")
    (difference,) = replayer.report.differences
    assert (difference.action, difference.unique_id) == ("Authorize", "3")
    assert [(f.path, f.a, f.b) for f in difference.fields] == [
        ("idTagInfo.status", "Accepted", "Invalid")
    ]
    assert replayer.report.exit_status == 1
    text = "\n".join(replayer.report.describe())
    assert "1 answer differs from the recorded ones:" in text
    assert "  Authorize (unique id '3'): the answer differs" in text
    assert '      idTagInfo.status: recorded "Accepted", now "Invalid"' in text


def test_central_system_calls_get_the_recorded_answer_of_their_action() -> None:
    replayer = engine()
    replayer.start(T0, WALL)
    reset = replayer.receive('[2,"r-1","Reset",{"type":"Hard"}]', T0 + 0.01)
    assert reset == ['[3,"r-1",{"status":"Rejected"}]']
    # used up: the last one again
    assert replayer.receive('[2,"r-2","Reset",{"type":"Soft"}]', T0 + 0.02) == [
        '[3,"r-2",{"status":"Rejected"}]'
    ]
    (clear,) = sent(replayer.receive('[2,"c-1","ClearCache",{}]', T0 + 0.03))
    assert clear[:3] == [4, "c-1", "NotImplemented"]
    assert dict(replayer.report.central_calls) == {"Reset": 2}
    assert dict(replayer.report.not_implemented) == {"ClearCache": 1}
    assert replayer.report.differences == []  # not a difference in the central system's answers


def test_an_unanswered_call_times_out_as_a_difference_and_the_next_follows() -> None:
    replayer = engine(call_timeout=3.0)
    replayer.start(T0, WALL)
    assert replayer.tick(T0 + 2.9) == []
    (status,) = sent(replayer.tick(T0 + 3.0))
    assert status[2] == "StatusNotification"
    (difference,) = replayer.report.differences
    assert (difference.action, difference.problem) == ("BootNotification", "no answer within 3 s")


def test_a_closed_connection_ends_the_replay_and_says_so() -> None:
    replayer = engine()
    replayer.start(T0, WALL)
    replayer.closed(1011, "server error")
    assert replayer.done
    assert (
        replayer.report.ended == "the connection closed before the end (code 1011, 'server error')"
    )
    assert replayer.report.differences[0].problem == "the connection closed before the answer"


def test_an_answer_of_another_kind_is_a_difference() -> None:
    replayer = engine()
    replayer.start(T0, WALL)
    replayer.receive('[4,"1","InternalError","no",{}]', T0 + 0.01)
    (difference,) = replayer.report.differences
    assert difference.problem == "a CALLERROR (InternalError), recorded a CALLRESULT"


def test_times_are_shifted_in_the_form_they_were_written() -> None:
    hour = datetime.timedelta(hours=1, milliseconds=5)
    assert shift_time("2026-12-01T10:00:00.123Z", hour) == "2026-12-01T11:00:00.128Z"
    assert shift_time("2026-12-01T10:00:00Z", hour) == "2026-12-01T11:00:00Z"
    assert shift_time("2026-12-01T10:00:00+02:00", hour) == "2026-12-01T11:00:00+02:00"
    assert shift_time("2026-12-01T10:00:00.123456", hour) == "2026-12-01T11:00:00.128456"
    assert shift_time("2026-12-01T10:00Z", hour) == "2026-12-01T11:00Z"
    assert shift_time("TAG-2026-12-01", hour) is None
    assert shift_time("9999-12-31T23:59:59Z", hour) is None


def test_a_session_is_chosen_by_id_and_a_missing_one_is_named() -> None:
    assert engine(session="s1").session == "s1"
    with pytest.raises(RecordingError, match=r"no session 's9' with frames \(sessions: 's1'\)"):
        engine(session="s9")
    with pytest.raises(ValueError, match="speed"):
        engine(speed=0)


# Against ocpplab, over real sockets

# A frame of an expanded log line (templates/_log.html, block log_detail): its direction,
# message type and the action it is or answers.
SHOWN_FRAME = re.compile(r'<h3 class="small">(⬇|⬆) [^·<]*· (CALL|CALLRESULT|CALLERROR) · (\w+) ·')


def recorded_sequence() -> list[tuple[str, str, str]]:
    from ocpplab.core.recording import messages

    return [
        (m.dir, m.message_type.lower(), m.action or "")
        for m in messages(read_recording(SESSION).frames())
        if m.action != "Reset"  # the central system's own call: ocpplab sends none here
    ]


async def simulate_replay(
    url: str, path: Path, *, speed: float, identity: str
) -> tuple[int | None, str, str]:
    """`ocpplab simulate URL --replay PATH` as a person runs it: exit status, out, err."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocpplab",
        "simulate",
        url,
        "--replay",
        str(path),
        "--speed",
        str(speed),
        "--identity",
        identity,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode, out.decode(), err.decode()


async def test_replay_against_ocpplab_reproduces_the_calls_in_order_and_matches(
    server: RunningServer, tmp_path: Path
) -> None:
    path = tmp_path / "session.ndjson"
    path.write_text(SESSION, "utf-8")
    async with page_socket(server, "rec-1") as page:
        returncode, out, err = await simulate_replay(
            f"{server.ws}/ocpp/", path, speed=4, identity="rec-1"
        )
        await page.wait_for("Charger disconnected", timeout=10)
        # What a person sees expanding each line, oldest first: each call, then its answer.
        details = [await expand(page, n) for n, *_ in lines("".join(page.received))]
        fragments = "".join(details)
    assert returncode == 0, (out, err)
    text = out
    assert "replayed session 's1' as 'rec-1': the recording was played to its end" in text
    assert "charger calls sent / answered   6 / 6" in text
    assert "no answers differ from the recorded ones" in text
    seen = [
        ("in" if arrow == "⬇" else "out", kind.lower(), action)
        for arrow, kind, action in SHOWN_FRAME.findall(fragments)
    ]
    assert seen == recorded_sequence()
    # the StopTransaction carried the transactionId ocpplab gave, and times of now
    (stop,) = [frame for frame in exact_frames(fragments) if frame.startswith('[2,"6",')]
    call = json.loads(stop)
    assert call[2] == "StopTransaction"
    payload = call[3]
    assert payload["transactionId"] == 1
    moved = datetime.datetime.fromisoformat(payload["timestamp"])
    assert abs(moved - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(minutes=1)


async def test_a_rule_changed_on_the_server_is_reported_as_a_difference(
    server: RunningServer,
) -> None:
    invalid = {"mode": "custom", "payload": {"idTagInfo": {"status": "Invalid"}}}
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        response = await client.put("/api/chargers/rec-2/responses/Authorize", json=invalid)
        assert response.status_code == 200, response.text
    replayer = engine(speed=4.0, identity="rec-2")
    report = await replay(f"{server.ws}/ocpp/", replayer)
    assert report.exit_status == 1
    (difference,) = report.differences
    assert (difference.action, [f.path for f in difference.fields]) == (
        "Authorize",
        ["idTagInfo.status"],
    )
    assert 'idTagInfo.status: recorded "Accepted", now "Invalid"' in "\n".join(report.describe())


async def test_a_central_system_call_during_the_replay_gets_the_recorded_answer() -> None:
    async with serve(Settings(call_timeout=5.0)) as server:
        replayer = engine(speed=1.0, identity="rec-3")
        running = asyncio.create_task(replay(f"{server.ws}/ocpp/", replayer))
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
            async with asyncio.timeout(20):
                # the server's API is what a script would poll; nothing here to wait on
                while not (await client.get("/api/chargers/rec-3")).json()["connected"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            reset = await client.post("/api/chargers/rec-3/calls/Reset", json={"type": "Hard"})
            clear = await client.post("/api/chargers/rec-3/calls/ClearCache", json={})
        report = await asyncio.wait_for(running, 60)
    # the simulated charger would accept a Reset: this is the recorded charger's refusal
    assert (reset.status_code, reset.json()) == (200, {"status": "Rejected"})
    assert clear.status_code == 502, clear.text
    assert "NotImplemented" in clear.text
    assert dict(report.central_calls) == {"Reset": 1}
    assert dict(report.not_implemented) == {"ClearCache": 1}
    assert (report.exit_status, report.calls_answered) == (0, 6)
