"""The charger-state reducer: frames in, what a person wants to see at a glance out. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from ocpplab.dialects.ocpp16 import OCPP16
from ocpplab.dialects.ocpp16.state import (
    MAX_CONNECTORS,
    MAX_METER_READINGS,
    MAX_TRANSACTIONS,
    ChargerState,
)

AT = "2026-11-26T14:00:00.000Z"
ACCEPTED = {"idTagInfo": {"status": "Accepted"}}


def test_the_dialect_s_new_state_is_a_fresh_charger_state() -> None:
    state = OCPP16.new_state()

    assert isinstance(state, ChargerState)
    assert state.to_json() == ChargerState().to_json()
    assert OCPP16.new_state() is not state


def test_a_fresh_state_has_seen_nothing() -> None:
    state = ChargerState()

    assert state.to_json() == {
        "boot": None,
        "boot_status": None,
        "last_heartbeat": None,
        "connectors": {},
        "transactions": [],
        "meter": {},
        "meter_timestamp": None,
        "firmware_status": None,
        "diagnostics_status": None,
    }


def test_boot_notification_keeps_the_charger_facts_and_the_answer() -> None:
    state = ChargerState()
    state.apply(
        "BootNotification",
        {
            "chargePointVendor": "Acme",
            "chargePointModel": "Wallbox 1",
            "firmwareVersion": "1.2.3",
            "vendorField": "dropped",
        },
        {"status": "Pending", "currentTime": AT, "interval": 60},
        AT,
    )

    assert state.boot == {
        "chargePointVendor": "Acme",
        "chargePointModel": "Wallbox 1",
        "firmwareVersion": "1.2.3",
    }
    assert state.boot_status == "Pending"


def test_an_unanswered_boot_keeps_the_facts_but_no_status() -> None:
    state = ChargerState()
    state.apply("BootNotification", {"chargePointVendor": "Acme"}, None, AT)

    assert state.boot == {"chargePointVendor": "Acme"}
    assert state.boot_status is None


def test_heartbeat_records_when() -> None:
    state = ChargerState()
    state.apply("Heartbeat", {}, {"currentTime": AT}, "2026-11-26T14:05:00.000Z")

    assert state.last_heartbeat == "2026-11-26T14:05:00.000Z"


def test_status_notifications_track_each_connector_before_any_boot() -> None:
    # QUIRKS.md: StatusNotification before (or instead of) BootNotification.
    state = ChargerState()
    state.apply(
        "StatusNotification",
        {"connectorId": 0, "status": "Available", "errorCode": "NoError"},
        {},
        AT,
    )
    state.apply(
        "StatusNotification",
        {
            "connectorId": 1,
            "status": "Faulted",
            "errorCode": "GroundFailure",
            "info": "RCD",
            "timestamp": "2026-11-26T13:59:00Z",
        },
        {},
        AT,
    )
    state.apply("StatusNotification", {"connectorId": 0, "status": "Unavailable"}, {}, AT)

    assert state.to_json()["connectors"] == {
        "0": {"status": "Unavailable", "error_code": "NoError", "info": None, "timestamp": AT},
        "1": {
            "status": "Faulted",
            "error_code": "GroundFailure",
            "info": "RCD",
            "timestamp": "2026-11-26T13:59:00Z",
        },
    }
    assert state.boot is None


def test_a_status_without_an_integer_connector_is_ignored() -> None:
    state = ChargerState()
    state.apply("StatusNotification", {"connectorId": "1", "status": "Charging"}, {}, AT)

    assert state.connectors == {}


def test_a_transaction_starts_with_the_answered_id_and_stops() -> None:
    state = ChargerState()
    state.apply(
        "StartTransaction",
        {"connectorId": 1, "idTag": "TAG", "meterStart": 100, "timestamp": AT},
        {**ACCEPTED, "transactionId": 5},
        AT,
    )
    (running,) = state.to_json()["transactions"]
    assert running["transaction_id"] == 5
    assert running["stopped"] is None

    state.apply(
        "StopTransaction",
        {"transactionId": 5, "meterStop": 900, "timestamp": "T2", "reason": "EVDisconnected"},
        ACCEPTED,
        AT,
    )

    (stopped,) = state.to_json()["transactions"]
    assert stopped == {
        "transaction_id": 5,
        "connector_id": 1,
        "id_tag": "TAG",
        "meter_start": 100,
        "started": AT,
        "meter_stop": 900,
        "stopped": "T2",
        "reason": "EVDisconnected",
        "repeated_stops": 0,
    }


def test_a_second_stop_for_a_stopped_transaction_is_a_repeat_not_a_new_row() -> None:
    # QUIRKS.md: the same Stop twice, milliseconds apart, once without and once with a reason.
    state = ChargerState()
    state.apply(
        "StartTransaction",
        {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": AT},
        {**ACCEPTED, "transactionId": 7},
        AT,
    )
    first = state.apply(
        "StopTransaction", {"transactionId": 7, "meterStop": 50, "timestamp": "T2"}, ACCEPTED, AT
    )
    second = state.apply(
        "StopTransaction",
        {"transactionId": 7, "meterStop": 50, "timestamp": "T2", "reason": "Local"},
        ACCEPTED,
        AT,
    )

    assert first is None
    assert second == "a repeated StopTransaction for transaction 7, which was stopped at T2"
    (stopped,) = state.to_json()["transactions"]
    assert stopped["repeated_stops"] == 1
    assert stopped["meter_stop"] == 50
    assert stopped["reason"] == "Local"  # the repeat carried the reason the first lacked


def test_what_a_charger_sends_cannot_grow_the_state_without_bound() -> None:
    state = ChargerState()
    huge = "x" * 1_000_000
    for connector_id in range(1000):
        state.apply(
            "StatusNotification",
            {"connectorId": connector_id, "status": huge, "errorCode": "NoError"},
            {},
            AT,
        )
    samples = [{"value": huge, "measurand": f"M{index}"} for index in range(1000)]
    state.apply(
        "MeterValues",
        {"connectorId": 1, "meterValue": [{"timestamp": huge, "sampledValue": samples}]},
        {},
        AT,
    )
    state.apply(
        "BootNotification",
        {"chargePointVendor": huge, "chargePointModel": [huge]},
        {"status": huge},
        AT,
    )

    assert len(state.connectors) == MAX_CONNECTORS
    assert len(state.meter) == MAX_METER_READINGS
    assert len(orjson.dumps(state.to_json())) < 64 * 1024


def test_an_unanswered_start_has_no_transaction_id() -> None:
    state = ChargerState()
    state.apply("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0}, None, AT)

    assert state.transactions[0].transaction_id is None
    assert state.transactions[0].started == AT


def test_a_stop_for_an_unknown_transaction_is_shown_as_such() -> None:
    # QUIRKS.md: StopTransaction with transactionId -1, or twice for the same transaction.
    state = ChargerState()
    state.apply("StopTransaction", {"transactionId": -1, "meterStop": 5}, ACCEPTED, AT)

    (unknown,) = state.transactions
    assert unknown.transaction_id == -1
    assert unknown.meter_stop == 5
    assert unknown.reason == "stop for an unknown transaction"


def test_only_the_latest_transactions_are_kept_newest_first() -> None:
    state = ChargerState()
    for number in range(MAX_TRANSACTIONS + 3):
        state.apply("StartTransaction", {}, {**ACCEPTED, "transactionId": number}, AT)

    ids = [tx.transaction_id for tx in state.transactions]
    assert ids == list(range(MAX_TRANSACTIONS + 2, 2, -1))


def test_meter_values_keep_the_latest_reading_per_measurand_and_phase() -> None:
    state = ChargerState()
    sampled: list[dict[str, Any]] = [
        {"value": "1234"},
        {"value": "230.1", "measurand": "Voltage", "phase": "L1", "unit": "V"},
        {"value": 16, "measurand": "Current.Import", "phase": "L1", "unit": "A"},
        {"measurand": "Power.Active.Import"},  # no value: skipped
        "not a sample",
    ]
    state.apply(
        "MeterValues",
        {"connectorId": 1, "meterValue": [{"timestamp": "T1", "sampledValue": sampled}]},
        {},
        AT,
    )
    state.apply(
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [{"timestamp": "T2", "sampledValue": [{"value": "1300"}]}],
        },
        {},
        AT,
    )

    assert state.meter == {
        "Energy.Active.Import.Register": "1300 Wh",
        "Voltage (L1)": "230.1 V",
        "Current.Import (L1)": "16 A",
    }
    assert state.meter_timestamp == "T2"


def test_meter_values_without_samples_change_nothing_but_the_time() -> None:
    # QUIRKS.md: an empty sampledValue array; MeterValues without a transactionId.
    state = ChargerState()
    state.apply("MeterValues", {"connectorId": 1, "meterValue": [{"sampledValue": []}]}, {}, AT)
    state.apply("MeterValues", {"connectorId": 1, "meterValue": "oops"}, {}, AT)

    assert state.meter == {}
    assert state.meter_timestamp == AT


def test_firmware_and_diagnostics_status() -> None:
    state = ChargerState()
    state.apply("FirmwareStatusNotification", {"status": "Downloading"}, {}, AT)
    state.apply("DiagnosticsStatusNotification", {"status": "Uploaded"}, {}, AT)

    assert (state.firmware_status, state.diagnostics_status) == ("Downloading", "Uploaded")


def test_odd_requests_and_unknown_actions_never_raise() -> None:
    state = ChargerState()
    for action in ("BootNotification", "StartTransaction", "StatusNotification", "Foo"):
        state.apply(action, ["not", "an", "object"], {}, AT)
        state.apply(action, {}, "not an object", AT)

    assert state.connectors == {}
