"""The charger-state reducer: what the frames say about the charger. Pure, no I/O.

Fed every charger CALL together with the answer the charger received, it keeps what a
person wants to see at a glance: boot info, connector statuses, transactions and the
latest meter readings, and each connector's meter samples of its latest transaction for a
chart (`MeterSamples`: power, energy and SoC in W, Wh and %; `samples` in the JSON, absent
until a transaction is charted). It is tolerant: odd payloads update what they can and
never raise.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

MAX_TRANSACTIONS = 10
# What a charger cannot stretch: it is sent to pages and written to the broker often.
MAX_CONNECTORS = 64
MAX_METER_READINGS = 64
MAX_METER_VALUES_READ = 16  # of one MeterValues: its last meterValue entries
MAX_SAMPLES_READ = 256  # of one meterValue: its first sampledValue entries
MAX_TEXT = 120  # characters of any text the state keeps from a payload
# The meter samples charted per connector (`MeterSamples`): each state sent to a page holds
# at most MAX_CHARTED_CONNECTORS x 3 series x MAX_METER_POINTS points (~30 bytes each).
MAX_METER_POINTS = 240  # per series; the oldest are dropped
MAX_CHARTED_CONNECTORS = 4  # connectors with samples; a stopped transaction's go first
MAX_NUMBER_TEXT = 32  # characters of a sampled value read as a number
MAX_MAGNITUDE = 1e12  # W, Wh or %: beyond it a value is not a meter reading


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
class MeterSamples:
    """One connector's meter samples during its latest transaction, for a chart.

    Points are `[t, value]`: seconds since the transaction started (by the charger's
    clock), and W (power), Wh (the energy register) or % (SoC); kept sorted by `t`, one
    per `t` (a sample sent again replaces the first), at most MAX_METER_POINTS per series.
    """

    transaction_id: int | None
    started: str
    origin: float | None  # POSIX seconds of t = 0; None until a timestamp is read
    energy_start: float | None = None  # Wh: meterStart, else the first register read
    stopped: bool = False
    power: list[list[float]] = dataclasses.field(default_factory=list)
    energy: list[list[float]] = dataclasses.field(default_factory=list)
    soc: list[list[float]] = dataclasses.field(default_factory=list)

    def add(self, series: str, at: float | None, value: float) -> None:
        if at is None:
            return
        if self.origin is None:
            self.origin = at
        points: list[list[float]] = getattr(self, series)
        point = [round(at - self.origin, 1), round(value, 1)]
        index = bisect.bisect_left(points, point[0], key=_time_of)
        if index < len(points) and points[index][0] == point[0]:
            points[index] = point  # replaced, never changed: to_json shares the points
        else:
            points.insert(index, point)
            del points[:-MAX_METER_POINTS]

    def to_json(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "started": self.started,
            "stopped": self.stopped,
            "energy_start": self.energy_start,
            "power": list(self.power),
            "energy": list(self.energy),
            "soc": list(self.soc),
        }


def _time_of(point: list[float]) -> float:
    return point[0]


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
    samples: dict[int, MeterSamples] = dataclasses.field(default_factory=dict)

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
        connector_id = request.get("connectorId")
        if _connector(connector_id):
            started = request.get("timestamp") or at
            samples = self._new_samples(
                connector_id,
                transaction_id if _integer(transaction_id) else None,
                _text(started),
                _seconds(started, at),
            )
            meter_start = _number(request.get("meterStart"))
            if meter_start is not None:
                samples.energy_start = meter_start
                samples.add("energy", samples.origin, meter_start)

    def _on_StopTransaction(self, request: dict[str, Any], answer: Any, at: str) -> str | None:
        self._stop_samples(request, at)  # also of a transaction started before this connection
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
        self._chart_meter_values(request, meter_values[-MAX_METER_VALUES_READ:], at)

    def _new_samples(
        self, connector_id: int, transaction_id: int | None, started: str, origin: float | None
    ) -> MeterSamples:
        """Start a connector's chart afresh (OCPP 1.6 §4.8: one transaction at a time)."""
        self.samples.pop(connector_id, None)
        if len(self.samples) >= MAX_CHARTED_CONNECTORS:
            stopped = [key for key, item in self.samples.items() if item.stopped]
            del self.samples[stopped[0] if stopped else next(iter(self.samples))]
        samples = self.samples[connector_id] = MeterSamples(transaction_id, started, origin)
        return samples

    def _chart_meter_values(
        self, request: dict[str, Any], meter_values: list[Any], at: str
    ) -> None:
        """Add a MeterValues' samples to its connector's chart (OCPP 1.6 §4.7, §7.31).

        Samples join the connector's running transaction; a transactionId the chart does
        not know starts a new one (the StartTransaction was not seen on this connection).
        Clock-aligned samples outside a transaction are not charted.
        """
        connector_id = request.get("connectorId")
        if not _connector(connector_id):
            return
        transaction_id = request.get("transactionId")
        transaction_id = (
            transaction_id if _connector(transaction_id) or transaction_id == 0 else None
        )
        samples = self.samples.get(connector_id)
        if samples is not None and samples.transaction_id is None and not samples.stopped:
            samples.transaction_id = transaction_id
        if transaction_id is not None and (
            samples is None or samples.transaction_id != transaction_id
        ):
            first = next((item for item in meter_values if isinstance(item, dict)), {})
            started = first.get("timestamp") or at
            samples = self._new_samples(connector_id, transaction_id, _text(started), None)
        if samples is not None and not samples.stopped:
            _add_meter_values(samples, meter_values, at)

    def _stop_samples(self, request: dict[str, Any], at: str) -> None:
        """A stopped transaction's transactionData and meterStop close its chart (§6.49)."""
        transaction_id = request.get("transactionId")
        for samples in self.samples.values():
            if samples.transaction_id == transaction_id and not samples.stopped:
                data = request.get("transactionData")
                if isinstance(data, list):
                    _add_meter_values(samples, data[-MAX_METER_VALUES_READ:], at)
                meter_stop = _number(request.get("meterStop"))
                if meter_stop is not None:
                    samples.add("energy", _seconds(request.get("timestamp"), at), meter_stop)
                samples.stopped = True
                return

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
        # Absent until a transaction is charted: most states stay as small as before.
        del data["samples"]
        if self.samples:
            data["samples"] = {
                str(key): value.to_json() for key, value in sorted(self.samples.items())
            }
        return data


def _connector(value: Any) -> TypeGuard[int]:
    """A connector id that can have transactions (OCPP 1.6 §7.2: above zero)."""
    return _integer(value) and value > 0


def _integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _number(value: Any) -> float | None:
    """A sampled value as a number; None for anything else ("abc", NaN, a list, 1e300).

    OCPP 1.6 §7.47 sends values as text; some chargers send JSON numbers.
    """
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMBER_TEXT or not _DECIMAL.fullmatch(text):
            return None
        number = float(text)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_MAGNITUDE else None


def _seconds(timestamp: Any, at: str) -> float | None:
    """POSIX seconds of the charger's `timestamp`, or of `at` when it sent none we can read."""
    for text in (timestamp, at):
        if isinstance(text, str) and len(text) <= 40:
            try:
                moment = datetime.datetime.fromisoformat(text)
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.UTC)
            return moment.timestamp()
    return None


# Measurand -> (series, {unit, lower case: factor to W, Wh or %}, its default unit); §7.31.
_CHARTED: dict[str, tuple[str, dict[str, float], str]] = {
    "Power.Active.Import": ("power", {"w": 1.0, "kw": 1000.0}, "w"),
    "Energy.Active.Import.Register": ("energy", {"wh": 1.0, "kwh": 1000.0}, "wh"),
    "SoC": ("soc", {"percent": 1.0, "%": 1.0}, "percent"),
}
_LINES = {"L1": "L1", "L2": "L2", "L3": "L3", "L1-N": "L1", "L2-N": "L2", "L3-N": "L3"}


def _add_meter_values(samples: MeterSamples, meter_values: Iterable[Any], at: str) -> None:
    for meter_value in meter_values:
        if not isinstance(meter_value, dict):
            continue
        sampled = meter_value.get("sampledValue")
        if not isinstance(sampled, list):
            continue
        moment = _seconds(meter_value.get("timestamp"), at)
        for series, value in _charted_values(sampled[:MAX_SAMPLES_READ]).items():
            samples.add(series, moment, value)
            if series == "energy" and samples.energy_start is None:
                samples.energy_start = value


def _charted_values(sampled: list[Any]) -> dict[str, float]:
    """One meterValue's power, energy and SoC, normalised to W, Wh and %.

    A total (no `phase`) is preferred; without one, L1, L2 and L3 (or L1-N…) are summed.
    Readings at the outlet (the default location, §7.28) win over readings elsewhere.
    """
    found: dict[str, tuple[int, dict[str, float]]] = {}  # series -> (location rank, by phase)
    for sample in sampled:
        if not isinstance(sample, dict) or sample.get("format") == "SignedData":
            continue
        measurand = sample.get("measurand", "Energy.Active.Import.Register")
        charted = _CHARTED.get(measurand) if isinstance(measurand, str) else None
        if charted is None:
            continue
        series, units, default_unit = charted
        unit = sample.get("unit", default_unit)
        factor = units.get(unit.lower()) if isinstance(unit, str) else None
        number = _number(sample.get("value"))
        phase = sample.get("phase")
        line = "total" if phase is None else _LINES.get(phase) if isinstance(phase, str) else None
        if factor is None or number is None or line is None:
            continue
        rank = 0 if sample.get("location", "Outlet") == "Outlet" else 1
        best = found.get(series)
        if best is None or rank < best[0]:
            best = found[series] = (rank, {})
        if rank == best[0]:
            best[1].setdefault(line, number * factor)
    values: dict[str, float] = {}
    for series, (_, by_line) in found.items():
        value = by_line["total"] if "total" in by_line else sum(by_line.values())
        if abs(value) <= MAX_MAGNITUDE:
            values[series] = value
    return values


def _fields_of(item: Any) -> dict[str, Any]:
    return {field.name: getattr(item, field.name) for field in dataclasses.fields(item)}


_STATE_FIELDS = tuple(field.name for field in dataclasses.fields(ChargerState))


_HANDLERS: dict[str, Callable[[ChargerState, dict[str, Any], Any, str], str | None]] = {
    name.removeprefix("_on_"): getattr(ChargerState, name)
    for name in dir(ChargerState)
    if name.startswith("_on_")
}
