"""The charger-state reducer: what the frames say about the charger. Pure, no I/O.

Fed every charger CALL together with the answer the charger received, it keeps what a
person wants to see at a glance: boot info, connector statuses, transactions and the
latest meter readings. It is tolerant: odd payloads update what they can and never raise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MAX_TRANSACTIONS = 10


@dataclasses.dataclass(slots=True)
class Connector:
    status: str = "Unknown"
    error_code: str = "NoError"
    info: str | None = None
    timestamp: str | None = None


@dataclasses.dataclass(slots=True)
class Transaction:
    transaction_id: int | None
    connector_id: Any
    id_tag: Any
    meter_start: Any
    started: Any
    meter_stop: Any = None
    stopped: Any = None
    reason: Any = None


@dataclasses.dataclass(slots=True)
class ChargerState:
    """Derived state of one charger, rebuilt from frames after every (re)connect."""

    boot: dict[str, Any] | None = None
    boot_status: str | None = None
    last_heartbeat: str | None = None
    connectors: dict[int, Connector] = dataclasses.field(default_factory=dict)
    transactions: list[Transaction] = dataclasses.field(default_factory=list)
    meter: dict[str, str] = dataclasses.field(default_factory=dict)
    meter_timestamp: str | None = None
    firmware_status: str | None = None
    diagnostics_status: str | None = None

    def apply(self, action: str, request: Any, answer: Any, at: str) -> None:
        """Take in one charger call and the CALLRESULT payload it got (None if none)."""
        if not isinstance(request, dict):
            return
        answer = answer if isinstance(answer, dict) else None
        handler = getattr(self, f"_on_{action}", None)
        if handler is not None:
            handler(request, answer, at)

    def _on_BootNotification(self, request: dict[str, Any], answer: Any, at: str) -> None:
        keys = (
            "chargePointVendor",
            "chargePointModel",
            "chargePointSerialNumber",
            "chargeBoxSerialNumber",
            "firmwareVersion",
            "iccid",
            "imsi",
            "meterType",
            "meterSerialNumber",
        )
        self.boot = {key: request[key] for key in keys if key in request}
        if answer is not None:
            self.boot_status = str(answer.get("status"))

    def _on_Heartbeat(self, request: dict[str, Any], answer: Any, at: str) -> None:
        self.last_heartbeat = at

    def _on_StatusNotification(self, request: dict[str, Any], answer: Any, at: str) -> None:
        connector_id = request.get("connectorId")
        if not isinstance(connector_id, int):
            return
        self.connectors[connector_id] = Connector(
            status=str(request.get("status", "Unknown")),
            error_code=str(request.get("errorCode", "NoError")),
            info=request.get("info"),
            timestamp=request.get("timestamp") or at,
        )

    def _on_StartTransaction(self, request: dict[str, Any], answer: Any, at: str) -> None:
        transaction_id = answer.get("transactionId") if answer else None
        self.transactions.insert(
            0,
            Transaction(
                transaction_id=transaction_id if isinstance(transaction_id, int) else None,
                connector_id=request.get("connectorId"),
                id_tag=request.get("idTag"),
                meter_start=request.get("meterStart"),
                started=request.get("timestamp") or at,
            ),
        )
        del self.transactions[MAX_TRANSACTIONS:]

    def _on_StopTransaction(self, request: dict[str, Any], answer: Any, at: str) -> None:
        transaction_id = request.get("transactionId")
        for transaction in self.transactions:
            if transaction.transaction_id == transaction_id and transaction.stopped is None:
                transaction.meter_stop = request.get("meterStop")
                transaction.stopped = request.get("timestamp") or at
                transaction.reason = request.get("reason")
                return
        unknown = Transaction(transaction_id, None, request.get("idTag"), None, None)
        unknown.meter_stop = request.get("meterStop")
        unknown.stopped = request.get("timestamp") or at
        unknown.reason = request.get("reason") or "stop for an unknown transaction"
        self.transactions.insert(0, unknown)
        del self.transactions[MAX_TRANSACTIONS:]

    def _on_MeterValues(self, request: dict[str, Any], answer: Any, at: str) -> None:
        meter_values = request.get("meterValue")
        if not isinstance(meter_values, list):
            return
        for meter_value in meter_values:
            if not isinstance(meter_value, dict):
                continue
            self.meter_timestamp = str(meter_value.get("timestamp") or at)
            for sample in meter_value.get("sampledValue") or []:
                if isinstance(sample, dict) and "value" in sample:
                    name = str(sample.get("measurand", "Energy.Active.Import.Register"))
                    if sample.get("phase"):
                        name += f" ({sample['phase']})"
                    unit = sample.get("unit", "Wh" if name.startswith("Energy") else "")
                    self.meter[name] = f"{sample['value']} {unit}".strip()

    def _on_FirmwareStatusNotification(self, request: dict[str, Any], answer: Any, at: str) -> None:
        self.firmware_status = str(request.get("status"))

    def _on_DiagnosticsStatusNotification(
        self, request: dict[str, Any], answer: Any, at: str
    ) -> None:
        self.diagnostics_status = str(request.get("status"))

    def to_json(self) -> dict[str, Any]:
        # What dataclasses.asdict gives, built by hand: it runs after every charger call,
        # and asdict's generic deep copy was a third of the server's time under load.
        data = {name: getattr(self, name) for name in _STATE_FIELDS}
        data["boot"] = dict(self.boot) if self.boot is not None else None
        data["meter"] = dict(self.meter)
        data["transactions"] = [_fields_of(item) for item in self.transactions]
        data["connectors"] = {
            str(key): _fields_of(value) for key, value in sorted(self.connectors.items())
        }
        return data


def _fields_of(item: Any) -> dict[str, Any]:
    return {field.name: getattr(item, field.name) for field in dataclasses.fields(item)}


_STATE_FIELDS = tuple(field.name for field in dataclasses.fields(ChargerState))
