"""The simulated charger's part of a guided check, without sockets: the person's acts
(`ChargerModel.act`), its timed behaviour (`due` on a literal monotonic clock), power cuts
and resets, and the faults that break one check each."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from ocpplab.core.frames import Call, CallResult
from ocpplab.tools.charger_model import FAULTS, ChargerModel, Send, boot_sequence
from tests.official_schemas import assert_official

NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, 400_000, tzinfo=datetime.UTC)
PARENT = "GROUP-1"


def guided(*faults: str, connectors: int = 1) -> ChargerModel:
    charger = ChargerModel(
        "SIM-G", guided=True, faults=frozenset(faults), connectors=connectors, clock=lambda: NOW
    )
    charger.boot_accepted = charger.online = True
    return charger


def sent(charger: ChargerModel, **answers: dict[str, Any]) -> list[str]:
    """Take the queued calls, answering each as a central system would (or by `answers`);
    each call described as "Action" or "Action detail"."""
    described: list[str] = []
    transaction_ids = iter(range(100, 200))
    while charger.pending:
        call = charger.pending.popleft()
        assert_official(call.action, call.payload, response=False)
        payload: dict[str, Any] = answers.get(call.action) or {}
        if call.action in {"Authorize", "StopTransaction"} and not payload:
            payload = {"idTagInfo": {"status": "Accepted"}}
        if call.action == "StartTransaction" and not payload:
            payload = {"idTagInfo": {"status": "Accepted"}, "transactionId": next(transaction_ids)}
        charger.on_answer(call.unique_id, CallResult(call.unique_id, payload))
        described.append(_describe(call))
    return described


def _describe(call: Call) -> str:
    payload = call.payload
    if call.action == "StatusNotification":
        return f"Status {payload['connectorId']} {payload['status']}"
    if call.action == "StopTransaction":
        return f"Stop {payload['reason']}"
    if call.action in {"Authorize", "StartTransaction"}:
        return f"{call.action} {payload['idTag']}"
    return call.action


def central(charger: ChargerModel, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer = charger.handle(Call("cs-1", action, payload))
    assert isinstance(answer, CallResult), answer
    assert_official(action, answer.payload, response=True)
    return answer.payload


def test_plug_then_card_starts_and_the_same_card_stops() -> None:
    charger = guided()
    assert charger.act("plug", {"connector": 1})
    assert sent(charger) == ["Status 1 Preparing"]
    assert charger.act("present_card", {"id_tag": "CARD-1"})
    assert sent(charger) == ["Authorize CARD-1", "StartTransaction CARD-1", "Status 1 Charging"]
    assert charger.act("present_card", {"id_tag": "CARD-1"})
    assert sent(charger) == ["Status 1 Finishing", "Stop Local"]  # the cable is still in
    assert charger.act("unplug", {})
    assert sent(charger) == ["Status 1 Available"]


def test_card_then_plug_and_unplug_stops_with_ev_disconnected() -> None:
    charger = guided()
    charger.act("present_card", {})
    assert sent(charger) == ["Authorize SIMTAG0001", "Status 1 Preparing"]
    charger.act("plug", {})
    assert sent(charger) == ["StartTransaction SIMTAG0001", "Status 1 Charging"]
    charger.act("unplug", {})
    assert sent(charger) == ["Status 1 Finishing", "Stop EVDisconnected", "Status 1 Available"]


def test_a_card_without_a_plug_times_out_after_connection_timeout() -> None:
    charger = guided()
    charger.configuration["ConnectionTimeOut"].value = "5"
    charger.act("present_card", {})
    sent(charger)
    assert charger.next_due() == 0.0  # the wait began: `due` sets its deadline now
    charger.due(100.0)
    assert charger.next_due() == 105.0
    charger.due(104.9)
    assert sent(charger) == []
    charger.due(105.0)
    assert sent(charger) == ["Status 1 Available"]
    assert charger.next_due() is None
    charger.act("plug", {})
    assert sent(charger) == ["Status 1 Preparing"]  # no transaction: the card has expired


def test_an_invalid_card_starts_nothing_and_another_of_the_group_stops() -> None:
    charger = guided()
    charger.act("plug", {})
    charger.act("present_card", {"id_tag": "BAD"})
    invalid = {"idTagInfo": {"status": "Invalid"}}
    assert sent(charger, Authorize=invalid) == ["Status 1 Preparing", "Authorize BAD"]
    group = {"idTagInfo": {"status": "Accepted", "parentIdTag": PARENT}}
    charger.act("present_card", {"id_tag": "CARD-1"})
    started = {**group, "transactionId": 7}
    assert sent(charger, Authorize=group, StartTransaction=started)[-1] == "Status 1 Charging"
    charger.act("present_card", {"id_tag": "CARD-2"})
    assert sent(charger, Authorize=group) == [
        "Authorize CARD-2",
        "Status 1 Finishing",
        "Stop Local",
    ]


def test_a_cached_card_starts_without_authorize() -> None:
    charger = guided()
    charger.configuration["LocalPreAuthorize"].value = "true"
    charger.act("plug", {})
    charger.act("present_card", {"id_tag": "CARD-1"})
    assert "Authorize CARD-1" in sent(charger)
    charger.act("present_card", {"id_tag": "CARD-1"})
    charger.act("unplug", {})
    assert sent(charger) == ["Status 1 Finishing", "Stop Local", "Status 1 Available"]
    charger.act("plug", {})
    charger.act("present_card", {"id_tag": "CARD-1"})
    assert sent(charger) == ["Status 1 Preparing", "StartTransaction CARD-1", "Status 1 Charging"]
    assert central(charger, "ClearCache", {}) == {"status": "Accepted"}
    assert charger.cache == {}


def test_remote_start_waits_for_the_plug_and_honours_authorize_remote_tx_requests() -> None:
    charger = guided()
    charger.configuration["AuthorizeRemoteTxRequests"].value = "true"
    answer = central(charger, "RemoteStartTransaction", {"connectorId": 1, "idTag": "R1"})
    assert answer == {"status": "Accepted"}
    assert sent(charger) == ["Authorize R1", "Status 1 Preparing"]
    assert central(charger, "RemoteStartTransaction", {"connectorId": 1, "idTag": "R1"}) == {
        "status": "Rejected"  # already waiting for the plug
    }
    charger.act("plug", {})
    assert sent(charger) == ["StartTransaction R1", "Status 1 Charging"]
    transaction = charger.transaction_on(1)
    assert transaction is not None
    busy = central(charger, "RemoteStartTransaction", {"connectorId": 1, "idTag": "R1"})
    assert busy == {"status": "Rejected"}
    stop = central(charger, "RemoteStopTransaction", {"transactionId": transaction.transaction_id})
    assert stop == {"status": "Accepted"}
    assert sent(charger) == ["Status 1 Finishing", "Stop Remote"]
    assert central(charger, "RemoteStopTransaction", {"transactionId": 999}) == {
        "status": "Rejected"
    }


def test_sampled_meter_values_follow_the_configuration() -> None:
    charger = guided()
    charger.configuration["MeterValueSampleInterval"].value = "3"
    charger.configuration["MeterValuesSampledData"].value = "Voltage,Current.Import"
    charger.act("plug", {})
    charger.act("present_card", {})
    sent(charger)
    charger.due(10.0)
    assert charger.next_due() == 13.0
    charger.due(12.9)
    assert not charger.pending
    charger.due(13.0)
    (meter,) = charger.pending
    sent(charger)
    assert meter.payload["transactionId"] == 100
    samples = meter.payload["meterValue"][0]["sampledValue"]
    assert [(s["measurand"], s["context"]) for s in samples] == [
        ("Voltage", "Sample.Periodic"),
        ("Current.Import", "Sample.Periodic"),
    ]
    charger.due(16.0)
    assert [call.action for call in charger.pending] == ["MeterValues"]


def test_clock_aligned_meter_values_fall_on_multiples_of_the_interval() -> None:
    charger = guided(connectors=2)
    assert central(
        charger, "ChangeConfiguration", {"key": "ClockAlignedDataInterval", "value": "3"}
    ) == {"status": "Accepted"}
    charger.due(50.0)  # 12:00:00.4: the next multiple of 3 s is 12:00:03
    assert charger.next_due() == pytest.approx(52.6)
    charger.due(52.6)
    calls = list(charger.pending)
    sent(charger)
    assert [call.payload["connectorId"] for call in calls] == [1, 2]
    value = calls[0].payload["meterValue"][0]
    assert value["timestamp"] == "2026-12-01T12:00:03.000Z"
    assert value["sampledValue"][0]["context"] == "Sample.Clock"


def test_a_power_cut_stops_the_transaction_after_the_boot_and_keeps_inoperative() -> None:
    charger = guided(connectors=2)
    central(charger, "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})
    assert sent(charger) == ["Status 2 Unavailable"]
    charger.act("plug", {})
    charger.act("present_card", {})
    sent(charger)
    assert charger.act("power_cycle", {})
    assert charger.reset_requested == "PowerLoss"
    assert not charger.boot_accepted
    charger.reset_requested = None  # the I/O layer dropped the connection
    steps = boot_sequence(charger)
    boot = next(steps)
    assert isinstance(boot, Send)
    assert charger.pending[0].action == "StopTransaction"  # queued, sent once booted
    accepted = {"status": "Accepted", "interval": 60, "currentTime": "x"}
    charger.on_answer(boot.call.unique_id, CallResult(boot.call.unique_id, accepted))
    statuses = [_describe(step.call) for step in steps if isinstance(step, Send)][:3]
    assert statuses == ["Status 0 Available", "Status 1 Finishing", "Status 2 Unavailable"]
    assert sent(charger) == ["Stop PowerLoss"]


@pytest.mark.parametrize("kind", ["Hard", "Soft"])
def test_a_reset_stops_the_transaction_and_reboots(kind: str) -> None:
    charger = guided()
    central(charger, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    sent(charger)
    assert central(charger, "Reset", {"type": kind}) == {"status": "Accepted"}
    assert charger.reset_requested == kind
    charger.boot()
    assert charger.statuses[1] == "Unavailable"  # section 5.2: it survives the reset
    charger = guided()
    charger.act("plug", {})
    charger.act("present_card", {})
    sent(charger)
    central(charger, "Reset", {"type": kind})
    assert sent(charger) == [f"Stop {kind}Reset"]


def test_unlock_change_configuration_and_data_transfer() -> None:
    charger = guided()
    assert central(charger, "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    assert central(charger, "UnlockConnector", {"connectorId": 2}) == {"status": "NotSupported"}
    for key, value, status in [
        ("MeterValueSampleInterval", "-1", "Rejected"),
        ("MeterValueSampleInterval", "7", "Accepted"),
        ("OcpplabNoSuchKey", "1", "NotSupported"),
    ]:
        change = central(charger, "ChangeConfiguration", {"key": key, "value": value})
        assert change == {"status": status}, key
    assert charger.configuration["MeterValueSampleInterval"].value == "7"
    unknown = central(charger, "DataTransfer", {"vendorId": "someone.else"})
    assert unknown == {"status": "UnknownVendorId"}


def test_acts_it_cannot_do() -> None:
    charger = guided()
    assert not charger.act("plug", {"connector": 2})
    assert not charger.act("dance", {})
    assert not charger.act("present_card", {"id_tag": "X" * 21})
    assert charger.act("plug", {})
    assert not charger.act("plug", {})  # already in
    assert charger.act("unplug", {})
    assert charger.act("unplug", {})  # nothing to unplug: done


def test_a_charger_that_is_not_guided_starts_a_remote_transaction_at_once() -> None:
    charger = ChargerModel("SIM-1", clock=lambda: NOW)
    central(charger, "RemoteStartTransaction", {"idTag": "R1"})
    assert sent(charger) == ["Status 1 Preparing", "StartTransaction R1", "Status 1 Charging"]
    charger.due(0.0)
    assert charger.next_due() is None


def test_faults_are_checked_and_described() -> None:
    with pytest.raises(ValueError, match="no such fault: TC_999_CS"):
        ChargerModel("SIM-1", faults=frozenset({"TC_999_CS"}))
    assert all(text and len(text) < 100 for text in FAULTS.values())


@pytest.mark.parametrize(
    ("fault", "before", "after"),
    [
        ("TC_012_CS", "Stop Remote", "Stop Local"),
        ("TC_005_1_CS", "Stop EVDisconnected", "Stop Local"),
        ("TC_068_CS", "Stop Local", "Stop Other"),
    ],
)
def test_a_fault_changes_only_its_behaviour(fault: str, before: str, after: str) -> None:
    def stops(charger: ChargerModel) -> list[str]:
        charger.act("plug", {})
        charger.act("present_card", {})
        sent(charger)
        transaction = charger.transaction_on(1)
        assert transaction is not None
        if fault == "TC_012_CS":
            central(charger, "RemoteStopTransaction", {"transactionId": transaction.transaction_id})
        elif fault == "TC_005_1_CS":
            charger.act("unplug", {})
        else:
            charger.act("present_card", {})
        return [line for line in sent(charger) if line.startswith("Stop")]

    assert stops(guided()) == [before]
    assert stops(guided(fault)) == [after]


def test_a_transaction_made_offline_is_sent_after_the_boot_with_its_id() -> None:
    charger = guided()
    charger.configuration["AllowOfflineTxForUnknownId"].value = "true"
    charger.online = False
    charger.act("plug", {})
    charger.act("present_card", {"id_tag": "CARD-1"})  # no Authorize: nobody to ask
    charger.act("present_card", {"id_tag": "CARD-1"})
    assert [call.action for call in charger.pending].count("Authorize") == 0
    charger.online = True
    charger.boot()  # reconnected: the statuses queued meanwhile are not sent
    assert sent(charger) == ["StartTransaction CARD-1", "Stop Local"]
    assert charger.transactions == {}


def test_a_queued_stop_gets_the_id_of_its_start() -> None:
    charger = guided()
    charger.act("plug", {})
    assert sent(charger) == ["Status 1 Preparing"]
    charger.act("present_card", {"id_tag": "CARD-1"})
    authorize = charger.pending.popleft()
    charger.on_answer(
        authorize.unique_id, CallResult(authorize.unique_id, {"idTagInfo": {"status": "Accepted"}})
    )
    start = charger.pending.popleft()
    charger.act("present_card", {"id_tag": "CARD-1"})  # stopped before the start's answer
    stop = next(call for call in charger.pending if call.action == "StopTransaction")
    assert stop.payload["transactionId"] == -1
    answer = {"idTagInfo": {"status": "Accepted"}, "transactionId": 55}
    charger.on_answer(start.unique_id, CallResult(start.unique_id, answer))
    assert stop.payload["transactionId"] == 55
    assert not charger.act("plug", {"connector": True})
