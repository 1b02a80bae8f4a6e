"""A whole charging session, over real sockets, with the `ocpp` package's ChargePoint as charger.

Every answer is checked against the official OCPP 1.6 response schema, read directly from the
`ocpp` package's files; the ChargePoint checks each one too, as a strict charger would.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
from ocpp.v16 import call
from ocpp.v16.enums import (
    AuthorizationStatus,
    ChargePointErrorCode,
    ChargePointStatus,
    Measurand,
    Reason,
    RegistrationStatus,
)

from tests.support import Charger, RunningServer, ocpp_charger

TIME = "2026-11-26T14:00:00Z"
SESSION_ACTIONS = [
    "Authorize",
    "StatusNotification",
    "StartTransaction",
    "MeterValues",
    "StopTransaction",
]


class RecordingCharger(Charger):
    """Keeps every frame the central system sends, exactly as received."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[Any] = []

    async def route_message(self, raw_msg: str) -> None:
        self.received.append(json.loads(raw_msg))
        await super().route_message(raw_msg)


def response_schema(action: str) -> dict[str, Any]:
    text = resources.files("ocpp.v16").joinpath("schemas", f"{action}Response.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def assert_answers_are_schema_valid(charger: RecordingCharger, actions: list[str]) -> None:
    assert [frame[0] for frame in charger.received] == [3] * len(actions)
    for action, frame in zip(actions, charger.received, strict=True):
        jsonschema.Draft4Validator(response_schema(action)).validate(frame[2])


async def session(charger: Any, connector: int, tag: str) -> int:
    """Authorize, start, meter, stop: the transaction id the central system gave."""
    authorized = await charger.call(call.Authorize(id_tag=tag))
    assert authorized.id_tag_info["status"] == AuthorizationStatus.accepted
    await charger.call(
        call.StatusNotification(
            connector_id=connector,
            error_code=ChargePointErrorCode.no_error,
            status=ChargePointStatus.preparing,
        )
    )
    started = await charger.call(
        call.StartTransaction(connector_id=connector, id_tag=tag, meter_start=1000, timestamp=TIME)
    )
    assert started.id_tag_info["status"] == AuthorizationStatus.accepted
    transaction_id: int = started.transaction_id
    sample = {"value": "1500", "measurand": Measurand.energy_active_import_register, "unit": "Wh"}
    await charger.call(
        call.MeterValues(
            connector_id=connector,
            transaction_id=transaction_id,
            meter_value=[{"timestamp": TIME, "sampled_value": [sample]}],
        )
    )
    stopped = await charger.call(
        call.StopTransaction(
            meter_stop=2000,
            timestamp=TIME,
            transaction_id=transaction_id,
            reason=Reason.ev_disconnected,
            id_tag=tag,
        )
    )
    assert stopped.id_tag_info["status"] == AuthorizationStatus.accepted
    return transaction_id


async def test_a_full_charging_session_is_answered_with_valid_answers(
    server: RunningServer,
) -> None:
    async with ocpp_charger(
        server.charger_url("CP-1"), "CP-1", charger_class=RecordingCharger
    ) as charger:
        boot = await charger.call(
            call.BootNotification(charge_point_model="Model", charge_point_vendor="Vendor")
        )
        assert boot.status == RegistrationStatus.accepted
        assert boot.interval == 60
        assert boot.current_time.endswith("Z")
        heartbeat = await charger.call(call.Heartbeat())
        assert heartbeat.current_time.endswith("Z")
        await charger.call(
            call.StatusNotification(
                connector_id=1,
                error_code=ChargePointErrorCode.no_error,
                status=ChargePointStatus.available,
            )
        )
        first = await session(charger, 1, "TAG-1")
        second = await session(charger, 2, "TAG-2")

        assert second > first
        assert_answers_are_schema_valid(
            charger,
            ["BootNotification", "Heartbeat", "StatusNotification", *SESSION_ACTIONS * 2],
        )


async def test_transaction_ids_increase_per_identity_across_reconnects(
    server: RunningServer,
) -> None:
    ids: dict[str, list[int]] = {"CP-A": [], "CP-B": []}
    for _ in range(2):
        for identity, seen in ids.items():
            async with ocpp_charger(server.charger_url(identity), identity) as charger:
                seen.append(await session(charger, 1, "TAG"))

    for seen in ids.values():
        assert seen[0] < seen[1]
    # Each identity counts on its own: another charger's sessions take nothing from it.
    assert ids["CP-A"] == ids["CP-B"]


async def test_every_other_charger_action_gets_a_valid_answer(server: RunningServer) -> None:
    requests = [
        call.DataTransfer(vendor_id="com.example", message_id="hello", data="{}"),
        call.DiagnosticsStatusNotification(status="Uploaded"),
        call.FirmwareStatusNotification(status="Installed"),
        call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=TIME, tech_info=None),
        call.SignCertificate(csr="-----BEGIN CERTIFICATE REQUEST-----"),
        call.LogStatusNotification(status="Idle", request_id=1),
        call.SignedFirmwareStatusNotification(status="Downloaded", request_id=1),
    ]
    async with ocpp_charger(
        server.charger_url("CP-1"), "CP-1", charger_class=RecordingCharger
    ) as charger:
        for request in requests:
            await charger.call(request, suppress=False)

    actions = [type(request).__name__ for request in requests]
    assert_answers_are_schema_valid(charger, actions)
    assert charger.received[0][2] == {"status": "Accepted"}
