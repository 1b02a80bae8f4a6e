"""The simulated charger: its OCPP logic without sockets, then against ocpplab over real ones."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import re
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from ocpplab.config import Settings
from ocpplab.core.frames import Call, CallError, CallResult
from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.tools.charger_model import (
    ChargerModel,
    Send,
    Sleep,
    Step,
    Timing,
    scenario_steps,
)
from ocpplab.tools.fleet import Fleet, SimulatedCharger, Stats
from tests.official_schemas import assert_official
from tests.page_support import action_lines, line_numbers, wait_action
from tests.support import RunningServer, page_socket, serve

NOW = datetime.datetime(2026, 5, 4, 12, 0, tzinfo=datetime.UTC)
FAST = Timing(meter_interval=0.05, samples=2, pause=0.05)
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
HASH = {"hashAlgorithm": "SHA256", "issuerNameHash": "a" * 64, "issuerKeyHash": "b" * 64}

# A valid request for every central-system action (OCPP 1.6 and its security whitepaper).
REQUESTS: dict[str, dict[str, Any]] = {
    "ChangeAvailability": {"connectorId": 1, "type": "Operative"},
    "ChangeConfiguration": {"key": "MeterValueSampleInterval", "value": "30"},
    "ClearCache": {},
    "DataTransfer": {"vendorId": "ocpplab", "messageId": "Ping", "data": "hi"},
    "GetConfiguration": {"key": ["HeartbeatInterval", "NoSuchKey"]},
    "RemoteStartTransaction": {"connectorId": 1, "idTag": "REMOTE01"},
    "RemoteStopTransaction": {"transactionId": 1},
    "Reset": {"type": "Soft"},
    "UnlockConnector": {"connectorId": 1},
    "GetDiagnostics": {"location": "ftp://example.com/upload/"},
    "UpdateFirmware": {
        "location": "https://example.com/fw.bin",
        "retrieveDate": "2026-05-04T12:00:00Z",
    },
    "GetLocalListVersion": {},
    "SendLocalList": {"listVersion": 3, "updateType": "Full"},
    "ReserveNow": {
        "connectorId": 1,
        "expiryDate": "2026-05-04T13:00:00Z",
        "idTag": "RESERVE1",
        "reservationId": 7,
    },
    "CancelReservation": {"reservationId": 7},
    "SetChargingProfile": {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
            },
        },
    },
    "ClearChargingProfile": {},
    "GetCompositeSchedule": {"connectorId": 1, "duration": 3600},
    "TriggerMessage": {"requestedMessage": "StatusNotification", "connectorId": 1},
    "ExtendedTriggerMessage": {"requestedMessage": "Heartbeat"},
    "CertificateSigned": {"certificateChain": CERT},
    "InstallCertificate": {"certificateType": "ManufacturerRootCertificate", "certificate": CERT},
    "DeleteCertificate": {"certificateHashData": {**HASH, "serialNumber": "01"}},
    "GetInstalledCertificateIds": {"certificateType": "CentralSystemRootCertificate"},
    "GetLog": {
        "logType": "DiagnosticsLog",
        "requestId": 5,
        "log": {"remoteLocation": "https://example.com/logs/"},
    },
    "SignedUpdateFirmware": {
        "requestId": 6,
        "firmware": {
            "location": "https://example.com/fw.bin",
            "retrieveDateTime": "2026-05-04T12:00:00Z",
            "signingCertificate": CERT,
            "signature": "c2lnbmF0dXJl",
        },
    },
}


def model(behaviour: str = "accept") -> ChargerModel:
    return ChargerModel("SIM-1", behaviour=behaviour, clock=lambda: NOW)  # type: ignore[arg-type]


def test_the_requests_used_here_are_valid() -> None:
    assert set(REQUESTS) == set(OCPP16.central_actions)
    for action, payload in REQUESTS.items():
        assert_official(action, payload, response=False)


def test_every_call_the_charger_sends_is_valid() -> None:
    charger = model()
    start = charger.start_transaction(1)
    charger.on_answer(
        start.unique_id,
        CallResult(start.unique_id, {"transactionId": 9, "idTagInfo": {"status": "Accepted"}}),
    )
    calls = [
        charger.boot(),
        charger.heartbeat(),
        charger.status(0),
        charger.status(1, "Charging"),
        charger.authorize(),
        start,
        charger.meter_values(1),
        charger.stop_transaction(1, "Local"),
    ]
    for call in calls:
        assert call is not None
        assert_official(call.action, call.payload, response=False)
    meter = calls[6].payload
    assert meter["transactionId"] == 9
    assert len(meter["meterValue"][0]["sampledValue"]) == 5
    assert calls[-1].payload["transactionId"] == 9  # type: ignore[union-attr]


@pytest.mark.parametrize("behaviour", ["accept", "reject"])
@pytest.mark.parametrize("action", OCPP16.central_actions)
def test_every_central_action_gets_a_valid_answer(behaviour: str, action: str) -> None:
    charger = model(behaviour)
    if action in {"RemoteStopTransaction", "CancelReservation", "ClearChargingProfile"}:
        prepare = {
            "RemoteStopTransaction": ("RemoteStartTransaction", REQUESTS["RemoteStartTransaction"]),
            "CancelReservation": ("ReserveNow", REQUESTS["ReserveNow"]),
            "ClearChargingProfile": ("SetChargingProfile", REQUESTS["SetChargingProfile"]),
        }[action]
        charger.behaviour = "accept"
        charger.handle(Call("prep", *prepare))
        for call in list(charger.pending):
            if call.action == "StartTransaction":
                charger.on_answer(
                    call.unique_id,
                    CallResult(
                        call.unique_id, {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
                    ),
                )
        charger.pending.clear()
        charger.behaviour = behaviour  # type: ignore[assignment]
    answer = charger.handle(Call("cs-1", action, REQUESTS[action]))
    assert isinstance(answer, CallResult)
    assert_official(action, answer.payload, response=True)
    for call in charger.pending:
        assert_official(call.action, call.payload, response=False)
    if behaviour == "accept" and "status" in answer.payload:
        assert answer.payload["status"] in {"Accepted", "Unlocked"}, answer.payload


def test_accepting_charger_does_what_was_asked() -> None:
    charger = model()
    answer = charger.handle(Call("1", "GetConfiguration", {}))
    assert isinstance(answer, CallResult)
    keys = {item["key"]: item for item in answer.payload["configurationKey"]}
    assert len(keys) > 20
    assert keys["HeartbeatInterval"] == {
        "key": "HeartbeatInterval",
        "readonly": False,
        "value": "60",
    }
    assert keys["NumberOfConnectors"]["readonly"] is True

    change = charger.handle(
        Call("2", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "15"})
    )
    assert isinstance(change, CallResult)
    assert change.payload == {"status": "Accepted"}
    assert charger.heartbeat_interval == 15
    for key, value, status in [
        ("NumberOfConnectors", "2", "Rejected"),
        ("HeartbeatInterval", "often", "Rejected"),
        ("NoSuchKey", "1", "NotSupported"),
    ]:
        refused = charger.handle(Call("3", "ChangeConfiguration", {"key": key, "value": value}))
        assert isinstance(refused, CallResult)
        assert refused.payload == {"status": status}

    trigger = charger.handle(Call("4", "TriggerMessage", {"requestedMessage": "MeterValues"}))
    assert isinstance(trigger, CallResult)
    assert [call.action for call in charger.pending] == ["MeterValues"]
    charger.pending.clear()

    charger.handle(Call("5", "RemoteStartTransaction", {"idTag": "REMOTE01"}))
    actions = [call.action for call in charger.pending]
    assert actions == ["StatusNotification", "StartTransaction", "StatusNotification"]
    assert charger.pending[1].payload["idTag"] == "REMOTE01"
    assert charger.transaction_on(1) is not None

    charger.handle(Call("6", "Reset", {"type": "Hard"}))
    assert charger.reset_requested == "Hard"
    assert charger.pending[-1].action == "StopTransaction"
    assert charger.pending[-1].payload["reason"] == "HardReset"


def test_error_silent_and_strict_behaviours() -> None:
    failing = model("error").handle(Call("1", "ClearCache", {}))
    assert isinstance(failing, CallError)
    assert failing.code == "InternalError"
    assert model("silent").handle(Call("1", "ClearCache", {})) is None
    invalid = model().handle(Call("1", "Reset", {"type": "Sideways"}))
    assert isinstance(invalid, CallError)
    assert invalid.code == "PropertyConstraintViolation"
    wrong_way = model().handle(Call("1", "Heartbeat", {}))
    assert isinstance(wrong_way, CallError)
    assert wrong_way.code == "NotSupported"


def _actions(steps: Iterator[Step], count: int, charger: ChargerModel) -> list[str]:
    """The first `count` steps of a scenario, every call answered with Accepted."""
    seen: list[str] = []
    for step in steps:
        if isinstance(step, Sleep):
            seen.append("sleep")
        else:
            assert isinstance(step, Send)
            seen.append(step.call.action)
            payload: dict[str, Any] = {"status": "Accepted", "interval": 60, "currentTime": "x"}
            if step.call.action == "StartTransaction":
                payload = {"transactionId": 4, "idTagInfo": {"status": "Accepted"}}
            charger.on_answer(step.call.unique_id, CallResult(step.call.unique_id, payload))
        if len(seen) == count:
            break
    return seen


def test_scenarios_step_by_step() -> None:
    charger = model()
    session = _actions(scenario_steps("session", charger, FAST), 14, charger)
    assert session == [
        "BootNotification",
        "StatusNotification",
        "StatusNotification",
        "sleep",
        "Authorize",
        "StatusNotification",
        "StartTransaction",
        "StatusNotification",
        "sleep",
        "MeterValues",
        "sleep",
        "MeterValues",
        "StatusNotification",
        "StopTransaction",
    ]
    charger = model()
    assert _actions(scenario_steps("heartbeat", charger, FAST), 6, charger)[3:] == [
        "sleep",
        "Heartbeat",
        "sleep",
    ]
    charger = model()
    assert _actions(scenario_steps("meter-values", charger, FAST), 7, charger)[3:] == [
        "StatusNotification",
        "StartTransaction",
        "sleep",
        "MeterValues",
    ]


def test_a_rejected_boot_is_retried() -> None:
    charger = model()
    steps = scenario_steps("heartbeat", charger, FAST)
    first = next(steps)
    assert isinstance(first, Send)
    charger.on_answer(
        first.call.unique_id,
        CallResult(first.call.unique_id, {"status": "Pending", "interval": 3, "currentTime": "x"}),
    )
    assert next(steps) == Sleep(3.0)
    again = next(steps)
    assert isinstance(again, Send)
    assert again.call.action == "BootNotification"


# Against ocpplab, over real sockets


@contextlib.asynccontextmanager
async def simulated(
    server: RunningServer, identity: str, **options: Any
) -> AsyncIterator[SimulatedCharger]:
    options.setdefault("timing", FAST)
    charger = SimulatedCharger(f"{server.ws}/ocpp/", identity, Stats(chargers=1), **options)
    stop = asyncio.Event()
    task = asyncio.create_task(charger.run(stop))
    try:
        async with asyncio.timeout(5):
            await charger.ready.wait()
        yield charger
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def api_call(server: RunningServer, identity: str, action: str, payload: Any) -> Any:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        return await client.post(f"/api/chargers/{identity}/calls/{action}", json=payload)


async def charger_state(server: RunningServer, identity: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        response = await client.get(f"/api/chargers/{identity}")
        data: dict[str, Any] = response.json()
        return data


async def fast_heartbeats(server: RunningServer, identity: str) -> None:
    rule = {
        "mode": "custom",
        "payload": {"status": "Accepted", "currentTime": "{now}", "interval": 1},
    }
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        response = await client.put(
            f"/api/chargers/{identity}/responses/BootNotification", json=rule
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("session", ["Authorize", "StartTransaction", "MeterValues", "StopTransaction"]),
        ("heartbeat", ["Heartbeat"]),
        ("meter-values", ["StartTransaction", "MeterValues"]),
        ("mix", ["Heartbeat", "MeterValues", "StatusNotification"]),
    ],
)
async def test_each_scenario_against_ocpplab(
    server: RunningServer, scenario: str, expected: list[str]
) -> None:
    identity = f"SIM-{scenario}"
    await fast_heartbeats(server, identity)
    async with (
        page_socket(server, identity) as page,
        simulated(server, identity, scenario=scenario) as charger,
    ):
        await wait_action(page, "BootNotification", dir="in")
        for action in expected:
            await wait_action(page, action, dir="in")
    received = "".join(page.received)
    assert line_numbers(received, dir="in", type="CALL")
    assert 'title="schema violations"' not in received  # no line marked with violations
    assert charger.stats.errors == charger.stats.timeouts == 0
    assert charger.stats.answered == charger.stats.sent > len(expected)


@pytest.mark.parametrize("behaviour", ["accept", "reject"])
async def test_every_central_action_end_to_end(server: RunningServer, behaviour: str) -> None:
    identity = f"SIM-{behaviour}"
    async with simulated(server, identity, scenario="heartbeat", behaviour=behaviour) as charger:
        for action in OCPP16.central_actions:
            if action == "Reset":
                continue  # reconnects: see test_reset_reconnects
            payload = REQUESTS[action]
            if action == "RemoteStopTransaction":
                transaction = charger.model.transaction_on(1)
                payload = {"transactionId": transaction.transaction_id if transaction else 99}
            response = await api_call(server, identity, action, payload)
            assert response.status_code == 200, (action, response.text)
            assert_official(action, response.json(), response=True)
            if behaviour == "accept" and "status" in response.json():
                assert response.json()["status"] in {"Accepted", "Unlocked"}, action
            await asyncio.sleep(0.05)  # let owed calls (StartTransaction…) go out
    assert charger.stats.central_calls == len(OCPP16.central_actions) - 1
    assert charger.stats.errors == charger.stats.timeouts == 0


async def test_error_behaviour_answers_callerror(server: RunningServer) -> None:
    async with simulated(server, "SIM-error", scenario="heartbeat", behaviour="error"):
        response = await api_call(server, "SIM-error", "ClearCache", {})
    assert response.status_code == 502
    assert response.json()["callerror"]["code"] == "InternalError"


async def test_silent_behaviour_lets_the_call_time_out() -> None:
    async with (
        serve(Settings(call_timeout=0.3)) as server,
        simulated(server, "SIM-silent", scenario="heartbeat", behaviour="silent"),
    ):
        response = await api_call(server, "SIM-silent", "ClearCache", {})
    assert response.status_code == 504


async def test_configuration_trigger_and_remote_transaction(server: RunningServer) -> None:
    identity = "SIM-ops"
    async with (
        page_socket(server, identity) as page,
        simulated(server, identity, scenario="heartbeat"),
    ):
        changed = await api_call(
            server, identity, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "300"}
        )
        assert changed.json() == {"status": "Accepted"}
        keys = await api_call(server, identity, "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert keys.json()["configurationKey"] == [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
        ]

        await api_call(server, identity, "TriggerMessage", {"requestedMessage": "MeterValues"})
        await wait_action(page, "MeterValues", dir="in")

        started = await api_call(server, identity, "RemoteStartTransaction", {"idTag": "REMOTE01"})
        assert started.json() == {"status": "Accepted"}
        transactions = await _wait_for_transactions(server, identity, running=True)
        transaction_id = transactions[0]["transaction_id"]
        assert transactions[0]["id_tag"] == "REMOTE01"
        stopped = await api_call(
            server, identity, "RemoteStopTransaction", {"transactionId": transaction_id}
        )
        assert stopped.json() == {"status": "Accepted"}
        await _wait_for_transactions(server, identity, running=False)


async def _wait_for_transactions(
    server: RunningServer, identity: str, *, running: bool
) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):
        while True:
            state = (await charger_state(server, identity)).get("state") or {}
            transactions: list[dict[str, Any]] = state.get("transactions") or []
            if transactions and (not transactions[-1]["stopped"]) == running:
                return transactions
            await asyncio.sleep(0.1)


async def test_reset_reconnects_and_boots_again(server: RunningServer) -> None:
    identity = "SIM-reset"
    async with (
        page_socket(server, identity) as page,
        simulated(server, identity, scenario="heartbeat") as charger,
    ):
        before = (await charger_state(server, identity))["session"]
        response = await api_call(server, identity, "Reset", {"type": "Soft"})
        assert response.json() == {"status": "Accepted"}
        await page.wait_for("Charger disconnected")
        async with asyncio.timeout(5):
            while (await charger_state(server, identity)).get("session") in {before, None}:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        await charger.ready.wait()
        await wait_action(page, "BootNotification", dir="in", count=2)
    boots = len(action_lines("".join(page.received), "BootNotification", dir="in"))
    assert boots >= 2


async def test_a_short_run_of_many_chargers(server: RunningServer) -> None:
    # An open loop offers `rate` calls/s whatever the answers: never more than rate times
    # duration, and on a loaded machine perhaps fewer (it stops at the deadline, so a
    # starved generator sends less, not later). What is offered is answered, every one.
    rate, duration = 300, 1.0
    fleet = Fleet(f"{server.ws}/ocpp/", 8, prefix="LOAD-", scenario="mix", pace="open")
    try:
        assert await fleet.start() == 8
        fleet.stats.reset()
        await fleet.open_loop(rate=rate, duration=duration)
        await fleet.settle(10.0)
        summary = fleet.stats.summary()
    finally:
        await fleet.stop()
    assert summary["connected"] == 8
    assert summary["errors"] == summary["timeouts"] == 0
    assert summary["sent"] <= rate * duration, f"more than {rate} calls/s offered: {summary}"
    assert summary["sent"] >= len(fleet.chargers), f"the open loop hardly offered: {summary}"
    assert summary["answered"] == summary["sent"], f"calls left unanswered: {summary}"
    rtt = summary["rtt_ms"]
    assert 0 < rtt["p50"] <= rtt["p90"] <= rtt["p99"] <= rtt["max"]


async def test_simulate_command_prints_a_consistent_summary(server: RunningServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocpplab",
        "simulate",
        f"{server.ws}/ocpp/",
        "--chargers",
        "4",
        "--scenario",
        "mix",
        "--rate",
        "100",
        "--duration",
        "1",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    summary = json.loads(stdout)
    assert summary["chargers"] == summary["connected"] == 4
    assert summary["errors"] == summary["timeouts"] == 0
    assert 0 < summary["answered"] <= summary["sent"]
    rtt = summary["rtt_ms"]
    assert rtt["p50"] <= rtt["p90"] <= rtt["p99"] <= rtt["max"]


async def test_simulate_command_says_when_nothing_listens() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocpplab",
        "simulate",
        "ws://127.0.0.1:9/ocpp/",
        "--duration",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "no charger could connect" in stderr.decode()


# "Simulate a charger" on the dashboard


async def _wait_connected(server: RunningServer, identity: str, connected: bool) -> None:
    async with asyncio.timeout(5):
        while (await charger_state(server, identity))["connected"] != connected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_dashboard_starts_marks_and_stops_a_simulated_charger(
    server: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        index = await client.get("/")
        assert "Simulate a charger" in index.text
        started = await client.post("/simulate")
        assert started.status_code == 303
        path = started.headers["location"]
        identity = path.rsplit("/", 1)[-1]
        assert path.endswith(f"/chargers/{identity}")
        assert re.fullmatch(r"sim-[0-9a-f]{6}", identity)
        await _wait_connected(server, identity, True)
        page = await client.get(path)
        assert ">simulated</span>" in page.text
        assert "Stop simulated charger" in page.text
        assert "Stop simulated charger" not in (await client.get("/chargers/CP-real")).text

        stopped = await client.post(f"/chargers/{identity}/simulation/stop")
        assert stopped.status_code == 303
        await _wait_connected(server, identity, False)
        assert "Stop simulated charger" not in (await client.get(path)).text
        gone = await client.post(f"/chargers/{identity}/simulation/stop")
        assert gone.status_code == 404


async def test_dashboard_limits_simulated_chargers() -> None:
    async with (
        serve(Settings(max_simulated=1)) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as client,
    ):
        assert (await client.post("/simulate")).status_code == 303
        refused = await client.post("/simulate", follow_redirects=True)
        assert refused.status_code == 200
        assert "already runs 1 simulated charger, the most it allows" in refused.text
        assert len(server.app.state.simulations.running) == 1
    assert server.app.state.simulations.running == {}  # stopped at shutdown


async def test_dashboard_without_simulated_chargers() -> None:
    async with (
        serve(Settings(max_simulated=0)) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as client,
    ):
        assert "Simulate a charger" not in (await client.get("/")).text
        refused = await client.post("/simulate", follow_redirects=True)
        assert "turned off" in refused.text
        assert server.app.state.simulations.running == {}


async def test_an_unwatched_simulated_charger_stops(server: RunningServer) -> None:
    simulations = server.app.state.simulations
    simulations.idle_timeout = 0.4
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        watched = (await client.post("/simulate")).headers["location"].rsplit("/", 1)[-1]
        unwatched = (await client.post("/simulate")).headers["location"].rsplit("/", 1)[-1]
    async with page_socket(server, watched):
        await _wait_connected(server, unwatched, True)
        # A new connection counts as watched for a short grace; end it now.
        server.app.state.services.gateway.sessions[unwatched].watched_until = 0.0
        await _wait_connected(server, unwatched, False)
        assert simulations.is_simulated(watched)
        assert (await charger_state(server, watched))["connected"]
