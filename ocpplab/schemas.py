"""The one adapter to the `ocpp` package: OCPP 1.6 JSON schemas, actions and error codes.

The schemas are the official OCPP 1.6 (and 1.6 security whitepaper) schemas that the `ocpp`
package ships. A compiled validator (fastjsonschema) answers the common case, a payload that
is valid, quickly; only an invalid payload is walked again with `jsonschema` to list *every*
violation with its JSON path and the OCPP-J error code it maps to.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema

# OCPP-J 1.6, section 4.2.3 "CallError": the error codes a CALLERROR may carry. 1.6 spells
# "FormationViolation" and "OccurenceConstraintViolation" (sic); the `ocpp` package also
# offers later spellings, which a 1.6 charger may not know.
ERROR_CODES: tuple[str, ...] = (
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
)

# OCPP 1.6 section 3.1 feature profiles; the security whitepaper's messages last.
CHARGER_ACTIONS: tuple[str, ...] = (
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "SecurityEventNotification",
    "SignCertificate",
    "LogStatusNotification",
    "SignedFirmwareStatusNotification",
)

CENTRAL_ACTIONS_BY_PROFILE: dict[str, tuple[str, ...]] = {
    "Core": (
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "DataTransfer",
        "GetConfiguration",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "Reset",
        "UnlockConnector",
    ),
    "Firmware Management": ("GetDiagnostics", "UpdateFirmware"),
    "Local Auth List Management": ("GetLocalListVersion", "SendLocalList"),
    "Reservation": ("ReserveNow", "CancelReservation"),
    "Smart Charging": ("SetChargingProfile", "ClearChargingProfile", "GetCompositeSchedule"),
    "Remote Trigger": ("TriggerMessage",),
    "Security": (
        "ExtendedTriggerMessage",
        "CertificateSigned",
        "InstallCertificate",
        "DeleteCertificate",
        "GetInstalledCertificateIds",
        "GetLog",
        "SignedUpdateFirmware",
    ),
}

CENTRAL_ACTIONS: tuple[str, ...] = tuple(
    action for actions in CENTRAL_ACTIONS_BY_PROFILE.values() for action in actions
)
ALL_ACTIONS: frozenset[str] = frozenset(CHARGER_ACTIONS) | frozenset(CENTRAL_ACTIONS)

# Which OCPP-J error code a failed JSON-schema keyword maps to (OCPP-J 1.6 section 4.2.3).
_CODE_BY_KEYWORD: dict[str, str] = {
    "type": "TypeConstraintViolation",
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "additionalProperties": "FormationViolation",
    "enum": "PropertyConstraintViolation",
    "maxLength": "PropertyConstraintViolation",
    "minLength": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
}
# When several violations occur, strict mode answers with the most structural one.
_CODE_PRIORITY = (
    "FormationViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "PropertyConstraintViolation",
)

# RFC 3339 date-time, as the 1.6 schemas' "format": "date-time" means it.
_DATE_TIME = re.compile(
    r"^\d{4}-[01]\d-[0-3]\d[tT][0-2]\d:[0-5]\d:([0-5]\d|60)(\.\d+)?([zZ]|[+-][0-2]\d:[0-5]\d)$"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Violation:
    """One way a payload breaks its schema: where, what, and the OCPP-J code it maps to."""

    path: str
    message: str
    code: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "code": self.code}


def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_DATE_TIME.match(value))


_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
_FORMAT_CHECKER.checks("date-time")(_is_date_time)


@functools.cache
def schema(action: str, *, response: bool) -> dict[str, Any]:
    """The OCPP 1.6 JSON schema of `action`'s request (CALL) or response (CALLRESULT)."""
    if action not in ALL_ACTIONS:
        raise KeyError(action)
    name = f"{action}Response.json" if response else f"{action}.json"
    text = resources.files("ocpp.v16").joinpath("schemas", name).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def _fast_validator(action: str, response: bool) -> Callable[[Any], Any]:
    compiled: Callable[[Any], Any] = fastjsonschema.compile(
        schema(action, response=response), formats={"date-time": _DATE_TIME.pattern}
    )
    return compiled


@functools.cache
def _full_validator(action: str, response: bool) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(
        schema(action, response=response), format_checker=_FORMAT_CHECKER
    )


def _json_path(path: Any) -> str:
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def validate(action: str, payload: Any, *, response: bool) -> list[Violation]:
    """Every violation of `action`'s request or response schema; empty when valid."""
    try:
        _fast_validator(action, response)(payload)
    except fastjsonschema.JsonSchemaException:
        pass
    else:
        return []
    errors = _full_validator(action, response).iter_errors(payload)
    violations = [
        Violation(
            path=_json_path(error.absolute_path),
            message=error.message,
            code=_CODE_BY_KEYWORD.get(str(error.validator), "FormationViolation"),
        )
        for error in errors
    ]
    return sorted(violations, key=lambda violation: violation.path) or [
        Violation("$", "payload does not match the schema", "FormationViolation")
    ]


def strictest_code(violations: list[Violation]) -> str:
    """The one OCPP-J error code a strict central system answers these violations with."""
    codes = {violation.code for violation in violations}
    for code in _CODE_PRIORITY:
        if code in codes:
            return code
    return "FormationViolation"


def profile_of(action: str) -> str | None:
    """The feature profile a central-system action belongs to."""
    for profile, actions in CENTRAL_ACTIONS_BY_PROFILE.items():
        if action in actions:
            return profile
    return None
