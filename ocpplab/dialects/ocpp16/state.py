"""The charger-state reducer: what the frames say about the charger. Pure, no I/O.

Fed every charger CALL together with the answer the charger received, it keeps what a
person wants to see at a glance: boot info, connector statuses, transactions and the
latest meter readings. It is tolerant: odd payloads update what they can and never raise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

MAX_TRANSACTIONS = 10
# What a charger cannot stretch: it is sent to pages and written to the broker often.
MAX_CONNECTORS = 64
MAX_METER_READINGS = 64
MAX_METER_VALUES_READ = 16  # of one MeterValues: its last meterValue entries
MAX_SAMPLES_READ = 256  # of one meterValue: its first sampledValue entries
MAX_TEXT = 120  # characters of any text the state keeps from a payload


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _small(value: Any) -> Any:
    """A payload value as the state keeps it: atoms as they are, long text cut, the rest text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text(value)


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
    repeated_stops: int = 0  # StopTransactions received again for this stopped transaction


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

    def apply(self, action: str, request: Any, answer: Any, at: str) -> str | None:
        """Take in one charger call and the CALLRESULT payload it got (None if none).

        Returns a note for the person when the call repeats what the state already knows.
        """
        if not isinstance(request, dict):
            return None
        answer = answer if isinstance(answer, dict) else None
        handler = _HANDLERS.get(action)
        return handler(self, request, answer, at) if handler is not None else None

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
        self.boot = {key: _small(request[key]) for key in keys if key in request}
        if answer is not None:
            self.boot_status = _text(answer.get("status"))

    def _on_Heartbeat(self, request: dict[str, Any], answer: Any, at: str) -> None:
        self.last_heartbeat = at

    def _on_StatusNotification(self, request: dict[str, Any], answer: Any, at: str) -> None:
        connector_id = request.get("connectorId")
        if not isinstance(connector_id, int) or (
            connector_id not in self.connectors and len(self.connectors) >= MAX_CONNECTORS
        ):
            return
        info = request.get("info")
        self.connectors[connector_id] = Connector(
            status=_text(request.get("status", "Unknown")),
            error_code=_text(request.get("errorCode", "NoError")),
            info=None if info is None else _text(info),
            timestamp=_text(request.get("timestamp") or at),
        )

    def _on_StartTransaction(self, request: dict[str, Any], answer: Any, at: str) -> None:
        transaction_id = answer.get("transactionId") if answer else None
        self.transactions.insert(
            0,
            Transaction(
                transaction_id=transaction_id if isinstance(transaction_id, int) else None,
                connector_id=_small(request.get("connectorId")),
                id_tag=_small(request.get("idTag")),
                meter_start=_small(request.get("meterStart")),
                started=_small(request.get("timestamp") or at),
            ),
        )
        del self.transactions[MAX_TRANSACTIONS:]

    def _on_StopTransaction(self, request: dict[str, Any], answer: Any, at: str) -> str | None:
        transaction_id = request.get("transactionId")
        known = [item for item in self.transactions if item.transaction_id == transaction_id]
        for transaction in known:
            if transaction.stopped is None:
                transaction.meter_stop = _small(request.get("meterStop"))
                transaction.stopped = _small(request.get("timestamp") or at)
                transaction.reason = _small(request.get("reason"))
                return None
        if known:
            # Chargers (and a widely used simulator) send the Stop twice (QUIRKS.md).
            stopped = known[0]
            stopped.repeated_stops += 1
            if stopped.reason is None and request.get("reason") is not None:
                stopped.reason = _small(request.get("reason"))
            return (
                f"a repeated StopTransaction for transaction {_text(transaction_id)}, "
                f"which was stopped at {stopped.stopped}"
            )
        unknown = Transaction(
            transaction_id if isinstance(transaction_id, int) else None,
            None,
            _small(request.get("idTag")),
            None,
            None,
        )
        unknown.meter_stop = _small(request.get("meterStop"))
        unknown.stopped = _small(request.get("timestamp") or at)
        unknown.reason = _small(request.get("reason") or "stop for an unknown transaction")
        self.transactions.insert(0, unknown)
        del self.transactions[MAX_TRANSACTIONS:]
        return None

    def _on_MeterValues(self, request: dict[str, Any], answer: Any, at: str) -> None:
        meter_values = request.get("meterValue")
        if not isinstance(meter_values, list):
            return
        # The latest readings, read from a bounded part: the loop must not walk a megabyte.
        for meter_value in meter_values[-MAX_METER_VALUES_READ:]:
            if not isinstance(meter_value, dict):
                continue
            self.meter_timestamp = _text(meter_value.get("timestamp") or at)
            samples = meter_value.get("sampledValue")
            for sample in samples[:MAX_SAMPLES_READ] if isinstance(samples, list) else ():
                if isinstance(sample, dict) and "value" in sample:
                    name = _text(sample.get("measurand", "Energy.Active.Import.Register"))
                    if sample.get("phase"):
                        name += f" ({_text(sample['phase'])})"
                    if name not in self.meter and len(self.meter) >= MAX_METER_READINGS:
                        continue
                    unit = sample.get("unit", "Wh" if name.startswith("Energy") else "")
                    self.meter[name] = _text(f"{_text(sample['value'])} {_text(unit)}".strip())

    def _on_FirmwareStatusNotification(self, request: dict[str, Any], answer: Any, at: str) -> None:
        self.firmware_status = _text(request.get("status"))

    def _on_DiagnosticsStatusNotification(
        self, request: dict[str, Any], answer: Any, at: str
    ) -> None:
        self.diagnostics_status = _text(request.get("status"))

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


_HANDLERS: dict[str, Callable[[ChargerState, dict[str, Any], Any, str], str | None]] = {
    name.removeprefix("_on_"): getattr(ChargerState, name)
    for name in dir(ChargerState)
    if name.startswith("_on_")
}
