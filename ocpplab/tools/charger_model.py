"""A simulated OCPP 1.6 charger, sans-I/O, and the `ocpplab simulate URL` subcommand.

`ChargerModel` is the charger: its configuration keys, connectors, transaction and meter.
It builds the CALLs a charger sends, learns from the answers it gets, and answers every
central-system-initiated 1.6 action (OCPP 1.6 section 5) with a schema-valid payload —
or, with another `behaviour`, rejects, fails or stays silent, so that a central system's
own operations can be tried end to end. Calls it owes as a consequence (the StartTransaction
after a RemoteStartTransaction, the message a TriggerMessage asks for) wait in `pending`.

Scenarios are generators of `Send` and `Sleep` steps over a model: the I/O layer
(`ocpplab.tools.fleet`) runs them against a real websocket and feeds answers back to the model.
Nothing here touches a socket or sleeps; the wall clock is passed in.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Literal, get_args

from ocpplab import __version__
from ocpplab.core import schemas
from ocpplab.core.frames import Call, CallError, CallResult
from ocpplab.core.responder import format_time
from ocpplab.dialects.ocpp16 import OCPP16

Behaviour = Literal["accept", "reject", "error", "silent"]
BEHAVIOURS: tuple[str, ...] = get_args(Behaviour)
SCENARIOS: tuple[str, ...] = ("session", "heartbeat", "meter-values", "mix")

ID_TAG = "SIMTAG0001"
POWER_W = 7360.0  # one phase, 32 A at 230 V
VOLTAGE_V = 230.0


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(slots=True)
class ConfigurationKey:
    """One key of OCPP 1.6 section 9 "Standard Configuration Key Names & Values"."""

    value: str
    readonly: bool = False
    kind: Literal["int", "bool", "text"] = "text"


def default_configuration(connectors: int) -> dict[str, ConfigurationKey]:
    """The keys a typical 1.6 charger reports (OCPP 1.6 sections 9.1-9.4)."""
    integer, boolean = "int", "bool"
    rows: list[tuple[str, str, bool, str]] = [
        ("AllowOfflineTxForUnknownId", "false", False, boolean),
        ("AuthorizationCacheEnabled", "true", False, boolean),
        ("AuthorizeRemoteTxRequests", "false", False, boolean),
        ("ClockAlignedDataInterval", "0", False, integer),
        ("ConnectionTimeOut", "60", False, integer),
        ("ConnectorPhaseRotation", "0.RST,1.RST", False, "text"),
        ("GetConfigurationMaxKeys", "50", True, integer),
        ("HeartbeatInterval", "60", False, integer),
        ("LocalAuthorizeOffline", "true", False, boolean),
        ("LocalPreAuthorize", "false", False, boolean),
        ("MeterValuesAlignedData", "Energy.Active.Import.Register", False, "text"),
        (
            "MeterValuesSampledData",
            "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC",
            False,
            "text",
        ),
        ("MeterValueSampleInterval", "10", False, integer),
        ("NumberOfConnectors", str(connectors), True, integer),
        ("ResetRetries", "3", False, integer),
        ("StopTransactionOnEVSideDisconnect", "true", False, boolean),
        ("StopTransactionOnInvalidId", "true", False, boolean),
        ("StopTxnAlignedData", "", False, "text"),
        ("StopTxnSampledData", "Energy.Active.Import.Register", False, "text"),
        (
            "SupportedFeatureProfiles",
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,"
            "RemoteTrigger",
            True,
            "text",
        ),
        ("TransactionMessageAttempts", "3", False, integer),
        ("TransactionMessageRetryInterval", "60", False, integer),
        ("UnlockConnectorOnEVSideDisconnect", "true", False, boolean),
        ("WebSocketPingInterval", "0", False, integer),
        ("LocalAuthListEnabled", "true", False, boolean),
        ("LocalAuthListMaxLength", "100", True, integer),
        ("SendLocalListMaxLength", "100", True, integer),
        ("ReserveConnectorZeroSupported", "false", True, boolean),
        ("ChargeProfileMaxStackLevel", "10", True, integer),
        ("ChargingScheduleAllowedChargingRateUnit", "Current,Power", True, "text"),
        ("ChargingScheduleMaxPeriods", "24", True, integer),
        ("MaxChargingProfilesInstalled", "10", True, integer),
    ]
    return {
        key: ConfigurationKey(value, readonly, kind)  # type: ignore[arg-type]
        for key, value, readonly, kind in rows
    }


def _valid_value(key: ConfigurationKey, value: str) -> bool:
    if key.kind == "int":
        return value.strip().lstrip("-").isdigit()
    if key.kind == "bool":
        return value.lower() in {"true", "false"}
    return True


@dataclasses.dataclass(slots=True)
class Transaction:
    """The charging session on one connector; its id is known once StartTransaction is answered."""

    connector_id: int
    id_tag: str
    meter_start: int
    start_call: str
    transaction_id: int | None = None


# Answers when the behaviour is "reject": a valid payload that says no (OCPP 1.6 section 6).
REJECTIONS: dict[str, dict[str, Any]] = {
    "ChangeAvailability": {"status": "Rejected"},
    "ChangeConfiguration": {"status": "Rejected"},
    "ClearCache": {"status": "Rejected"},
    "DataTransfer": {"status": "Rejected"},
    "RemoteStartTransaction": {"status": "Rejected"},
    "RemoteStopTransaction": {"status": "Rejected"},
    "Reset": {"status": "Rejected"},
    "UnlockConnector": {"status": "UnlockFailed"},
    "GetDiagnostics": {},
    "UpdateFirmware": {},
    "GetLocalListVersion": {"listVersion": -1},  # section 5.10: -1 = not supported
    "SendLocalList": {"status": "Failed"},
    "ReserveNow": {"status": "Rejected"},
    "CancelReservation": {"status": "Rejected"},
    "SetChargingProfile": {"status": "Rejected"},
    "ClearChargingProfile": {"status": "Unknown"},
    "GetCompositeSchedule": {"status": "Rejected"},
    "TriggerMessage": {"status": "Rejected"},
    "ExtendedTriggerMessage": {"status": "Rejected"},
    "CertificateSigned": {"status": "Rejected"},
    "InstallCertificate": {"status": "Rejected"},
    "DeleteCertificate": {"status": "Failed"},
    "GetInstalledCertificateIds": {"status": "NotFound"},
    "GetLog": {"status": "Rejected"},
    "SignedUpdateFirmware": {"status": "Rejected"},
}


class ChargerModel:
    """One simulated charge point: what it says, and how it answers a central system."""

    def __init__(
        self,
        identity: str,
        *,
        behaviour: Behaviour = "accept",
        connectors: int = 1,
        clock: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}")
        self.identity = identity
        self.behaviour = behaviour
        self.connectors = connectors
        self.clock = clock
        self.configuration = default_configuration(connectors)
        self.statuses: dict[int, str] = dict.fromkeys(range(connectors + 1), "Available")
        self.transactions: dict[int, Transaction] = {}
        self.reservations: dict[int, int] = {}  # reservationId -> connectorId
        self.charging_profiles = 0
        self.local_list_version = 0
        self.energy_wh = 1_000_000.0
        self.meter_at: datetime.datetime | None = None
        self.boot_accepted = False
        self.heartbeat_interval = 60.0
        self.reset_requested: str | None = None
        self.pending: deque[Call] = deque()
        self._sent: dict[str, Call] = {}
        self._ids = itertools.count(1)

    # Calls the charger sends (OCPP 1.6 section 4)

    def call(self, action: str, payload: dict[str, Any]) -> Call:
        """A CALL with a fresh unique id, remembered until it is answered."""
        call = Call(f"{self.identity[:24]}-{next(self._ids)}", action, payload)
        self._sent[call.unique_id] = call
        return call

    def boot(self) -> Call:
        return self.call(
            "BootNotification",
            {
                "chargePointVendor": "ocpplab",
                "chargePointModel": "Simulated charger",
                "chargePointSerialNumber": self.identity[:25],
                "firmwareVersion": f"ocpplab-{__version__}",
                "meterType": "Simulated meter",
            },
        )

    def heartbeat(self) -> Call:
        return self.call("Heartbeat", {})

    def status(self, connector_id: int, status: str | None = None) -> Call:
        if status is not None:
            self.statuses[connector_id] = status
        payload = {
            "connectorId": connector_id,
            "errorCode": "NoError",
            "status": self.statuses.get(connector_id, "Available"),
            "timestamp": self._now(),
        }
        return self.call("StatusNotification", payload)

    def authorize(self, id_tag: str = ID_TAG) -> Call:
        return self.call("Authorize", {"idTag": id_tag})

    def start_transaction(self, connector_id: int = 1, id_tag: str = ID_TAG) -> Call:
        self._advance_meter()
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": int(self.energy_wh),
            "timestamp": self._now(),
        }
        for reservation_id, reserved in list(self.reservations.items()):
            if reserved == connector_id:
                payload["reservationId"] = reservation_id
                del self.reservations[reservation_id]
        call = self.call("StartTransaction", payload)
        self.transactions[connector_id] = Transaction(
            connector_id, id_tag, int(self.energy_wh), call.unique_id
        )
        return call

    def stop_transaction(self, connector_id: int = 1, reason: str = "Local") -> Call | None:
        transaction = self.transactions.pop(connector_id, None)
        if transaction is None:
            return None
        self._advance_meter()
        return self.call(
            "StopTransaction",
            {
                # -1 when the StartTransaction answer never came (QUIRKS.md: chargers do this)
                "transactionId": transaction.transaction_id or -1,
                "idTag": transaction.id_tag,
                "meterStop": int(self.energy_wh),
                "timestamp": self._now(),
                "reason": reason,
            },
        )

    def meter_values(self, connector_id: int = 1) -> Call:
        """MeterValues with the sampled values of MeterValuesSampledData (section 9.1)."""
        self._advance_meter()
        transaction = self.transactions.get(connector_id)
        charging = transaction is not None
        power = POWER_W if charging else 0.0
        samples = [
            ("Energy.Active.Import.Register", f"{self.energy_wh:.0f}", "Wh"),
            ("Power.Active.Import", f"{power:.0f}", "W"),
            ("Current.Import", f"{power / VOLTAGE_V:.1f}", "A"),
            ("Voltage", f"{VOLTAGE_V:.1f}", "V"),
            ("SoC", str(20 + int(self.energy_wh) % 80), "Percent"),
        ]
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "meterValue": [
                {
                    "timestamp": self._now(),
                    "sampledValue": [
                        {
                            "value": value,
                            "context": "Sample.Periodic",
                            "measurand": measurand,
                            "unit": unit,
                            "location": "EV" if measurand == "SoC" else "Outlet",
                        }
                        for measurand, value, unit in samples
                    ],
                }
            ],
        }
        if transaction is not None and transaction.transaction_id is not None:
            payload["transactionId"] = transaction.transaction_id
        return self.call("MeterValues", payload)

    def transaction_on(self, connector_id: int = 1) -> Transaction | None:
        return self.transactions.get(connector_id)

    # Answers to the charger's calls

    def on_answer(self, unique_id: str, answer: CallResult | CallError | None) -> Call | None:
        """Learn from the answer to one of our calls (None: it timed out); returns the call."""
        call = self._sent.pop(unique_id, None)
        if call is None or not isinstance(answer, CallResult):
            return call
        payload = answer.payload
        if call.action == "BootNotification":
            self.boot_accepted = payload.get("status") == "Accepted"
            interval = payload.get("interval")
            if isinstance(interval, int) and interval > 0:
                self.heartbeat_interval = float(interval)
                self.configuration["HeartbeatInterval"].value = str(interval)
        elif call.action == "StartTransaction":
            self._started(call, payload)
        return call

    def forget(self, unique_id: str) -> None:
        self._sent.pop(unique_id, None)

    def _started(self, call: Call, payload: dict[str, Any]) -> None:
        transaction = self.transactions.get(call.payload.get("connectorId", 1))
        transaction_id = payload.get("transactionId")
        started = transaction is not None and transaction.start_call == call.unique_id
        if started and isinstance(transaction_id, int):
            transaction.transaction_id = transaction_id  # type: ignore[union-attr]

    # Central-system calls (OCPP 1.6 section 5)

    def handle(self, call: Call) -> CallResult | CallError | None:
        """The answer to a central-system CALL; None when the behaviour is "silent"."""
        if self.behaviour == "silent":
            return None
        if not OCPP16.is_central_action(call.action):
            code = "NotSupported" if OCPP16.knows(call.action) else "NotImplemented"
            return CallError(call.unique_id, code, f"a charge point does not take {call.action}")
        violations = OCPP16.validate(call.action, call.payload, False)
        if violations:
            # A strict charger: OCPP-J 1.6 section 4.2.3 codes for a payload that breaks its schema.
            code = schemas.strictest_code(violations)
            return CallError(call.unique_id, code, violations[0].message[:255])
        if self.behaviour == "error":
            return CallError(call.unique_id, "InternalError", "simulated failure (behaviour error)")
        if self.behaviour == "reject":
            return CallResult(call.unique_id, self._rejection(call))
        handler: Callable[[dict[str, Any]], dict[str, Any]] = getattr(self, f"_on_{call.action}")
        return CallResult(call.unique_id, handler(call.payload))

    def _rejection(self, call: Call) -> dict[str, Any]:
        if call.action == "GetConfiguration":
            return {"unknownKey": [str(key)[:50] for key in call.payload.get("key", [])]}
        return dict(REJECTIONS[call.action])

    def _on_ChangeAvailability(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector_id = payload["connectorId"]
        status = "Unavailable" if payload["type"] == "Inoperative" else "Available"
        connectors = range(self.connectors + 1) if connector_id == 0 else [connector_id]
        if connector_id not in self.statuses:
            return {"status": "Rejected"}
        if any(number in self.transactions for number in connectors):
            return {"status": "Scheduled"}  # section 5.2: after the transaction ends
        for number in connectors:
            self.pending.append(self.status(number, status))
        return {"status": "Accepted"}

    def _on_ChangeConfiguration(self, payload: dict[str, Any]) -> dict[str, Any]:
        key = self.configuration.get(payload["key"])
        if key is None:
            return {"status": "NotSupported"}
        if key.readonly or not _valid_value(key, payload["value"]):
            return {"status": "Rejected"}
        key.value = payload["value"]
        if payload["key"] == "HeartbeatInterval":
            self.heartbeat_interval = float(max(1, int(key.value)))
        return {"status": "Accepted"}

    def _on_ClearCache(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}

    def _on_DataTransfer(self, payload: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {"status": "Accepted"}
        if "data" in payload:
            answer["data"] = payload["data"]
        return answer

    def _on_GetConfiguration(self, payload: dict[str, Any]) -> dict[str, Any]:
        wanted = payload.get("key") or list(self.configuration)
        known = [key for key in wanted if key in self.configuration]
        answer: dict[str, Any] = {
            "configurationKey": [
                {
                    "key": key,
                    "readonly": self.configuration[key].readonly,
                    "value": self.configuration[key].value,
                }
                for key in known
            ]
        }
        unknown = [str(key)[:50] for key in wanted if key not in self.configuration]
        if unknown:
            answer["unknownKey"] = unknown
        return answer

    def _on_RemoteStartTransaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector_id = payload.get("connectorId", 1)
        if (
            connector_id not in range(1, self.connectors + 1)
            or connector_id in self.transactions
            or self.statuses.get(connector_id) == "Unavailable"
        ):
            return {"status": "Rejected"}
        # Section 5.11: AuthorizeRemoteTxRequests is false, so the transaction starts at once.
        self.pending.append(self.status(connector_id, "Preparing"))
        self.pending.append(self.start_transaction(connector_id, payload["idTag"]))
        self.pending.append(self.status(connector_id, "Charging"))
        return {"status": "Accepted"}

    def _on_RemoteStopTransaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        for connector_id, transaction in self.transactions.items():
            if transaction.transaction_id == payload["transactionId"]:
                self._stop_and_free(connector_id, "Remote")
                return {"status": "Accepted"}
        return {"status": "Rejected"}

    def _stop_and_free(self, connector_id: int, reason: str) -> None:
        stop = self.stop_transaction(connector_id, reason)
        if stop is not None:
            self.pending.append(self.status(connector_id, "Finishing"))
            self.pending.append(stop)
            self.pending.append(self.status(connector_id, "Available"))

    def _on_Reset(self, payload: dict[str, Any]) -> dict[str, Any]:
        # Section 5.14: stop transactions (reason SoftReset/HardReset), then reboot.
        reason = "HardReset" if payload["type"] == "Hard" else "SoftReset"
        for connector_id in list(self.transactions):
            stop = self.stop_transaction(connector_id, reason)
            if stop is not None:
                self.pending.append(stop)
        self.reset_requested = payload["type"]
        return {"status": "Accepted"}

    def _on_UnlockConnector(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector_id = payload["connectorId"]
        if connector_id not in range(1, self.connectors + 1):
            return {"status": "NotSupported"}
        self._stop_and_free(connector_id, "UnlockCommand")
        return {"status": "Unlocked"}

    def _on_GetDiagnostics(self, payload: dict[str, Any]) -> dict[str, Any]:
        for status in ("Uploading", "Uploaded"):
            self.pending.append(self.call("DiagnosticsStatusNotification", {"status": status}))
        return {"fileName": f"diagnostics-{self.identity}.log"[:255]}

    def _on_UpdateFirmware(self, payload: dict[str, Any]) -> dict[str, Any]:
        for status in ("Downloading", "Downloaded", "Installing", "Installed"):
            self.pending.append(self.call("FirmwareStatusNotification", {"status": status}))
        return {}

    def _on_GetLocalListVersion(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"listVersion": self.local_list_version}

    def _on_SendLocalList(self, payload: dict[str, Any]) -> dict[str, Any]:
        version = payload["listVersion"]
        if payload["updateType"] == "Differential" and version <= self.local_list_version:
            return {"status": "VersionMismatch"}
        self.local_list_version = version
        return {"status": "Accepted"}

    def _on_ReserveNow(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector_id = payload["connectorId"]
        if connector_id not in range(1, self.connectors + 1):
            return {"status": "Rejected"}
        if connector_id in self.transactions:
            return {"status": "Occupied"}
        if self.statuses.get(connector_id) == "Unavailable":
            return {"status": "Unavailable"}
        self.reservations[payload["reservationId"]] = connector_id
        self.pending.append(self.status(connector_id, "Reserved"))
        return {"status": "Accepted"}

    def _on_CancelReservation(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector_id = self.reservations.pop(payload["reservationId"], None)
        if connector_id is None:
            return {"status": "Rejected"}
        self.pending.append(self.status(connector_id, "Available"))
        return {"status": "Accepted"}

    def _on_SetChargingProfile(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.charging_profiles += 1
        return {"status": "Accepted"}

    def _on_ClearChargingProfile(self, payload: dict[str, Any]) -> dict[str, Any]:
        if not self.charging_profiles:
            return {"status": "Unknown"}
        self.charging_profiles = 0
        return {"status": "Accepted"}

    def _on_GetCompositeSchedule(self, payload: dict[str, Any]) -> dict[str, Any]:
        unit = payload.get("chargingRateUnit", "A")
        return {
            "status": "Accepted",
            "connectorId": payload["connectorId"],
            "scheduleStart": self._now(),
            "chargingSchedule": {
                "duration": payload["duration"],
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 32.0 if unit == "A" else POWER_W}
                ],
            },
        }

    def _on_TriggerMessage(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._trigger(payload["requestedMessage"], payload.get("connectorId"))

    def _on_ExtendedTriggerMessage(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._trigger(payload["requestedMessage"], payload.get("connectorId"), True)

    def _trigger(
        self, requested: str, connector_id: int | None, extended: bool = False
    ) -> dict[str, Any]:
        """Section 5.17 (and the security whitepaper's 5.2): send the requested message."""
        if connector_id is not None and connector_id not in self.statuses:
            return {"status": "Rejected"}
        follow_ups: dict[str, Callable[[], list[Call]]] = {
            "BootNotification": lambda: [self.boot()],
            "Heartbeat": lambda: [self.heartbeat()],
            "MeterValues": lambda: [self.meter_values(connector_id or 1)],
            "StatusNotification": lambda: [
                self.status(number)
                for number in ([connector_id] if connector_id is not None else self.statuses)
            ],
            "DiagnosticsStatusNotification": lambda: [
                self.call("DiagnosticsStatusNotification", {"status": "Idle"})
            ],
            "FirmwareStatusNotification": lambda: [
                self.call("SignedFirmwareStatusNotification", {"status": "Idle"})
                if extended
                else self.call("FirmwareStatusNotification", {"status": "Idle"})
            ],
            "LogStatusNotification": lambda: [
                self.call("LogStatusNotification", {"status": "Idle"})
            ],
            "SignChargePointCertificate": lambda: [
                self.call("SignCertificate", {"csr": _CSR_PLACEHOLDER})
            ],
        }
        self.pending.extend(follow_ups[requested]())
        return {"status": "Accepted"}

    def _on_CertificateSigned(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}

    def _on_InstallCertificate(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}

    def _on_DeleteCertificate(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}

    def _on_GetInstalledCertificateIds(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": "Accepted",
            "certificateHashData": [
                {
                    "hashAlgorithm": "SHA256",
                    "issuerNameHash": "0" * 64,
                    "issuerKeyHash": "1" * 64,
                    "serialNumber": "01",
                }
            ],
        }

    def _on_GetLog(self, payload: dict[str, Any]) -> dict[str, Any]:
        request_id = payload["requestId"]
        for status in ("Uploading", "Uploaded"):
            self.pending.append(
                self.call("LogStatusNotification", {"status": status, "requestId": request_id})
            )
        return {"status": "Accepted", "filename": f"{payload['logType']}-{self.identity}.log"[:255]}

    def _on_SignedUpdateFirmware(self, payload: dict[str, Any]) -> dict[str, Any]:
        request_id = payload["requestId"]
        for status in ("Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"):
            self.pending.append(
                self.call(
                    "SignedFirmwareStatusNotification", {"status": status, "requestId": request_id}
                )
            )
        return {"status": "Accepted"}

    # Helpers

    def _now(self) -> str:
        return format_time(self.clock())

    def _advance_meter(self) -> None:
        now = self.clock()
        if self.meter_at is not None and self.transactions:
            elapsed = max(0.0, (now - self.meter_at).total_seconds())
            self.energy_wh += POWER_W * elapsed / 3600 * len(self.transactions)
        self.meter_at = now


_CSR_PLACEHOLDER = (
    "-----BEGIN CERTIFICATE REQUEST-----\nsimulated\n-----END CERTIFICATE REQUEST-----"
)


# Scenarios: what the charger does by itself, as steps for the I/O layer to carry out.


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """Send this CALL; in natural timing, wait for its answer before the next step."""

    call: Call


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this many seconds (skipped when a load rate sets the pace)."""

    seconds: float


Step = Send | Sleep


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """How fast a scenario goes in natural timing (no `--rate`)."""

    meter_interval: float = 5.0
    samples: int = 6
    pause: float = 5.0


def boot_sequence(model: ChargerModel) -> Iterator[Step]:
    """Section 4.2: BootNotification until Accepted, then every connector's status."""
    while True:
        yield Send(model.boot())
        if model.boot_accepted:
            break
        yield Sleep(model.heartbeat_interval)
    for connector_id in range(model.connectors + 1):
        yield Send(model.status(connector_id))


def session(model: ChargerModel, timing: Timing) -> Iterator[Step]:
    """Charging sessions: authorize, start, meter values, stop; again."""
    while True:
        yield Sleep(timing.pause)
        if model.transaction_on(1) is None:
            yield Send(model.authorize())
            yield Send(model.status(1, "Preparing"))
            yield Send(model.start_transaction(1))
            yield Send(model.status(1, "Charging"))
        for _ in range(timing.samples):
            if model.transaction_on(1) is None:
                break
            yield Sleep(timing.meter_interval)
            yield Send(model.meter_values(1))
        stop = model.stop_transaction(1, "Local")
        if stop is not None:
            yield Send(model.status(1, "Finishing"))
            yield Send(stop)
            yield Send(model.status(1, "Available"))


def heartbeats(model: ChargerModel, timing: Timing) -> Iterator[Step]:
    """Heartbeat at the interval the BootNotification answer set (OCPP 1.6 section 4.6)."""
    while True:
        yield Sleep(model.heartbeat_interval)
        yield Send(model.heartbeat())


def meter_values(model: ChargerModel, timing: Timing) -> Iterator[Step]:
    """One transaction, then MeterValues for as long as it runs."""
    yield Send(model.status(1, "Charging"))
    yield Send(model.start_transaction(1))
    while True:
        yield Sleep(timing.meter_interval)
        yield Send(model.meter_values(1))


def mix(model: ChargerModel, timing: Timing) -> Iterator[Step]:
    """The benchmark's mix: Heartbeat, MeterValues (five sampled values), StatusNotification."""
    while True:
        for build in (model.heartbeat, model.meter_values, lambda: model.status(1)):
            yield Sleep(timing.meter_interval)
            yield Send(build())


SCENARIO_BODIES: dict[str, Callable[[ChargerModel, Timing], Iterator[Step]]] = {
    "session": session,
    "heartbeat": heartbeats,
    "meter-values": meter_values,
    "mix": mix,
}


def scenario_steps(name: str, model: ChargerModel, timing: Timing) -> Iterator[Step]:
    """Every step of a scenario: the boot sequence, then the scenario's body, forever."""
    yield from boot_sequence(model)
    yield from SCENARIO_BODIES[name](model, timing)
