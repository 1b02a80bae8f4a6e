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
SCENARIOS: tuple[str, ...] = ("session", "heartbeat", "meter-values", "mix", "guided")

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


# Misbehaviours a simulated charger can be given, each named by the guided check it breaks
# (ocpplab.dialects.ocpp16.checks), so that every check is shown to be able to fail.
FAULTS: dict[str, str] = {
    "TC_001_CS": "boots again 0.5 s after a Rejected boot, ignoring its interval",
    "TC_002_CS": "refuses ChangeConfiguration while its boot is Pending",
    "TC_003_CS": "with the cable plugged in first, an accepted card starts nothing (Available)",
    "TC_004_1_CS": "with the card presented first, plugging in reports Faulted and starts nothing",
    "TC_004_2_CS": "a card presented without a plug gives up after a fifth of ConnectionTimeOut",
    "TC_068_CS": "the same card stops a transaction with reason Other instead of Local",
    "TC_069_CS": "ignores parentIdTag: another card of the same group does not stop",
    "TC_005_1_CS": "unplugging the EV stops the transaction with reason Local",
    "TC_007_CS": "ignores its authorization cache: always sends Authorize",
    "TC_061_CS": "answers ClearCache Rejected",
    "TC_010_CS": "rejects RemoteStartTransaction when the cable is already plugged in",
    "TC_011_1_CS": "ignores AuthorizeRemoteTxRequests: a remote start sends no Authorize",
    "TC_011_2_CS": "a remote start without a plug gives up after a fifth of ConnectionTimeOut",
    "TC_012_CS": "a remote stop is reported with reason Local",
    "TC_026_CS": "accepts a remote start on a connector that is charging (and ignores it)",
    "TC_027_CS": "accepts a remote start for connectorId 0",
    "TC_028_CS": "accepts a remote stop of a transaction it does not know",
    "TC_023_CS": "starts a transaction for an idTag answered Invalid",
    "TC_013_CS": "forgets an Inoperative connector across a hard reset",
    "TC_014_CS": "forgets an Inoperative connector across a soft reset",
    "TC_015_CS": "a hard reset stops the transaction with reason Other",
    "TC_016_CS": "a soft reset stops the transaction with reason Reboot",
    "TC_017_1_CS": "answers UnlockConnector UnlockFailed when idle",
    "TC_018_1_CS": "an unlock during a transaction stops it with reason Local",
    "TC_031_CS": "answers UnlockConnector Unlocked for a connector it does not have",
    "TC_019_CS": "reports NumberOfConnectors as writable",
    "TC_021_CS": "accepts MeterValueSampleInterval but keeps the old value",
    "TC_040_1_CS": "answers an unknown configuration key Rejected instead of NotSupported",
    "TC_040_2_CS": "accepts MeterValueSampleInterval -1",
    "TC_070_CS": "sends sampled MeterValues without the transactionId",
    "TC_071_CS": "marks clock-aligned MeterValues Sample.Periodic",
    "TC_032_1_CS": "after a power cut, stops the open transaction with reason Other",
    "TC_034_CS": "forgets an Inoperative connector across a power cut",
    "TC_062_CS": "accepts DataTransfer for any vendorId",
    "TC_036_CS": "loses the MeterValues sampled while the connection was down",
    "TC_037_1_CS": "loses a transaction started offline that runs on when the connection returns",
    "TC_038_CS": "forgets a transaction stopped (unplugged) while offline: still Charging",
    "TC_039_CS": "a transaction made offline is stopped with transactionId -1",
    # profile faults below
    "TC_042_1_CS": "reports its local list version although LocalAuthListEnabled is false",
    "TC_042_2_CS": "reports the version of an emptied local list instead of 0",
    "TC_043_CS": "answers Failed to a Differential update that removes entries",
    "TC_043_2_CS": "accepts a Differential update older than its list",
    "TC_008_CS": "keeps the local list but never consults it: every card is authorized online",
    "TC_046_1_CS": "forgets the reservation when the card starts: no reservationId",
    "TC_047_CS": "never lets a reservation expire",
    "TC_048_2_CS": "accepts a reservation while a cable is plugged in",
    "TC_048_3_CS": "accepts a reservation on an Inoperative connector",
    "TC_049_CS": "accepts connector 0 reservations although ReserveConnectorZeroSupported false",
    "TC_051_CS": "cancels a reservation but leaves the connector Reserved",
    "TC_052_CS": "answers CancelReservation Accepted for a reservation it does not have",
    "TC_044_1_CS": "reports a firmware update Installed without rebooting",
    "TC_045_1_CS": "reports a diagnostics upload UploadFailed",
    "TC_054_CS": "accepts a triggered DiagnosticsStatusNotification but never sends it",
    "TC_055_CS": "accepts TriggerMessage for a connector it does not have",
    "TC_056_CS": "ignores TxDefaultProfiles set for connector 0 (the whole charge point)",
    "TC_057_CS": "accepts a TxProfile but leaves it out of the composite schedule",
    "TC_058_1_CS": "accepts a TxProfile while no transaction runs",
    "TC_066_CS": "leaves the ChargePointMaxProfile out of the composite schedule",
    "TC_067_CS": "answers ClearChargingProfile by criteria Accepted but clears nothing",
    "TC_072_CS": "lets the lowest stack level win instead of the highest",
}


_NOT_QUEUED = frozenset({"StatusNotification", "Heartbeat"})


@dataclasses.dataclass(slots=True)
class PlugWait:
    """A card or remote start accepted on a connector with no cable in: the charger waits
    ConnectionTimeOut seconds (OCPP 1.6 section 9.1.6) for the plug, then gives up."""

    id_tag: str
    remote: bool
    parent_id_tag: str | None = None
    deadline: float | None = None  # set by the first `due` after it began


class ChargerModel:
    """One simulated charge point: what it says, and how it answers a central system."""

    def __init__(
        self,
        identity: str,
        *,
        behaviour: Behaviour = "accept",
        connectors: int = 1,
        clock: Callable[[], datetime.datetime] = utc_now,
        faults: frozenset[str] = frozenset(),
        guided: bool = False,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}")
        unknown = sorted(set(faults) - FAULTS.keys())
        if unknown:
            raise ValueError(f"no such fault: {', '.join(unknown)}")
        self.identity = identity
        self.behaviour = behaviour
        self.clock = clock
        # Each fault names the check it breaks (FAULTS). Guided: a person (or a check) does
        # the physical part through `act`, and `due` drives the timed behaviour; otherwise a
        # remote start finds the cable always plugged in, as the scenarios assume.
        self.faults = frozenset(faults)
        self.guided = guided
        self.plugged: set[int] = set()
        self.inoperative: set[int] = set()  # ChangeAvailability: survives resets and power cuts
        self.waiting: dict[int, PlugWait] = {}
        self.cache: dict[str, str | None] = {}  # authorization cache: idTag -> parentIdTag
        self.parents: dict[int, str | None] = {}  # a transaction's parentIdTag, per connector
        self._authorizing: dict[str, tuple[int, str, str]] = {}  # uid -> connector, tag, why
        self._restart: str | None = None  # "Hard", "Soft", "PowerLoss": applied at next boot
        self._sample_at: dict[int, float] = {}
        self._aligned_at: float | None = None
        self._aligned_wall: datetime.datetime | None = None
        self._due_at: tuple[float, float] | None = None  # the last `due`: monotonic, wall
        self.online = False  # set by the I/O layer; offline, calls wait in `pending`
        self._stops_waiting: dict[str, Call] = {}  # StartTransaction uid -> its queued stop
        self.configuration = default_configuration(connectors)
        self.statuses: dict[int, str] = {}
        self.connectors = connectors
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

    @property
    def connectors(self) -> int:
        return self._connectors

    @connectors.setter
    def connectors(self, count: int) -> None:
        """How many connectors (NumberOfConnectors); each new one starts Available."""
        if not 1 <= count <= 100:
            raise ValueError("a charger has 1 to 100 connectors")
        self._connectors = count
        self.configuration["NumberOfConnectors"].value = str(count)
        self.statuses = {
            number: self.statuses.get(number, "Available") for number in range(count + 1)
        }

    def _fault(self, check_id: str) -> bool:
        """Whether this charger is given the misbehaviour that breaks `check_id` (FAULTS)."""
        return check_id in self.faults

    # Calls the charger sends (OCPP 1.6 section 4)

    def call(self, action: str, payload: dict[str, Any]) -> Call:
        """A CALL with a fresh unique id, remembered until it is answered."""
        call = Call(f"{self.identity[:24]}-{next(self._ids)}", action, payload)
        self._sent[call.unique_id] = call
        return call

    def boot(self) -> Call:
        if self._restart is not None:
            self._restarted()
        # Section 4.7: only transaction-related messages wait for the connection; the boot
        # sends every connector's status anew.
        for call in [call for call in self.pending if call.action in _NOT_QUEUED]:
            self.pending.remove(call)
            self.forget(call.unique_id)
        if self._fault("TC_037_1_CS"):
            self._forget_offline_starts()
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
        stop = self.call(
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
        if transaction.transaction_id is None and self.guided and not self._fault("TC_039_CS"):
            # Section 4.7: queued offline, it gets the id once the StartTransaction is answered.
            self._stops_waiting[transaction.start_call] = stop
            while len(self._stops_waiting) > 100:
                del self._stops_waiting[next(iter(self._stops_waiting))]
        return stop

    def meter_values(
        self,
        connector_id: int = 1,
        *,
        measurands: list[str] | None = None,
        context: str = "Sample.Periodic",
        timestamp: datetime.datetime | None = None,
    ) -> Call:
        """MeterValues with the sampled values of `measurands` (section 9.1: those of
        MeterValuesSampledData or MeterValuesAlignedData; the five it knows when None)."""
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
        if measurands is not None:
            known = {sample[0]: sample for sample in samples}
            samples = [known[name] for name in measurands if name in known] or samples[:1]
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "meterValue": [
                {
                    "timestamp": format_time(timestamp) if timestamp else self._now(),
                    "sampledValue": [
                        {
                            "value": value,
                            "context": context,
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

    # The person's part and the timed behaviour (guided checks drive these)

    def act(self, name: str, detail: dict[str, Any]) -> bool:
        """Do what a person does at the charger: "plug", "unplug", "present_card" (detail
        "id_tag"), "power_cycle"; detail "connector" (default 1). False when it cannot."""
        connector_id = detail.get("connector", 1)
        if type(connector_id) is not int or connector_id not in range(1, self.connectors + 1):
            return False
        if name == "plug":
            return self._plug(connector_id)
        if name == "unplug":
            return self._unplug(connector_id)
        if name == "present_card":
            id_tag = detail.get("id_tag", ID_TAG)
            if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= 20:
                return False
            self._present(connector_id, id_tag)
            return True
        if name == "power_cycle":
            self.power_loss()
            return True
        return False

    def power_loss(self) -> None:
        """A cut of power: what was queued is lost and the connection drops (the I/O layer
        sees `reset_requested`); at the next boot an open transaction is stopped with
        reason PowerLoss and every connector's status is sent again (section 4.8)."""
        self.pending.clear()
        self._authorizing.clear()
        self.boot_accepted = False
        self.reset_requested = "PowerLoss"
        self._restart = "PowerLoss"

    def due(self, now: float) -> None:
        """Queue the calls whose time has come; `now` is a monotonic clock in seconds."""
        if not self.guided:
            return  # the scenarios' charger has no timed behaviour of its own
        wall = self.clock().timestamp()
        self._due_at = (now, wall)
        scheduled: list[tuple[float, Call]] = getattr(self, "scheduled", [])
        while scheduled and scheduled[0][0] <= wall:
            self.pending.append(scheduled.pop(0)[1])  # timed by the profiles' handlers
        timeout = self._seconds("ConnectionTimeOut")
        for connector_id, wait in list(self.waiting.items()):
            if wait.deadline is None:
                hasty = self._fault("TC_011_2_CS" if wait.remote else "TC_004_2_CS")
                wait.deadline = now + (timeout / 5 if hasty else timeout)
            elif now >= wait.deadline:
                del self.waiting[connector_id]  # section 9.1.6: the plug did not come in time
                self.pending.append(self.status(connector_id, self._resting_status(connector_id)))
        self._due_samples(now)
        self._due_aligned(now)

    def next_due(self) -> float | None:
        """When `due` next has something to do (on the clock `due` is given); None: never."""
        times = [wait.deadline for wait in self.waiting.values() if wait.deadline is not None]
        times += self._sample_at.values()
        scheduled: list[tuple[float, Call]] = getattr(self, "scheduled", [])
        if scheduled and self.guided:
            if self._due_at is None:
                return 0.0
            now, wall = self._due_at
            times.append(now + scheduled[0][0] - wall)
        if self._aligned_at is not None:
            times.append(self._aligned_at)
        unscheduled = any(wait.deadline is None for wait in self.waiting.values()) or (
            self.guided
            and self._seconds("MeterValueSampleInterval") > 0
            and any(number not in self._sample_at for number in self.transactions)
        )
        if unscheduled:
            return 0.0  # something began since the last `due`: call it again now
        return min(times) if times else None

    def _due_samples(self, now: float) -> None:
        """Section 9.1.18: MeterValues every MeterValueSampleInterval s of a transaction."""
        interval = self._seconds("MeterValueSampleInterval")
        for connector_id in list(self._sample_at):
            if connector_id not in self.transactions or interval <= 0:
                del self._sample_at[connector_id]
        if interval <= 0:
            return
        measurands = self._measurands("MeterValuesSampledData")
        for connector_id in self.transactions:
            at = self._sample_at.get(connector_id)
            if at is None:
                self._sample_at[connector_id] = now + interval
            elif now >= at:
                self._sample_at[connector_id] = max(at + interval, now)
                if not self.online and self._fault("TC_036_CS"):
                    continue  # the fault: what is sampled offline is lost
                call = self.meter_values(connector_id, measurands=measurands)
                if self._fault("TC_070_CS"):
                    call.payload.pop("transactionId", None)
                self.pending.append(call)

    def _due_aligned(self, now: float) -> None:
        """Section 9.1.2: MeterValues at every multiple of ClockAlignedDataInterval past
        midnight (UTC here), for every connector."""
        interval = self._seconds("ClockAlignedDataInterval")
        if interval <= 0:
            self._aligned_at = self._aligned_wall = None
            return
        if self._aligned_at is not None and self._aligned_wall is not None:
            if now < self._aligned_at:
                return
            context = "Sample.Periodic" if self._fault("TC_071_CS") else "Sample.Clock"
            measurands = self._measurands("MeterValuesAlignedData")
            for connector_id in range(1, self.connectors + 1):
                self.pending.append(
                    self.meter_values(
                        connector_id,
                        measurands=measurands,
                        context=context,
                        timestamp=self._aligned_wall,
                    )
                )
        wall = self.clock()
        midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
        wait = interval - (wall - midnight).total_seconds() % interval
        self._aligned_at = now + wait
        self._aligned_wall = wall + datetime.timedelta(seconds=wait)

    def _seconds(self, name: str) -> int:
        key = self.configuration.get(name)
        value = key.value.strip() if key is not None else ""
        return int(value) if value.isdigit() else 0

    def _measurands(self, name: str) -> list[str]:
        key = self.configuration.get(name)
        return [item.strip() for item in (key.value if key else "").split(",") if item.strip()]

    def _plug(self, connector_id: int) -> bool:
        if connector_id in self.plugged:
            return False
        self.plugged.add(connector_id)
        if connector_id in self.transactions or self._unavailable(connector_id):
            return True
        wait = self.waiting.pop(connector_id, None)
        if wait is None:
            self.pending.append(self.status(connector_id, "Preparing"))
        elif not wait.remote and self._fault("TC_004_1_CS"):
            self.pending.append(self.status(connector_id, "Faulted"))
        else:
            self._start(connector_id, wait.id_tag, wait.parent_id_tag)
        return True

    def _unplug(self, connector_id: int) -> bool:
        if connector_id not in self.plugged:
            return True  # nothing plugged in: done
        self.plugged.discard(connector_id)
        if connector_id in self.transactions and not self.online and self._fault("TC_038_CS"):
            return True  # the fault: a stop while offline is forgotten
        if connector_id in self.transactions:
            if self.configuration["StopTransactionOnEVSideDisconnect"].value == "false":
                self.pending.append(self.status(connector_id, "SuspendedEV"))
                return True
            reason = "Local" if self._fault("TC_005_1_CS") else "EVDisconnected"
            self._stop_and_free(connector_id, reason)
        elif self.statuses.get(connector_id) != self._resting_status(connector_id):
            self.pending.append(self.status(connector_id, self._resting_status(connector_id)))
        return True

    def _present(self, connector_id: int, id_tag: str) -> None:
        """Section 3.4 / 5.11: a card starts, or stops the transaction of the same idTag or,
        once authorized, of the same parentIdTag."""
        transaction = self.transactions.get(connector_id)
        if transaction is not None:
            if transaction.id_tag == id_tag:
                self._stop_and_free(connector_id, "Other" if self._fault("TC_068_CS") else "Local")
            else:
                self._authorize(connector_id, id_tag, "stop")
            return
        if self._unavailable(connector_id):
            return
        if not self.online:
            self._present_offline(connector_id, id_tag)
            return
        listed = self._listed(id_tag)  # section 3.5.2: the local list first, then the cache
        cached = self._cached(id_tag) and not self._fault("TC_007_CS")
        if listed is not None:
            parent = listed.get("parentIdTag")
            self._accepted(
                connector_id, id_tag, parent if isinstance(parent, str) else None, remote=False
            )
        elif cached:
            self._accepted(connector_id, id_tag, self.cache[id_tag], remote=False)
        else:
            self._authorize(connector_id, id_tag, "start")

    def _present_offline(self, connector_id: int, id_tag: str) -> None:
        """Section 3.5.4 / 9.1: offline, a card starts when the list or the cache has it
        (LocalAuthorizeOffline) or when AllowOfflineTxForUnknownId; nothing asks."""
        known = self._listed(id_tag) is not None or id_tag in self.cache
        local = known and self.configuration["LocalAuthorizeOffline"].value == "true"
        if local or self.configuration["AllowOfflineTxForUnknownId"].value == "true":
            self._accepted(connector_id, id_tag, self.cache.get(id_tag), remote=False)

    def _forget_offline_starts(self) -> None:
        """TC_037_1_CS's fault: a transaction started offline and still running when the
        connection returns is lost (its StartTransaction too); the connector is Preparing."""
        for connector_id, transaction in list(self.transactions.items()):
            if transaction.transaction_id is None:
                del self.transactions[connector_id]
                for call in [c for c in self.pending if c.unique_id == transaction.start_call]:
                    self.pending.remove(call)
                    self.forget(call.unique_id)
                self.statuses[connector_id] = "Preparing"

    def _authorize(self, connector_id: int, id_tag: str, purpose: str) -> None:
        call = self.authorize(id_tag)
        self._authorizing[call.unique_id] = (connector_id, id_tag, purpose)
        self.pending.append(call)

    def _authorized(self, call: Call, payload: dict[str, Any]) -> None:
        info = payload.get("idTagInfo")
        info = info if isinstance(info, dict) else {}
        self._remember(str(call.payload.get("idTag")), info)
        entry = self._authorizing.pop(call.unique_id, None)
        invalid_starts = self._fault("TC_023_CS") and entry is not None and entry[2] == "start"
        if entry is None or (info.get("status") != "Accepted" and not invalid_starts):
            return
        connector_id, id_tag, purpose = entry
        parent = info.get("parentIdTag") if isinstance(info.get("parentIdTag"), str) else None
        if purpose != "stop":
            self._accepted(connector_id, id_tag, parent, remote=purpose == "remote")
            return
        same_group = parent is not None and parent == self.parents.get(connector_id)
        if connector_id in self.transactions and same_group and not self._fault("TC_069_CS"):
            self._stop_and_free(connector_id, "Local")

    def _accepted(
        self, connector_id: int, id_tag: str, parent: str | None, *, remote: bool
    ) -> None:
        """An authorized start: at once when the cable is in, else wait for the plug."""
        if connector_id in self.transactions or self._unavailable(connector_id):
            return
        if connector_id in self.plugged:
            if not remote and self._fault("TC_003_CS"):
                self.pending.append(self.status(connector_id, "Available"))
                return
            self._start(connector_id, id_tag, parent)
            return
        if self.statuses.get(connector_id) != "Preparing":
            self.pending.append(self.status(connector_id, "Preparing"))
        self.waiting[connector_id] = PlugWait(id_tag, remote, parent)

    def _start(self, connector_id: int, id_tag: str, parent: str | None) -> None:
        self.pending.append(self.start_transaction(connector_id, id_tag))
        self.pending.append(self.status(connector_id, "Charging"))
        self.parents[connector_id] = parent
        self._sample_at.pop(connector_id, None)

    def _start_answered(self, call: Call, payload: dict[str, Any]) -> None:
        """Learn the parentIdTag; section 9.1.33: stop a transaction whose idTag is refused."""
        info = payload.get("idTagInfo")
        info = info if isinstance(info, dict) else {}
        id_tag = str(call.payload.get("idTag"))
        self._remember(id_tag, info)
        stop = self._stops_waiting.pop(call.unique_id, None)
        if stop is not None and isinstance(payload.get("transactionId"), int):
            stop.payload["transactionId"] = payload["transactionId"]
        connector_id = call.payload.get("connectorId", 1)
        transaction = self.transactions.get(connector_id)
        if transaction is None or transaction.start_call != call.unique_id:
            return
        if isinstance(info.get("parentIdTag"), str):
            self.parents[connector_id] = info["parentIdTag"]
        refused = info.get("status") not in (None, "Accepted", "ConcurrentTx")
        if refused and self.configuration["StopTransactionOnInvalidId"].value == "true":
            self._stop_and_free(connector_id, "DeAuthorized")

    def _remember(self, id_tag: str, info: dict[str, Any]) -> None:
        """Section 3.5.1: the authorization cache keeps the latest idTagInfo of each tag."""
        if self.configuration["AuthorizationCacheEnabled"].value != "true":
            return
        if info.get("status") == "Accepted":
            parent = info.get("parentIdTag")
            self.cache[id_tag] = parent if isinstance(parent, str) else None
            while len(self.cache) > 100:
                del self.cache[next(iter(self.cache))]
        else:
            self.cache.pop(id_tag, None)

    def _cached(self, id_tag: str) -> bool:
        """Section 3.5.2: LocalPreAuthorize starts a cached tag without an Authorize."""
        enabled = self.configuration["AuthorizationCacheEnabled"].value == "true"
        pre = self.configuration["LocalPreAuthorize"].value == "true"
        return enabled and pre and id_tag in self.cache

    def _unavailable(self, connector_id: int) -> bool:
        return connector_id in self.inoperative or 0 in self.inoperative

    def _resting_status(self, connector_id: int) -> str:
        """The status of a connector with no transaction running on it."""
        if self._unavailable(connector_id):
            return "Unavailable"
        if connector_id == 0 or connector_id not in self.plugged:
            return "Available"
        was = self.statuses.get(connector_id)
        after = was in {"Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"}
        return "Finishing" if after else "Preparing"

    def _restarted(self) -> None:
        """The first boot after a reset or a power cut (sections 4.8, 5.2, 5.14)."""
        cause, self._restart = self._restart, None
        if cause == "PowerLoss":
            reason = "Other" if self._fault("TC_032_1_CS") else "PowerLoss"
            for connector_id in list(self.transactions):
                stop = self.stop_transaction(connector_id, reason)
                if stop is not None:
                    self.pending.append(stop)  # sent once the boot is accepted
        forgets = {"Hard": "TC_013_CS", "Soft": "TC_014_CS", "PowerLoss": "TC_034_CS"}
        if self._fault(forgets.get(cause or "", "")):
            self.inoperative.clear()
        self.waiting.clear()
        self.parents.clear()
        self._sample_at.clear()
        for connector_id in self.statuses:
            self.statuses[connector_id] = self._resting_status(connector_id)

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
            self._start_answered(call, payload)
        elif call.action == "Authorize":
            self._authorized(call, payload)
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
        # Section 5.2: the state persists across a reboot; Scheduled during a transaction.
        connector_id = payload["connectorId"]
        connectors = range(self.connectors + 1) if connector_id == 0 else [connector_id]
        if connector_id not in self.statuses:
            return {"status": "Rejected"}
        if payload["type"] == "Inoperative":
            self.inoperative.add(connector_id)
        elif connector_id == 0:
            self.inoperative.clear()
        else:
            self.inoperative.discard(connector_id)
        if any(number in self.transactions for number in connectors):
            return {"status": "Scheduled"}  # section 5.2: after the transaction ends
        for number in connectors:
            self.waiting.pop(number, None)
            self.pending.append(self.status(number, self._resting_status(number)))
        return {"status": "Accepted"}

    def _on_ChangeConfiguration(self, payload: dict[str, Any]) -> dict[str, Any]:
        name, value = payload["key"], payload["value"]
        key = self.configuration.get(name)
        if self._fault("TC_002_CS") and not self.boot_accepted:
            return {"status": "Rejected"}
        if key is None:
            return {"status": "Rejected" if self._fault("TC_040_1_CS") else "NotSupported"}
        negative = key.kind == "int" and value.strip().startswith("-")
        if negative and not self._fault("TC_040_2_CS"):
            return {"status": "Rejected"}  # section 9.1: intervals and counts are >= 0
        if key.readonly or not _valid_value(key, value):
            return {"status": "Rejected"}
        if name == "MeterValueSampleInterval" and self._fault("TC_021_CS"):
            return {"status": "Accepted"}
        key.value = value
        if name == "HeartbeatInterval":
            self.heartbeat_interval = float(max(1, int(key.value)))
        if name in {"MeterValueSampleInterval", "ClockAlignedDataInterval"}:
            self._sample_at.clear()
            self._aligned_at = None
        return {"status": "Accepted"}

    def _on_ClearCache(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self._fault("TC_061_CS"):
            return {"status": "Rejected"}
        self.cache.clear()
        return {"status": "Accepted"}

    def _on_DataTransfer(self, payload: dict[str, Any]) -> dict[str, Any]:
        # Section 5.6: a vendorId the charger does not know is answered UnknownVendorId.
        if payload["vendorId"] != "ocpplab" and not self._fault("TC_062_CS"):
            return {"status": "UnknownVendorId"}
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
                    "readonly": self.configuration[key].readonly
                    and not (key == "NumberOfConnectors" and self._fault("TC_019_CS")),
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
        if connector_id == 0 and self._fault("TC_027_CS"):
            return {"status": "Accepted"}
        if connector_id in self.transactions and self._fault("TC_026_CS"):
            return {"status": "Accepted"}
        if (
            connector_id not in range(1, self.connectors + 1)
            or connector_id in self.transactions
            or connector_id in self.waiting
            or self._unavailable(connector_id)
        ):
            return {"status": "Rejected"}
        id_tag = payload["idTag"]
        if not self.guided:
            # The scenarios' charger has its cable in: the transaction starts at once.
            self.pending.append(self.status(connector_id, "Preparing"))
            self._start(connector_id, id_tag, None)
            return {"status": "Accepted"}
        if connector_id in self.plugged and self._fault("TC_010_CS"):
            return {"status": "Rejected"}
        # Section 5.11: with AuthorizeRemoteTxRequests the idTag is authorized first.
        authorize = self.configuration["AuthorizeRemoteTxRequests"].value == "true"
        if authorize and not self._fault("TC_011_1_CS"):
            self._authorize(connector_id, id_tag, "remote")
        else:
            self._accepted(connector_id, id_tag, None, remote=True)
        return {"status": "Accepted"}

    def _on_RemoteStopTransaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        for connector_id, transaction in self.transactions.items():
            if transaction.transaction_id == payload["transactionId"]:
                self._stop_and_free(connector_id, "Local" if self._fault("TC_012_CS") else "Remote")
                return {"status": "Accepted"}
        return {"status": "Accepted" if self._fault("TC_028_CS") else "Rejected"}

    def _stop_and_free(self, connector_id: int, reason: str) -> None:
        """Stop the connector's transaction: Finishing, StopTransaction, then Available (or
        Unavailable when made Inoperative meanwhile); Finishing stays while the cable is in."""
        stop = self.stop_transaction(connector_id, reason)
        if stop is not None:
            self.parents.pop(connector_id, None)
            self.pending.append(self.status(connector_id, "Finishing"))
            self.pending.append(stop)
            if connector_id not in self.plugged or self._unavailable(connector_id):
                self.pending.append(self.status(connector_id, self._resting_status(connector_id)))

    def _on_Reset(self, payload: dict[str, Any]) -> dict[str, Any]:
        # Section 5.14: stop transactions (reason SoftReset/HardReset), then reboot.
        hard = payload["type"] == "Hard"
        reason = "HardReset" if hard else "SoftReset"
        if self._fault("TC_015_CS" if hard else "TC_016_CS"):
            reason = "Other" if hard else "Reboot"
        for connector_id in list(self.transactions):
            stop = self.stop_transaction(connector_id, reason)
            if stop is not None:
                self.pending.append(stop)
        self.reset_requested = payload["type"]
        self._restart = payload["type"]
        return {"status": "Accepted"}

    def _on_UnlockConnector(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector_id = payload["connectorId"]
        if connector_id not in range(1, self.connectors + 1):
            return {"status": "Unlocked" if self._fault("TC_031_CS") else "NotSupported"}
        if connector_id in self.transactions:
            # Section 5.18: a transaction on the connector is stopped first.
            reason = "Local" if self._fault("TC_018_1_CS") else "UnlockCommand"
            self._stop_and_free(connector_id, reason)
        elif self._fault("TC_017_1_CS"):
            return {"status": "UnlockFailed"}
        return {"status": "Unlocked"}

    # The feature profiles beyond Core: firmware, local list, reservations, smart charging,
    # remote trigger (OCPP 1.6 sections 5.4-5.19)

    FIRMWARE_REBOOT_S = 3.0  # Installed is due this long after the reboot began
    MAX_SCHEDULED = 100  # timed calls kept (reservation expiries, firmware)
    MAX_PROFILES_KEPT = 100  # charging profiles, whatever MaxChargingProfilesInstalled says

    def _on_GetDiagnostics(self, payload: dict[str, Any]) -> dict[str, Any]:
        ended = "UploadFailed" if self._fault("TC_045_1_CS") else "Uploaded"
        for status in ("Uploading", ended):
            self.pending.append(self.call("DiagnosticsStatusNotification", {"status": status}))
        return {"fileName": f"diagnostics-{self.identity}.log"[:255]}

    def _on_UpdateFirmware(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Section 5.19: download, install (at once, whatever retrieveDate), reboot (a hard
        reset: the I/O layer reconnects and boots), and report Installed once booted again."""
        for status in ("Downloading", "Downloaded", "Installing"):
            self.pending.append(self.call("FirmwareStatusNotification", {"status": status}))
        installed = self.call("FirmwareStatusNotification", {"status": "Installed"})
        if not self.guided or self._fault("TC_044_1_CS"):
            # The scenarios' charger keeps its session (no reboot), as does TC_044_1_CS's fault.
            self.pending.append(installed)
            return {}
        for connector_id in list(self.transactions):
            stop = self.stop_transaction(connector_id, "Reboot")
            if stop is not None:
                self.pending.append(stop)
        self.reset_requested = self._restart = "Hard"
        self._schedule(self.FIRMWARE_REBOOT_S, installed)
        return {}

    def _schedule(self, seconds: float, call: Call) -> None:
        """Send `call` `seconds` from now (on `clock`), once booted: the list `due` drains,
        each entry (the wall-clock time as a POSIX timestamp, the call)."""
        if getattr(self, "scheduled", None) is None:
            self.scheduled: list[tuple[float, Call]] = []
        self.scheduled.append((self.clock().timestamp() + seconds, call))
        self.scheduled.sort(key=lambda entry: entry[0])
        del self.scheduled[self.MAX_SCHEDULED :]

    def _on_GetLocalListVersion(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Section 5.10: -1 when the list is not in use, 0 when it is empty."""
        enabled = self.configuration["LocalAuthListEnabled"].value == "true"
        if not enabled and not self._fault("TC_042_1_CS"):
            return {"listVersion": -1}
        empty = not getattr(self, "local_list_size", 0)
        if empty and not self._fault("TC_042_2_CS"):
            return {"listVersion": 0}
        return {"listVersion": self.local_list_version}

    def _on_SendLocalList(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Section 5.15: a Full list replaces the list; a Differential one, newer than the
        list, adds or updates the entries with an idTagInfo and removes those without."""
        version, update = payload["listVersion"], payload["updateType"]
        entries = payload.get("localAuthorizationList", [])
        if len(entries) > self._seconds("SendLocalListMaxLength"):
            return {"status": "Failed"}
        if update == "Differential":
            if version <= self.local_list_version and not self._fault("TC_043_2_CS"):
                return {"status": "VersionMismatch"}
            if self._fault("TC_043_CS") and any("idTagInfo" not in e for e in entries):
                return {"status": "Failed"}
        listed = dict(self._local_list()) if update == "Differential" else {}
        for entry in entries:
            if isinstance(entry.get("idTagInfo"), dict):
                listed[entry["idTag"]] = entry["idTagInfo"]
            else:
                listed.pop(entry["idTag"], None)
        if len(listed) > self._seconds("LocalAuthListMaxLength"):
            return {"status": "Failed"}
        self.local_list_version = version
        self.local_list_size = len(listed)
        # TC_008_CS's fault: the list is kept (its version and size) but never consulted.
        self.local_list = {} if self._fault("TC_008_CS") else listed
        return {"status": "Accepted"}

    def _local_list(self) -> dict[str, dict[str, Any]]:
        """The local authorization list (section 3.5): idTag -> idTagInfo."""
        listed: dict[str, dict[str, Any]] = getattr(self, "local_list", {})
        return listed

    def _listed(self, id_tag: str) -> dict[str, Any] | None:
        """The idTagInfo with which the local list lets `id_tag` start at once, without an
        Authorize (section 3.5.2: LocalAuthListEnabled and LocalPreAuthorize, the entry
        Accepted and not expired); None when it does not. A card is tried here before the
        authorization cache (`_present`)."""
        enabled = self.configuration["LocalAuthListEnabled"].value == "true"
        pre = self.configuration["LocalPreAuthorize"].value == "true"
        info = self._local_list().get(id_tag) if enabled and pre else None
        if info is None or info.get("status") != "Accepted":
            return None
        expiry = self._parse_time(info.get("expiryDate"))
        return info if expiry is None or expiry > self.clock() else None

    def _on_ReserveNow(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Section 5.13: Faulted, Unavailable or Occupied as the connector is; connector 0
        only with ReserveConnectorZeroSupported; the same reservationId replaces one."""
        self._expire_reservations()
        connector_id, reservation_id = payload["connectorId"], payload["reservationId"]
        refusal = self._refuse_reservation(connector_id, reservation_id)
        if refusal is not None:
            return {"status": refusal}
        self._drop_reservation(reservation_id)
        expiry = self._parse_time(payload["expiryDate"]) or self.clock()
        ended: str | None = None
        if not self._fault("TC_046_1_CS"):  # its fault: StartTransaction names no reservation
            self.reservations[reservation_id] = connector_id
        if connector_id > 0:
            self.pending.append(self.status(connector_id, "Reserved"))
            if not self._fault("TC_047_CS"):  # its fault: the reservation never expires
                call = self.call(
                    "StatusNotification",
                    {
                        "connectorId": connector_id,
                        "errorCode": "NoError",
                        "status": "Available",
                        "timestamp": format_time(expiry),
                    },
                )
                self._schedule(max(0.0, (expiry - self.clock()).total_seconds()), call)
                ended = call.unique_id
        self._booked()[reservation_id] = (connector_id, payload["idTag"], expiry, ended)
        return {"status": "Accepted"}

    def _refuse_reservation(self, connector_id: int, reservation_id: int) -> str | None:
        if connector_id == 0:
            supported = self.configuration["ReserveConnectorZeroSupported"].value == "true"
            return None if supported or self._fault("TC_049_CS") else "Rejected"
        if connector_id not in range(1, self.connectors + 1):
            return "Rejected"
        state = self.statuses.get(connector_id)
        if state == "Faulted":
            return "Faulted"
        if self._unavailable(connector_id) and not self._fault("TC_048_3_CS"):
            return "Unavailable"
        if connector_id in self.transactions:
            return "Occupied"
        busy = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"}
        if state in busy and not self._fault("TC_048_2_CS"):
            return "Occupied"  # its fault: only a transaction counts, not a cable plugged in
        others = [rid for rid, booked in self._booked().items() if booked[0] == connector_id]
        return "Occupied" if others and reservation_id not in others else None

    def _on_CancelReservation(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._expire_reservations()
        booked = self._booked().get(payload["reservationId"])
        if booked is None:
            return {"status": "Accepted" if self._fault("TC_052_CS") else "Rejected"}
        self._drop_reservation(payload["reservationId"])
        if booked[0] > 0 and not self._fault("TC_051_CS"):  # its fault: stays Reserved
            self.pending.append(self.status(booked[0], self._resting_status(booked[0])))
        return {"status": "Accepted"}

    def _booked(self) -> dict[int, tuple[int, str, datetime.datetime, str | None]]:
        """Reservations made: reservationId -> (connectorId, idTag, expiryDate, the unique id
        of the StatusNotification scheduled for the expiry). A transaction that starts takes
        its reservation out of `reservations` (start_transaction)."""
        if getattr(self, "booked", None) is None:
            self.booked: dict[int, tuple[int, str, datetime.datetime, str | None]] = {}
        return self.booked

    def _drop_reservation(self, reservation_id: int) -> None:
        """End a reservation before its expiry: its expiry notification is not sent."""
        booked = self._booked().pop(reservation_id, None)
        self.reservations.pop(reservation_id, None)
        ended = booked[3] if booked is not None else None
        scheduled: list[tuple[float, Call]] = getattr(self, "scheduled", [])
        if ended is not None:
            scheduled[:] = [entry for entry in scheduled if entry[1].unique_id != ended]
            self.forget(ended)

    def _expire_reservations(self) -> None:
        """Forget the reservations that expired (their expiry notification went out of
        `scheduled`), and those of a connector no longer Reserved (its card came, or it was
        made Inoperative): a transaction on its way still takes its reservationId from
        `reservations`."""
        waiting = {call.unique_id for _, call in getattr(self, "scheduled", [])}
        for reservation_id, (connector_id, _, _, ended) in list(self._booked().items()):
            if ended is not None and ended not in waiting:
                del self._booked()[reservation_id]
                self.reservations.pop(reservation_id, None)
                if self.statuses.get(connector_id) == "Reserved":
                    self.statuses[connector_id] = self._resting_status(connector_id)
            elif connector_id > 0 and self.statuses.get(connector_id) != "Reserved":
                starting = connector_id in self.waiting
                kept = self.reservations.get(reservation_id)
                self._drop_reservation(reservation_id)
                if starting and kept is not None:
                    self.reservations[reservation_id] = kept

    @staticmethod
    def _parse_time(value: Any) -> datetime.datetime | None:
        if not isinstance(value, str) or len(value) > 40:
            return None
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)

    def _on_SetChargingProfile(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Section 5.16 / 3.13: a profile replaces the one of the same id, or of the same
        connector, purpose and stack level; a TxProfile needs the transaction it is for."""
        connector_id, profile = payload["connectorId"], payload["csChargingProfiles"]
        purpose = profile["chargingProfilePurpose"]
        schedule = profile["chargingSchedule"]
        limits = (
            self._seconds("ChargeProfileMaxStackLevel"),
            self._seconds("ChargingScheduleMaxPeriods"),
        )
        if (
            connector_id not in range(self.connectors + 1)
            or (purpose == "ChargePointMaxProfile" and connector_id != 0)
            or profile["stackLevel"] > limits[0]
            or len(schedule["chargingSchedulePeriod"]) > limits[1]
        ):
            return {"status": "Rejected"}
        if purpose == "TxProfile" and not self._fault("TC_058_1_CS"):
            transaction = self.transactions.get(connector_id)
            wanted = profile.get("transactionId")
            if transaction is None or wanted not in (None, transaction.transaction_id):
                return {"status": "Rejected"}  # its fault: accepted with no transaction
        profiles = self._profiles()
        same = (connector_id, purpose, profile["stackLevel"])
        for number, (connector, kept, _) in list(profiles.items()):
            slot = (connector, kept["chargingProfilePurpose"], kept["stackLevel"])
            if number == profile["chargingProfileId"] or slot == same:
                del profiles[number]
        room = min(self._seconds("MaxChargingProfilesInstalled"), self.MAX_PROFILES_KEPT)
        if len(profiles) >= room:
            return {"status": "Rejected"}
        profiles[profile["chargingProfileId"]] = (connector_id, profile, self.clock())
        self.charging_profiles = len(profiles)
        return {"status": "Accepted"}

    def _on_ClearChargingProfile(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Section 5.5: by id, or every profile matching all the criteria given."""
        profiles = self._profiles()
        if "id" in payload:
            matching = [payload["id"]] if payload["id"] in profiles else []
        elif self._fault("TC_067_CS") and payload:
            matching = []  # its fault: criteria are answered Accepted but clear nothing
            if profiles:
                return {"status": "Accepted"}
        else:
            criteria: dict[str, Callable[[Any], Any]] = {
                "connectorId": lambda entry: entry[0],
                "chargingProfilePurpose": lambda entry: entry[1]["chargingProfilePurpose"],
                "stackLevel": lambda entry: entry[1]["stackLevel"],
            }
            matching = [
                number
                for number, entry in profiles.items()
                if all(
                    read(entry) == payload[key] for key, read in criteria.items() if key in payload
                )
            ]
        for number in matching:
            del profiles[number]
        self.charging_profiles = len(profiles)
        return {"status": "Accepted" if matching else "Unknown"}

    def _on_GetCompositeSchedule(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Section 3.13.4 / 5.7: the limits of the profiles that apply, period by period: the
        highest stack level of each purpose, a TxProfile over a TxDefaultProfile, capped by
        the ChargePointMaxProfile and the charger's own maximum."""
        connector_id, duration = payload["connectorId"], payload["duration"]
        if connector_id not in range(self.connectors + 1):
            return {"status": "Rejected"}
        unit = payload.get("chargingRateUnit", "A")
        start = self.clock().replace(microsecond=0)
        periods: list[dict[str, Any]] = []
        for offset in self._breakpoints(start, duration):
            limit = self._composite_limit(
                connector_id, start + datetime.timedelta(seconds=offset), unit
            )
            if not periods or periods[-1]["limit"] != limit:
                periods.append({"startPeriod": offset, "limit": limit})
        return {
            "status": "Accepted",
            "connectorId": connector_id,
            "scheduleStart": format_time(start),
            "chargingSchedule": {
                "duration": duration,
                "startSchedule": format_time(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        }

    def _profiles(self) -> dict[int, tuple[int, dict[str, Any], datetime.datetime]]:
        """Charging profiles installed: id -> (connectorId, profile, when it was set)."""
        if getattr(self, "installed_profiles", None) is None:
            self.installed_profiles: dict[int, tuple[int, dict[str, Any], datetime.datetime]] = {}
        return self.installed_profiles

    def _breakpoints(self, start: datetime.datetime, duration: int) -> list[int]:
        """The seconds after `start` at which some profile's limit may change."""
        moments = {0}
        for _, profile, received in self._profiles().values():
            begin = self._schedule_start(profile, received, start)
            schedule = profile["chargingSchedule"]
            edges = [
                begin + datetime.timedelta(seconds=p["startPeriod"])
                for p in schedule["chargingSchedulePeriod"]
            ]
            if "duration" in schedule:
                edges.append(begin + datetime.timedelta(seconds=schedule["duration"]))
            for key in ("validFrom", "validTo"):
                moment = self._parse_time(profile.get(key))
                if moment is not None:
                    edges.append(moment)
            for edge in edges:
                seconds = -int((start - edge).total_seconds() // 1)  # rounded up
                if 0 < seconds < duration:
                    moments.add(seconds)
        return sorted(moments)[:1000]

    def _schedule_start(
        self, profile: dict[str, Any], received: datetime.datetime, when: datetime.datetime
    ) -> datetime.datetime:
        """When the profile's schedule begins, for the moment `when` (section 7.13: Absolute
        at startSchedule, Recurring at its latest recurrence; Relative here at the moment it
        was set, standing in for the start of the transaction)."""
        schedule = profile["chargingSchedule"]
        begin = self._parse_time(schedule.get("startSchedule")) or received
        kind = profile["chargingProfileKind"]
        if kind == "Relative":
            return received
        if kind == "Recurring" and when > begin:
            period = datetime.timedelta(days=7 if profile.get("recurrencyKind") == "Weekly" else 1)
            begin += ((when - begin) // period) * period
        return begin

    def _composite_limit(self, connector_id: int, when: datetime.datetime, unit: str) -> float:
        def best(purpose: str, connector: int) -> float | None:
            found = [
                (kept["stackLevel"], self._limit_of(kept, received, when, unit))
                for number, (on, kept, received) in self._profiles().items()
                if on == connector and kept["chargingProfilePurpose"] == purpose
            ]
            found = [(level, limit) for level, limit in found if limit is not None]
            if not found:
                return None
            pick = min if self._fault("TC_072_CS") else max  # its fault: lowest level wins
            return pick(found, key=lambda item: item[0])[1]

        tx = None
        transaction = self.transactions.get(connector_id)
        if transaction is not None and not self._fault("TC_057_CS"):
            tx = best("TxProfile", connector_id)
        if tx is None:
            tx = best("TxDefaultProfile", connector_id)
        if tx is None and not self._fault("TC_056_CS"):  # its fault: connector 0 is ignored
            tx = best("TxDefaultProfile", 0)
        cap = None if self._fault("TC_066_CS") else best("ChargePointMaxProfile", 0)
        hardware = 32.0 if unit == "A" else POWER_W
        return round(min(limit for limit in (tx, cap, hardware) if limit is not None), 1)

    def _limit_of(
        self,
        profile: dict[str, Any],
        received: datetime.datetime,
        when: datetime.datetime,
        unit: str,
    ) -> float | None:
        """The profile's limit at `when` in `unit` (A <-> W at 230 V per phase); None when it
        does not apply then."""
        valid_from = self._parse_time(profile.get("validFrom"))
        valid_to = self._parse_time(profile.get("validTo"))
        if (valid_from and when < valid_from) or (valid_to and when >= valid_to):
            return None
        schedule = profile["chargingSchedule"]
        offset = (when - self._schedule_start(profile, received, when)).total_seconds()
        if offset < 0 or ("duration" in schedule and offset >= schedule["duration"]):
            return None
        chosen = None
        for period in sorted(schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"]):
            if period["startPeriod"] <= offset:
                chosen = period
        if chosen is None:
            return None
        limit = float(chosen["limit"])
        volts = VOLTAGE_V * float(chosen.get("numberPhases", 3))
        if schedule["chargingRateUnit"] == unit:
            return limit
        return limit * volts if unit == "W" else limit / volts

    def _on_TriggerMessage(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._trigger(payload["requestedMessage"], payload.get("connectorId"))

    def _on_ExtendedTriggerMessage(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._trigger(payload["requestedMessage"], payload.get("connectorId"), True)

    def _trigger(
        self, requested: str, connector_id: int | None, extended: bool = False
    ) -> dict[str, Any]:
        """Section 5.17 (and the security whitepaper's 5.2): send the requested message."""
        self._expire_reservations()
        if connector_id is not None and connector_id not in self.statuses:
            # TC_055_CS's fault: Accepted for a connector it does not have (and nothing sent)
            return {"status": "Accepted" if self._fault("TC_055_CS") else "Rejected"}
        if requested == "DiagnosticsStatusNotification" and self._fault("TC_054_CS"):
            return {"status": "Accepted"}  # its fault: accepted, but nothing follows
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
        yield Sleep(0.5 if model._fault("TC_001_CS") else model.heartbeat_interval)
    for connector_id in range(model.connectors + 1):
        yield Send(model.status(connector_id))


def session(model: ChargerModel, timing: Timing) -> Iterator[Step]:
    """Charging sessions: authorize, start, meter values, stop; again. Once the model is
    guided (checks run on it), the session in progress ends and it does nothing by itself."""
    while not model.guided:
        yield Sleep(timing.pause)
        if model.transaction_on(1) is None and not model.guided:
            yield Send(model.authorize())
            yield Send(model.status(1, "Preparing"))
            yield Send(model.start_transaction(1))
            yield Send(model.status(1, "Charging"))
        for _ in range(timing.samples):
            if model.transaction_on(1) is None or model.guided:
                break
            yield Sleep(timing.meter_interval)
            if model.transaction_on(1) is None or model.guided:
                break
            yield Send(model.meter_values(1))
        stop = model.stop_transaction(1, "Local")
        if stop is not None:
            yield Send(model.status(1, "Finishing"))
            yield Send(stop)
            yield Send(model.status(1, "Available"))
    yield from guided(model, timing)


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


def guided(model: ChargerModel, timing: Timing) -> Iterator[Step]:
    """Nothing by itself: heartbeats, and what the person's acts (`ChargerModel.act`), the
    timed behaviour (`ChargerModel.due`) and the central system's calls cause."""
    while True:
        yield Sleep(3600.0)


SCENARIO_BODIES: dict[str, Callable[[ChargerModel, Timing], Iterator[Step]]] = {
    "guided": guided,
    "session": session,
    "heartbeat": heartbeats,
    "meter-values": meter_values,
    "mix": mix,
}


def scenario_steps(name: str, model: ChargerModel, timing: Timing) -> Iterator[Step]:
    """Every step of a scenario: the boot sequence, then the scenario's body, forever."""
    yield from boot_sequence(model)
    yield from SCENARIO_BODIES[name](model, timing)
